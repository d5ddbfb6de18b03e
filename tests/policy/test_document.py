"""The policy document layer (attestd.policy.document) against MAA's published check values, the
docs' JWS examples and real MAA request/response recordings (maa-compat.md §0 items 1, 2, 8, 9 and
§1.5), plus minted round trips, tamper tests, malformed inputs and a small mutation fuzz."""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, Literal

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attestd.errors import ConfigurationError, PolicyDocumentError, PolicySignatureInvalid
from attestd.policy.document import (
    CERTIFICATE_CLAIMS,
    MAX_JWS_LENGTH,
    PolicyDocument,
    certificate_jwk,
    certificate_thumbprint,
    parse_policy_certificate_document,
    parse_policy_document,
    policy_hash,
    policy_token_hash,
    sign_policy,
    sign_policy_certificate_document,
    unsigned_policy,
    verify_policy_certificate_document,
    verify_policy_document,
)
from conftest import VECTORS

_DER = Encoding.DER
POLICIES = VECTORS / "maa" / "policies"
CURATED = VECTORS / "maa" / "curated"

MINIMAL_HASH = "z0FRjKS0ssQTNur1V6BV8WIrh9M3fzgTo0EfHRvapWU"
DEFAULT_SGX_HASH = "bROrN897ZfWmWY2V0FLUlu3uwk5xatGnKYHn3zBbSlw"


def _text(name: str) -> str:
    """A policy file exactly as stored (no newline translation, nothing stripped)."""
    return (POLICIES / name).read_bytes().decode("utf-8")


def _jws_file(name: str) -> str:
    """A docs JWS example: the file holds the JWS plus a final newline."""
    return (POLICIES / name).read_text().strip()


def _recording(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CURATED / f"{name}.json").read_text())
    return data


def _request_jws(name: str) -> str:
    """The policy/certificate JWS of a recorded request: PUT policy and :reset send it as
    text/plain, certificates:add/:remove as a JSON string."""
    rec = _recording(name)
    body: str = rec["request_body"]
    return json.loads(body) if rec["path"].startswith("/certificates") else body


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_json(value: object) -> str:
    return _b64url(json.dumps(value).encode())


def _maa_test_cert1() -> x509.Certificate:
    return x509.load_pem_x509_certificate(
        (POLICIES / "docs_policy_signer_cert_MaaTestCert1.pem").read_bytes()
    )


def _isolated_signers() -> list[x509.Certificate]:
    """The isolated instance's policy signers, from its recorded GET /certificates."""
    keys = _recording("certificates_get_isolated")["token_claims"]["x-ms-policy-certificates"][
        "keys"
    ]
    return [x509.load_der_x509_certificate(base64.b64decode(k["x5c"][0])) for k in keys]


# -- hashes (§0 items 1 and 2) --------------------------------------------------------------------


def test_policy_hash_check_values() -> None:
    assert policy_hash(_text("minimal_permit_all.txt")) == MINIMAL_HASH
    assert policy_hash(_text("default_sgx_openenclave_policy_service_2021.txt")) == DEFAULT_SGX_HASH


def test_trailing_newline_is_part_of_the_policy() -> None:
    """The check-value files have no final newline; the hash is over the text exactly, so one
    added newline gives another hash."""
    for name, expected in [
        ("minimal_permit_all.txt", MINIMAL_HASH),
        ("default_sgx_openenclave_policy_service_2021.txt", DEFAULT_SGX_HASH),
    ]:
        text = _text(name)
        assert text.endswith("};")
        assert policy_hash(text) == expected
        assert policy_hash(text + "\n") != expected
        assert policy_hash(text + "\r\n") != expected


def test_policy_hash_matches_recorded_attestation_tokens() -> None:
    """Draft policy sent as text → token x-ms-policy-hash; the shared instance's default SGX
    policy (recorded Get Policy) → the x-ms-policy-hash of an attest on that instance."""
    draft = _recording("attest_openenclave_draft_policy_unsigned_token")
    text = json.loads(draft["request_body"])["draftPolicyForAttestation"]
    assert policy_hash(text) == draft["token_claims"]["x-ms-policy-hash"] == MINIMAL_HASH

    got = _recording("policy_get_shared_default_sgx")
    doc = parse_policy_document(got["token_claims"]["x-ms-policy"])
    attest = _recording("attest_sgx_binary_shared_default_policy")
    assert attest["token_claims"]["iss"] == got["token_claims"]["iss"]
    assert doc.policy_hash == attest["token_claims"]["x-ms-policy-hash"] == DEFAULT_SGX_HASH


def test_policy_token_hash_is_over_the_exact_string() -> None:
    jws = unsigned_policy("version=1.0; authorizationrules{=> permit();}; issuancerules{};")
    assert policy_token_hash(jws) != policy_token_hash(jws + "x")
    assert parse_policy_document(jws).token_hash == policy_token_hash(jws)


# -- the docs' JWS examples (vectors/maa/policies) -------------------------------------------------


def test_docs_unsigned_policy() -> None:
    doc = parse_policy_document(_jws_file("docs_unsigned_policy_jws.txt"))
    assert not doc.signed and doc.algorithm is None and doc.signer is None and doc.chain == ()
    assert doc.policy_text.startswith("version= 1.0;authorizationrules{")
    assert '"$is-debuggable"' in doc.policy_text
    verify_policy_document(doc, trusted_signers=[], require_signed=False)
    with pytest.raises(PolicySignatureInvalid, match="unsigned"):
        verify_policy_document(doc, trusted_signers=[_maa_test_cert1()], require_signed=True)


def test_docs_signed_policy_rsa256_x5c() -> None:
    """Header {"alg":"RSA256","x5c":[...]} (with JSON \\u002B escapes in x5c); signed by its own
    x5c certificate CN=AttestationCertificate0, not by MaaTestCert1."""
    doc = parse_policy_document(_jws_file("docs_signed_policy_jws_RSA256_x5c.txt"))
    assert doc.signed and doc.algorithm == "RS256" and len(doc.chain) == 1
    assert doc.signer is not None and doc.signer is doc.chain[0]
    assert doc.signer.subject.rfc4514_string() == "CN=AttestationCertificate0"
    assert doc.policy_text.startswith("version=1.0;authorizationrules {")
    verify_policy_document(doc, trusted_signers=[doc.signer], require_signed=True)
    with pytest.raises(PolicySignatureInvalid, match="not a trusted policy signer"):
        verify_policy_document(doc, trusted_signers=[_maa_test_cert1()], require_signed=True)


def test_docs_add_policy_signer_maa_policy_certificate() -> None:
    """The docs' certificates:add body (payload claim maa-policyCertificate), signed by
    MaaTestCert1: the signer is the PEM vector, and it verifies against it."""
    jws = _jws_file("docs_add_policy_signer_jws_maa-policyCertificate.txt")
    chain, cert = parse_policy_certificate_document(jws)
    signer = _maa_test_cert1()
    assert chain == (signer,)
    assert cert.subject.rfc4514_string() == "CN=MaaTestCert2"
    assert verify_policy_certificate_document(jws, trusted_signers=[signer]) == cert
    with pytest.raises(PolicySignatureInvalid):
        verify_policy_certificate_document(jws, trusted_signers=[cert])


def test_trailing_newline_around_a_jws_is_rejected() -> None:
    raw = (POLICIES / "docs_unsigned_policy_jws.txt").read_text()
    assert raw.endswith("\n")
    with pytest.raises(PolicyDocumentError, match="whitespace"):
        parse_policy_document(raw)


# -- recorded MAA traffic (vectors/maa/curated) ----------------------------------------------------


@pytest.mark.parametrize("name", ["policy_set_unsigned_aad", "policy_set_signed_isolated"])
def test_recorded_set_policy(name: str) -> None:
    rec = _recording(name)
    jws = _request_jws(name)
    doc = parse_policy_document(jws)
    claims = rec["token_claims"]
    assert claims["x-ms-policy-result"] == "Updated"
    assert policy_token_hash(jws) == doc.token_hash == claims["x-ms-policy-token-hash"]
    assert doc.policy_text == _text("minimal_permit_all.txt")
    assert doc.policy_hash == MINIMAL_HASH
    assert doc.jws == jws
    if name.endswith("unsigned_aad"):
        assert not doc.signed
        assert "x-ms-policy-signer" not in claims
        verify_policy_document(doc, trusted_signers=[], require_signed=False)
    else:
        # SDK header {"alg": "RSA256", "jwk": {"x5c": [...]}}
        assert doc.signed and doc.algorithm == "RS256" and len(doc.chain) == 1
        assert doc.signer_jwk() == claims["x-ms-policy-signer"]
        # The signer is the first of the isolated instance's recorded policy signers.
        signers = _isolated_signers()
        assert doc.signer == signers[0]
        verify_policy_document(doc, trusted_signers=signers, require_signed=True)
        verify_policy_document(doc, trusted_signers=signers[:1], require_signed=True)
        with pytest.raises(PolicySignatureInvalid):
            verify_policy_document(doc, trusted_signers=signers[1:], require_signed=True)


def test_signer_jwk_in_attestation_tokens() -> None:
    """Attestation tokens under that signed policy carry the shorter {"kty","x5c"} form."""
    doc = parse_policy_document(_request_jws("policy_set_signed_isolated"))
    attest = _recording("attest_openenclave_json_runtime_isolated_signedpolicy")
    assert doc.signer_jwk(form="attestation") == attest["token_claims"]["x-ms-policy-signer"]
    assert attest["token_claims"]["x-ms-policy-hash"] == doc.policy_hash


def test_recorded_get_policy_shared_default_sgx() -> None:
    jws = _recording("policy_get_shared_default_sgx")["token_claims"]["x-ms-policy"]
    doc = parse_policy_document(jws)
    assert not doc.signed
    assert doc.policy_text == _text("default_sgx_openenclave_policy_service_2021.txt")
    assert doc.policy_hash == DEFAULT_SGX_HASH
    # MAA stores and returns the canonical unsigned form: our unsigned_policy gives the same header
    # and AttestationPolicy value.
    ours = unsigned_policy(doc.policy_text)
    assert ours.split(".")[0] == jws.split(".")[0]
    payload = json.loads(base64.urlsafe_b64decode(jws.split(".")[1] + "=="))
    ours_payload = json.loads(base64.urlsafe_b64decode(ours.split(".")[1] + "=="))
    assert payload == ours_payload


def test_recorded_get_policy_tpm_none() -> None:
    jws = _recording("policy_get_shared_tpm_none")["token_claims"]["x-ms-policy"]
    assert jws == "eyJhbGciOiJub25lIn0.."
    doc = parse_policy_document(jws)
    assert not doc.signed and doc.policy_text == ""


@pytest.mark.parametrize("name", ["policy_reset_unsigned", "policy_reset_signed"])
def test_recorded_reset_bodies(name: str) -> None:
    """Reset bodies have an empty payload; the signed one is signed by CN=AttestationCertificate0
    (the certificate the certificates:add recording adds) and its signature verifies."""
    rec = _recording(name)
    assert rec["token_claims"]["x-ms-policy-result"] == "Removed"
    doc = parse_policy_document(_request_jws(name))
    assert doc.policy_text == ""
    if name.endswith("unsigned"):
        assert _request_jws(name) == "eyJhbGciOiJub25lIn0.."
        assert not doc.signed
    else:
        assert doc.signed and doc.algorithm == "RS256" and doc.signer is not None
        _, added = parse_policy_certificate_document(_request_jws("certificates_add"))
        assert doc.signer == added
        verify_policy_document(doc, trusted_signers=[added], require_signed=True)


@pytest.mark.parametrize(
    ("name", "result"), [("certificates_add", "IsPresent"), ("certificates_remove", "IsAbsent")]
)
def test_recorded_certificate_bodies(name: str, result: str) -> None:
    rec = _recording(name)
    jws = _request_jws(name)
    chain, cert = parse_policy_certificate_document(jws)
    claims = rec["token_claims"]
    assert claims["x-ms-policycertificates-result"] == result
    assert certificate_thumbprint(cert) == claims["x-ms-certificate-thumbprint"]
    assert cert.subject.rfc4514_string() == "CN=AttestationCertificate0"
    signers = _isolated_signers()
    assert chain == (signers[0],)
    assert verify_policy_certificate_document(jws, trusted_signers=signers[:1]) == cert
    with pytest.raises(PolicySignatureInvalid):
        verify_policy_certificate_document(jws, trusted_signers=[cert])


def test_recorded_get_certificates_jwks() -> None:
    keys = _recording("certificates_get_isolated")["token_claims"]["x-ms-policy-certificates"][
        "keys"
    ]
    assert len(keys) == 3
    for key, cert in zip(keys, _isolated_signers(), strict=True):
        assert certificate_jwk(cert) == key


# -- minted keys: round trips ----------------------------------------------------------------------

_T0 = datetime(2024, 1, 1, tzinfo=UTC)
POLICY = 'version=1.0; authorizationrules{=> permit();}; issuancerules{c:[type=="x"] => issue(type="é", value=c.value);};'


@cache
def _rsa_key(n: int = 0) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@cache
def _ec_key(n: int = 0) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _cert(
    subject: str,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    *,
    issuer: tuple[str, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey] | None = None,
    ca: bool = True,
) -> x509.Certificate:
    issuer_name, issuer_key = issuer if issuer is not None else (subject, key)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_T0)
        .not_valid_after(_T0 + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )


@cache
def _rsa_signer() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    return _rsa_key(), _cert("attestd test RSA signer", _rsa_key())


@cache
def _ec_signer() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    return _ec_key(), _cert("attestd test EC signer", _ec_key())


ROUND_TRIPS = [
    ("rsa", None, "RS256"),
    ("rsa", "RS256", "RS256"),
    ("rsa", "RSA256", "RS256"),
    ("rsa", "PS256", "PS256"),
    ("ec", None, "ES256"),
    ("ec", "ES256", "ES256"),
    ("ec", "ECDH256", "ES256"),
]


@pytest.mark.parametrize("header_style", ["x5c", "jwk"])
@pytest.mark.parametrize(("kind", "alg", "jose"), ROUND_TRIPS)
def test_sign_parse_verify_round_trip(
    kind: str, alg: str | None, jose: str, header_style: Literal["x5c", "jwk"]
) -> None:
    key, cert = _rsa_signer() if kind == "rsa" else _ec_signer()
    jws = sign_policy(POLICY, key=key, certificate=cert, algorithm=alg, header_style=header_style)
    header = json.loads(base64.urlsafe_b64decode(jws.split(".")[0] + "=="))
    assert header["alg"] == (alg or jose)
    x5c = header["x5c"] if header_style == "x5c" else header["jwk"]["x5c"]
    assert [base64.b64decode(c) for c in x5c] == [cert.public_bytes(_DER)]
    doc = parse_policy_document(jws)
    assert doc.signed and doc.algorithm == jose
    assert doc.signer == cert and doc.chain == (cert,)
    assert doc.policy_text == POLICY
    assert doc.policy_hash == policy_hash(POLICY)
    verify_policy_document(doc, trusted_signers=[cert], require_signed=True)
    jwk = doc.signer_jwk()
    assert jwk["kty"] == ("RSA" if kind == "rsa" else "EC")
    assert jwk["alg"] == ("RS256" if kind == "rsa" else "ES256")
    if jose == "ES256":  # raw r || s, not DER
        assert len(base64.urlsafe_b64decode(jws.split(".")[2] + "==")) == 64


def test_unsigned_round_trip() -> None:
    jws = unsigned_policy(POLICY)
    assert jws.startswith("eyJhbGciOiJub25lIn0.") and jws.endswith(".")
    doc = parse_policy_document(jws)
    assert doc == PolicyDocument(POLICY, jws, False, None, None, ())
    verify_policy_document(doc, trusted_signers=[], require_signed=False)
    with pytest.raises(PolicySignatureInvalid, match="requires policies signed"):
        verify_policy_document(doc, trusted_signers=[_rsa_signer()[1]], require_signed=True)


def test_chain_to_trusted_root_through_intermediate() -> None:
    root_key, mid_key, leaf_key = _rsa_key(1), _ec_key(1), _rsa_key(2)
    root = _cert("root", root_key)
    mid = _cert("intermediate", mid_key, issuer=("root", root_key))
    leaf = _cert("leaf", leaf_key, issuer=("intermediate", mid_key), ca=False)
    full = parse_policy_document(sign_policy(POLICY, key=leaf_key, certificate=leaf, chain=[mid]))
    assert full.chain == (leaf, mid)
    for trusted in ([root], [mid], [leaf], [_rsa_signer()[1], root]):
        verify_policy_document(full, trusted_signers=trusted, require_signed=True)
    with pytest.raises(PolicySignatureInvalid):
        verify_policy_document(full, trusted_signers=[_rsa_signer()[1]], require_signed=True)
    # Without the intermediate in x5c the leaf does not reach the root.
    short = parse_policy_document(sign_policy(POLICY, key=leaf_key, certificate=leaf))
    verify_policy_document(short, trusted_signers=[mid], require_signed=True)
    with pytest.raises(PolicySignatureInvalid):
        verify_policy_document(short, trusted_signers=[root], require_signed=True)


def test_issuer_must_be_a_ca() -> None:
    """A certificate issued by a non-CA trusted certificate's key does not chain to it."""
    boss_key, leaf_key = _rsa_key(3), _ec_key(2)
    boss = _cert("not a CA", boss_key, ca=False)
    leaf = _cert("leaf", leaf_key, issuer=("not a CA", boss_key), ca=False)
    doc = parse_policy_document(sign_policy(POLICY, key=leaf_key, certificate=leaf))
    with pytest.raises(PolicySignatureInvalid):
        verify_policy_document(doc, trusted_signers=[boss], require_signed=True)
    verify_policy_document(doc, trusted_signers=[leaf], require_signed=True)


@pytest.mark.parametrize("claim", CERTIFICATE_CLAIMS)
@pytest.mark.parametrize("header_style", ["x5c", "jwk"])
def test_certificate_document_round_trip(claim: str, header_style: Literal["x5c", "jwk"]) -> None:
    key, signer = _rsa_signer()
    new = _ec_signer()[1]
    jws = sign_policy_certificate_document(
        new, key=key, signer_certificate=signer, claim=claim, header_style=header_style
    )
    assert parse_policy_certificate_document(jws) == ((signer,), new)
    assert verify_policy_certificate_document(jws, trusted_signers=[signer]) == new
    with pytest.raises(PolicySignatureInvalid):
        verify_policy_certificate_document(jws, trusted_signers=[new])


def test_unsigned_certificate_document_is_refused() -> None:
    new = _ec_signer()[1]
    payload = {"policyCertificate": certificate_jwk(new, form="attestation")}
    jws = f"eyJhbGciOiJub25lIn0.{_b64url_json(payload)}."
    assert parse_policy_certificate_document(jws) == ((), new)
    with pytest.raises(PolicySignatureInvalid, match="unsigned"):
        verify_policy_certificate_document(jws, trusted_signers=[new])


def test_signing_misuse_is_a_configuration_error() -> None:
    rsa_key, rsa_cert = _rsa_signer()
    ec_key, ec_cert = _ec_signer()
    with pytest.raises(ConfigurationError, match="does not match"):
        sign_policy(POLICY, key=rsa_key, certificate=ec_cert)
    with pytest.raises(ConfigurationError, match="needs an RSA key"):
        sign_policy(POLICY, key=ec_key, certificate=ec_cert, algorithm="RS256")
    with pytest.raises(ConfigurationError, match="needs an EC P-256 key"):
        sign_policy(POLICY, key=rsa_key, certificate=rsa_cert, algorithm="ECDH256")
    with pytest.raises(ConfigurationError, match="cannot sign"):
        sign_policy(POLICY, key=rsa_key, certificate=rsa_cert, algorithm="HS256")
    p384 = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(ConfigurationError, match="P-256"):
        sign_policy(POLICY, key=p384, certificate=_cert("p384", p384))
    with pytest.raises(ConfigurationError, match="claim"):
        sign_policy_certificate_document(
            ec_cert, key=rsa_key, signer_certificate=rsa_cert, claim="certificate"
        )


def test_payload_encodings_clients_use() -> None:
    """AttestationPolicy as padded base64url or plain base64 parses to the same text and hash."""
    text = "version=1.0; authorizationrules{=> permit();}; issuancerules{};// ~~~ é?"
    std = base64.b64encode(text.encode()).decode()
    assert "+" in std and std.endswith("==")  # the alphabets differ, and padding is needed
    for value in (
        _b64url(text.encode()),
        base64.urlsafe_b64encode(text.encode()).decode(),
        std,
        std.rstrip("="),
    ):
        jws = f"eyJhbGciOiJub25lIn0.{_b64url_json({'AttestationPolicy': value})}."
        doc = parse_policy_document(jws)
        assert doc.policy_text == text and doc.policy_hash == policy_hash(text)


# -- tampering → PolicySignatureInvalid ------------------------------------------------------------


def _signed(kind: str = "rsa") -> tuple[str, x509.Certificate]:
    key, cert = _rsa_signer() if kind == "rsa" else _ec_signer()
    return sign_policy(POLICY, key=key, certificate=cert), cert


def _verify(jws: str, trusted: list[x509.Certificate], *, require_signed: bool = True) -> None:
    verify_policy_document(
        parse_policy_document(jws), trusted_signers=trusted, require_signed=require_signed
    )


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_tampered_payload(kind: str) -> None:
    jws, cert = _signed(kind)
    h, _, s = jws.split(".")
    evil = _b64url_json({"AttestationPolicy": _b64url(b"version=1.0; authorizationrules{};")})
    with pytest.raises(PolicySignatureInvalid, match="does not verify"):
        _verify(f"{h}.{evil}.{s}", [cert])


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_flipped_signature(kind: str) -> None:
    jws, cert = _signed(kind)
    h, p, s = jws.split(".")
    sig = bytearray(base64.urlsafe_b64decode(s + "=="))
    sig[len(sig) // 2] ^= 0x01
    with pytest.raises(PolicySignatureInvalid):
        _verify(f"{h}.{p}.{_b64url(bytes(sig))}", [cert])


def test_wrong_signer() -> None:
    jws, _ = _signed("rsa")
    with pytest.raises(PolicySignatureInvalid, match="not a trusted policy signer"):
        _verify(jws, [_ec_signer()[1]])
    with pytest.raises(PolicySignatureInvalid):
        _verify(jws, [])


def test_swapped_certificate_in_header() -> None:
    """Put a trusted signer's certificate in the header of a JWS signed by another key."""
    jws, _ = _signed("rsa")
    trusted = _cert("trusted", _rsa_key(4))
    _, p, s = jws.split(".")
    header = {"alg": "RS256", "x5c": [base64.b64encode(trusted.public_bytes(_DER)).decode()]}
    with pytest.raises(PolicySignatureInvalid, match="does not verify"):
        _verify(f"{_b64url_json(header)}.{p}.{s}", [trusted])


def test_alg_changed() -> None:
    jws, cert = _signed("rsa")
    _, p, s = jws.split(".")
    for alg in ("PS256", "ES256"):
        header = {"alg": alg, "x5c": [base64.b64encode(cert.public_bytes(_DER)).decode()]}
        with pytest.raises(PolicySignatureInvalid):
            _verify(f"{_b64url_json(header)}.{p}.{s}", [cert])


def test_signature_stripped_to_alg_none() -> None:
    jws, cert = _signed("rsa")
    _, p, _ = jws.split(".")
    with pytest.raises(PolicySignatureInvalid, match="unsigned"):
        _verify(f"eyJhbGciOiJub25lIn0.{p}.", [cert])


def test_altered_document_fields_do_not_verify() -> None:
    jws, cert = _signed("rsa")
    doc = parse_policy_document(jws)
    for forged in (
        dataclasses.replace(doc, policy_text="version=1.0; authorizationrules{};"),
        dataclasses.replace(doc, signed=False, algorithm=None, signer=None, chain=()),
        dataclasses.replace(doc, jws=unsigned_policy(POLICY)),
    ):
        with pytest.raises(PolicySignatureInvalid):
            verify_policy_document(forged, trusted_signers=[cert], require_signed=False)


# -- malformed input → PolicyDocumentError ---------------------------------------------------------

_NONE = "eyJhbGciOiJub25lIn0"  # {"alg":"none"}
_OK_PAYLOAD = _b64url_json({"AttestationPolicy": _b64url(b"version=1.0;")})
_HDR_NOT_UTF8 = _b64url(b"\xff")
_HDR_NAN = _b64url(b'{"alg":NaN}')
_HDR_DUP = _b64url(b'{"alg":"none","alg":"RS256"}')
_NOT_UTF8_TEXT = _b64url(b"\xc3(")


def _cert_b64() -> str:
    return base64.b64encode(_rsa_signer()[1].public_bytes(_DER)).decode()


def _malformed() -> list[tuple[str, object, str]]:
    cert = _cert_b64()
    sig = _b64url(b"\x01" * 256)
    signed = _b64url_json({"alg": "RS256", "x5c": [cert]})
    return [
        ("empty", "", "3 dot-separated parts"),
        ("one part", "abc", "3 dot-separated parts"),
        ("two parts", f"{_NONE}.{_OK_PAYLOAD}", "3 dot-separated parts"),
        ("four parts", f"{_NONE}.{_OK_PAYLOAD}..", "3 dot-separated parts"),
        ("bytes", f"{_NONE}.{_OK_PAYLOAD}.".encode(), "is a string"),
        ("none", None, "is a string"),
        ("non-ascii", f"{_NONE}.{_OK_PAYLOAD}é.", "non-ASCII"),
        ("space", f"{_NONE}. {_OK_PAYLOAD}.", "whitespace"),
        ("huge", "a" * (MAX_JWS_LENGTH + 1), "at most"),
        ("header not b64url", f"e+J.{_OK_PAYLOAD}.", "JWS header is not base64url"),
        ("header bad length", f"eyJhb.{_OK_PAYLOAD}.", "JWS header is not base64url"),
        ("header bad padding", f"{_NONE}===.{_OK_PAYLOAD}.", "padding"),
        ("header not json", f"{_b64url(b'alg')}.{_OK_PAYLOAD}.", "JWS header is not JSON"),
        ("header not utf8", f"{_HDR_NOT_UTF8}.{_OK_PAYLOAD}.", "not UTF-8"),
        ("header array", f"{_b64url_json(['alg'])}.{_OK_PAYLOAD}.", "not a JSON object"),
        ("header deep", f"{_b64url(b'[' * 100000)}.{_OK_PAYLOAD}.", "not JSON"),
        ("header NaN", f"{_HDR_NAN}.{_OK_PAYLOAD}.", "NaN"),
        ("no alg", f"{_b64url_json({'typ': 'JWT'})}.{_OK_PAYLOAD}.", "no string 'alg'"),
        ("alg int", f"{_b64url_json({'alg': 256})}.{_OK_PAYLOAD}.", "no string 'alg'"),
        ("alg HS256", f"{_b64url_json({'alg': 'HS256'})}.{_OK_PAYLOAD}.", "unsupported JWS alg"),
        (
            "duplicate alg",
            f"{_HDR_DUP}.{_OK_PAYLOAD}.",
            "duplicate JSON member",
        ),
        ("crit", f"{_b64url_json({'alg': 'none', 'crit': ['x']})}.{_OK_PAYLOAD}.", "crit"),
        ("none with signature", f"{_NONE}.{_OK_PAYLOAD}.{sig}", "empty signature"),
        ("signed, empty signature", f"{signed}.{_OK_PAYLOAD}.", "signature is empty"),
        ("signature not b64url", f"{signed}.{_OK_PAYLOAD}.ab/c", "signature is not base64url"),
        (
            "signed, no x5c",
            f"{_b64url_json({'alg': 'RS256'})}.{_OK_PAYLOAD}.{sig}",
            "x5c or jwk.x5c",
        ),
        (
            "signed, bare jwk",
            f"{_b64url_json({'alg': 'RS256', 'jwk': {'kty': 'RSA', 'n': 'AQAB', 'e': 'AQAB'}})}.{_OK_PAYLOAD}.{sig}",
            "x5c or jwk.x5c",
        ),
        (
            "jwk not object",
            f"{_b64url_json({'alg': 'RS256', 'jwk': []})}.{_OK_PAYLOAD}.{sig}",
            "jwk is not",
        ),
        (
            "x5c string",
            f"{_b64url_json({'alg': 'RS256', 'x5c': cert})}.{_OK_PAYLOAD}.{sig}",
            "non-empty array",
        ),
        (
            "x5c empty",
            f"{_b64url_json({'alg': 'RS256', 'x5c': []})}.{_OK_PAYLOAD}.{sig}",
            "non-empty array",
        ),
        (
            "x5c too long",
            f"{_b64url_json({'alg': 'RS256', 'x5c': [cert] * 17})}.{_OK_PAYLOAD}.{sig}",
            "at most 16",
        ),
        (
            "x5c entry int",
            f"{_b64url_json({'alg': 'RS256', 'x5c': [1]})}.{_OK_PAYLOAD}.{sig}",
            "not a string",
        ),
        (
            "x5c not b64",
            f"{_b64url_json({'alg': 'RS256', 'x5c': ['*']})}.{_OK_PAYLOAD}.{sig}",
            "not base64",
        ),
        (
            "x5c not DER",
            f"{_b64url_json({'alg': 'RS256', 'x5c': ['AAAA']})}.{_OK_PAYLOAD}.{sig}",
            "not an X.509 certificate",
        ),
        (
            "x5c and jwk.x5c differ",
            f"{_b64url_json({'alg': 'RS256', 'x5c': [cert], 'jwk': {'x5c': [base64.b64encode(_ec_signer()[1].public_bytes(_DER)).decode()]}})}.{_OK_PAYLOAD}.{sig}",
            "different certificates",
        ),
        ("payload not b64url", f"{_NONE}.a+b.", "JWS payload is not base64url"),
        ("payload not json", f"{_NONE}.{_b64url(b'policy')}.", "JWS payload is not JSON"),
        ("payload array", f"{_NONE}.{_b64url_json([1])}.", "not a JSON object"),
        (
            "payload no claim",
            f"{_NONE}.{_b64url_json({'policy': 'eA'})}.",
            "no 'AttestationPolicy'",
        ),
        (
            "payload claim case",
            f"{_NONE}.{_b64url_json({'attestationPolicy': 'eA'})}.",
            "case-sensitive",
        ),
        (
            "claim not string",
            f"{_NONE}.{_b64url_json({'AttestationPolicy': 1})}.",
            "base64url string",
        ),
        (
            "claim not base64",
            f"{_NONE}.{_b64url_json({'AttestationPolicy': 'a b'})}.",
            "not base64",
        ),
        ("claim bad length", f"{_NONE}.{_b64url_json({'AttestationPolicy': 'abcde'})}.", "length"),
        ("claim bad padding", f"{_NONE}.{_b64url_json({'AttestationPolicy': 'ab='})}.", "padding"),
        (
            "claim not utf8",
            f"{_NONE}.{_b64url_json({'AttestationPolicy': _NOT_UTF8_TEXT})}.",
            "not UTF-8 text",
        ),
    ]


@pytest.mark.parametrize(
    ("jws", "message"), [(j, m) for _, j, m in _malformed()], ids=[n for n, _, _ in _malformed()]
)
def test_malformed_policy_document(jws: object, message: str) -> None:
    with pytest.raises(PolicyDocumentError, match=message):
        parse_policy_document(jws)  # type: ignore[arg-type]


def _cert_doc(payload: object) -> str:
    return f"{_NONE}.{_b64url(json.dumps(payload).encode()) if payload is not None else ''}."


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (None, "payload is empty"),
        ({"AttestationPolicy": "eA"}, "none of the claims"),
        ({"policyCertificate": {"x5c": ["A"]}, "maa-policyCertificate": {}}, "more than one"),
        ({"policyCertificate": "MIIB"}, "JWK object"),
        ({"policyCertificate": {"kty": 1, "x5c": []}}, "kty is not a string"),
        ({"policyCertificate": {"kty": "RSA"}}, "no x5c"),
        ({"x-ms-policyCertificate": {"kty": "RSA", "x5c": []}}, "non-empty array"),
        ({"maa-policyCertificate": {"kty": "RSA", "x5c": ["AAAA"]}}, "not an X.509"),
    ],
)
def test_malformed_certificate_document(payload: object, message: str) -> None:
    with pytest.raises(PolicyDocumentError, match=message):
        parse_policy_certificate_document(_cert_doc(payload))


def test_signer_jwk_of_unsigned_document() -> None:
    with pytest.raises(PolicyDocumentError, match="no signer"):
        parse_policy_document(unsigned_policy(POLICY)).signer_jwk()


# -- fuzz: mutated real JWS strings ----------------------------------------------------------------

_SEEDS = [
    _request_jws("policy_set_signed_isolated"),
    _request_jws("policy_set_unsigned_aad"),
    _request_jws("policy_reset_signed"),
    _request_jws("certificates_add"),
    _jws_file("docs_signed_policy_jws_RSA256_x5c.txt"),
    _jws_file("docs_add_policy_signer_jws_maa-policyCertificate.txt"),
]
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ é\n"


@st.composite
def _mutated_jws(draw: st.DrawFn) -> str:
    data = list(draw(st.sampled_from(_SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        op = draw(st.sampled_from(["set", "insert", "delete", "cut", "dup"]))
        i = draw(st.integers(0, len(data) - 1))
        if op == "set":
            data[i] = draw(st.sampled_from(_ALPHABET))
        elif op == "insert":
            data.insert(i, draw(st.sampled_from(_ALPHABET)))
        elif op == "delete":
            del data[i]
        elif op == "cut":
            del data[i:]
        else:
            j = draw(st.integers(i, min(len(data), i + 64)))
            data[i:i] = data[i:j]
    return "".join(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated_jws())
def test_mutated_jws_only_raises_policy_errors(jws: str) -> None:
    trusted = [*_isolated_signers(), _maa_test_cert1()]
    try:
        doc = parse_policy_document(jws)
        verify_policy_document(doc, trusted_signers=trusted, require_signed=False)
        if doc.signed:
            doc.signer_jwk()
    except (PolicyDocumentError, PolicySignatureInvalid):
        pass
    try:
        parse_policy_certificate_document(jws)
        verify_policy_certificate_document(jws, trusted_signers=trusted)
    except (PolicyDocumentError, PolicySignatureInvalid):
        pass
