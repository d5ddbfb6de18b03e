"""The token stage: signing keys, their ``/certs`` entries, and MAA-shaped JWTs.

* :mod:`attestd.token.keys`: :class:`SigningKey` (key pair + self-signed certificate, MAA's
  ``kid``), :func:`jwks`, and the two ``kid`` formulas MAA uses (:func:`enclave_kid`,
  :func:`x5t_kid`).
* :mod:`attestd.token.issue`: :func:`issue_token` (RS256/ES256), :func:`unsigned_token`
  (draft-policy ``alg: none``), the lifetimes, and the payload serialization.

Tokens follow maa-compat.md §0 items 3, 5 and 6, §2.1 and §2.2.
"""

from __future__ import annotations

from attestd.token.issue import (
    ATTESTATION_TOKEN_LIFETIME,
    MANAGEMENT_TOKEN_LIFETIME,
    REGISTERED_CLAIMS,
    canonical_json,
    issue_token,
    unsigned_token,
)
from attestd.token.keys import (
    ALGORITHMS,
    CERTIFICATE_NOT_AFTER,
    SigningKey,
    SigningPrivateKey,
    enclave_kid,
    jwks,
    x5t_kid,
)

__all__ = [
    "ALGORITHMS",
    "ATTESTATION_TOKEN_LIFETIME",
    "CERTIFICATE_NOT_AFTER",
    "MANAGEMENT_TOKEN_LIFETIME",
    "REGISTERED_CLAIMS",
    "SigningKey",
    "SigningPrivateKey",
    "canonical_json",
    "enclave_kid",
    "issue_token",
    "jwks",
    "unsigned_token",
    "x5t_kid",
]
