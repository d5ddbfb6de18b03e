"""The REST API end to end through Starlette's test client: real quotes, real collateral, real
policies, tokens verified with PyJWT against the service's own /certs."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from starlette.testclient import TestClient

from attestd.api.app import create_app
from attestd.config import Settings
from attestd.service import AttestationService
from attestd.store.sqlite import SQLiteStore
from conftest import DCAP, MAA_OFFLINE, VECTORS

SET = MAA_OFFLINE / "pysdk_b779_nondebug__2023-05"
META = json.loads((SET / "meta.json").read_text())
AT = datetime.fromtimestamp(META["verification_time_unix"], UTC)
URL = "https://attestd.test"
PERMIT_ALL = (VECTORS / "maa/policies/minimal_permit_all.txt").read_text()


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims_of(token: str, client: TestClient) -> dict[str, Any]:
    header = jwt.get_unverified_header(token)
    jwks = client.get("/certs").json()
    key = jwt.PyJWKSet.from_dict(jwks)[header["kid"]]
    return jwt.decode(
        token, key=key, algorithms=[header["alg"]], issuer=URL, options={"verify_exp": False}
    )


def make(tmp_path: Path, **kw: Any) -> tuple[TestClient, AttestationService, str]:
    settings = Settings(
        instance_url=URL,
        database=str(tmp_path / "attestd.sqlite3"),
        collateral_bundle=str(kw.pop("bundle", SET)),
        verification_time=kw.pop("at", AT),
        **kw,
    )
    service = AttestationService(settings, store=SQLiteStore(settings.database), clock=lambda: AT)
    key = service.store.create_api_key("test-admin", at=AT)
    return TestClient(create_app(service)), service, key


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, AttestationService, str]]:
    client, service, key = make(tmp_path)
    with client:
        yield client, service, key
    service.store.close()


def test_attest_sgx_binary_runtime_data(api: tuple[TestClient, AttestationService, str]) -> None:
    client, _, _ = api
    runtime = (SET / "runtime_data.bin").read_bytes()
    r = client.post(
        "/attest/SgxEnclave?api-version=2020-10-01",
        json={
            "quote": b64u((SET / "quote.bin").read_bytes()),
            "runtimeData": {"data": b64u(runtime), "dataType": "Binary"},
        },
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    claims = claims_of(r.json()["token"], client)
    expected = META["maa"]["derived_expected_claims"]
    for name, value in expected["from_quote"].items():
        assert claims[name] == value, name
    assert claims["x-ms-sgx-ehd"] == expected["x-ms-sgx-ehd (runtimeData dataType Binary)"]
    assert claims["maa-ehd"] == claims["aas-ehd"] == claims["x-ms-sgx-ehd"]
    assert (
        claims["x-ms-policy-hash"] == "bROrN897ZfWmWY2V0FLUlu3uwk5xatGnKYHn3zBbSlw"
    )  # default SGX
    assert claims["sgx-mrsigner"] == claims["x-ms-sgx-mrsigner"]  # issued by the default policy
    assert claims["x-ms-policy"]["tee"] == "sgx"
    assert (
        claims["x-ms-sgx-collateral"]["quotehash"]
        == expected["x-ms-sgx-collateral.quotehash for /attest/SgxEnclave (sha256 of raw quote)"]
    )
    assert claims["maa-attestationcollateral"] == claims["x-ms-sgx-collateral"]
    assert claims["exp"] - claims["iat"] == 8 * 3600 and len(claims["jti"]) == 64


def test_attest_open_enclave_json_runtime_data(
    api: tuple[TestClient, AttestationService, str],
) -> None:
    client, _, _ = api
    runtime = (SET / "runtime_data.bin").read_bytes()
    r = client.post(
        "/ATTEST/openenclave?api-version=2022-08-01",  # paths are case-insensitive
        json={
            "report": b64u((SET / "openenclave_report.bin").read_bytes()),
            "runtimeData": {"data": b64u(runtime), "dataType": "JSON"},
            "nonce": "n-123",
        },
    )
    assert r.status_code == 200, r.text
    claims = claims_of(r.json()["token"], client)
    assert claims["x-ms-runtime"] == json.loads(runtime)
    assert "x-ms-sgx-ehd" not in claims
    assert claims["nonce"] == "n-123"
    assert claims["x-ms-sgx-collateral"]["quotehash"] == META["openenclave_report_sha256"]


def test_draft_policy_gives_an_unsigned_token(
    api: tuple[TestClient, AttestationService, str],
) -> None:
    client, _, _ = api
    r = client.post(
        "/attest/SgxEnclave",
        json={
            "quote": b64u((SET / "quote.bin").read_bytes()),
            "draftPolicyForAttestation": PERMIT_ALL,
        },
    )
    token = r.json()["token"]
    assert token.endswith(".")
    assert jwt.get_unverified_header(token)["alg"] == "none"
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["x-ms-policy-hash"] == "z0FRjKS0ssQTNur1V6BV8WIrh9M3fzgTo0EfHRvapWU"


def test_policy_denial_explains(api: tuple[TestClient, AttestationService, str]) -> None:
    client, _, _ = api
    draft = 'version=1.0; authorizationrules{[type=="x-ms-sgx-is-debuggable", value==true] => permit();};'
    r = client.post(
        "/attest/SgxEnclave",
        json={"quote": b64u((SET / "quote.bin").read_bytes()), "draftPolicyForAttestation": draft},
    )
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "PolicyEvaluationError"
    assert "No Permit claim was issued" in err["message"]
    assert "x-ms-sgx-is-debuggable is false" in err["message"]
    assert err["innererror"]["message"] == err["message"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"quote": "%%%"}, 400, "InvalidParameter"),
        ({"quote": b64u(b"\x03\x00\x02\x00" + bytes(100))}, 400, "InvalidParameter"),
        ({}, 400, "InvalidParameter"),
        ({"quote": "AAAA", "runtimeData": "x"}, 400, "InvalidParameter"),
        ([1, 2], 400, "InvalidParameter"),
    ],
)
def test_malformed_requests(
    api: tuple[TestClient, AttestationService, str], body: Any, status: int, code: str
) -> None:
    client, _, _ = api
    r = client.post("/attest/SgxEnclave", json=body)
    assert r.status_code == status
    assert r.json()["error"]["code"] == code


def test_runtime_data_must_match_report_data(
    api: tuple[TestClient, AttestationService, str],
) -> None:
    client, _, _ = api
    r = client.post(
        "/attest/SgxEnclave",
        json={
            "quote": b64u((SET / "quote.bin").read_bytes()),
            "runtimeData": {"data": b64u(b"other"), "dataType": "Binary"},
        },
    )
    assert r.status_code == 400
    assert "report_data" in r.json()["error"]["message"]


def test_tampered_quote_is_rejected(api: tuple[TestClient, AttestationService, str]) -> None:
    client, _, _ = api
    quote = bytearray((SET / "quote.bin").read_bytes())
    quote[200] ^= 1
    r = client.post("/attest/SgxEnclave", json={"quote": b64u(bytes(quote))})
    assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidParameter"


def test_not_json_and_too_large(tmp_path: Path) -> None:
    client, service, _ = make(tmp_path, max_body_bytes=4096)
    with client:
        r = client.post("/attest/SgxEnclave", content=b"{not json")
        assert r.status_code == 400
        r = client.post("/attest/SgxEnclave", json={"quote": "A" * 10000})
        assert r.status_code == 413
        assert client.get("/nope").status_code == 404
        assert client.delete("/certs").status_code == 405
    service.store.close()


def test_metadata(api: tuple[TestClient, AttestationService, str]) -> None:
    client, _, _ = api
    meta = client.get("/.well-known/openid-configuration").json()
    assert meta["issuer"] == URL and meta["jwks_uri"] == f"{URL}/certs"
    keys = client.get("/certs").json()["keys"]
    assert len(keys) == 1 and {"x5c", "kid", "kty", "n", "e", "alg", "use"} <= set(keys[0])
    assert client.get("/openapi.json").json()["openapi"].startswith("3.")


def test_policy_management(api: tuple[TestClient, AttestationService, str]) -> None:
    client, _, key = api
    auth = {"Authorization": f"Bearer {key}"}
    assert client.get("/policies/SgxEnclave").status_code == 401
    assert (
        client.get("/policies/SgxEnclave", headers={"Authorization": "Bearer nope"}).status_code
        == 401
    )
    r = client.get("/policies/SgxEnclave?api-version=2020-10-01", headers=auth)
    policy = claims_of(r.json()["token"], client)["x-ms-policy"]
    assert policy.split(".")[0] == "eyJhbGciOiJub25lIn0"
    from attestd.policy.document import policy_token_hash, unsigned_policy

    jws = unsigned_policy(PERMIT_ALL)
    r = client.put(
        "/policies/sgxenclave", content=jws, headers={**auth, "Content-Type": "text/plain"}
    )
    assert r.status_code == 200, r.text
    claims = claims_of(r.json()["token"], client)
    assert claims["x-ms-policy-result"] == "Updated"
    assert claims["x-ms-policy-token-hash"] == policy_token_hash(jws)
    assert claims["exp"] - claims["iat"] == 3600
    r = client.post("/attest/SgxEnclave", json={"quote": b64u((SET / "quote.bin").read_bytes())})
    assert (
        claims_of(r.json()["token"], client)["x-ms-policy-hash"]
        == "z0FRjKS0ssQTNur1V6BV8WIrh9M3fzgTo0EfHRvapWU"
    )
    bad = unsigned_policy("version=1.0; authorizationrules{=> permit()}")
    r = client.put("/policies/SgxEnclave", content=bad, headers=auth)
    assert r.status_code == 400 and r.json()["error"]["code"] == "PolicyParsingError"
    r = client.post("/policies/SgxEnclave:reset", content="eyJhbGciOiJub25lIn0..", headers=auth)
    assert claims_of(r.json()["token"], client)["x-ms-policy-result"] == "Removed"
    r = client.get("/policies/Tpm", headers=auth)
    assert claims_of(r.json()["token"], client)["x-ms-policy"] == "eyJhbGciOiJub25lIn0.."
    r = client.get("/certificates", headers=auth)
    assert claims_of(r.json()["token"], client)["x-ms-policy-certificates"] == {"keys": []}
    r = client.post("/certificates:add", json="x.y.z", headers=auth)
    assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidOperation"
    r = client.post("/certificates:add", content=b"[" * 100_000 + b"]" * 100_000, headers=auth)
    assert r.status_code == 400  # nested past json's limit: not JSON, so not a JWS string
    actions = [e.action for e in api[1].store.audit_log()]
    assert actions[:2] == ["policy.reset", "policy.set"]


def test_tdx_attestation(tmp_path: Path) -> None:
    folder = DCAP / "phala-dcap-qvl/tdx_v4"
    at = datetime.fromtimestamp(
        json.loads((folder / "meta.json").read_text())["verification_time_unix"], UTC
    )
    client, service, _ = make(tmp_path, bundle=folder, at=at)
    with client:
        r = client.post(
            "/attest/TdxVm?api-version=2025-06-01",
            json={"quote": b64u((folder / "quote.bin").read_bytes())},
        )
        assert r.status_code == 200, r.text
        claims = claims_of(r.json()["token"], client)
        assert claims["x-ms-attestation-type"] == "tdxvm"
        assert claims["attester_tcb_status"] == "UpToDate"
        r = client.post(
            "/attest/SgxEnclave", json={"quote": b64u((folder / "quote.bin").read_bytes())}
        )
        assert r.status_code == 400
    service.store.close()
