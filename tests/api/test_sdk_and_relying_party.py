"""attestd.client, attestd.relying_party and the online CLI commands against the real app: the
SDK and the verifier go through Starlette's test client; the CLI against a live uvicorn server."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.testclient import TestClient

from attestd.api.app import create_app
from attestd.cli.main import main
from attestd.client import AttestdClient, ServiceError
from attestd.config import Settings
from attestd.relying_party import TokenInvalid, TokenVerifier
from attestd.service import AttestationService
from attestd.store.sqlite import SQLiteStore
from conftest import MAA_OFFLINE, VECTORS

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[str, str]]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    service = service_for(tmp_path, url)
    key = service.store.create_api_key("admin", at=datetime.now(UTC))
    server = uvicorn.Server(
        uvicorn.Config(create_app(service), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield url, key
    server.should_exit = True
    thread.join(10)
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
