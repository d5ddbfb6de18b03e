"""Administrators authenticating with OpenID bearer JWTs, through the app, against a real local
identity provider (an HTTP server on 127.0.0.1 serving discovery + JWKS, keys minted here).

The service clock is injected (and moved by the tests): it decides token expiry, the JWKS cache
period and the 30 s unknown-kid refetch throttle. The IdP counts the requests it serves, which is
how the tests see what the cache does."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from starlette.testclient import TestClient

from attestd.api.app import create_app
from attestd.api.auth import Authenticator
from attestd.config import Settings, load_settings
from attestd.errors import ConfigurationError
from attestd.policy.document import unsigned_policy
from attestd.service import AttestationService
from attestd.store.sqlite import SQLiteStore
from conftest import MAA_OFFLINE, VECTORS

SET = MAA_OFFLINE / "pysdk_b779_nondebug__2023-05"
AT = datetime.fromtimestamp(
    json.loads((SET / "meta.json").read_text())["verification_time_unix"], UTC
)
URL = "https://attestd.test"
AUDIENCE = "api://attestd-test"
ROLE = "Attestation.Administrator"
SUB = "0b1c2d3e-admin-alice"
PERMIT_ALL = (VECTORS / "maa/policies/minimal_permit_all.txt").read_text()
POLICY = "/policies/SgxEnclave"

Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
RSA_KEYS = [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3)]
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class IdP:
    """A minimal OpenID provider: discovery document and JWKS under an Azure-AD-like path."""

    def __init__(self) -> None:
        self.published: dict[str, Key] = {}  # kid -> private key (its public half is served)
        self.requests: Counter[str] = Counter()
        self.status = 200
        self.document_issuer: str | None = None  # overrides the issuer in the discovery document
        self._lock = threading.Lock()
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with idp._lock:
                    idp.requests[self.path] += 1
                status, body = idp.answer(self.path)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        base = f"http://127.0.0.1:{self.server.server_port}"
        self.issuer = f"{base}/tenant-1/v2.0"
        self.discovery_path = "/tenant-1/v2.0/.well-known/openid-configuration"
        self.jwks_path = "/tenant-1/discovery/v2.0/keys"
        self.jwks_uri = base + self.jwks_path
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        self.running = True

    def answer(self, path: str) -> tuple[int, Any]:
        if self.status != 200:
            return self.status, {"error": "temporarily_unavailable"}
        if path == self.discovery_path:
            return 200, {
                "issuer": self.document_issuer or self.issuer,
                "jwks_uri": self.jwks_uri,
                "id_token_signing_alg_values_supported": ["RS256"],
            }
        if path == self.jwks_path:
            keys = []
            for kid, key in list(self.published.items()):
                if isinstance(key, rsa.RSAPrivateKey):
                    jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
                else:
                    jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
                keys.append({**jwk, "kid": kid, "use": "sig"})
            # What real JWKS also carry: an encryption key, which must be ignored.
            enc = RSAAlgorithm.to_jwk(RSA_KEYS[2].public_key(), as_dict=True)
            keys.append({**enc, "kid": "enc-1", "use": "enc", "alg": "RSA-OAEP"})
            return 200, {"keys": keys}
        return 404, {"error": "not_found"}

    def fetches(self) -> tuple[int, int]:
        """(discovery requests, JWKS requests) served so far."""
        with self._lock:
            return self.requests[self.discovery_path], self.requests[self.jwks_path]

    def stop(self) -> None:
        if self.running:
            self.running = False
            self.server.shutdown()
            self.server.server_close()
            self.thread.join()


@pytest.fixture
def idp() -> Iterator[IdP]:
    provider = IdP()
    provider.published["k1"] = RSA_KEYS[0]
    try:
        yield provider
    finally:
        provider.stop()


class Env:
    def __init__(self, client: TestClient, service: AttestationService, idp: IdP, clock: Clock):
        self.client, self.service, self.idp, self.clock = client, service, idp, clock
        self.api_key = service.store.create_api_key("test-admin", at=AT)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(self.clock().timestamp())
        claims: dict[str, Any] = {
            "iss": self.idp.issuer,
            "aud": AUDIENCE,
            "sub": SUB,
            "oid": "00000000-0000-0000-0000-00000000a11c",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "roles": [ROLE, "Attestation.Reader"],
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(
        self, *, kid: str = "k1", key: Key | None = None, alg: str = "RS256", **claims: Any
    ) -> str:
        signer = key if key is not None else self.idp.published[kid]
        return jwt.encode(self.claims(**claims), signer, algorithm=alg, headers={"kid": kid})

    def get(self, token: str) -> tuple[int, str]:
        r = self.client.get(POLICY, headers={"Authorization": f"Bearer {token}"})
        return r.status_code, (r.json().get("error") or {}).get("message", "")


def build(tmp_path: Path, idp: IdP, **kw: Any) -> tuple[TestClient, AttestationService, Clock]:
    clock = Clock(AT)
    settings = Settings(
        instance_url=URL,
        database=str(tmp_path / "attestd.sqlite3"),
        collateral_bundle=str(SET),
        verification_time=AT,
        oidc_issuer=idp.issuer,
        oidc_audience=AUDIENCE,
        **kw,
    )
    service = AttestationService(settings, store=SQLiteStore(settings.database), clock=clock)
    return TestClient(create_app(service)), service, clock


@pytest.fixture
def env(tmp_path: Path, idp: IdP) -> Iterator[Env]:
    client, service, clock = build(tmp_path, idp)
    try:
        with client:
            yield Env(client, service, idp, clock)
    finally:
        service.store.close()


# -- accepted tokens ---------------------------------------------------------------------------------


def test_valid_admin_token_reads_and_sets_policy_as_oidc_subject(env: Env) -> None:
    token = env.token()
    assert env.get(token) == (200, "")
    r = env.client.put(
        POLICY,
        content=unsigned_policy(PERMIT_ALL),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "text/plain"},
    )
    assert r.status_code == 200, r.text
    entry = env.service.store.audit_log(limit=1)[0]
    assert (entry.action, entry.actor) == ("policy.set", f"oidc:{SUB}")
    assert env.idp.fetches() == (1, 1)  # one discovery, one JWKS for both calls


def test_oid_is_the_actor_without_sub(env: Env) -> None:
    token = env.token(sub=None)
    r = env.client.post(
        f"{POLICY}:reset",
        content="eyJhbGciOiJub25lIn0..",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200, r.text
    assert env.service.store.audit_log(limit=1)[0].actor == (
        "oidc:00000000-0000-0000-0000-00000000a11c"
    )
    status, message = env.get(env.token(sub=None, oid=None))
    assert status == 401 and "no usable 'sub' or 'oid'" in message


def test_roles_as_space_separated_string_and_list_audience(env: Env) -> None:
    assert env.get(env.token(roles=f"Attestation.Reader {ROLE}"))[0] == 200
    assert env.get(env.token(aud=["https://other.example", AUDIENCE]))[0] == 200


def test_es256_token_from_an_ec_key(env: Env) -> None:
    env.idp.published["ec-1"] = EC_KEY
    assert env.get(env.token(kid="ec-1", alg="ES256"))[0] == 200


def test_times_are_checked_with_60_s_leeway(env: Env) -> None:
    now = int(env.clock().timestamp())
    assert env.get(env.token(exp=now - 30))[0] == 200  # within the leeway
    assert env.get(env.token(nbf=now + 30))[0] == 200
    status, message = env.get(env.token(iat=now - 7200, nbf=now - 7200, exp=now - 120))
    assert status == 401 and "expired" in message
    status, message = env.get(env.token(nbf=now + 120))
    assert status == 401 and "not valid before" in message
    status, message = env.get(env.token(exp=None))
    assert status == 401 and "'exp'" in message
    # The service clock decides: the same valid token expires when the clock moves past it.
    token = env.token()
    assert env.get(token)[0] == 200
    env.clock.advance(3600 + 61)
    assert "expired" in env.get(token)[1]


# -- refused tokens ----------------------------------------------------------------------------------


def test_wrong_audience(env: Env) -> None:
    status, message = env.get(env.token(aud="api://some-other-service"))
    assert status == 401 and "wrong audience" in message
    assert env.get(env.token(aud=None))[1].startswith("the token has no 'aud' claim")


def test_wrong_issuer_is_refused_without_contacting_anyone(env: Env) -> None:
    status, message = env.get(env.token(iss="https://login.evil.example/tenant-1/v2.0"))
    assert status == 401 and "issuer" in message and "evil" in message
    assert env.get(env.token(iss=env.idp.issuer + "/"))[0] == 401  # exact match only
    assert env.idp.fetches() == (0, 0)


def test_missing_admin_role(env: Env) -> None:
    status, message = env.get(env.token(roles=["Attestation.Reader"]))
    assert status == 401 and "missing role" in message and ROLE in message
    status, message = env.get(env.token(roles=None))
    assert status == 401 and "missing role" in message and "no 'roles' claim" in message
    assert env.get(env.token(roles=f"{ROLE}x"))[0] == 401  # whole words only
    assert env.get(env.token(roles={"value": ROLE}))[0] == 401


def test_alg_none_is_refused(env: Env) -> None:
    header = b64u(json.dumps({"alg": "none", "typ": "JWT", "kid": "k1"}).encode())
    payload = b64u(json.dumps(env.claims()).encode())
    status, message = env.get(f"{header}.{payload}.")
    assert status == 401 and "alg 'none'" in message
    assert env.idp.fetches() == (0, 0)


def test_hs256_signed_with_the_public_key_is_refused(env: Env) -> None:
    """The classic confusion attack: the issuer's public key (public!) used as an HMAC secret."""
    pem = (
        RSA_KEYS[0]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    jwk_json = json.dumps(RSAAlgorithm.to_jwk(RSA_KEYS[0].public_key(), as_dict=True)).encode()
    for secret in (pem, jwk_json):
        header = b64u(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
        payload = b64u(json.dumps(env.claims()).encode())
        signing_input = f"{header}.{payload}".encode()
        signature = b64u(hmac.new(secret, signing_input, hashlib.sha256).digest())
        status, message = env.get(f"{header}.{payload}.{signature}")
        assert status == 401 and "symmetric" in message
    assert env.idp.fetches() == (0, 0)


def test_algorithms_outside_the_configured_list_are_refused(env: Env) -> None:
    status, message = env.get(env.token(alg="PS256"))
    assert status == 401 and "'PS256' is not accepted" in message


def test_forged_signature_with_a_published_kid(env: Env) -> None:
    status, message = env.get(env.token(kid="k1", key=RSA_KEYS[1]))
    assert status == 401 and "signature does not verify" in message


def test_key_algorithm_must_match_the_token(env: Env) -> None:
    env.idp.published["ec-1"] = EC_KEY
    status, message = env.get(env.token(kid="k1", key=EC_KEY, alg="ES256"))
    assert status == 401  # RSA key k1 cannot verify an ES256 token
    status, message = env.get(env.token(kid="ec-1", key=RSA_KEYS[0], alg="RS256"))
    assert status == 401 and "ec-1" in message


def test_malformed_tokens(env: Env) -> None:
    for junk in ("not-a-jwt", "a.b.c", "x" * 20000, "eyJhbGciOiJSUzI1NiJ9.e30"):
        status, message = env.get(junk)
        assert status == 401, junk
        assert message
    assert env.idp.fetches() == (0, 0)


# -- the issuer's keys: cache, rotation, throttle ----------------------------------------------------


def test_jwks_cache_rotation_and_unknown_kid_throttle(env: Env) -> None:
    idp, clock = env.idp, env.clock
    assert env.get(env.token())[0] == 200
    assert env.get(env.token())[0] == 200
    assert idp.fetches() == (1, 1)  # cached

    # A token signed by a key the IdP does not publish: refused; the JWKS was fetched moments
    # ago, so no refetch.
    status, message = env.get(env.token(kid="rogue", key=RSA_KEYS[1]))
    assert status == 401 and "unknown key" in message and "'rogue'" in message
    assert idp.fetches() == (1, 1)

    # 31 s later an unknown kid may refetch once; a flood of junk kids right after may not.
    clock.advance(31)
    for i in range(20):
        assert env.get(env.token(kid=f"junk-{i}", key=RSA_KEYS[1]))[0] == 401
    assert idp.fetches() == (2, 2)

    # The IdP rotates k1 -> k2. Within 30 s of the last fetch the new kid is not fetched yet...
    idp.published = {"k2": RSA_KEYS[1]}
    status, message = env.get(env.token(kid="k2"))
    assert status == 401 and "unknown key" in message
    assert idp.fetches() == (2, 2)
    # ...after that, the first token with it refetches and is accepted.
    clock.advance(31)
    assert env.get(env.token(kid="k2")) == (200, "")
    assert env.get(env.token(kid="k2"))[0] == 200
    assert idp.fetches() == (3, 3)
    # The retired key is gone from the cache.
    assert "unknown key" in env.get(env.token(kid="k1", key=RSA_KEYS[0]))[1]
    assert idp.fetches() == (3, 3)

    # The cache period (300 s) ends: the next token refetches, once.
    clock.advance(301)
    assert env.get(env.token(kid="k2"))[0] == 200
    assert env.get(env.token(kid="k2"))[0] == 200
    assert idp.fetches() == (4, 4)


def test_concurrent_requests_share_one_fetch(env: Env) -> None:
    """Cold cache, 16 threads at once: the lock makes them wait for a single fetch."""
    authenticator = Authenticator(env.service)
    token = env.token()
    barrier = threading.Barrier(16)
    results: list[str] = []

    def worker() -> None:
        barrier.wait()
        results.append(authenticator.authenticate(f"Bearer {token}"))

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [f"oidc:{SUB}"] * 16
    assert env.idp.fetches() == (1, 1)


def test_cache_period_is_configurable(tmp_path: Path, idp: IdP) -> None:
    client, service, clock = build(tmp_path, idp, oidc_jwks_cache_seconds=60)
    with client:
        e = Env(client, service, idp, clock)
        assert e.get(e.token())[0] == 200
        clock.advance(59)
        assert e.get(e.token())[0] == 200
        assert idp.fetches() == (1, 1)
        clock.advance(2)
        assert e.get(e.token())[0] == 200
        assert idp.fetches() == (2, 2)
    service.store.close()


# -- the IdP misbehaving -----------------------------------------------------------------------------


def test_idp_down_is_401_not_500(env: Env) -> None:
    env.idp.stop()
    r = env.client.get(POLICY, headers={"Authorization": f"Bearer {env.token()}"})
    assert r.status_code == 401
    error = r.json()["error"]
    assert error["code"] == "Unauthorized"
    assert "identity provider unreachable" in error["message"]
    assert env.idp.issuer.split("/tenant-1")[0] in error["message"]
    # API keys do not depend on the IdP.
    assert (
        env.client.get(POLICY, headers={"Authorization": f"Bearer {env.api_key}"}).status_code
        == 200
    )


def test_idp_errors_back_off_and_recover(env: Env) -> None:
    idp, clock = env.idp, env.clock
    idp.status = 503
    status, message = env.get(env.token())
    assert status == 401 and "identity provider unreachable" in message and "503" in message
    assert idp.fetches() == (1, 0)
    # Within 10 s of a failure nobody is sent to the IdP again.
    for _ in range(5):
        assert "identity provider unreachable" in env.get(env.token())[1]
    assert idp.fetches() == (1, 0)
    idp.status = 200
    clock.advance(11)
    assert env.get(env.token())[0] == 200
    assert idp.fetches() == (2, 1)


def test_cached_keys_outlive_an_idp_outage_only_for_the_cache_period(env: Env) -> None:
    assert env.get(env.token())[0] == 200
    env.idp.stop()
    env.clock.advance(200)
    assert env.get(env.token())[0] == 200  # cached keys
    env.clock.advance(101)
    status, message = env.get(env.token())
    assert status == 401 and "identity provider unreachable" in message


def test_discovery_document_must_name_the_configured_issuer(env: Env) -> None:
    env.idp.document_issuer = "https://login.evil.example/tenant-1/v2.0"
    status, message = env.get(env.token())
    assert status == 401 and "names issuer" in message
    assert env.idp.fetches() == (1, 0)  # the JWKS of a mismatched document is never fetched


def test_empty_jwks(env: Env) -> None:
    env.idp.published = {}
    status, message = env.get(env.token(key=RSA_KEYS[0]))
    assert status == 401 and "no usable signing keys" in message


# -- API keys alongside ------------------------------------------------------------------------------


def test_api_keys_still_work(env: Env) -> None:
    r = env.client.put(
        POLICY,
        content=unsigned_policy(PERMIT_ALL),
        headers={"Authorization": f"Bearer {env.api_key}", "Content-Type": "text/plain"},
    )
    assert r.status_code == 200, r.text
    assert env.service.store.audit_log(limit=1)[0].actor == "apikey:test-admin"
    status, message = env.get("attestd_" + "A" * 43)
    assert status == 401 and "API key" in message
    assert env.idp.fetches() == (0, 0)  # API keys never reach the JWT path
    assert env.client.get(POLICY).status_code == 401


def test_without_oidc_jwts_are_refused(tmp_path: Path, idp: IdP) -> None:
    settings = Settings(
        instance_url=URL,
        database=str(tmp_path / "attestd.sqlite3"),
        collateral_bundle=str(SET),
        verification_time=AT,
    )
    service = AttestationService(settings, store=SQLiteStore(settings.database), clock=lambda: AT)
    with TestClient(create_app(service)) as client:
        e = Env(client, service, idp, Clock(AT))
        assert e.get(e.token()) == (
            401,
            "the bearer token is not a valid administrator credential",
        )
    assert idp.fetches() == (0, 0)
    service.store.close()


# -- role claim variants -----------------------------------------------------------------------------


def test_custom_role_claim_and_role(tmp_path: Path, idp: IdP) -> None:
    client, service, clock = build(
        tmp_path, idp, oidc_role_claim="realm_access.roles", oidc_admin_role="attestd-admin"
    )
    with client:
        e = Env(client, service, idp, clock)
        assert e.get(e.token(realm_access={"roles": ["attestd-admin"]}))[0] == 200
        assert "missing role" in e.get(e.token(realm_access={"roles": [ROLE]}))[1]
        assert "missing role" in e.get(e.token())[1]  # "roles" is not the configured claim
    service.store.close()


# -- settings ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"oidc_issuer": "https://login.example/t/v2.0"}, "audience is required"),
        ({"oidc_issuer": "http://login.example/t/v2.0", "oidc_audience": "a"}, "https"),
        ({"oidc_issuer": "ftp://login.example", "oidc_audience": "a"}, "https"),
        ({"oidc_issuer": "https://x/?tenant=1", "oidc_audience": "a"}, "query"),
        ({"oidc_issuer": "https:///nohost", "oidc_audience": "a"}, "https"),
        (
            {"oidc_issuer": "https://x", "oidc_audience": "a", "oidc_algorithms": ("none",)},
            "not allowed",
        ),
        (
            {"oidc_issuer": "https://x", "oidc_audience": "a", "oidc_algorithms": ("HS256",)},
            "not allowed",
        ),
        (
            {"oidc_issuer": "https://x", "oidc_audience": "a", "oidc_algorithms": ("XX1",)},
            "expected some of",
        ),
        ({"oidc_issuer": "https://x", "oidc_audience": "a", "oidc_algorithms": ()}, "at least"),
        (
            {"oidc_issuer": "https://x", "oidc_audience": "a", "oidc_jwks_cache_seconds": 0},
            "between 30",
        ),
        ({"oidc_issuer": "https://x", "oidc_audience": "a", "oidc_role_claim": ""}, "role_claim"),
        (
            {"oidc_issuer": "https://x", "oidc_audience": "a", "oidc_admin_role": "two words"},
            "admin_role",
        ),
    ],
)
def test_settings_validation(kw: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigurationError, match=needle):
        Settings(**kw)


def test_settings_defaults_and_loopback_http() -> None:
    s = Settings()
    assert (s.oidc_issuer, s.oidc_role_claim, s.oidc_admin_role) == ("", "roles", ROLE)
    assert s.oidc_jwks_cache_seconds == 300 and s.oidc_algorithms == ("RS256", "ES256")
    for host in ("127.0.0.1:8443", "localhost", "[::1]:9000"):
        assert Settings(oidc_issuer=f"http://{host}/t", oidc_audience="a").oidc_issuer


def test_settings_from_toml_and_environment(tmp_path: Path) -> None:
    config = tmp_path / "attestd.toml"
    config.write_text(
        "[oidc]\n"
        'issuer = "https://login.microsoftonline.com/tenant-1/v2.0"\n'
        'role_claim = "groups"\n'
        'admin_role = "attestd-admins"\n'
        "jwks_cache_seconds = 600\n"
        'algorithms = ["RS256", "PS256"]\n'
    )
    # The audience comes from the environment: cross-field checks see the merged values.
    s = load_settings(config, env={"ATTESTD_OIDC_AUDIENCE": "api://attestd"})
    assert s.oidc_issuer == "https://login.microsoftonline.com/tenant-1/v2.0"
    assert (s.oidc_audience, s.oidc_role_claim, s.oidc_admin_role) == (
        "api://attestd",
        "groups",
        "attestd-admins",
    )
    assert s.oidc_jwks_cache_seconds == 600 and s.oidc_algorithms == ("RS256", "PS256")
    s = load_settings(
        config,
        env={
            "ATTESTD_OIDC_AUDIENCE": "x",
            "ATTESTD_OIDC_ALGORITHMS": "ES256, ES384",
            "ATTESTD_OIDC_JWKS_CACHE_SECONDS": "120",
            "ATTESTD_OIDC_ROLE_CLAIM": "roles",
            "ATTESTD_OIDC_ADMIN_ROLE": "Admin",
        },
    )
    assert s.oidc_algorithms == ("ES256", "ES384") and s.oidc_jwks_cache_seconds == 120
    assert (s.oidc_role_claim, s.oidc_admin_role) == ("roles", "Admin")
    with pytest.raises(ConfigurationError, match="audience is required"):
        load_settings(config, env={})
    with pytest.raises(ConfigurationError, match="ATTESTD_OIDC_JWKS_CACHE_SECONDS"):
        load_settings(
            config, env={"ATTESTD_OIDC_AUDIENCE": "x", "ATTESTD_OIDC_JWKS_CACHE_SECONDS": "soon"}
        )
    env = {"ATTESTD_OIDC_ISSUER": "http://127.0.0.1:1/t", "ATTESTD_OIDC_AUDIENCE": "x"}
    assert load_settings(None, env=env).oidc_issuer == "http://127.0.0.1:1/t"
