"""The official Azure SDK (``azure-security-attestation==1.0.0``, with ``six``) against a real
attestd server: uvicorn over TLS on 127.0.0.1, a random free port, the real clock (the SDK checks
token expiry against it) and a fixed ``verification_time`` for the 2023-05 collateral, as an
archival instance runs.

The SDK's bearer token is our administrator API key (azure-core refuses bearer tokens over
plain HTTP, hence TLS with a CA minted per test module). Results are compared with the tokens
MAA issued for the same evidence (``maa-offline/expected/pysdk_b779_nondebug``), leaving out
times, ``jti``, ``iss`` and the hashes of MAA's own (2021) collateral.
"""

from __future__ import annotations

import base64
import hashlib
import json
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError
from azure.security.attestation import (
    AttestationAdministrationClient,
    AttestationClient,
    AttestationPolicyToken,
    AttestationType,
    CertificateModification,
    PolicyModification,
)
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.serialization import Encoding

from api.tls import ServerTls, Signer, mint_server_tls, mint_signer
from attestd.api.app import create_app
from attestd.config import Settings
from attestd.policy.defaults import SGX_DEFAULT
from attestd.service import AttestationService
from attestd.store.sqlite import SQLiteStore
from conftest import MAA_OFFLINE, VECTORS
from fakes.live import listen, serving

SET = MAA_OFFLINE / "pysdk_b779_nondebug__2023-05"
META = json.loads((SET / "meta.json").read_text())
AT = datetime.fromtimestamp(META["verification_time_unix"], UTC)
QUOTE = (SET / "quote.bin").read_bytes()
REPORT = (SET / "openenclave_report.bin").read_bytes()
RUNTIME = (SET / "runtime_data.bin").read_bytes()
RECORDED = json.loads(
    (VECTORS / "maa-offline/expected/pysdk_b779_nondebug.recorded_tokens.json").read_text()
)
SHARED = "https://sharedwus.wus.attest.azure.net"  # its policies are the defaults, as ours
PERMIT_ALL = (VECTORS / "maa/policies/minimal_permit_all.txt").read_text()
PERMIT_ALL_HASH = "z0FRjKS0ssQTNur1V6BV8WIrh9M3fzgTo0EfHRvapWU"
DEFAULT_HASH = "bROrN897ZfWmWY2V0FLUlu3uwk5xatGnKYHn3zBbSlw"

# Not compared with MAA: per-token values, and hashes of the collateral MAA used in 2021.
VOLATILE = {"exp", "iat", "nbf", "jti", "iss"}
MAA_COLLATERAL_HASHES = {"tcbinfohash", "qeidhash", "tcbinfocrlhash", "qeidcrlhash"}
COLLATERAL_CLAIMS = {"x-ms-sgx-collateral", "maa-attestationcollateral"}
# What attestd adds to MAA's 2021 token, besides its own x-attestd-* claims (TCB status, the
# fixed verification time of an archival instance, ...): the 2022 service's x-ms-policy object.
ATTESTD_EXTRA = {"x-ms-policy"}


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def recorded(path: str, *, runtime: str, draft: bool) -> dict[str, Any]:
    """The claims of MAA's shared-instance token for this evidence and request shape."""
    for entry in RECORDED[path]:
        claims = entry["claims"]
        if (
            claims["iss"] == SHARED
            and entry["runtime_data_type"] == runtime
            and entry["draft_policy"] is draft
        ):
            return dict(claims)
    raise LookupError(f"no recorded {path} token for {runtime=} {draft=}")


def assert_like_maa(ours: dict[str, Any], maa: dict[str, Any]) -> None:
    """Every claim MAA issued is ours too, equal (collateral: all but MAA's own hashes)."""
    for name, value in maa.items():
        if name in VOLATILE:
            continue
        assert name in ours, name
        if name in COLLATERAL_CLAIMS:
            assert set(ours[name]) == set(value), name
            for part in set(value) - MAA_COLLATERAL_HASHES:
                assert ours[name][part] == value[part], f"{name}.{part}"
        else:
            assert ours[name] == value, name
    extra = {name for name in set(ours) - set(maa) if not name.startswith("x-attestd-")}
    assert extra <= VOLATILE | ATTESTD_EXTRA, extra


def token_claims(token: Any) -> dict[str, Any]:
    """The body of an SDK ``AttestationToken`` (the SDK has already checked its signature)."""
    claims: dict[str, Any] = jwt.decode(token.to_jwt_string(), options={"verify_signature": False})
    return claims


def der_b64(signer: Signer) -> str:
    return base64.b64encode(signer.certificate.public_bytes(Encoding.DER)).decode("ascii")


def service_error(call: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[int, str]:
    """The HTTP status and CloudError code of a failing SDK call. The exception is not kept:
    its traceback holds the response, whose socket would stay open until garbage collection
    (and uvicorn waits for open connections when it stops)."""
    try:
        call(*args, **kwargs)
    except HttpResponseError as exc:
        assert exc.model.error.code == exc.error.code  # the SDK's CloudError model agrees
        return exc.status_code, exc.error.code
    raise AssertionError(f"{call.__name__} succeeded")


class ApiKeyCredential:
    """An azure-core ``TokenCredential`` whose bearer token is an attestd API key."""

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.api_key, 4_102_444_800)  # 2100-01-01


@dataclass(frozen=True)
class Instance:
    url: str
    service: AttestationService
    api_key: str
    tls: ServerTls

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.tls.ca_file))

    def client_options(self) -> dict[str, Any]:
        return {
            "connection_verify": str(self.tls.ca_file),
            "validate_issuer": True,
            "issuer": self.url,
        }

    def attestation_client(self) -> AttestationClient:
        return AttestationClient(self.url, ApiKeyCredential(self.api_key), **self.client_options())

    def admin_client(self) -> AttestationAdministrationClient:
        return AttestationAdministrationClient(
            self.url, ApiKeyCredential(self.api_key), **self.client_options()
        )

    def get(self, path: str) -> Any:
        r = httpx.get(f"{self.url}{path}", verify=self.ssl_context())
        r.raise_for_status()
        return r.json()


@contextmanager
def serve(folder: Path, tls: ServerTls, **settings: Any) -> Iterator[Instance]:
    """attestd under uvicorn, TLS on 127.0.0.1, in a background thread, until the block ends."""
    sock, url = listen("https")
    folder.mkdir(parents=True, exist_ok=True)
    config = Settings(
        instance_url=url,
        database=str(folder / "attestd.sqlite3"),
        collateral_bundle=str(SET),
        verification_time=AT,
        **settings,
    )
    service = AttestationService(config, store=SQLiteStore(config.database))  # real clock
    api_key = service.store.create_api_key("sdk-admin", at=datetime.now(UTC))
    tls_files = {"ssl_keyfile": str(tls.key_file), "ssl_certfile": str(tls.cert_file)}
    try:
        with serving(
            create_app(service), sock, ws="none", timeout_graceful_shutdown=5, **tls_files
        ):
            yield Instance(url, service, api_key, tls)
    finally:
        service.store.close()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> ServerTls:
    return mint_server_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def aad(tmp_path_factory: pytest.TempPathFactory, tls: ServerTls) -> Iterator[Instance]:
    """A shared AAD-mode instance for tests that change no state."""
    with serve(tmp_path_factory.mktemp("aad"), tls) as instance:
        yield instance


@pytest.fixture
def fresh_aad(tmp_path: Path, tls: ServerTls) -> Iterator[Instance]:
    with serve(tmp_path, tls) as instance:
        yield instance


@pytest.fixture(scope="module")
def signer() -> Signer:
    return mint_signer("attestd SDK test policy signer")


@pytest.fixture
def isolated(tmp_path: Path, tls: ServerTls, signer: Signer) -> Iterator[Instance]:
    pem = tmp_path / "signer.pem"
    pem.write_text(signer.cert_pem)
    with serve(tmp_path / "db", tls, mode="isolated", isolated_signers=(str(pem),)) as instance:
        yield instance


# -- attestation ----------------------------------------------------------------------------


def test_attest_sgx_enclave_binary_runtime_data(aad: Instance) -> None:
    maa = recorded("/attest/SgxEnclave", runtime="Binary", draft=False)
    with aad.attestation_client() as client:
        result, token = client.attest_sgx_enclave(QUOTE, runtime_data=RUNTIME)
    assert token.algorithm == "RS256" and token.issuer == aad.url
    assert result.issuer == aad.url and result.version == "1.0"
    assert result.mr_enclave == maa["x-ms-sgx-mrenclave"]
    assert result.mr_signer == maa["x-ms-sgx-mrsigner"]
    assert result.product_id == maa["x-ms-sgx-product-id"] == 1
    assert result.svn == maa["x-ms-sgx-svn"] == 1
    assert result.is_debuggable is False
    assert result.verifier_type == "sgx"
    assert result.enclave_held_data == RUNTIME == b64url_decode(maa["x-ms-sgx-ehd"])
    assert result.runtime_claims is None and result.inittime_claims is None
    assert (
        result.policy_hash == b64url_decode(maa["x-ms-policy-hash"]) == b64url_decode(DEFAULT_HASH)
    )
    assert result.sgx_collateral["quotehash"] == META["quote_sha256"]
    assert set(result.sgx_collateral) == set(maa["x-ms-sgx-collateral"])
    for part in set(maa["x-ms-sgx-collateral"]) - MAA_COLLATERAL_HASHES:  # quote, issuer chains
        assert result.sgx_collateral[part] == maa["x-ms-sgx-collateral"][part], part
    assert result.policy_claims == {
        "is-debuggable": False,
        "sgx-mrsigner": maa["sgx-mrsigner"],
        "sgx-mrenclave": maa["sgx-mrenclave"],
        "product-id": 1,
        "svn": 1,
        "tee": "sgx",
    }
    assert len(result.unique_id) == 64
    assert_like_maa(token_claims(token), maa)


def test_attest_open_enclave_json_runtime_data(aad: Instance) -> None:
    maa = recorded("/attest/OpenEnclave", runtime="JSON", draft=False)
    with aad.attestation_client() as client:
        result, token = client.attest_open_enclave(REPORT, runtime_json=RUNTIME)
    assert result.runtime_claims == json.loads(RUNTIME) == maa["x-ms-runtime"]
    assert result.enclave_held_data is None
    assert result.mr_enclave == maa["x-ms-sgx-mrenclave"]
    assert result.mr_signer == maa["x-ms-sgx-mrsigner"]
    assert result.is_debuggable is False and result.verifier_type == "sgx"
    assert result.policy_hash == b64url_decode(DEFAULT_HASH)
    assert result.sgx_collateral["quotehash"] == META["openenclave_report_sha256"]
    assert_like_maa(token_claims(token), maa)


def test_draft_policy_gives_an_unsigned_token(aad: Instance) -> None:
    maa = recorded("/attest/OpenEnclave", runtime="JSON", draft=True)
    with aad.attestation_client() as client:
        result, token = client.attest_open_enclave(
            REPORT, runtime_json=RUNTIME, draft_policy=PERMIT_ALL
        )
        sgx_result, sgx_token = client.attest_sgx_enclave(QUOTE, draft_policy=PERMIT_ALL)
    for t in (token, sgx_token):
        assert t.algorithm == "none" and t.to_jwt_string().endswith(".")
    assert result.policy_hash == b64url_decode(maa["x-ms-policy-hash"])
    assert result.policy_hash == b64url_decode(PERMIT_ALL_HASH) == sgx_result.policy_hash
    assert result.runtime_claims == maa["x-ms-runtime"]
    assert sgx_result.mr_enclave == maa["x-ms-sgx-mrenclave"]
    assert_like_maa(token_claims(token), maa)


def test_metadata_and_signing_certificates(aad: Instance) -> None:
    with aad.attestation_client() as client:
        metadata = client.get_open_id_metadata()
        signers = client.get_signing_certificates()
    assert metadata == aad.get("/.well-known/openid-configuration")
    assert metadata["issuer"] == aad.url and metadata["jwks_uri"] == f"{aad.url}/certs"
    keys = aad.get("/certs")["keys"]
    assert keys == aad.service.certs()["keys"]
    assert [s.key_id for s in signers] == [k["kid"] for k in keys]
    for s, k in zip(signers, keys, strict=True):
        ours = [
            base64.b64encode(ssl.PEM_cert_to_DER_cert(pem)).decode("ascii")
            for pem in s.certificates
        ]
        assert ours == k["x5c"]


def test_pyjwt_verifies_with_our_jwks(aad: Instance) -> None:
    with aad.attestation_client() as client:
        _, token = client.attest_sgx_enclave(QUOTE, runtime_data=RUNTIME)
    text = token.to_jwt_string()
    jwks = jwt.PyJWKClient(f"{aad.url}/certs", ssl_context=aad.ssl_context())
    key = jwks.get_signing_key_from_jwt(text)
    assert key.key_id == jwt.get_unverified_header(text)["kid"]
    claims = jwt.decode(text, key=key, algorithms=["RS256"], issuer=aad.url)
    assert (
        claims["x-ms-sgx-mrenclave"]
        == META["maa"]["derived_expected_claims"]["from_quote"]["x-ms-sgx-mrenclave"]
    )
    assert claims["exp"] - claims["iat"] == 8 * 3600


# -- administration, AAD mode ----------------------------------------------------------------


def test_policy_management_aad(fresh_aad: Instance) -> None:
    sgx = AttestationType.SGX_ENCLAVE
    signer = mint_signer("attestd SDK test AAD policy signer")
    with fresh_aad.admin_client() as admin, fresh_aad.attestation_client() as client:
        policy, _ = admin.get_policy(sgx)
        assert policy == SGX_DEFAULT

        # Unsigned set: the SDK leaves the hash check to the caller, as in its own sample
        # (sample_get_set_policy.py "validate_policy_hash").
        result, token = admin.set_policy(sgx, PERMIT_ALL)
        sent = AttestationPolicyToken(PERMIT_ALL).to_jwt_string()
        assert result.policy_resolution == PolicyModification.UPDATED
        assert result.policy_token_hash == hashlib.sha256(sent.encode("ascii")).digest()
        assert result.policy_signer is None
        claims = token_claims(token)
        assert claims["exp"] - claims["iat"] == 3600 and "jti" not in claims
        assert admin.get_policy(sgx)[0] == PERMIT_ALL
        attested, _ = client.attest_sgx_enclave(QUOTE)
        assert attested.policy_hash == b64url_decode(PERMIT_ALL_HASH)
        assert attested.policy_claims is None

        result, _ = admin.reset_policy(sgx)
        assert result.policy_resolution == PolicyModification.REMOVED
        assert admin.get_policy(sgx)[0] == SGX_DEFAULT

        # Signed set: any signer is accepted on an AAD instance.
        result, _ = admin.set_policy(
            sgx, PERMIT_ALL, signing_key=signer.key_pem, signing_certificate=signer.cert_pem
        )
        sent = AttestationPolicyToken(
            PERMIT_ALL, signing_key=signer.key_pem, signing_certificate=signer.cert_pem
        ).to_jwt_string()  # RS256 (PKCS#1 v1.5) is deterministic: the same JWS
        assert result.policy_resolution == PolicyModification.UPDATED
        assert result.policy_token_hash == hashlib.sha256(sent.encode("ascii")).digest()
        assert result.policy_signer.certificates == [signer.cert_pem]
        assert admin.get_policy(sgx)[0] == PERMIT_ALL
        # Read from the token: the SDK's AttestationResult.policy_signer property raises
        # AttributeError (it re-wraps an AttestationSigner as if it were a generated JSONWebKey).
        _, attested_token = client.attest_sgx_enclave(QUOTE)
        assert token_claims(attested_token)["x-ms-policy-signer"] == {
            "kty": "RSA",
            "x5c": [der_b64(signer)],
        }

        certificates, _ = admin.get_policy_management_certificates()
        assert certificates == []
        assert service_error(
            admin.add_policy_management_certificate,
            signer.cert_pem,
            signing_key=signer.key_pem,
            signing_certificate=signer.cert_pem,
        ) == (400, "InvalidOperation")

        assert admin.get_policy(AttestationType.TPM)[0] == ""
        result, _ = admin.reset_policy(sgx)
        assert result.policy_resolution == PolicyModification.REMOVED


# -- administration, isolated mode -----------------------------------------------------------


def thumbprint(signer: Signer) -> str:
    return signer.certificate.fingerprint(SHA1()).hex().upper()


def test_policy_management_isolated(isolated: Instance, signer: Signer) -> None:
    sgx = AttestationType.SGX_ENCLAVE
    newcomer = mint_signer("attestd SDK test added signer")
    by_signer = {"signing_key": signer.key_pem, "signing_certificate": signer.cert_pem}
    by_newcomer = {"signing_key": newcomer.key_pem, "signing_certificate": newcomer.cert_pem}
    with isolated.admin_client() as admin, isolated.attestation_client() as client:
        certificates, _ = admin.get_policy_management_certificates()
        assert certificates == [[signer.cert_pem]]

        result, _ = admin.set_policy(sgx, PERMIT_ALL, **by_signer)
        assert result.policy_resolution == PolicyModification.UPDATED
        sent = AttestationPolicyToken(PERMIT_ALL, **by_signer).to_jwt_string()
        assert result.policy_token_hash == hashlib.sha256(sent.encode("ascii")).digest()
        assert result.policy_signer.certificates == [signer.cert_pem]
        attested, attested_token = client.attest_sgx_enclave(QUOTE, runtime_data=RUNTIME)
        assert attested.policy_hash == b64url_decode(PERMIT_ALL_HASH)
        assert token_claims(attested_token)["x-ms-policy-signer"]["x5c"] == [der_b64(signer)]

        for bad in ({}, by_newcomer):  # unsigned, and signed by a stranger
            assert service_error(admin.set_policy, sgx, SGX_DEFAULT, **bad) == (
                400,
                "InvalidOperation",
            )

        result, _ = admin.add_policy_management_certificate(newcomer.cert_pem, **by_signer)
        assert result.certificate_thumbprint == thumbprint(newcomer)
        assert result.certificate_resolution == CertificateModification.IS_PRESENT
        certificates, _ = admin.get_policy_management_certificates()
        assert sorted(certificates) == sorted([[signer.cert_pem], [newcomer.cert_pem]])
        result, _ = admin.set_policy(sgx, SGX_DEFAULT, **by_newcomer)
        assert result.policy_signer.certificates == [newcomer.cert_pem]
        assert admin.get_policy(sgx)[0] == SGX_DEFAULT

        result, _ = admin.remove_policy_management_certificate(newcomer.cert_pem, **by_signer)
        assert result.certificate_thumbprint == thumbprint(newcomer)
        assert result.certificate_resolution == CertificateModification.IS_ABSENT
        certificates, _ = admin.get_policy_management_certificates()
        assert certificates == [[signer.cert_pem]]
        assert service_error(admin.set_policy, sgx, PERMIT_ALL, **by_newcomer) == (
            400,
            "InvalidOperation",
        )
        assert service_error(admin.reset_policy, sgx) == (400, "InvalidOperation")  # unsigned
        result, _ = admin.reset_policy(sgx, **by_signer)
        assert result.policy_resolution == PolicyModification.REMOVED
        assert admin.get_policy(sgx)[0] == SGX_DEFAULT
