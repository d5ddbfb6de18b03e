"""Default policies per attestation type (maa-compat.md §3.6), byte-exact so that their
``x-ms-policy-hash`` equals MAA's.

- SgxEnclave and OpenEnclave: the policy MAA's service returned in 2021-2022 (hash
  ``bROrN897ZfWmWY2V0FLUlu3uwk5xatGnKYHn3zBbSlw``): permit, and issue the legacy aliases.
- Tpm: none, as in MAA: attestation fails until a policy is set.
- TdxVm: MAA's default is not recorded in our vectors; attestd permits and issues nothing
  beyond the TDX claims (the minimal permit-all text, whose hash is MAA's permit-all hash).
"""

from __future__ import annotations

__all__ = ["DEFAULT_POLICIES", "PERMIT_ALL", "default_policy"]

SGX_DEFAULT = (
    'version= 1.0;authorizationrules{=> permit();};issuancerules{c:[type=="x-ms-sgx-is-debuggab'
    'le"] => issue(type="is-debuggable", value=c.value);c:[type=="x-ms-sgx-mrsigner"] => issue('
    'type="sgx-mrsigner", value=c.value);c:[type=="x-ms-sgx-mrenclave"] => issue(type="sgx-mren'
    'clave", value=c.value);c:[type=="x-ms-sgx-product-id"] => issue(type="product-id", value=c'
    '.value);c:[type=="x-ms-sgx-svn"] => issue(type="svn", value=c.value);c:[type=="x-ms-attest'
    'ation-type"] => issue(type="tee", value=c.value);};'
)
PERMIT_ALL = "version=1.0; authorizationrules{=> permit();}; issuancerules{};"

DEFAULT_POLICIES: dict[str, str | None] = {
    "sgxenclave": SGX_DEFAULT,
    "openenclave": SGX_DEFAULT,
    "tdxvm": PERMIT_ALL,
    "tpm": None,
}


def default_policy(attestation_type: str) -> str | None:
    """The default policy text for an attestation type (case-insensitive, as MAA's paths are);
    None when the type has no default. Raises ``KeyError`` for an unknown type."""
    return DEFAULT_POLICIES[attestation_type.lower()]
