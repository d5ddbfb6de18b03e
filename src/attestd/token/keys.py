"""Token-signing keys: the key pair, its self-signed certificate, its ``kid`` and its JWKS entry.

What MAA publishes (maa-compat.md §0 item 3, §1.7), and what this module reproduces:

* The signing certificate is self-signed, subject ``CN=<instance URL>``, RSA-2048, valid to
  2050-12-31, with BasicConstraints ``CA:FALSE`` and subject/authority key identifiers. (MAA's
  also carries the enclave's remote report in extension ``1.3.6.1.4.1.311.105.1`` and has serial
  1; we have no enclave to report on and use a random serial.)
* ``kid`` = standard base64, with padding, of ``SHA256(PEM(SubjectPublicKeyInfo) + b"\\0")``
  (:func:`enclave_kid`). The Microsoft-PKI certificates in the same ``/certs`` use
  ``base64url_nopad(SHA1(DER))`` instead (:func:`x5t_kid`).
* ``/certs`` entries are ``{"x5c":[std-b64 DER],"kid":...,"kty":...}``. :meth:`SigningKey.jwk`
  adds ``n``/``e`` (RSA) or ``crv``/``x``/``y`` (EC), ``alg`` and ``use`` so generic JWT
  libraries can verify our tokens without parsing ``x5c`` (harmless to the SDKs, which load
  ``x5c[0]`` as a certificate).

Keys are loaded once and held as ``cryptography`` key objects: passing PEM to a signer per call
re-validates the key every time (perf.md, JWT: 36 ms instead of 0.27 ms per RS256 token).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import NameOID

from attestd.errors import ConfigurationError
from attestd.pki.certs import load_pem_certificates

__all__ = [
    "ALGORITHMS",
    "CERTIFICATE_NOT_AFTER",
    "SigningKey",
    "SigningPrivateKey",
    "enclave_kid",
    "jwks",
    "x5t_kid",
]

SigningPrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

#: The JOSE algorithms a :class:`SigningKey` signs with.
ALGORITHMS: Final = ("RS256", "ES256")

#: MAA's signing certificates are valid to the end of 2050 (maa-compat.md §0 item 3).
CERTIFICATE_NOT_AFTER: Final = datetime(2050, 12, 31, 23, 59, 59, tzinfo=UTC)

_RSA_BITS: Final = 2048
_MAX_COMMON_NAME: Final = 64  # ub-common-name, RFC 5280 appendix A; cryptography enforces it


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _aware(now: datetime, what: str) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime")
    return now


def _spki_der(key: CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def enclave_kid(cert: x509.Certificate) -> str:
    """The ``kid`` of MAA's enclave self-signed keys (maa-compat.md §0 item 3): standard base64,
    with ``=`` padding, of ``SHA256(PEM(SubjectPublicKeyInfo) + b"\\0")``. The same digest is
    ``report_data[0:32]`` of the enclave report in MAA's certificate. Depends on the public key
    only, so one key under several certificates (one per instance URL) has one ``kid``."""
    pem = cert.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(pem + b"\x00").digest()).decode("ascii")


def x5t_kid(cert: x509.Certificate) -> str:
    """The ``kid`` of the Microsoft-PKI certificates in ``/certs`` and in TPM token headers
    (maa-compat.md §0 item 4, §2.1): ``base64url_nopad(SHA1(certificate DER))``, the JOSE
    ``x5t`` thumbprint."""
    return _b64url(cert.fingerprint(hashes.SHA1()))


def _check_pair(
    private_key: object, certificate: x509.Certificate, algorithm: str
) -> SigningPrivateKey:
    """The key, once it is known to suit ``algorithm`` and to match ``certificate``."""
    if algorithm == "RS256":
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise ConfigurationError("RS256 needs an RSA private key")
        if private_key.key_size < _RSA_BITS:
            raise ConfigurationError(
                f"RS256 needs an RSA key of at least {_RSA_BITS} bits, got {private_key.key_size}"
            )
        key: SigningPrivateKey = private_key
    elif algorithm == "ES256":
        if not (
            isinstance(private_key, ec.EllipticCurvePrivateKey)
            and isinstance(private_key.curve, ec.SECP256R1)
        ):
            raise ConfigurationError("ES256 needs an EC P-256 private key")
        key = private_key
    else:
        raise ConfigurationError(
            f"unsupported signing algorithm {algorithm!r} (use one of {', '.join(ALGORITHMS)})"
        )
    try:
        cert_spki = _spki_der(certificate.public_key())
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ConfigurationError(f"signing certificate public key does not load ({exc})") from exc
    if _spki_der(key.public_key()) != cert_spki:
        raise ConfigurationError("the signing key does not match the certificate's public key")
    return key


@dataclass(frozen=True, eq=False)
class SigningKey:
    """A token-signing key pair and its self-signed certificate.

    Construct with :meth:`generate` or :meth:`from_pem` (or directly, with a key object, its
    certificate and the algorithm; the pairing is checked either way and a mismatch raises
    :class:`ConfigurationError`). ``created_at`` is when the key was made (for a key loaded from
    PEM, by default the certificate's ``notBefore``); :attr:`not_after` is the certificate's
    ``notAfter``. Whether a key is active, retiring or retired is the key store's business.

    ``repr()`` and ``str()`` never show private material. Equality is identity.
    """

    private_key: SigningPrivateKey = field(repr=False)
    certificate: x509.Certificate = field(repr=False)
    algorithm: str
    created_at: datetime
    _kid: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _check_pair(self.private_key, self.certificate, self.algorithm)
        _aware(self.created_at, "created_at")
        object.__setattr__(self, "_kid", enclave_kid(self.certificate))

    def __repr__(self) -> str:
        subject = self.certificate.subject.rfc4514_string()
        return (
            f"SigningKey(algorithm={self.algorithm!r}, kid={self.kid!r}, subject={subject!r}, "
            f"created_at={self.created_at.isoformat()!r}, not_after={self.not_after.isoformat()!r})"
        )

    __str__ = __repr__

    @property
    def kid(self) -> str:
        """MAA's enclave-key ``kid`` of this key (:func:`enclave_kid`), computed once."""
        return self._kid

    @property
    def not_after(self) -> datetime:
        """The certificate's ``notAfter`` (UTC): no token should be signed after it."""
        return self.certificate.not_valid_after_utc

    @property
    def not_before(self) -> datetime:
        """The certificate's ``notBefore`` (UTC)."""
        return self.certificate.not_valid_before_utc

    @classmethod
    def generate(cls, *, issuer_url: str, algorithm: str = "RS256", now: datetime) -> SigningKey:
        """A new key (RSA-2048 for ``RS256``, EC P-256 for ``ES256``) and a self-signed
        certificate like MAA's: subject and issuer ``CN=<issuer_url>``, valid from one day before
        ``now`` (clock skew) to :data:`CERTIFICATE_NOT_AFTER`, random positive serial,
        BasicConstraints ``CA:FALSE``, subject and authority key identifiers, signed with
        SHA-256.

        Raises :class:`ConfigurationError` for an unknown algorithm, or an ``issuer_url`` that is
        empty or longer than 64 characters (the X.509 limit for a common name), and
        ``ValueError`` for a naive ``now``."""
        _aware(now, "now")
        if algorithm not in ALGORITHMS:
            raise ConfigurationError(
                f"unsupported signing algorithm {algorithm!r} (use one of {', '.join(ALGORITHMS)})"
            )
        if not issuer_url or len(issuer_url) > _MAX_COMMON_NAME:
            raise ConfigurationError(
                f"issuer URL must be 1 to {_MAX_COMMON_NAME} characters to be a certificate "
                f"common name, got {len(issuer_url)}"
            )
        private_key: SigningPrivateKey
        if algorithm == "RS256":
            private_key = rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS)
        else:
            private_key = ec.generate_private_key(ec.SECP256R1())
        public_key = private_key.public_key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_url)])
        ski = x509.SubjectKeyIdentifier.from_public_key(public_key)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now.astimezone(UTC) - timedelta(days=1))
            .not_valid_after(CERTIFICATE_NOT_AFTER)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=False)
            .add_extension(ski, critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                critical=False,
            )
            .sign(private_key, hashes.SHA256())
        )
        return cls(
            private_key=private_key, certificate=certificate, algorithm=algorithm, created_at=now
        )

    def to_pem(self) -> tuple[bytes, bytes]:
        """``(private key PEM, certificate PEM)``: PKCS#8, unencrypted. The first item is
        secret; protect it at rest."""
        key_pem = self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return key_pem, self.certificate.public_bytes(serialization.Encoding.PEM)

    @classmethod
    def from_pem(
        cls, key_pem: bytes, cert_pem: bytes, *, created_at: datetime | None = None
    ) -> SigningKey:
        """Load a key saved by :meth:`to_pem` (any unencrypted PEM private key: PKCS#8,
        traditional RSA or SEC1 EC). The algorithm follows the key type: RSA (2048 bits or more)
        -> ``RS256``, EC P-256 -> ``ES256``. ``cert_pem`` holds exactly one certificate.
        ``created_at`` defaults to the certificate's ``notBefore``.

        Raises :class:`ConfigurationError` when either PEM does not load, the key is encrypted
        or of another type, or the key does not match the certificate."""
        try:
            private_key = serialization.load_pem_private_key(bytes(key_pem), password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise ConfigurationError(
                f"signing key: not an unencrypted PEM private key ({exc})"
            ) from exc
        (certificate,) = load_pem_certificates(
            cert_pem, "signing certificate", ConfigurationError, count=1
        )
        if isinstance(private_key, rsa.RSAPrivateKey):
            algorithm = "RS256"
        elif isinstance(private_key, ec.EllipticCurvePrivateKey):
            algorithm = "ES256"
        else:
            raise ConfigurationError(
                f"signing key: unsupported key type {type(private_key).__name__} "
                "(use RSA-2048 or EC P-256)"
            )
        return cls(
            private_key=private_key,
            certificate=certificate,
            algorithm=algorithm,
            created_at=certificate.not_valid_before_utc if created_at is None else created_at,
        )

    def jwk(self) -> dict[str, Any]:
        """This key's ``/certs`` entry: MAA's ``{"x5c","kid","kty"}`` (that order), then the
        public key for generic JWT libraries (``n``/``e`` or ``crv``/``x``/``y``, base64url),
        ``alg`` and ``use: "sig"``."""
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        entry: dict[str, Any] = {"x5c": [base64.b64encode(der).decode("ascii")], "kid": self.kid}
        public = self.private_key.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            numbers = public.public_numbers()
            entry["kty"] = "RSA"
            entry["n"] = _b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big"))
            entry["e"] = _b64url(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big"))
        else:
            point = public.public_numbers()
            entry["kty"] = "EC"
            entry["crv"] = "P-256"
            entry["x"] = _b64url(point.x.to_bytes(32, "big"))
            entry["y"] = _b64url(point.y.to_bytes(32, "big"))
        entry["alg"] = self.algorithm
        entry["use"] = "sig"
        return entry


def jwks(keys: Iterable[SigningKey]) -> dict[str, Any]:
    """The ``/certs`` document: ``{"keys": [key.jwk() for key in keys]}`` (maa-compat.md §1.7)."""
    return {"keys": [key.jwk() for key in keys]}
