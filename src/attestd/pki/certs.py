"""X.509 and CRL loading over pyca/cryptography, and the trust anchors. No attestation semantics.

Foreign errors (``ValueError`` from cryptography) are translated here, at this one boundary, into
the error class the caller names.
"""

from __future__ import annotations

import binascii
import contextlib
import functools
import hashlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature
from cryptography.utils import CryptographyDeprecationWarning

from attestd.errors import AttestdError, ConfigurationError

__all__ = [
    "X509_LOAD_ERRORS",
    "TrustAnchors",
    "crl_der",
    "default_trust_anchors",
    "ecdsa_p256_verify_raw",
    "ecdsa_sha256_verify",
    "load_crl",
    "load_pem_certificates",
    "p256_public_key",
    "spki_der",
    "strict_x509",
]

# ECDSA over a SHA-256 digest computed with hashlib: the same check as
# ``ec.ECDSA(hashes.SHA256())``, about 1 µs cheaper per verification than hashing through
# cryptography (nine verifications per cold DCAP quote).
_ECDSA_PREHASHED_SHA256 = ec.ECDSA(Prehashed(hashes.SHA256()))


X509_LOAD_ERRORS = (
    ValueError,
    binascii.Error,
    UnsupportedAlgorithm,
    x509.InvalidVersion,
    CryptographyDeprecationWarning,
)


@contextlib.contextmanager
def strict_x509() -> Iterator[None]:
    """Certificates and CRLs that cryptography only warns about (RFC 5280 violations such as a
    negative serial number) are rejected."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", CryptographyDeprecationWarning)
        yield


def load_pem_certificates(
    data: bytes, what: str, error: type[AttestdError], *, count: int | None = None
) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle (NULs and surrounding whitespace tolerated)."""
    try:
        with strict_x509():
            certs = x509.load_pem_x509_certificates(bytes(data).rstrip(b"\x00"))
            for c in certs:  # surface what is parsed lazily and used later, here, once
                _ = (c.serial_number, c.not_valid_before_utc, c.not_valid_after_utc)
    except X509_LOAD_ERRORS as exc:
        raise error(f"{what}: not a PEM certificate chain ({exc})") from exc
    if count is not None and len(certs) != count:
        raise error(f"{what}: {len(certs)} certificates, expected {count}")
    return certs


def crl_der(data: bytes) -> bytes:
    """The DER of a CRL given as PEM, DER or hex-encoded DER (Intel PCCS serves hex), as QvE
    accepts. Raises ``ValueError`` (or ``binascii.Error``) when it is none of these."""
    raw = bytes(data)
    if raw[:1] == b"\x30":  # DER: exactly the outer element (a NUL terminator may follow)
        return raw[: _der_length(raw)]
    text = raw.strip(b"\x00\r\n\t ")
    if text.startswith(b"-----BEGIN X509 CRL-----"):
        body = text[len(b"-----BEGIN X509 CRL-----") :]
        end = body.find(b"-----END X509 CRL-----")
        if end < 0 or body[end + len(b"-----END X509 CRL-----") :].strip():
            raise ValueError("malformed PEM CRL")
        return binascii.a2b_base64(b"".join(body[:end].split()), strict_mode=True)
    return binascii.unhexlify(text)


def load_crl(data: bytes, what: str, error: type[AttestdError]) -> x509.CertificateRevocationList:
    """A CRL in PEM, DER or hex-encoded DER, fully parsed by cryptography."""
    try:
        with strict_x509():
            crl = x509.load_der_x509_crl(crl_der(data))
            _ = (crl.extensions, crl.last_update_utc, crl.next_update_utc)
        return crl
    except X509_LOAD_ERRORS as exc:
        raise error(f"{what}: not a CRL in PEM, DER or hex-DER ({exc})") from exc


def _der_length(der: bytes) -> int:
    """Total size of the DER element at the start of ``der`` (ValueError if malformed)."""
    if len(der) < 2:
        raise ValueError("truncated DER")
    first = der[1]
    if first < 0x80:
        return 2 + first
    n = first & 0x7F
    if not 0 < n <= 4 or len(der) < 2 + n:
        raise ValueError("bad DER length")
    return 2 + n + int.from_bytes(der[2 : 2 + n], "big")


def spki_der(key: ec.EllipticCurvePublicKey | x509.Certificate) -> bytes:
    if isinstance(key, x509.Certificate):
        try:
            pub = key.public_key()
        except ValueError as exc:
            raise ConfigurationError(
                f"invalid public key in {key.subject.rfc4514_string()}"
            ) from exc
        if not isinstance(pub, ec.EllipticCurvePublicKey):
            raise ConfigurationError("expected an EC public key")
        key = pub
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def p256_public_key(raw: bytes) -> ec.EllipticCurvePublicKey:
    """A P-256 key from raw X || Y (64 bytes); ValueError if not a point on the curve."""
    if len(raw) != 64:
        raise ValueError("P-256 raw public key must be 64 bytes")
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + raw)


def ecdsa_sha256_verify(key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> bool:
    """ECDSA with SHA-256 over ``data`` with a DER signature (X.509, CRLs). Returns whether it
    verifies; callers turn False into their own typed error at once."""
    try:
        key.verify(signature, hashlib.sha256(data).digest(), _ECDSA_PREHASHED_SHA256)
    except InvalidSignature:
        return False
    return True


def ecdsa_p256_verify_raw(key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> bool:
    """ECDSA-P256-SHA256 over ``data`` with a raw r || s signature. Returns whether it verifies;
    callers turn False into their own typed error at once."""
    if len(signature) != 64:
        return False
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    return ecdsa_sha256_verify(key, der, data)


@dataclass(frozen=True)
class TrustAnchors:
    """Root certificates, pinned by public key (dcap.md addendum: genuine quotes embed an older
    issuance of the Intel SGX Root CA with the same key). A chain is trusted when its self-signed
    root has the public key of one of these and is itself within its validity period."""

    certificates: tuple[x509.Certificate, ...]

    def __post_init__(self) -> None:
        if not self.certificates:
            raise ConfigurationError("no trust anchors: refusing to verify against an empty set")

    @classmethod
    def from_pem(cls, data: bytes, what: str = "trust anchor") -> TrustAnchors:
        return cls(tuple(load_pem_certificates(data, what, ConfigurationError)))

    @functools.cached_property
    def public_keys(self) -> frozenset[bytes]:
        return frozenset(spki_der(c) for c in self.certificates)

    @functools.cached_property
    def anchor_keys(self) -> dict[bytes, ec.EllipticCurvePublicKey]:
        """DER of each EC anchor -> its public key. A chain root byte-identical to an anchor
        needs no self-signature check (the anchor is trusted by configuration)."""
        out = {}
        for c in self.certificates:
            key = c.public_key()
            if isinstance(key, ec.EllipticCurvePublicKey):
                out[c.public_bytes(serialization.Encoding.DER)] = key
        return out

    def describe(self) -> str:
        return ", ".join(c.subject.rfc4514_string() for c in self.certificates)


@functools.cache
def default_trust_anchors() -> TrustAnchors:
    """The Intel SGX Root CA shipped in the package (SHA-256 of DER 44a0196b…74d3)."""
    pem = resources.files("attestd").joinpath("data/intel_sgx_root_ca.pem").read_bytes()
    return TrustAnchors.from_pem(pem, "built-in Intel SGX Root CA")
