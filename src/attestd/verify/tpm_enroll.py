"""TPM attestation-key enrollment (an attestd extension; MAA has no such endpoint): the checks
and certificates behind ``POST /enroll/Tpm``.

A device whose TPM has only an endorsement key certificate (every discrete or firmware TPM, and
swtpm) proves that an attestation key (AK) lives in the same TPM as a certified EK, and gets an
AIK certificate from this instance's own AIK CA (TPM 2.0 Part 1 §24, "Credential Protection"):

1. The client sends its EK certificate and the AK's public area. :func:`check_ek` checks that
   the certificate chains to the configured TPM manufacturer roots (``tpm_ek_roots``) and
   returns the EK public area the credential is made for: the one the client sent
   (``ek_public``), whose key must be the certificate's, or else the TCG default EK template
   (EK Credential Profile 2.0, templates L-1 RSA-2048 and L-2 ECC NIST P-256) filled with the
   certificate's key. :func:`check_ak` checks the AK is a restricted signing key that never
   leaves its TPM. The service then makes a credential for the AK's Name with a random secret
   (:func:`attestd.verify.tpm_credential.make_credential`).
2. The TPM releases the secret (``TPM2_ActivateCredential``) only if it holds the EK's private
   key *and* has an object loaded whose Name is the AK's. The client returns the secret, and
   :func:`issue_aik_certificate` certifies the AK's public key.

The AIK CA (:func:`new_aik_ca`) is an ECDSA P-256 key with a self-signed certificate, created on
first use and kept in the store; the service treats it as an implicit ``tpm_aik_roots`` entry.

**Endpoint** (paths case-insensitive; anonymous unless ``attest_requires_auth``; plain JSON
bodies, not MAA's ``{"data": ...}`` envelope). Binary values are answered in standard base64;
requests may use standard base64 or base64url, padded or not.

* ``POST /enroll/Tpm`` step 1::

      {"ek_cert": "<DER EK certificate>",
       "ek_chain": ["<DER intermediate>", ...],    # optional, leaf's issuer first
       "ak_public": "<TPM2B_PUBLIC of the AK>",    # tpm2_createak -u; a bare TPMT_PUBLIC too;
                                                   # "aik_pub" is accepted as its alias
       "ek_public": "<TPM2B_PUBLIC of the EK>"}    # optional: tpm2_createek -u; needed for EKs
                                                   # other than RSA-2048 / ECC P-256 (L-1, L-2)

  answers ``{"credential": "<tpm2-tools credential file>", "enrollment_context": "<opaque>"}``.
  ``credential`` is what ``tpm2_makecredential -o`` writes and ``tpm2_activatecredential -i``
  reads: ``0xBADCC0DE``, version 1 (both big-endian UINT32), then the ``TPM2B_ID_OBJECT``
  (credentialBlob) and the ``TPM2B_ENCRYPTED_SECRET`` (secret), the two arguments of
  ``TPM2_ActivateCredential``; other clients skip the 8-byte header. The secret has the size of
  the EK's nameAlg digest (32 bytes for the default EKs). ``enrollment_context`` is sealed like
  a TPM ``service_context`` (AES-256-GCM under a key derived from the signing key, with its own
  HKDF label) and holds a SHA-256 of the secret, the AK public area, the EK certificate and its
  fingerprint, serial and issuer hash, and an expiry (10 minutes).
* step 2 ``{"enrollment_context": "...", "secret": "<what ActivateCredential recovered>"}``
  answers ``{"aik_cert": "<DER>", "ca_cert": "<DER>"}`` (the secret is compared in constant
  time).
* ``GET /enroll/ca`` answers ``{"ca_cert": "<DER>"}``, the AIK CA (created on first use).

Errors: a request that fails a check raises :class:`EnrollmentRejected` (HTTP 400
InvalidParameter), a blob that does not parse :class:`~attestd.errors.MalformedEvidence`; an
expired, forged or foreign ``enrollment_context`` is refused (400) by the service.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID, ObjectIdentifier

from attestd.errors import EvidenceError
from attestd.evidence.tpm import (
    EccCurve,
    ObjectAttribute,
    Public,
    TpmAlg,
    parse_public,
)
from attestd.verify.tpm_attestation import chain_error

__all__ = [
    "AIK_CA_PURPOSE",
    "AIK_CERT_LIFETIME",
    "TCG_KP_AIK_CERTIFICATE",
    "EnrollmentRejected",
    "check_ak",
    "check_ek",
    "default_ek_public",
    "issue_aik_certificate",
    "new_aik_ca",
]

#: The store purpose of the AIK CA (:meth:`attestd.store.base.Store.get_ca_key`).
AIK_CA_PURPOSE = "tpm-aik"
#: How long an issued AIK certificate is valid (capped by the CA's own validity).
AIK_CERT_LIFETIME = timedelta(days=365)
#: How long the AIK CA certificate is valid.
AIK_CA_LIFETIME = timedelta(days=3650)
#: Issued certificates start this much before the time of issue (clock skew).
_BACKDATE = timedelta(minutes=5)
#: ``tcg-kp-AIKCertificate`` (TCG EK Credential Profile: extended key usage of AIK certificates).
TCG_KP_AIK_CERTIFICATE = ObjectIdentifier("2.23.133.8.3")

# TCG EK Credential Profile 2.0 §B.3.3 / §B.3.4, templates L-1 (RSA 2048) and L-2 (ECC P-256):
# fixedTPM | fixedParent | sensitiveDataOrigin | adminWithPolicy | restricted | decrypt, the
# PolicySecret(TPM_RH_ENDORSEMENT) authPolicy, AES-128-CFB, SHA-256 nameAlg.
_EK_ATTRIBUTES = 0x000300B2
_EK_POLICY = bytes.fromhex("837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa")

_AK_REQUIRED = (
    (ObjectAttribute.FIXED_TPM, "fixedTPM"),
    (ObjectAttribute.FIXED_PARENT, "fixedParent"),
    (ObjectAttribute.SENSITIVE_DATA_ORIGIN, "sensitiveDataOrigin"),
    (ObjectAttribute.RESTRICTED, "restricted"),
    (ObjectAttribute.SIGN_ENCRYPT, "sign"),
)


class EnrollmentRejected(EvidenceError):
    """The enrollment request fails a check (HTTP 400 InvalidParameter)."""

    code = "TpmEnrollmentRejected"


def _spki(key: object) -> bytes:
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise EnrollmentRejected(f"a {type(key).__name__} is neither an RSA nor an ECC key")
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _u16(v: int) -> bytes:
    return v.to_bytes(2, "big")


def _tpm2b(data: bytes) -> bytes:
    return _u16(len(data)) + data


def default_ek_public(cert: x509.Certificate) -> Public:
    """The EK public area the TCG default template (L-1 RSA-2048, L-2 ECC P-256) gives for the
    key in ``cert``: what ``tpm2_createek -G rsa|ecc`` creates and what EK certificates of
    these kinds certify.

    Raises:
        EnrollmentRejected: another key type or size (the client must send ``ek_public``).
    """
    key = cert.public_key()
    head = _u16(TpmAlg.SHA256) + _EK_ATTRIBUTES.to_bytes(4, "big") + _tpm2b(_EK_POLICY)
    sym = _u16(TpmAlg.AES) + _u16(128) + _u16(TpmAlg.CFB)
    if isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048:
        numbers = key.public_numbers()
        exponent = 0 if numbers.e == 65537 else numbers.e
        raw = (
            _u16(TpmAlg.RSA)
            + head
            + sym
            + _u16(TpmAlg.NULL)
            + _u16(2048)
            + exponent.to_bytes(4, "big")
            + _tpm2b(numbers.n.to_bytes(256, "big"))
        )
    elif isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1":
        point = key.public_numbers()
        raw = (
            _u16(TpmAlg.ECC)
            + head
            + sym
            + _u16(TpmAlg.NULL)
            + _u16(EccCurve.NIST_P256)
            + _u16(TpmAlg.NULL)
            + _tpm2b(point.x.to_bytes(32, "big"))
            + _tpm2b(point.y.to_bytes(32, "big"))
        )
    else:
        what = (
            f"RSA-{key.key_size}"
            if isinstance(key, rsa.RSAPublicKey)
            else f"ECC {key.curve.name}"
            if isinstance(key, ec.EllipticCurvePublicKey)
            else type(key).__name__
        )
        raise EnrollmentRejected(
            f"the EK certificate certifies an {what} key, for which there is no default EK "
            "template (only RSA-2048 and ECC NIST P-256): send 'ek_public' (TPM2B_PUBLIC)"
        )
    return parse_public(raw)


def check_ek(
    cert: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    at: datetime,
    ek_public: Public | None = None,
) -> Public:
    """That ``cert`` chains to ``roots`` (through ``intermediates``), every certificate valid at
    ``at``, and certifies the EK the credential will be made for; returns that EK's public area
    (``ek_public``, or :func:`default_ek_public`).

    Raises:
        EnrollmentRejected: the chain does not verify, or ``ek_public`` is another key.
    """
    if not roots:
        raise EnrollmentRejected(
            "EK certificate rejected: no EK roots are configured (tpm_ek_roots), so this "
            "instance enrolls no TPM (POST /enroll/Tpm)"
        )
    why = chain_error([cert, *intermediates], roots, at, kind="EK", setting="tpm_ek_roots")
    if why is not None:
        raise EnrollmentRejected(f"EK certificate rejected: {why}")
    if ek_public is None:
        return default_ek_public(cert)
    if _spki(ek_public.public_key()) != _spki(cert.public_key()):
        raise EnrollmentRejected(
            "'ek_public' is not the key the EK certificate certifies: the credential would be "
            "made for an uncertified key"
        )
    return ek_public


def check_ak(ak: Public) -> None:
    """That ``ak`` is an attestation key: a restricted signing key (it signs only data the TPM
    produced, such as quotes), not a decryption key, created inside its TPM and never leaving
    it (``fixedTPM``, ``fixedParent``, ``sensitiveDataOrigin``), with a digest Name.

    Raises:
        EnrollmentRejected: otherwise, naming the attributes that are wrong.
    """
    missing = [name for bit, name in _AK_REQUIRED if not ak.has(bit)]
    extra = ["decrypt"] if ak.has(ObjectAttribute.DECRYPT) else []
    if missing or extra:
        parts = []
        if missing:
            parts.append("lacks " + ", ".join(missing))
        if extra:
            parts.append("has decrypt set")
        raise EnrollmentRejected(
            f"the AK is not a restricted signing key bound to its TPM (objectAttributes "
            f"0x{ak.object_attributes:08x} {' and '.join(parts)})"
        )
    if ak.name_alg == TpmAlg.NULL:
        raise EnrollmentRejected("the AK's nameAlg is NULL: it has no Name to bind to")


def new_aik_ca(
    instance_url: str, now: datetime
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A fresh AIK CA: an ECDSA P-256 key and its self-signed certificate (10 years)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "attestd TPM AIK CA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, instance_url[:64] or "attestd"),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + AIK_CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def issue_aik_certificate(
    ca_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    ca_cert: x509.Certificate,
    ak: Public,
    ek_cert: x509.Certificate,
    now: datetime,
) -> x509.Certificate:
    """The AIK certificate for ``ak``'s public key, signed by the AIK CA.

    Subject: ``CN=attestd AIK``, ``serialNumber`` = the EK certificate's serial number (hex) and
    ``dnQualifier`` = SHA-256 (hex) of the EK certificate's DER-encoded issuer name, so the
    certificate names the EK it was enrolled with. Extensions: not a CA, digitalSignature,
    extended key usage ``tcg-kp-AIKCertificate`` (2.23.133.8.3), key identifiers. Valid from
    five minutes before ``now`` for :data:`AIK_CERT_LIFETIME`, not beyond the CA's validity.
    """
    ak_key = ak.public_key()
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "attestd AIK"),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, f"{ek_cert.serial_number:x}"[:64]),
            x509.NameAttribute(
                NameOID.DN_QUALIFIER, hashlib.sha256(ek_cert.issuer.public_bytes()).hexdigest()
            ),
        ]
    )
    not_after = min(now + AIK_CERT_LIFETIME, ca_cert.not_valid_after_utc)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(ak_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([TCG_KP_AIK_CERTIFICATE]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ak_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
