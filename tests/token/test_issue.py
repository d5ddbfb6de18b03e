"""Issued tokens: verified by PyJWT the way relying parties do (maa-compat.md §2.3), shaped like
the recorded MAA tokens down to the byte, deterministic for RS256, and the serialization equal to
``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)``."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from attestd.errors import ConfigurationError
from attestd.token import (
    ATTESTATION_TOKEN_LIFETIME,
    MANAGEMENT_TOKEN_LIFETIME,
    REGISTERED_CLAIMS,
    SigningKey,
    canonical_json,
    enclave_kid,
    issue_token,
    jwks,
    unsigned_token,
)
from conftest import VECTORS

CURATED = VECTORS / "maa" / "curated"
ISSUER = "https://attestd.example.test"
JKU = f"{ISSUER}/certs"
KEY_MADE = datetime(2021, 1, 1, tzinfo=UTC)  # before the 2021 recordings, so we can re-issue them
FIXED_NOW = datetime(2025, 6, 1, 12, 30, 45, 987654, tzinfo=UTC)
JTI = "74019feab57c85f8160080576188753a2e2a36bac1ae01535a7fb1a0ffb0bd12"
HEX64 = re.compile(r"[0-9a-f]{64}")

CLAIMS: dict[str, Any] = {
    "x-ms-ver": "1.0",
    "x-ms-attestation-type": "sgx",
    "x-ms-sgx-svn": 1,
    "x-ms-sgx-is-debuggable": False,
    "x-ms-runtime": {"jwk": {"y": "b", "x": "a", "use": "sig", "kty": "EC", "crv": "P-256"}},
    "nonce": "héllo wörld ✓ 日本",
    "x-ms-policy": {"custom-name": "value", "list": [3, 1, 2]},
}


def _b64d(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _segments(token: str) -> tuple[bytes, bytes, bytes]:
    header, payload, signature = token.split(".")
    return _b64d(header), _b64d(payload), _b64d(signature)


@pytest.fixture(scope="module")
def rsa_key() -> SigningKey:
    return SigningKey.generate(issuer_url=ISSUER, now=KEY_MADE)


@pytest.fixture(scope="module")
def ec_key() -> SigningKey:
    return SigningKey.generate(issuer_url=ISSUER, algorithm="ES256", now=KEY_MADE)


@pytest.fixture(params=["RS256", "ES256"])
def key(request: pytest.FixtureRequest) -> SigningKey:
    name = "rsa_key" if request.param == "RS256" else "ec_key"
    value: SigningKey = request.getfixturevalue(name)
    return value


# -- recorded MAA tokens --------------------------------------------------------------------------


def _recorded_tokens() -> list[tuple[str, str, dict[str, Any] | None]]:
    """(file name, token, JWKS of the same recording) for every curated recording holding one."""
    out: list[tuple[str, str, dict[str, Any] | None]] = []
    for path in sorted(CURATED.glob("*.json")):
        recording = json.loads(path.read_text())
        if "calls" in recording:  # C++ recorder format (2022)
            bodies = [c["Response"].get("BODY") for c in recording["calls"]]
            jwks_doc = None
        else:
            bodies = [recording.get("response_body")]
            jwks_doc = recording.get("jwks")
        for body in bodies:
            try:
                document = json.loads(body) if isinstance(body, str) else None
            except ValueError:
                continue
            if isinstance(document, dict) and isinstance(document.get("token"), str):
                out.append((path.name, document["token"], jwks_doc))
    return out


RECORDED = _recorded_tokens()
RECORDED_ATTEST = CURATED / "attest_openenclave_binary_runtime_aad.json"
RECORDED_MANAGEMENT = CURATED / "policy_set_unsigned_aad.json"


def _recorded(path: Path) -> str:
    token: str = json.loads(json.loads(path.read_text())["response_body"])["token"]
    return token


def test_recordings_found() -> None:
    names = {name for name, _, _ in RECORDED}
    assert len(RECORDED) == 14
    assert RECORDED_ATTEST.name in names
    assert "attest_openenclave_draft_policy_unsigned_token.json" in names
    assert "attest_sgx_draft_policy_custom_claim_and_deny_400_2022.json" in names


@pytest.mark.parametrize(
    ("name", "token", "jwks_doc"),
    [r for r in RECORDED if r[2]],
    ids=[r[0] for r in RECORDED if r[2]],
)
def test_recorded_signed_tokens_verify_under_the_enclave_kid(
    name: str, token: str, jwks_doc: dict[str, Any]
) -> None:
    """The relying-party flow of §2.3 on MAA's own tokens: the header ``kid`` picks the key from
    the recorded ``/certs``, and it is the enclave ``kid`` of that certificate."""
    header = jwt.get_unverified_header(token)
    (entry,) = [k for k in jwks_doc["keys"] if k["kid"] == header["kid"]]
    cert = x509.load_der_x509_certificate(base64.b64decode(entry["x5c"][0]))
    assert enclave_kid(cert) == header["kid"]
    if header["alg"] == "none":  # the draft-policy token names the same key but is unsigned
        assert token.endswith(".")
        return
    public = cert.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    jwt.decode(token, public, algorithms=["RS256"], options={"verify_exp": False})


@pytest.mark.parametrize(("name", "token", "jwks_doc"), RECORDED, ids=[r[0] for r in RECORDED])
def test_recorded_payloads_reproduced_byte_for_byte(
    name: str, token: str, jwks_doc: object, rsa_key: SigningKey
) -> None:
    """Re-issuing a recorded token's claims (same iss, iat, jti, lifetime) gives MAA's payload
    segment exactly: key order, nesting, number types, escaping. Draft-policy (``alg: none``)
    tokens are reproduced whole."""
    header_bytes, payload_bytes, _ = _segments(token)
    header = json.loads(header_bytes)
    payload = json.loads(payload_bytes)
    claims = {k: v for k, v in payload.items() if k not in REGISTERED_CLAIMS}
    lifetime = timedelta(seconds=payload["exp"] - payload["iat"])
    assert lifetime in (ATTESTATION_TOKEN_LIFETIME, MANAGEMENT_TOKEN_LIFETIME)
    common: dict[str, Any] = {
        "issuer": payload["iss"],
        "now": datetime.fromtimestamp(payload["iat"], UTC),
        "lifetime": lifetime,
        "jku": header["jku"],
        "jti": payload.get("jti"),
        "with_jti": "jti" in payload,
    }
    draft = unsigned_token(claims, kid=header["kid"], **common)
    assert draft.split(".")[1] == token.split(".")[1]
    if header["alg"] == "none":
        assert draft == token
    signed = issue_token(claims, key=rsa_key, **common)
    assert signed.split(".")[1] == token.split(".")[1]


def test_header_and_payload_shape_like_recorded_attestation_token(key: SigningKey) -> None:
    recorded_header, recorded_payload, recorded_signature = _segments(_recorded(RECORDED_ATTEST))
    header_bytes, payload_bytes, signature = _segments(
        issue_token(
            CLAIMS,
            key=key,
            issuer=ISSUER,
            now=FIXED_NOW,
            lifetime=ATTESTATION_TOKEN_LIFETIME,
            jku=JKU,
        )
    )
    # Header: the same keys in the same order, compact; byte-equal once jku/kid are ours.
    recorded = json.loads(recorded_header)
    header = json.loads(header_bytes)
    assert list(header) == list(recorded) == ["alg", "jku", "kid", "typ"]
    assert header == {"alg": key.algorithm, "jku": JKU, "kid": key.kid, "typ": "JWT"}
    expected_header = {**recorded, "alg": key.algorithm, "jku": JKU, "kid": key.kid}
    assert header_bytes == json.dumps(expected_header, separators=(",", ":")).encode()
    # Payload: sorted, compact, integer times, 8 h, nbf = iat, 64-hex jti, as MAA's.
    for raw in (recorded_payload, payload_bytes):
        payload = json.loads(raw)
        assert list(payload) == sorted(payload)
        assert raw == json.dumps(
            payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")
        for claim in ("iat", "nbf", "exp"):
            assert type(payload[claim]) is int
        assert payload["exp"] - payload["iat"] == 28800
        assert payload["nbf"] == payload["iat"]
        assert HEX64.fullmatch(payload["jti"])
    payload = json.loads(payload_bytes)
    assert payload["iat"] == int(FIXED_NOW.timestamp())
    assert payload["iss"] == ISSUER
    assert {k: v for k, v in payload.items() if k not in REGISTERED_CLAIMS} == CLAIMS
    assert b'"x-ms-runtime":{"jwk":{"crv":"P-256","kty":"EC","use":"sig","x":"a","y":"b"}}' in (
        payload_bytes
    )
    assert "héllo wörld ✓ 日本".encode() in payload_bytes  # UTF-8, not \u escapes
    if key.algorithm == "RS256":
        assert len(signature) == len(recorded_signature) == 256
    else:
        assert len(signature) == 64  # raw r || s


def test_management_token_shape_like_recorded(rsa_key: SigningKey) -> None:
    recorded = json.loads(_segments(_recorded(RECORDED_MANAGEMENT))[1])
    claims = {k: v for k, v in recorded.items() if k not in REGISTERED_CLAIMS}
    token = issue_token(
        claims,
        key=rsa_key,
        issuer=ISSUER,
        now=FIXED_NOW,
        lifetime=MANAGEMENT_TOKEN_LIFETIME,
        jku=JKU,
        with_jti=False,
    )
    payload = json.loads(_segments(token)[1])
    assert list(payload) == list(recorded)  # no jti in management responses
    assert payload["exp"] - payload["iat"] == recorded["exp"] - recorded["iat"] == 3600


def test_lifetimes() -> None:
    assert ATTESTATION_TOKEN_LIFETIME == timedelta(hours=8)
    assert MANAGEMENT_TOKEN_LIFETIME == timedelta(hours=1)


# -- verification with PyJWT (the relying party's view) -------------------------------------------


def _fresh(key: SigningKey, **extra: Any) -> tuple[str, datetime]:
    now = datetime.now(UTC)
    token = issue_token(
        CLAIMS,
        key=key,
        issuer=ISSUER,
        now=now,
        lifetime=ATTESTATION_TOKEN_LIFETIME,
        jku=JKU,
        **extra,
    )
    return token, now


def test_verifies_with_pyjwt_pyjwk(key: SigningKey) -> None:
    token, now = _fresh(key)
    claims = jwt.decode(
        token,
        jwt.PyJWK(key.jwk()),
        algorithms=[key.algorithm],
        issuer=ISSUER,
        options={"require": ["exp", "iat", "nbf", "iss", "jti"]},
    )
    assert {k: v for k, v in claims.items() if k not in REGISTERED_CLAIMS} == CLAIMS
    assert claims["iat"] == claims["nbf"] == int(now.timestamp())
    assert claims["exp"] == claims["iat"] + 8 * 3600


def test_verifies_with_pyjwt_key_set(rsa_key: SigningKey, ec_key: SigningKey) -> None:
    # The PyJWKClient flow without the network: /certs document -> key by header kid -> verify.
    key_set = jwt.PyJWKSet.from_dict(json.loads(json.dumps(jwks([rsa_key, ec_key]))))
    for key in (rsa_key, ec_key):
        token, _ = _fresh(key)
        header = jwt.get_unverified_header(token)
        signing_key = key_set[header["kid"]]
        claims = jwt.decode(token, signing_key, algorithms=["RS256", "ES256"], issuer=ISSUER)
        assert claims["x-ms-ver"] == "1.0"


def test_verifies_with_the_x5c_certificate(key: SigningKey) -> None:
    # The SDK way (maa-compat.md §2.3): load x5c[0] as a certificate and verify with its key.
    token, _ = _fresh(key)
    cert = x509.load_der_x509_certificate(base64.b64decode(key.jwk()["x5c"][0]))
    public = cert.public_key()
    assert isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
    jwt.decode(token, public, algorithms=[key.algorithm], issuer=ISSUER)


def test_tampered_token_fails(key: SigningKey) -> None:
    token, _ = _fresh(key)
    header, payload, signature = token.split(".")
    forged = json.loads(_b64d(payload))
    forged["x-ms-sgx-is-debuggable"] = True
    body = base64.urlsafe_b64encode(canonical_json(forged)).rstrip(b"=").decode()
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(f"{header}.{body}.{signature}", jwt.PyJWK(key.jwk()), algorithms=[key.algorithm])


def test_rs256_signature_is_pkcs1v15_sha256(rsa_key: SigningKey) -> None:
    token, _ = _fresh(rsa_key)
    signing_input, _, signature = token.rpartition(".")
    public = rsa_key.certificate.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(_b64d(signature), signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())


# -- determinism and jti ----------------------------------------------------------------------------


def _issue(key: SigningKey, **extra: Any) -> str:
    return issue_token(
        CLAIMS,
        key=key,
        issuer=ISSUER,
        now=FIXED_NOW,
        lifetime=ATTESTATION_TOKEN_LIFETIME,
        jku=JKU,
        **extra,
    )


def test_rs256_is_deterministic(rsa_key: SigningKey) -> None:
    first = _issue(rsa_key, jti=JTI)
    assert _issue(rsa_key, jti=JTI) == first
    # Key order of the input does not matter either.
    reordered = dict(reversed(list(CLAIMS.items())))
    assert (
        issue_token(
            reordered,
            key=rsa_key,
            issuer=ISSUER,
            now=FIXED_NOW,
            lifetime=ATTESTATION_TOKEN_LIFETIME,
            jku=JKU,
            jti=JTI,
        )
        == first
    )


def test_es256_same_signing_input(ec_key: SigningKey) -> None:
    first, second = _issue(ec_key, jti=JTI), _issue(ec_key, jti=JTI)
    assert first.rpartition(".")[0] == second.rpartition(".")[0]
    for token in (first, second):
        jwt.decode(
            token,
            jwt.PyJWK(ec_key.jwk()),
            algorithms=["ES256"],
            options={"verify_exp": False},
        )


def test_random_jti_is_fresh_64_hex(rsa_key: SigningKey) -> None:
    jtis = {json.loads(_segments(_issue(rsa_key))[1])["jti"] for _ in range(3)}
    assert len(jtis) == 3
    assert all(HEX64.fullmatch(j) for j in jtis)


def test_given_jti_is_used(rsa_key: SigningKey) -> None:
    assert json.loads(_segments(_issue(rsa_key, jti="abc123"))[1])["jti"] == "abc123"


def test_iat_is_whole_seconds_rounded_down(rsa_key: SigningKey) -> None:
    payload = json.loads(_segments(_issue(rsa_key))[1])
    assert payload["iat"] == int(FIXED_NOW.replace(microsecond=0).timestamp())
    other_zone = FIXED_NOW.astimezone(timezone(timedelta(hours=5, minutes=30)))
    token = issue_token(
        {}, key=rsa_key, issuer=ISSUER, now=other_zone, lifetime=timedelta(seconds=90.9), jku=JKU
    )
    payload = json.loads(_segments(token)[1])
    assert payload["iat"] == int(FIXED_NOW.timestamp())
    assert payload["exp"] - payload["iat"] == 90


# -- refusals -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("claim", sorted(REGISTERED_CLAIMS))
def test_registered_claims_cannot_be_set(claim: str, rsa_key: SigningKey) -> None:
    with pytest.raises(ValueError, match=f"must not set {claim}"):
        issue_token(
            {claim: 1},
            key=rsa_key,
            issuer=ISSUER,
            now=FIXED_NOW,
            lifetime=ATTESTATION_TOKEN_LIFETIME,
            jku=JKU,
        )


def test_naive_now_and_bad_lifetime(rsa_key: SigningKey) -> None:
    base: dict[str, Any] = {"key": rsa_key, "issuer": ISSUER, "jku": JKU}
    with pytest.raises(ValueError, match="timezone-aware"):
        issue_token({}, now=datetime(2025, 1, 1), lifetime=ATTESTATION_TOKEN_LIFETIME, **base)
    for lifetime in (timedelta(0), timedelta(milliseconds=999), timedelta(hours=-1)):
        with pytest.raises(ValueError, match="lifetime"):
            issue_token({}, now=FIXED_NOW, lifetime=lifetime, **base)


def test_now_outside_certificate_validity(rsa_key: SigningKey) -> None:
    for now in (KEY_MADE - timedelta(days=2), datetime(2051, 1, 1, tzinfo=UTC)):
        with pytest.raises(ConfigurationError, match="valid from"):
            issue_token(
                {},
                key=rsa_key,
                issuer=ISSUER,
                now=now,
                lifetime=ATTESTATION_TOKEN_LIFETIME,
                jku=JKU,
            )


@pytest.mark.parametrize(
    "value", [object(), {1: "int key"}, 2**64, {b"bytes"}, {"nested": {"set": {1, 2}}}]
)
def test_unserializable_claims(value: object, rsa_key: SigningKey) -> None:
    with pytest.raises(TypeError):
        issue_token(
            {"claim": value},
            key=rsa_key,
            issuer=ISSUER,
            now=FIXED_NOW,
            lifetime=ATTESTATION_TOKEN_LIFETIME,
            jku=JKU,
        )


def test_nested_mappings_serialize_as_objects(rsa_key: SigningKey) -> None:
    claims = MappingProxyType({"outer": MappingProxyType({"b": 2, "a": (1, "x")})})
    payload = _segments(
        issue_token(
            claims,
            key=rsa_key,
            issuer=ISSUER,
            now=FIXED_NOW,
            lifetime=ATTESTATION_TOKEN_LIFETIME,
            jku=JKU,
        )
    )[1]
    assert b'"outer":{"a":[1,"x"],"b":2}' in payload


# -- unsigned (draft-policy) tokens ---------------------------------------------------------------


def test_unsigned_token(rsa_key: SigningKey) -> None:
    token = unsigned_token(
        CLAIMS,
        issuer=ISSUER,
        now=datetime.now(UTC),
        lifetime=ATTESTATION_TOKEN_LIFETIME,
        jku=JKU,
        kid=rsa_key.kid,
    )
    assert token.endswith(".") and token.count(".") == 2
    header = jwt.get_unverified_header(token)
    assert list(header) == ["alg", "jku", "kid", "typ"]
    assert header == {"alg": "none", "jku": JKU, "kid": rsa_key.kid, "typ": "JWT"}
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["iss"] == ISSUER
    assert HEX64.fullmatch(claims["jti"])
    assert {k: v for k, v in claims.items() if k not in REGISTERED_CLAIMS} == CLAIMS
    # And it never passes as signed.
    with pytest.raises(jwt.InvalidAlgorithmError):
        jwt.decode(token, jwt.PyJWK(rsa_key.jwk()), algorithms=["RS256"])


def test_unsigned_payload_equals_signed_payload(rsa_key: SigningKey) -> None:
    common: dict[str, Any] = {
        "issuer": ISSUER,
        "now": FIXED_NOW,
        "lifetime": ATTESTATION_TOKEN_LIFETIME,
        "jku": JKU,
        "jti": JTI,
    }
    signed = issue_token(CLAIMS, key=rsa_key, **common)
    draft = unsigned_token(CLAIMS, kid=rsa_key.kid, **common)
    assert signed.split(".")[1] == draft.split(".")[1]


# -- serialization: orjson output equals json.dumps ---------------------------------------------------


def _stdlib(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def test_canonical_json_matches_json_dumps_examples() -> None:
    value = {
        "z": [1, -1, 0, 2**63 - 1, -(2**63), 2**64 - 1, True, False, None, 1.5, 0.1, 1e16],
        "é": "ü日本😀 \u2028\u2029 \x7f",
        "A": 'quotes " backslash \\ slash / controls \x00\x01\x1f\n\t\r',
        "a": {"y": {"b": 1, "a": 2}, "x": []},
        "Z": "",
        "\uffff": {},
    }
    assert canonical_json(value) == _stdlib(value)
    assert canonical_json(value).startswith(b'{"A":"quotes \\" backslash \\\\ slash / controls ')


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=12), _json_values, max_size=8))
def test_canonical_json_matches_json_dumps_property(value: dict[str, Any]) -> None:
    assert canonical_json(value) == _stdlib(value)
