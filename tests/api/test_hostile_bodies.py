"""Bodies built to break JSON readers rather than to match the schema: nested past every
reader's limit (Python's json raises RecursionError there, orjson and msgspec stop at their own
depth), whole or hidden inside the base64url members the service decodes and reads as JSON.
Every operation, on both instance modes, answers them with a 4xx error body, never a 5xx."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from starlette.testclient import TestClient

from api.tls import mint_signer
from attestd.api.app import create_app
from attestd.api.openapi import _TYPES
from attestd.config import Settings
from attestd.service import AttestationService
from attestd.store.sqlite import SQLiteStore
from conftest import MAA_OFFLINE

SET = MAA_OFFLINE / "pysdk_b779_nondebug__2023-05"
DEEP = [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000]


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture(params=["aad", "isolated"])
def instance(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[TestClient, dict[str, str]]]:
    now = datetime.fromtimestamp(
        json.loads((SET / "meta.json").read_text())["verification_time_unix"], UTC
    )
    store = SQLiteStore(str(tmp_path / "attestd.sqlite3"), now_fn=lambda: now)
    if request.param == "isolated":
        store.seed_signers([mint_signer("hostile").certificate.public_bytes(Encoding.DER)])
    settings = Settings(
        instance_url="https://attestd.test",
        database=str(tmp_path / "attestd.sqlite3"),
        mode=request.param,
        collateral_bundle=str(SET),
        verification_time=now,
    )
    service = AttestationService(settings, store=store, clock=lambda: now)
    auth = {"Authorization": f"Bearer {store.create_api_key('admin', at=now)}"}
    with TestClient(create_app(service)) as client:
        yield client, auth
    store.close()


def _bodies(deep: bytes) -> list[bytes]:
    hidden = b64u(deep)
    jws = f"{hidden}.{hidden}.AAAA"
    members = [
        {"quote": hidden},
        {"report": hidden},
        {"data": hidden},
        {"data": b64u(json.dumps({"payload": {"request": jws}}).encode())},
        {"quote": b64u(b"\x03\x00"), "runtimeData": {"data": hidden, "dataType": "JSON"}},
        {"quote": "AAAA", "draftPolicyForAttestation": jws},
        {"ek_cert": hidden, "ak_public": hidden},
        {"enrollment_context": hidden, "secret": "AAAA"},
    ]
    return [deep, json.dumps(jws).encode(), jws.encode()] + [
        json.dumps(m).encode() for m in members
    ]


@pytest.mark.parametrize("deep", DEEP, ids=["arrays", "objects"])
def test_deeply_nested_bodies_are_refused_not_crashed(
    instance: tuple[TestClient, dict[str, str]], deep: bytes
) -> None:
    client, auth = instance
    paths = [f"/attest/{t}" for t in _TYPES] + ["/enroll/Tpm"]
    paths += [f"/policies/{t}" for t in _TYPES] + [f"/policies/{t}:reset" for t in _TYPES]
    paths += ["/certificates:add", "/certificates:remove"]
    for path in paths:
        for body in _bodies(deep):
            method = (
                client.put if path.startswith("/policies/") and ":" not in path else client.post
            )
            r = method(f"{path}?api-version=2022-08-01", content=body, headers=auth)
            assert 400 <= r.status_code < 500, (path, body[:60], r.status_code, r.text[:200])
            assert r.json()["error"]["code"], (path, r.text[:200])
