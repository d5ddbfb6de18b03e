"""The DER reader for signed X.509 bytes (pki/der): fields and extensions of real and built
certificates, the same as cryptography reads them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from attestd.pki.der import CertFields
from attestd.pki.sgx_extension import SGX_EXTENSION_OID, SGX_EXTENSION_OID_DER
from conftest import DCAP, MAA_OFFLINE

SGX = x509.ObjectIdentifier(SGX_EXTENSION_OID)
NEAR = x509.ObjectIdentifier(SGX_EXTENSION_OID[:-1] + "2")  # differs in the last arc only


def _chains() -> list[x509.Certificate]:
    paths = [*DCAP.glob("*/*/pck_chain.pem"), *MAA_OFFLINE.glob("*/pck_chain.pem")]
    assert len(paths) >= 10
    return [c for p in sorted(paths) for c in x509.load_pem_x509_certificates(p.read_bytes())]


def test_fields_and_sgx_extension_of_every_real_certificate() -> None:
    seen = 0
    for cert in _chains():
        f = CertFields(cert.public_bytes(Encoding.DER))
        assert f.tbs == cert.tbs_certificate_bytes
        assert f.signature == cert.signature
        assert f.serial == cert.serial_number
        assert f.not_after == cert.not_valid_after_utc
        assert f.issuer == cert.issuer.public_bytes()
        assert f.subject == cert.subject.public_bytes()
        try:
            want = cert.extensions.get_extension_for_oid(SGX).value
        except x509.ExtensionNotFound:
            assert f.extension(SGX_EXTENSION_OID_DER) is None
            continue
        assert isinstance(want, x509.UnrecognizedExtension)
        assert f.extension(SGX_EXTENSION_OID_DER) == want.value
        seen += 1
    assert seen >= 10


def _built(*extensions: tuple[x509.ObjectIdentifier, bytes, bool]) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "t")])
    now = datetime(2026, 1, 1, tzinfo=UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    for oid, value, critical in extensions:
        builder = builder.add_extension(x509.UnrecognizedExtension(oid, value), critical=critical)
    return builder.sign(key, hashes.SHA256()).public_bytes(Encoding.DER)


@pytest.mark.parametrize("critical", [False, True])
def test_extension_found_with_or_without_the_critical_flag(critical: bool) -> None:
    der = _built((NEAR, b"\x05\x00", False), (SGX, b"\x30\x00", critical))
    assert CertFields(der).extension(SGX_EXTENSION_OID_DER) == b"\x30\x00"


def test_missing_extension_is_none() -> None:
    assert CertFields(_built((NEAR, b"\x05\x00", False))).extension(SGX_EXTENSION_OID_DER) is None
    assert CertFields(_built()).extension(SGX_EXTENSION_OID_DER) is None


def test_an_extension_given_twice_is_refused() -> None:
    """RFC 5280 §4.2: a certificate must not include more than one instance of an extension
    (cryptography refuses it too, as DuplicateExtension)."""
    der = _built((NEAR, b"\x30\x00", False), (SGX, b"\x30\x00", False))
    near_body = SGX_EXTENSION_OID_DER[:-1] + b"\x02"
    twice = der.replace(near_body, SGX_EXTENSION_OID_DER)
    with pytest.raises(x509.DuplicateExtension):
        _ = x509.load_der_x509_certificate(twice).extensions
    with pytest.raises(ValueError, match="duplicate extension"):
        CertFields(twice).extension(SGX_EXTENSION_OID_DER)
