"""Property-based fuzzing of the REST API against its own OpenAPI document (``GET /openapi.json``)
with Schemathesis, in-process over ASGI: every operation, with the administrator's bearer key on
every call, must never answer 5xx (``not_a_server_error``).

Both instance modes run, because they take different paths through the management operations:
an AAD instance refuses certificate changes before reading the body, an isolated one parses every
policy and certificate JWS and verifies it against its signers. Collateral comes from a local
bundle (never the network). The run is bounded and deterministic: at most 50 examples per
operation, derandomized, no example database.

The schemas are loaded when the module is imported (``schema.parametrize()`` needs them then), so
the two instances live in in-memory SQLite stores, closed when the module's tests are done.
``schemathesis.pytest.from_fixture`` would build them per test instead, but its lazy loader sets
``request.node._nodeid``, which pytest 9 no longer has (AttributeError with schemathesis 4.32.5).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import schemathesis
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, settings

from api.tls import mint_signer
from attestd.api.app import create_app
from attestd.config import Settings
from attestd.service import AttestationService
from attestd.store.sqlite import SQLiteStore
from conftest import MAA_OFFLINE

SET = MAA_OFFLINE / "pysdk_b779_nondebug__2023-05"
AT = datetime.fromtimestamp(
    json.loads((SET / "meta.json").read_text())["verification_time_unix"], UTC
)
URL = "https://attestd.test"


def _instance(mode: str) -> tuple[AttestationService, dict[str, str]]:
    """An attestd instance on an in-memory store, and the headers that make a caller its admin."""
    store = SQLiteStore(":memory:", now_fn=lambda: AT)
    if mode == "isolated":  # the signer an isolated instance is created with
        store.seed_signers(
            [mint_signer("attestd fuzz signer").certificate.public_bytes(Encoding.DER)]
        )
    config = Settings(
        instance_url=URL,
        database=":memory:",
        mode=mode,
        collateral_bundle=str(SET),
        verification_time=AT,
    )
    service = AttestationService(config, store=store, clock=lambda: AT)
    key = store.create_api_key("fuzz-admin", at=AT)
    return service, {"Authorization": f"Bearer {key}"}


AAD, AAD_AUTH = _instance("aad")
ISOLATED, ISOLATED_AUTH = _instance("isolated")
aad_schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(AAD))
isolated_schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(ISOLATED))

BOUNDED = settings(
    max_examples=50,
    derandomize=True,
    deadline=None,
    database=None,
    # Simple enum-only operations exhaust their inputs; that is not a problem here.
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)


@pytest.fixture(scope="module", autouse=True)
def _close_stores() -> Iterator[None]:
    yield
    AAD.store.close()
    ISOLATED.store.close()


def test_the_schema_covers_every_route() -> None:
    """The fuzzing reaches every operation the app serves (the document is the app's own)."""
    operations = {
        (result.ok().method.upper(), result.ok().path) for result in aad_schema.get_all_operations()
    }
    assert operations == {
        ("POST", "/attest/{type}"),
        ("GET", "/certs"),
        ("GET", "/.well-known/openid-configuration"),
        ("GET", "/policies/{type}"),
        ("PUT", "/policies/{type}"),
        ("POST", "/policies/{type}:reset"),
        ("GET", "/certificates"),
        ("POST", "/certificates:add"),
        ("POST", "/certificates:remove"),
    }


@aad_schema.parametrize()
@BOUNDED
def test_aad_instance_never_answers_5xx(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=AAD_AUTH, checks=[schemathesis.checks.not_a_server_error])


@isolated_schema.parametrize()
@BOUNDED
def test_isolated_instance_never_answers_5xx(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=ISOLATED_AUTH, checks=[schemathesis.checks.not_a_server_error])


def test_405_lists_the_allowed_methods() -> None:
    case = aad_schema["/certs"]["GET"].Case(method="TRACE")
    response = case.call(headers=AAD_AUTH)
    assert response.status_code == 405
    allowed = {m.strip() for value in response.headers.get("allow", []) for m in value.split(",")}
    assert "GET" in allowed
