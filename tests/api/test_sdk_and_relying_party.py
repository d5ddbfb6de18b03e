"""attestd.client, attestd.relying_party and the online CLI commands against the real app: the
SDK and the verifier go through Starlette's test client; the CLI against a live uvicorn server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from attestd.api.app import create_app
from attestd.cli.main import main
from attestd.client import AttestdClient, ServiceError
from attestd.config import Settings
from attestd.relying_party import TokenInvalid, TokenVerifier
from attestd.service import AttestationService
from attestd.store.sqlite import SQLiteStore
from conftest import MAA_OFFLINE, VECTORS
from fakes.live import listen, serving

SET = MAA_OFFLINE / "pysdk_b779_nondebug__2023-05"
AT = datetime.fromtimestamp(
    json.loads((SET / "meta.json").read_text())["verification_time_unix"], UTC
)
QUOTE = (SET / "quote.bin").read_bytes()
RUNTIME = (SET / "runtime_data.bin").read_bytes()


def service_for(tmp_path: Path, url: str) -> AttestationService:
    settings = Settings(
        instance_url=url,
        database=str(tmp_path / "db.sqlite3"),
        collateral_bundle=str(SET),
        verification_time=AT,
    )
    return AttestationService(settings, store=SQLiteStore(settings.database))


@pytest.fixture
def app_client(tmp_path: Path) -> Iterator[tuple[TestClient, AttestationService, str]]:
    service = service_for(tmp_path, "http://testserver")
    key = service.store.create_api_key("admin", at=datetime.now(UTC))
    with TestClient(create_app(service)) as client:
        yield client, service, key
    service.store.close()


def test_sdk_attest_and_relying_party(
    app_client: tuple[TestClient, AttestationService, str],
) -> None:
    client, _service, key = app_client
    sdk = AttestdClient("http://testserver", admin_key=key, client=client)
    token = sdk.attest_sgx(QUOTE, runtime_data=RUNTIME, nonce="abc")
    verifier = TokenVerifier("http://testserver", client=client)
    claims = verifier.verify(token)
    assert claims["x-ms-sgx-mrenclave"].startswith("b7792026")
    assert claims["nonce"] == "abc"
    # a forged token: same header and claims, signature of another token
    other = sdk.attest_sgx(QUOTE)
    forged = ".".join([*token.split(".")[:2], other.split(".")[2]])
    with pytest.raises(TokenInvalid):
        verifier.verify(forged)
    with pytest.raises(TokenInvalid):
        verifier.verify(token.split(".")[0] + "." + token.split(".")[1] + ".")
    with pytest.raises(ServiceError) as err:
        sdk.attest_sgx(QUOTE[:100])
    assert err.value.code == "InvalidParameter" and err.value.status == 400


def test_relying_party_follows_key_rotation(
    app_client: tuple[TestClient, AttestationService, str],
) -> None:
    client, service, _ = app_client
    sdk = AttestdClient("http://testserver", client=client)
    clock = [1000.0]
    verifier = TokenVerifier("http://testserver", client=client, clock=lambda: clock[0])
    first = sdk.attest_sgx(QUOTE)
    verifier.verify(first)
    old_kid = service._key.kid
    new_kid = service.rotate_signing_key()
    assert new_kid != old_kid
    second = sdk.attest_sgx(QUOTE)
    with pytest.raises(TokenInvalid):  # within the refresh interval: no refetch yet
        verifier.verify(second)
    clock[0] += 60
    assert verifier.verify(second)["iss"] == "http://testserver"
    verifier.verify(first)  # the retired key stays published while its tokens are valid
    kids = {k["kid"] for k in client.get("/certs").json()["keys"]}
    assert kids == {old_kid, new_kid}


def test_sdk_policy_management(app_client: tuple[TestClient, AttestationService, str]) -> None:
    client, _, key = app_client
    from attestd.policy.document import parse_policy_document, unsigned_policy
    from attestd.relying_party import TokenVerifier

    sdk = AttestdClient("http://testserver", admin_key=key, client=client)
    verifier = TokenVerifier("http://testserver", client=client)
    text = (VECTORS / "maa/policies/minimal_permit_all.txt").read_text()
    result = verifier.verify(sdk.set_policy("SgxEnclave", unsigned_policy(text)))
    assert result["x-ms-policy-result"] == "Updated"
    got = verifier.verify(sdk.get_policy("SgxEnclave"))["x-ms-policy"]
    assert parse_policy_document(got).policy_text == text
    assert verifier.verify(sdk.reset_policy("SgxEnclave"))["x-ms-policy-result"] == "Removed"
    anonymous = AttestdClient("http://testserver", client=client)
    anonymous._headers = {}
    with pytest.raises(ServiceError) as err:
        anonymous.get_policy("SgxEnclave")
    assert err.value.status == 401


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[str, str]]:
    sock, url = listen()
    service = service_for(tmp_path, url)
    key = service.store.create_api_key("admin", at=datetime.now(UTC))
    try:
        with serving(create_app(service), sock):
            yield url, key
    finally:
        service.store.close()


def test_cli_attest_verify_and_policy(
    live: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, key = live
    runtime = tmp_path / "rt.bin"
    runtime.write_bytes(RUNTIME)
    assert (
        main(
            [
                "attest",
                "sgx",
                str(SET / "quote.bin"),
                "--endpoint",
                url,
                "--runtime-data",
                str(runtime),
            ]
        )
        == 0
    )
    out, err = capsys.readouterr()
    token = out.strip()
    assert json.loads(err)["x-ms-sgx-ehd"]
    assert main(["token", "verify", token, "--endpoint", url]) == 0
    claims: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert claims["x-ms-sgx-mrsigner"].startswith("2c1a")
    assert main(["token", "verify", token[:-4] + "AAAA", "--endpoint", url]) == 1
    capsys.readouterr()
    policy = VECTORS / "maa/policies/minimal_permit_all.txt"
    assert (
        main(["policy", "set", "SgxEnclave", str(policy), "--endpoint", url, "--admin-key", key])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["x-ms-policy-result"] == "Updated"
    assert main(["policy", "get", "sgxenclave", "--endpoint", url, "--admin-key", key]) == 0
    assert capsys.readouterr().out.strip() == policy.read_text().strip()
    assert main(["policy", "get", "sgxenclave", "--endpoint", url, "--admin-key", "wrong"]) == 1
    assert "Unauthorized" in capsys.readouterr().err


def _signer(tmp_path: Path, name: str) -> tuple[Path, Path]:
    from datetime import timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = tmp_path / f"{name}.key", tmp_path / f"{name}.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def test_cli_isolated_instance_signers_and_signed_policies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key1, cert1 = _signer(tmp_path, "first-signer")
    _, cert2 = _signer(tmp_path, "second-signer")
    sock, url = listen()
    settings = Settings(
        instance_url=url,
        database=str(tmp_path / "iso.sqlite3"),
        collateral_bundle=str(SET),
        verification_time=AT,
        mode="isolated",
        isolated_signers=(str(cert1),),
    )
    service = AttestationService(settings, store=SQLiteStore(settings.database))
    admin = service.store.create_api_key("admin", at=datetime.now(UTC))
    try:
        with serving(create_app(service), sock):
            common = ["--endpoint", url, "--admin-key", admin]
            policy = VECTORS / "maa/policies/minimal_permit_all.txt"
            # unsigned policy on an isolated instance: refused
            assert main(["policy", "set", "SgxEnclave", str(policy), *common]) == 1
            assert "InvalidOperation" in capsys.readouterr().err
            signed = ["--key", str(key1), "--certificate", str(cert1)]
            assert main(["policy", "set", "SgxEnclave", str(policy), *signed, *common]) == 0
            assert "x-ms-policy-signer" in json.loads(capsys.readouterr().out)
            # policy sign prints MAA's JWS, which verifies against the signer
            assert main(["policy", "sign", str(policy), *signed]) == 0
            from cryptography import x509

            from attestd.policy.document import parse_policy_document, verify_policy_document

            doc = parse_policy_document(capsys.readouterr().out.strip())
            trusted = [x509.load_pem_x509_certificate(cert1.read_bytes())]
            verify_policy_document(doc, trusted_signers=trusted, require_signed=True)
            # signers: add the second (signed by the first), list, remove it, the last one stays
            assert main(["signers", "add", str(cert2), *signed, *common]) == 0
            assert (
                json.loads(capsys.readouterr().out)["x-ms-policycertificates-result"] == "IsPresent"
            )
            assert main(["signers", "list", *common]) == 0
            listed = capsys.readouterr().out
            assert "first-signer" in listed and "second-signer" in listed
            assert main(["signers", "remove", str(cert2), *signed, *common]) == 0
            assert (
                json.loads(capsys.readouterr().out)["x-ms-policycertificates-result"] == "IsAbsent"
            )
            assert main(["signers", "remove", str(cert1), *signed, *common]) == 1
            assert "last policy management certificate" in capsys.readouterr().err
    finally:
        service.store.close()


def test_cli_keys_rotate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATTESTD_DATABASE", str(tmp_path / "keys.sqlite3"))
    monkeypatch.setenv("ATTESTD_COLLATERAL", str(SET))
    assert main(["keys", "list"]) == 0
    first = capsys.readouterr().out.strip().splitlines()
    assert len(first) == 1 and "active" in first[0]
    assert main(["keys", "rotate"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].startswith("active signing key is now")
    assert len(out) == 3 and sum("retired" in line for line in out) == 1
