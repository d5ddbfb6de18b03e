"""Signing keys: MAA's two ``kid`` formulas against the recorded ``/certs``, key and certificate
generation, PEM round trips, the JWKS entry, and that private material never shows."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from attestd.errors import ConfigurationError
from attestd.token import CERTIFICATE_NOT_AFTER, SigningKey, enclave_kid, jwks, x5t_kid
from conftest import VECTORS

CURATED = VECTORS / "maa" / "curated"
ISSUER = "https://attestd.example.test"
NOW = datetime(2025, 6, 1, 12, 30, 45, tzinfo=UTC)


def _recorded_jwks() -> list[dict[str, Any]]:
    """The ``/certs`` response of the 2021 AAD instance (6 keys: 2 enclave, 4 Microsoft PKI)."""
    recording = json.loads((CURATED / "certs_jwks.json").read_text())
    assert recording["path"] == "/certs"
    keys: list[dict[str, Any]] = json.loads(recording["response_body"])["keys"]
    return keys


RECORDED_KEYS = _recorded_jwks()


def _leaf(entry: dict[str, Any]) -> x509.Certificate:
    return x509.load_der_x509_certificate(base64.b64decode(entry["x5c"][0]))


@pytest.fixture(scope="module")
def rsa_key() -> SigningKey:
    return SigningKey.generate(issuer_url=ISSUER, now=NOW)


@pytest.fixture(scope="module")
def ec_key() -> SigningKey:
    return SigningKey.generate(issuer_url=ISSUER, algorithm="ES256", now=NOW)


# -- kid formulas against the recorded /certs (maa-compat.md §0 items 3 and 4) ----------------


def test_recorded_jwks_has_both_kinds_of_key() -> None:
    self_signed = [e for e in RECORDED_KEYS if _leaf(e).subject == _leaf(e).issuer]
    assert len(RECORDED_KEYS) == 6
    assert len(self_signed) == 2  # the enclave keys, RSA-2048 and RSA-1024


@pytest.mark.parametrize("entry", RECORDED_KEYS, ids=[e["kid"] for e in RECORDED_KEYS])
def test_kid_formulas_reproduce_recorded_kids(entry: dict[str, Any]) -> None:
    cert = _leaf(entry)
    if cert.subject == cert.issuer:
        # Enclave self-signed key: std base64 (padded) of SHA256(PEM(SPKI) + NUL).
        assert enclave_kid(cert) == entry["kid"]
        assert entry["kid"].endswith("=")
        assert x5t_kid(cert) != entry["kid"]
    else:
        # Microsoft-PKI leaf (chain of 3): base64url_nopad(SHA1(DER)).
        assert len(entry["x5c"]) == 3
        assert x5t_kid(cert) == entry["kid"]
        assert enclave_kid(cert) != entry["kid"]


def test_recorded_enclave_kid_is_known_value() -> None:
    enclave = [_leaf(e) for e in RECORDED_KEYS if _leaf(e).subject == _leaf(e).issuer]
    rsa2048 = next(
        c
        for c in enclave
        if isinstance(k := c.public_key(), rsa.RSAPublicKey) and k.key_size == 2048
    )
    assert enclave_kid(rsa2048) == "rPtBGRWTlPmzs5u35L0QRD9WdymeKPRxteTeTlwN0Ec="  # maa-compat §0.3


def test_recorded_jwks_entries_are_x5c_kid_kty_only() -> None:
    # What MAA emits (maa-compat.md §1.7); our jwk() starts with the same three, in this order.
    for entry in RECORDED_KEYS:
        assert list(entry) == ["x5c", "kid", "kty"]


# -- generation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("algorithm", "key_type"), [("RS256", rsa), ("ES256", ec)])
def test_generate_certificate_like_maa(algorithm: str, key_type: Any) -> None:
    key = SigningKey.generate(issuer_url=ISSUER, algorithm=algorithm, now=NOW)
    cert = key.certificate
    assert key.algorithm == algorithm
    assert key.created_at == NOW
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert [a.value for a in cn] == [ISSUER]
    assert cert.issuer == cert.subject
    cert.verify_directly_issued_by(cert)  # self-signed
    assert cert.not_valid_before_utc == (NOW - timedelta(days=1)).replace(microsecond=0)
    assert cert.not_valid_after_utc == CERTIFICATE_NOT_AFTER
    assert key.not_after == CERTIFICATE_NOT_AFTER
    assert cert.serial_number > 0
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.value.ca is False
    assert cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    if key_type is rsa:
        assert isinstance(key.private_key, rsa.RSAPrivateKey)
        assert key.private_key.key_size == 2048
    else:
        assert isinstance(key.private_key, ec.EllipticCurvePrivateKey)
        assert isinstance(key.private_key.curve, ec.SECP256R1)
    assert key.kid == enclave_kid(cert)


def test_generate_gives_distinct_keys_and_serials(rsa_key: SigningKey) -> None:
    other = SigningKey.generate(issuer_url=ISSUER, now=NOW)
    assert other.kid != rsa_key.kid
    assert other.certificate.serial_number != rsa_key.certificate.serial_number


def test_kid_depends_on_the_key_only(rsa_key: SigningKey) -> None:
    # MAA serves one key under several instance certificates with one kid (maa-compat §0.3).
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "https://other.example.test")])
    other_cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(rsa_key.private_key.public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(CERTIFICATE_NOT_AFTER)
        .sign(rsa_key.private_key, hashes.SHA256())
    )
    assert enclave_kid(other_cert) == rsa_key.kid
    assert x5t_kid(other_cert) != x5t_kid(rsa_key.certificate)


@pytest.mark.parametrize("algorithm", ["PS256", "RS384", "EdDSA", "rs256", ""])
def test_generate_unknown_algorithm(algorithm: str) -> None:
    with pytest.raises(ConfigurationError, match="unsupported signing algorithm"):
        SigningKey.generate(issuer_url=ISSUER, algorithm=algorithm, now=NOW)


@pytest.mark.parametrize("issuer_url", ["", "https://" + "a" * 57])
def test_generate_issuer_url_must_fit_a_common_name(issuer_url: str) -> None:
    with pytest.raises(ConfigurationError, match="common name"):
        SigningKey.generate(issuer_url=issuer_url, now=NOW)


def test_generate_accepts_a_64_character_url() -> None:
    url = "https://" + "a" * 56
    key = SigningKey.generate(issuer_url=url, algorithm="ES256", now=NOW)
    assert key.certificate.subject.rfc4514_string() == f"CN={url}"


def test_generate_rejects_naive_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        SigningKey.generate(issuer_url=ISSUER, now=datetime(2025, 1, 1))


# -- direct construction checks the pair -----------------------------------------------------------


def test_algorithm_must_match_key_type(rsa_key: SigningKey, ec_key: SigningKey) -> None:
    with pytest.raises(ConfigurationError, match="ES256 needs an EC P-256"):
        SigningKey(rsa_key.private_key, rsa_key.certificate, "ES256", NOW)
    with pytest.raises(ConfigurationError, match="RS256 needs an RSA"):
        SigningKey(ec_key.private_key, ec_key.certificate, "RS256", NOW)
    with pytest.raises(ConfigurationError, match="unsupported signing algorithm"):
        SigningKey(rsa_key.private_key, rsa_key.certificate, "PS256", NOW)


def test_key_must_match_certificate(rsa_key: SigningKey) -> None:
    other = SigningKey.generate(issuer_url=ISSUER, now=NOW)
    with pytest.raises(ConfigurationError, match="does not match"):
        SigningKey(rsa_key.private_key, other.certificate, "RS256", NOW)


def test_created_at_must_be_aware(rsa_key: SigningKey) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        SigningKey(rsa_key.private_key, rsa_key.certificate, "RS256", datetime(2025, 1, 1))


# -- PEM --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["rsa_key", "ec_key"])
def test_pem_round_trip(which: str, request: pytest.FixtureRequest) -> None:
    key: SigningKey = request.getfixturevalue(which)
    key_pem, cert_pem = key.to_pem()
    assert key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, unencrypted
    assert cert_pem.startswith(b"-----BEGIN CERTIFICATE-----")
    loaded = SigningKey.from_pem(key_pem, cert_pem)
    assert loaded.kid == key.kid
    assert loaded.algorithm == key.algorithm
    assert loaded.certificate == key.certificate
    assert loaded.private_key.private_numbers() == key.private_key.private_numbers()
    assert loaded.created_at == key.certificate.not_valid_before_utc
    assert loaded.to_pem() == (key_pem, cert_pem)
    explicit = SigningKey.from_pem(key_pem, cert_pem, created_at=NOW)
    assert explicit.created_at == NOW


def test_from_pem_accepts_traditional_rsa_and_sec1_keys(
    rsa_key: SigningKey, ec_key: SigningKey
) -> None:
    for key in (rsa_key, ec_key):
        traditional = key.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        assert SigningKey.from_pem(traditional, key.to_pem()[1]).kid == key.kid


def test_from_pem_mismatched_key_and_certificate(rsa_key: SigningKey, ec_key: SigningKey) -> None:
    other = SigningKey.generate(issuer_url=ISSUER, now=NOW)
    with pytest.raises(ConfigurationError, match="does not match"):
        SigningKey.from_pem(rsa_key.to_pem()[0], other.to_pem()[1])
    with pytest.raises(ConfigurationError, match="does not match"):
        SigningKey.from_pem(ec_key.to_pem()[0], rsa_key.to_pem()[1])


def test_from_pem_bad_inputs(rsa_key: SigningKey, ec_key: SigningKey) -> None:
    key_pem, cert_pem = rsa_key.to_pem()
    with pytest.raises(ConfigurationError, match="signing key"):
        SigningKey.from_pem(b"not a key", cert_pem)
    with pytest.raises(ConfigurationError, match="signing certificate"):
        SigningKey.from_pem(key_pem, b"not a certificate")
    with pytest.raises(ConfigurationError, match="2 certificates"):
        SigningKey.from_pem(key_pem, cert_pem + ec_key.to_pem()[1])
    encrypted = rsa_key.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    with pytest.raises(ConfigurationError, match="unencrypted"):
        SigningKey.from_pem(encrypted, cert_pem)
    ed = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ConfigurationError, match="unsupported key type"):
        SigningKey.from_pem(ed, cert_pem)


def test_from_pem_rejects_short_rsa_and_other_curves() -> None:
    for private_key in (
        rsa.generate_private_key(public_exponent=65537, key_size=1024),
        ec.generate_private_key(ec.SECP384R1()),
    ):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(private_key.public_key())
            .serial_number(1)
            .not_valid_before(NOW)
            .not_valid_after(CERTIFICATE_NOT_AFTER)
            .sign(private_key, hashes.SHA256())
        )
        key_pem = private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        with pytest.raises(ConfigurationError, match=r"at least 2048 bits|P-256"):
            SigningKey.from_pem(key_pem, cert.public_bytes(serialization.Encoding.PEM))


# -- JWK / JWKS -------------------------------------------------------------------------------------


def test_rsa_jwk(rsa_key: SigningKey) -> None:
    entry = rsa_key.jwk()
    assert list(entry) == ["x5c", "kid", "kty", "n", "e", "alg", "use"]
    assert entry["kty"] == "RSA"
    assert entry["kid"] == rsa_key.kid
    assert entry["alg"] == "RS256"
    assert entry["use"] == "sig"
    assert entry["e"] == "AQAB"
    assert _leaf(entry) == rsa_key.certificate  # x5c is standard base64 DER
    assert isinstance(rsa_key.private_key, rsa.RSAPrivateKey)
    numbers = rsa_key.private_key.public_key().public_numbers()
    n = base64.urlsafe_b64decode(entry["n"] + "=" * (-len(entry["n"]) % 4))
    assert int.from_bytes(n, "big") == numbers.n
    assert len(n) == 256 and "=" not in entry["n"]


def test_ec_jwk(ec_key: SigningKey) -> None:
    entry = ec_key.jwk()
    assert list(entry) == ["x5c", "kid", "kty", "crv", "x", "y", "alg", "use"]
    assert (entry["kty"], entry["crv"], entry["alg"]) == ("EC", "P-256", "ES256")
    assert _leaf(entry) == ec_key.certificate
    for coord in ("x", "y"):
        assert len(base64.urlsafe_b64decode(entry[coord] + "=")) == 32


@pytest.mark.parametrize("which", ["rsa_key", "ec_key"])
def test_jwk_loads_in_pyjwt_as_the_public_key(which: str, request: pytest.FixtureRequest) -> None:
    key: SigningKey = request.getfixturevalue(which)
    loaded = jwt.PyJWK(key.jwk())
    assert loaded.key_id == key.kid
    assert loaded.algorithm_name == key.algorithm
    public = key.private_key.public_key()
    assert loaded.key.public_numbers() == public.public_numbers()


def test_jwk_has_no_private_members(rsa_key: SigningKey, ec_key: SigningKey) -> None:
    for key in (rsa_key, ec_key):
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key.jwk())


def test_jwks(rsa_key: SigningKey, ec_key: SigningKey) -> None:
    document = jwks([rsa_key, ec_key])
    assert document == {"keys": [rsa_key.jwk(), ec_key.jwk()]}
    assert jwks([]) == {"keys": []}
    key_set = jwt.PyJWKSet.from_dict(json.loads(json.dumps(document)))
    assert key_set[rsa_key.kid].algorithm_name == "RS256"
    assert key_set[ec_key.kid].algorithm_name == "ES256"


# -- no private material in repr/str -------------------------------------------------------------


def _private_strings(key: SigningKey) -> list[str]:
    private_key = key.private_key
    if isinstance(private_key, rsa.RSAPrivateKey):
        numbers = private_key.private_numbers()
        secrets = [numbers.d, numbers.p, numbers.q, numbers.dmp1, numbers.dmq1, numbers.iqmp]
    else:
        secrets = [private_key.private_numbers().private_value]
    out: list[str] = []
    for value in secrets:
        out += [str(value), f"{value:x}", f"{value:X}"]
    body = key.to_pem()[0].decode().splitlines()[1:-1]
    return out + body


@pytest.mark.parametrize("which", ["rsa_key", "ec_key"])
def test_repr_has_no_private_material(which: str, request: pytest.FixtureRequest) -> None:
    key: SigningKey = request.getfixturevalue(which)
    for text in (repr(key), str(key), f"{key}", repr([key])):
        assert key.kid in text
        assert "private" not in text.lower()
        for secret in _private_strings(key):
            assert secret not in text
