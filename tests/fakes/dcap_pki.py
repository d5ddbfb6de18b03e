"""A test Intel SGX/TDX DCAP PKI minted in the test session, and a quote + collateral builder.

Everything Intel signs in production is minted here with ``cryptography`` only:

- a self-signed "Intel SGX Root CA", the "Intel SGX PCK Processor CA" and "Intel SGX PCK Platform
  CA", and the "Intel SGX TCB Signing" certificate (all P-256, keys derived from fixed labels);
- PCK leaf certificates "Intel SGX PCK Certificate" with a hand-encoded SGX extension
  (OID 1.2.840.113741.1.13.1: 5 entries under the Processor CA, 7 under the Platform CA);
- the Root CA CRL and the PCK CRLs (CRL number + AKI extensions, optional revoked serials);
- TCB Info v3 (SGX or TDX) and QE Identity v2 (QE or TD_QE), compact JSON signed over the exact
  bytes of the inner object (raw r || s, 128 hex digits);
- quotes: SGX v3, TDX v4 (TD report 1.0) and TDX v5 (TD report 1.5, body type 3).

A second PKI with the same names and other keys (``"rogue"``) stands in for an attacker's.

Use :func:`mint` with :class:`Knobs` (or keyword overrides); every knob has a default that
verifies ``UpToDate`` at :data:`NOW`. Keys, serial numbers, times and ECDSA signatures
(RFC 6979) are deterministic, so the same knobs give the same bytes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import struct
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from attestd.collateral.source import CaType, DcapCollateral, Tee
from attestd.errors import CollateralUnavailable
from attestd.pki.certs import TrustAnchors

__all__ = [
    "NOW",
    "QE_LEVELS",
    "QE_MRSIGNER",
    "SGX_COMPONENTS",
    "SGX_LEVELS",
    "STRIPPED_BYTES",
    "TDX_COMPONENTS",
    "TDX_LEVELS",
    "TDX_MODULE_IDENTITIES",
    "TD_QE_MRSIGNER",
    "TEE_TCB_SVN",
    "EnclaveLevel",
    "FixedCollateral",
    "Knobs",
    "Level",
    "Minted",
    "ModuleIdentity",
    "Pki",
    "anchors",
    "mint",
    "pki",
    "respaced",
    "sgx_extension",
    "with_top_level",
]

# The verification time every default window contains.
NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)

INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
QE_MRSIGNER = bytes.fromhex("8C4F5775D796503E96137F77C68A829A0056AC8DED70140B081B094490C57BFF")
TD_QE_MRSIGNER = bytes.fromhex("DC9E2A7C6F948F17474E34A7FC43ED030F7C1563F1BABDDF6340C82E0E54A8C5")
QE_ATTRIBUTES = bytes.fromhex("11000000000000000000000000000000")
QE_ATTRIBUTES_MASK = bytes.fromhex("FBFFFFFFFFFFFFFF0000000000000000")

SGX_FMSPC = bytes.fromhex("00906ED50000")
TDX_FMSPC = bytes.fromhex("00806F050000")

_Z = (0,) * 8
# PCK certificate TCB of the default platforms, and the TCB levels they meet first.
SGX_COMPONENTS: tuple[int, ...] = (11, 11, 2, 2, 255, 1, 12, 0, *_Z)
TDX_COMPONENTS: tuple[int, ...] = (2, 2, 2, 2, 3, 1, 0, 5, *_Z)
# TD report tee_tcb_svn: module SVN 5, module major version 1 (TDX_01), late microcode 2.
TEE_TCB_SVN = bytes([5, 1, 2]) + bytes(13)

_OID_SGX = "1.2.840.113741.1.13.1"
_OID_SGX_DER = bytes.fromhex("2a864886f84d010d01")
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_ECDSA = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)


def _ts(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------------
# Collateral content: TCB levels and identities
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Level:
    """A TCB Info ``tcbLevels`` entry."""

    sgx: tuple[int, ...]
    pcesvn: int
    status: str = "UpToDate"
    advisory_ids: tuple[str, ...] = ()
    tdx: tuple[int, ...] | None = None  # 16 SVNs; zeros in a TDX TCB Info when None
    date: str = "2024-11-13T00:00:00Z"

    def to_json(self, tdx: bool) -> dict[str, Any]:
        tcb: dict[str, Any] = {
            "sgxtcbcomponents": [{"svn": s} for s in self.sgx],
            "pcesvn": self.pcesvn,
        }
        if tdx:
            tcb["tdxtcbcomponents"] = [{"svn": s} for s in (self.tdx or (0,) * 16)]
        out: dict[str, Any] = {"tcb": tcb, "tcbDate": self.date, "tcbStatus": self.status}
        if self.advisory_ids:
            out["advisoryIDs"] = list(self.advisory_ids)
        return out


@dataclass(frozen=True)
class EnclaveLevel:
    """A QE identity or TDX module identity ``tcbLevels`` entry."""

    isvsvn: int
    status: str = "UpToDate"
    advisory_ids: tuple[str, ...] = ()
    date: str = "2024-11-13T00:00:00Z"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "tcb": {"isvsvn": self.isvsvn},
            "tcbDate": self.date,
            "tcbStatus": self.status,
        }
        if self.advisory_ids:
            out["advisoryIDs"] = list(self.advisory_ids)
        return out


@dataclass(frozen=True)
class ModuleIdentity:
    """A TCB Info ``tdxModuleIdentities`` entry."""

    id: str = "TDX_01"
    mrsigner: bytes = bytes(48)
    attributes: bytes = bytes(8)
    attributes_mask: bytes = b"\xff" * 8
    levels: tuple[EnclaveLevel, ...] = (
        EnclaveLevel(5, "UpToDate"),
        EnclaveLevel(3, "OutOfDate", ("INTEL-SA-01036",), "2024-03-13T00:00:00Z"),
        EnclaveLevel(1, "Revoked", ("INTEL-SA-00837",), "2023-08-09T00:00:00Z"),
    )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "mrsigner": self.mrsigner.hex().upper(),
            "attributes": self.attributes.hex().upper(),
            "attributesMask": self.attributes_mask.hex().upper(),
            "tcbLevels": [lv.to_json() for lv in self.levels],
        }


_OLD_SGX = (10, 10, 2, 2, 255, 1, 12, 0, *_Z)
SGX_LEVELS: tuple[Level, ...] = (
    Level(SGX_COMPONENTS, 13, "UpToDate"),
    Level(_OLD_SGX, 13, "OutOfDate", ("INTEL-SA-00828",), date="2023-02-15T00:00:00Z"),
    Level(
        _OLD_SGX,
        11,
        "OutOfDate",
        ("INTEL-SA-00828", "INTEL-SA-00615"),
        date="2022-08-10T00:00:00Z",
    ),
)
_OLD_TDX_SGX = (2, 2, 2, 2, 3, 1, 0, 3, *_Z)
TDX_LEVELS: tuple[Level, ...] = (
    Level(TDX_COMPONENTS, 11, "UpToDate", tdx=(5, 0, 2, *(0,) * 13)),
    Level(
        TDX_COMPONENTS,
        11,
        "OutOfDate",
        ("INTEL-SA-01036",),
        tdx=(3, 0, 1, *(0,) * 13),
        date="2024-03-13T00:00:00Z",
    ),
    Level(
        _OLD_TDX_SGX,
        5,
        "OutOfDate",
        ("INTEL-SA-01036", "INTEL-SA-00837"),
        tdx=(3, 0, 1, *(0,) * 13),
        date="2023-08-09T00:00:00Z",
    ),
)
TDX_MODULE_IDENTITIES: tuple[ModuleIdentity, ...] = (ModuleIdentity(),)
QE_LEVELS: tuple[EnclaveLevel, ...] = (
    EnclaveLevel(8, "UpToDate"),
    EnclaveLevel(6, "OutOfDate", ("INTEL-SA-00615",), "2021-11-10T00:00:00Z"),
    EnclaveLevel(4, "Revoked", ("INTEL-SA-00334", "INTEL-SA-00615"), "2019-11-13T00:00:00Z"),
)


def with_top_level(
    levels: tuple[Level, ...], status: str, advisory_ids: tuple[str, ...]
) -> tuple[Level, ...]:
    """``levels`` with the first (newest) level's status and advisory IDs replaced."""
    top = levels[0]
    return (
        Level(top.sgx, top.pcesvn, status, advisory_ids, top.tdx, top.date),
        *levels[1:],
    )


# ---------------------------------------------------------------------------------------------
# DER helpers and the PCK SGX extension
# ---------------------------------------------------------------------------------------------


def _der(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + content


def _der_int(value: int, tag: int = 0x02) -> bytes:
    return _der(tag, value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big"))


def _pair(arcs: bytes, value: bytes) -> bytes:
    return _der(0x30, _der(0x06, _OID_SGX_DER + arcs) + value)


def sgx_extension(
    *,
    components: tuple[int, ...],
    pcesvn: int,
    cpusvn: bytes,
    pce_id: bytes,
    fmspc: bytes,
    ppid: bytes = bytes(range(16)),
    sgx_type: int = 0,
    platform_instance_id: bytes | None = None,
    dynamic_platform: bool = False,
    cached_keys: bool = True,
    smt_enabled: bool = True,
) -> bytes:
    """DER of the SGX extension value: 5 entries, or 7 with ``platform_instance_id``."""
    assert len(components) == 16 and len(cpusvn) == 16
    tcb = b"".join(_pair(bytes([2, i + 1]), _der_int(c)) for i, c in enumerate(components))
    tcb += _pair(bytes([2, 17]), _der_int(pcesvn)) + _pair(bytes([2, 18]), _der(0x04, cpusvn))
    entries = [
        _pair(b"\x01", _der(0x04, ppid)),
        _pair(b"\x02", _der(0x30, tcb)),
        _pair(b"\x03", _der(0x04, pce_id)),
        _pair(b"\x04", _der(0x04, fmspc)),
        _pair(b"\x05", _der_int(sgx_type, tag=0x0A)),
    ]
    if platform_instance_id is not None:
        flags = [dynamic_platform, cached_keys, smt_enabled]
        conf = b"".join(
            _pair(bytes([7, i + 1]), _der(0x01, b"\xff" if f else b"\x00"))
            for i, f in enumerate(flags)
        )
        entries += [
            _pair(b"\x06", _der(0x04, platform_instance_id)),
            _pair(b"\x07", _der(0x30, conf)),
        ]
    return _der(0x30, b"".join(entries))


# ---------------------------------------------------------------------------------------------
# The PKI
# ---------------------------------------------------------------------------------------------


@functools.cache
def _key(label: str) -> ec.EllipticCurvePrivateKey:
    seed = hashlib.sha256(b"attestd test DCAP PKI: " + label.encode()).digest()
    return ec.derive_private_key(
        int.from_bytes(seed, "big") % (_P256_ORDER - 1) + 1, ec.SECP256R1()
    )


def _serial(*parts: object) -> int:
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:16], "big") >> 1 | 1


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Intel Corporation"),
            x509.NameAttribute(NameOID.LOCALITY_NAME, "Santa Clara"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "CA"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        ]
    )


def _raw_sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(data, _ECDSA))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _raw_public(key: ec.EllipticCurvePrivateKey) -> bytes:
    nums = key.public_key().public_numbers()
    return nums.x.to_bytes(32, "big") + nums.y.to_bytes(32, "big")


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _cert(
    *,
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    serial: int,
    not_before: datetime,
    not_after: datetime,
    ca: bool,
    sgx_ext: bytes | None = None,
) -> x509.Certificate:
    path_length = (1 if subject == issuer else 0) if ca else None
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=not ca,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            True,
        )
    )
    if sgx_ext is not None:
        b = b.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(_OID_SGX), sgx_ext), False
        )
    return b.sign(issuer_key, hashes.SHA256(), ecdsa_deterministic=True)


ROOT_CN = "Intel SGX Root CA"
CA_CN: dict[str, str] = {
    "processor": "Intel SGX PCK Processor CA",
    "platform": "Intel SGX PCK Platform CA",
}
TCB_SIGNING_CN = "Intel SGX TCB Signing"
PCK_CN = "Intel SGX PCK Certificate"

_ROOT_WINDOW = (datetime(2020, 1, 1, tzinfo=UTC), datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC))
_CA_WINDOW = (datetime(2020, 1, 1, tzinfo=UTC), datetime(2040, 1, 1, tzinfo=UTC))
_TCB_SIGNING_WINDOW = (datetime(2024, 1, 1, tzinfo=UTC), datetime(2032, 1, 1, tzinfo=UTC))
_PCK_WINDOW = (datetime(2024, 6, 1, tzinfo=UTC), datetime(2031, 6, 1, tzinfo=UTC))


@dataclass(frozen=True)
class Pki:
    """One minted PKI (``"intel"``, the trusted one, or ``"rogue"``: same names, other keys)."""

    name: str
    root_key: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    ca_keys: dict[str, ec.EllipticCurvePrivateKey]
    cas: dict[str, x509.Certificate]
    tcb_key: ec.EllipticCurvePrivateKey
    pck_keys: dict[str, ec.EllipticCurvePrivateKey]

    def tcb_signing(self, not_after: datetime | None = None) -> x509.Certificate:
        return _tcb_signing_cert(self.name, not_after or _TCB_SIGNING_WINDOW[1])

    def pck_leaf(
        self, ca: CaType, ext: bytes, not_before: datetime | None, not_after: datetime | None
    ) -> x509.Certificate:
        return _pck_leaf(
            self.name, ca, ext, not_before or _PCK_WINDOW[0], not_after or _PCK_WINDOW[1]
        )

    def crl(
        self,
        issuer: str,
        *,
        revoked: tuple[int, ...] = (),
        this_update: datetime,
        next_update: datetime,
        number: int = 1,
    ) -> bytes:
        """DER CRL by ``issuer`` (``"root"``, ``"processor"`` or ``"platform"``)."""
        cert = self.root if issuer == "root" else self.cas[issuer]
        key = self.root_key if issuer == "root" else self.ca_keys[issuer]
        b = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(cert.subject)
            .last_update(this_update)
            .next_update(next_update)
            .add_extension(x509.CRLNumber(number), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), False
            )
        )
        for serial in revoked:
            b = b.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(this_update)
                .build()
            )
        crl = b.sign(key, hashes.SHA256(), ecdsa_deterministic=True)
        return crl.public_bytes(serialization.Encoding.DER)


@functools.cache
def pki(name: str = "intel") -> Pki:
    """The PKI named ``name``, minted once per session."""
    root_key = _key(f"{name}/root")
    root = _cert(
        subject=ROOT_CN,
        key=root_key,
        issuer=ROOT_CN,
        issuer_key=root_key,
        serial=_serial(name, "root"),
        not_before=_ROOT_WINDOW[0],
        not_after=_ROOT_WINDOW[1],
        ca=True,
    )
    ca_keys = {t: _key(f"{name}/{t}-ca") for t in CA_CN}
    cas = {
        t: _cert(
            subject=CA_CN[t],
            key=ca_keys[t],
            issuer=ROOT_CN,
            issuer_key=root_key,
            serial=_serial(name, t),
            not_before=_CA_WINDOW[0],
            not_after=_CA_WINDOW[1],
            ca=True,
        )
        for t in CA_CN
    }
    return Pki(
        name=name,
        root_key=root_key,
        root=root,
        ca_keys=ca_keys,
        cas=cas,
        tcb_key=_key(f"{name}/tcb-signing"),
        pck_keys={t: _key(f"{name}/{t}-pck-leaf") for t in CA_CN},
    )


@functools.cache
def _tcb_signing_cert(name: str, not_after: datetime) -> x509.Certificate:
    p = pki(name)
    return _cert(
        subject=TCB_SIGNING_CN,
        key=p.tcb_key,
        issuer=ROOT_CN,
        issuer_key=p.root_key,
        serial=_serial(name, "tcb-signing"),  # same serial for every issuance, as Intel did
        not_before=_TCB_SIGNING_WINDOW[0],
        not_after=not_after,
        ca=False,
    )


@functools.cache
def _pck_leaf(
    name: str, ca: CaType, ext: bytes, not_before: datetime, not_after: datetime
) -> x509.Certificate:
    p = pki(name)
    return _cert(
        subject=PCK_CN,
        key=p.pck_keys[ca],
        issuer=CA_CN[ca],
        issuer_key=p.ca_keys[ca],
        serial=_serial(name, ca, ext, not_before, not_after),
        not_before=not_before,
        not_after=not_after,
        ca=False,
        sgx_ext=ext,
    )


def anchors(name: str = "intel") -> TrustAnchors:
    """Trust anchors holding the root of PKI ``name``."""
    return TrustAnchors((pki(name).root,))


# ---------------------------------------------------------------------------------------------
# The builder
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Knobs:
    """What to mint. ``None`` means "the default for this TEE"; each default verifies UpToDate."""

    tee: Tee = "sgx"
    version: int | None = None  # 3 (SGX) or 4 (TDX); 5 implied by td15
    td15: bool = False  # TDX quote v5 with a TD report 1.5 (body type 3)
    ca: CaType | None = None  # PCK CA: processor (SGX) or platform (TDX)

    # PCK certificate (SGX extension)
    pck_components: tuple[int, ...] | None = None
    pcesvn: int | None = None  # 13 (SGX) / 11 (TDX)
    cpusvn: bytes = bytes(range(1, 17))
    pce_id: bytes = b"\x00\x00"
    fmspc: bytes | None = None
    pck_not_before: datetime | None = None
    pck_not_after: datetime | None = None

    # TCB Info
    tcb_info_id: str | None = None  # "SGX" / "TDX"
    tcb_info_fmspc: bytes | None = None  # default: the PCK's
    tcb_info_pce_id: bytes | None = None  # default: the PCK's
    tcb_levels: tuple[Level, ...] | None = None
    tdx_module_mrsigner: bytes = bytes(48)
    tdx_module_attributes: bytes = bytes(8)
    tdx_module_identities: tuple[ModuleIdentity, ...] | None = None  # () = key absent
    tcb_info_issue_date: datetime = NOW - timedelta(days=3)
    tcb_info_next_update: datetime = NOW + timedelta(days=27)

    # QE identity
    qe_identity_id: str | None = None  # "QE" / "TD_QE"
    qe_identity_mrsigner: bytes | None = None
    qe_identity_isvprodid: int | None = None  # 1 (QE) / 2 (TD_QE)
    qe_identity_miscselect: bytes = bytes(4)
    qe_identity_miscselect_mask: bytes = b"\xff" * 4
    qe_identity_attributes: bytes = QE_ATTRIBUTES
    qe_identity_attributes_mask: bytes = QE_ATTRIBUTES_MASK
    qe_levels: tuple[EnclaveLevel, ...] = QE_LEVELS
    qe_identity_issue_date: datetime = NOW - timedelta(days=2)
    qe_identity_next_update: datetime = NOW + timedelta(days=28)

    # QE report inside the quote
    qe_mrsigner: bytes | None = None  # default: the identity's
    qe_isvprodid: int | None = None  # default: the identity's
    qe_isvsvn: int = 8
    qe_attributes: bytes = bytes.fromhex("11000000000000000700000000000000")
    qe_miscselect: int = 0
    qe_auth_data: bytes = bytes(range(32))

    # TD report (TDX)
    tee_tcb_svn: bytes = TEE_TCB_SVN
    tee_tcb_svn2: bytes | None = None  # TD 1.5; default: tee_tcb_svn
    mrsignerseam: bytes = bytes(48)
    seam_attributes: bytes = bytes(8)

    # Application report data (SGX report / TD report)
    report_data: bytes = hashlib.sha256(b"nonce").digest() + bytes(32)

    # Breakage
    bad_qe_report_signature: bool = False  # flip a bit of the PCK signature over the QE report
    bad_report_data_binding: bool = False  # QE report_data[0] no longer binds the attestation key
    bad_quote_signature: bool = False  # flip a bit of the attestation key signature

    # Revocation and CA choice
    revoke_pck_leaf: bool = False  # leaf serial in the PCK CRL
    revoke_pck_ca: bool = False  # PCK CA serial in the Root CA CRL
    revoke_tcb_signing: bool = False  # TCB Signing serial in the Root CA CRL
    pck_crl_ca: CaType | None = None  # CA issuing the PCK CRL; default: the leaf's

    # CRL windows
    root_crl_this_update: datetime = NOW - timedelta(days=10)
    root_crl_next_update: datetime = NOW + timedelta(days=30)
    pck_crl_this_update: datetime = NOW - timedelta(days=5)
    pck_crl_next_update: datetime = NOW + timedelta(days=25)
    crl_encoding: str = "der"  # "der", "pem" or "hex"
    root_crl_number: int = 1
    pck_crl_number: int = 1
    # False bumps the CRL number until the DER does not end in a NUL/whitespace byte (a loader
    # once stripped those; tests/verify/test_dcap_minted.py keeps the regression test).
    crl_exact_number: bool = True

    # Certificates
    tcb_signing_not_after: datetime | None = None

    # Which PKI mints what ("intel" is the trust anchor; "rogue" has the same names)
    pck_pki: str = "intel"  # PCK chain in the quote
    collateral_pki: str = "intel"  # CRLs, the PCK CRL issuer chain and the TCB signer
    tcb_signing_pki: str | None = None  # TCB Info / QE identity signer; default collateral_pki

    trailing_bytes: int = 0  # zero padding after the quote (real TDX buffers have it)


class Minted(NamedTuple):
    quote: bytes
    collateral: DcapCollateral
    anchors: TrustAnchors


class FixedCollateral:
    """A :class:`~attestd.collateral.source.CollateralSource` handing out one bundle (or none)."""

    def __init__(self, collateral: DcapCollateral | None = None) -> None:
        self.collateral = collateral

    def dcap_collateral(self, *, tee: Tee, fmspc: bytes, ca: CaType) -> DcapCollateral:
        if self.collateral is None:
            raise CollateralUnavailable("FixedCollateral: none configured")
        return self.collateral


def _signed_json(outer_key: str, body: dict[str, Any], key: ec.EllipticCurvePrivateKey) -> bytes:
    raw = json.dumps(body, separators=(",", ":")).encode()
    sig = _raw_sign(key, raw).hex()
    return b'{"' + outer_key.encode() + b'":' + raw + b',"signature":"' + sig.encode() + b'"}'


def respaced(document: bytes) -> bytes:
    """The same JSON document pretty-printed (same keys, values and signature string)."""
    return json.dumps(json.loads(document), indent=2).encode()


STRIPPED_BYTES = b"\x00\r\n\t "


def _crl(p: Pki, issuer: str, *, number: int, exact: bool, **kw: Any) -> bytes:
    while True:
        der = p.crl(issuer, number=number, **kw)
        if exact or der[-1] not in STRIPPED_BYTES:
            return der
        number += 1


def _encode_crl(der: bytes, encoding: str) -> bytes:
    if encoding == "der":
        return der
    if encoding == "hex":
        return der.hex().encode()
    crl = x509.load_der_x509_crl(der)
    return crl.public_bytes(serialization.Encoding.PEM)


def _resolve(k: Knobs) -> dict[str, Any]:
    tdx = k.tee == "tdx"
    return {
        "version": k.version or (5 if k.td15 else 4 if tdx else 3),
        "ca": k.ca or ("platform" if tdx else "processor"),
        "components": k.pck_components or (TDX_COMPONENTS if tdx else SGX_COMPONENTS),
        "pcesvn": k.pcesvn if k.pcesvn is not None else (11 if tdx else 13),
        "fmspc": k.fmspc or (TDX_FMSPC if tdx else SGX_FMSPC),
        "levels": k.tcb_levels or (TDX_LEVELS if tdx else SGX_LEVELS),
        "identities": (
            TDX_MODULE_IDENTITIES if k.tdx_module_identities is None else k.tdx_module_identities
        ),
        "tcb_info_id": k.tcb_info_id or ("TDX" if tdx else "SGX"),
        "qe_identity_id": k.qe_identity_id or ("TD_QE" if tdx else "QE"),
        "qe_identity_mrsigner": k.qe_identity_mrsigner or (TD_QE_MRSIGNER if tdx else QE_MRSIGNER),
        "qe_identity_isvprodid": (
            k.qe_identity_isvprodid if k.qe_identity_isvprodid is not None else (2 if tdx else 1)
        ),
    }


def _tcb_info(k: Knobs, r: dict[str, Any]) -> dict[str, Any]:
    is_tdx = r["tcb_info_id"] == "TDX"
    body: dict[str, Any] = {
        "id": r["tcb_info_id"],
        "version": 3,
        "issueDate": _ts(k.tcb_info_issue_date),
        "nextUpdate": _ts(k.tcb_info_next_update),
        "fmspc": (k.tcb_info_fmspc or r["fmspc"]).hex().upper(),
        "pceId": (k.tcb_info_pce_id or k.pce_id).hex().upper(),
        "tcbType": 0,
        "tcbEvaluationDataNumber": 17,
    }
    if is_tdx:
        body["tdxModule"] = {
            "mrsigner": k.tdx_module_mrsigner.hex().upper(),
            "attributes": k.tdx_module_attributes.hex().upper(),
            "attributesMask": "FFFFFFFFFFFFFFFF",
        }
        if r["identities"]:
            body["tdxModuleIdentities"] = [i.to_json() for i in r["identities"]]
    body["tcbLevels"] = [lv.to_json(is_tdx) for lv in r["levels"]]
    return body


def _qe_identity(k: Knobs, r: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": r["qe_identity_id"],
        "version": 2,
        "issueDate": _ts(k.qe_identity_issue_date),
        "nextUpdate": _ts(k.qe_identity_next_update),
        "tcbEvaluationDataNumber": 17,
        "miscselect": k.qe_identity_miscselect.hex().upper(),
        "miscselectMask": k.qe_identity_miscselect_mask.hex().upper(),
        "attributes": k.qe_identity_attributes.hex().upper(),
        "attributesMask": k.qe_identity_attributes_mask.hex().upper(),
        "mrsigner": r["qe_identity_mrsigner"].hex().upper(),
        "isvprodid": r["qe_identity_isvprodid"],
        "tcbLevels": [lv.to_json() for lv in k.qe_levels],
    }


_ENCLAVE_REPORT = struct.Struct("<16sI12x16s16s32s32x32s32x64sHHH42x16s64s")


def _enclave_report(
    *,
    cpusvn: bytes,
    miscselect: int,
    attributes: bytes,
    mrenclave: bytes,
    mrsigner: bytes,
    isvprodid: int,
    isvsvn: int,
    report_data: bytes,
) -> bytes:
    return _ENCLAVE_REPORT.pack(
        cpusvn,
        miscselect,
        bytes(16),
        attributes,
        mrenclave,
        mrsigner,
        bytes(64),
        isvprodid,
        isvsvn,
        0,
        bytes(16),
        report_data,
    )


def _td_report(k: Knobs) -> bytes:
    def m(label: str) -> bytes:
        return hashlib.sha384(label.encode()).digest()

    assert len(k.tee_tcb_svn) == 16 and len(k.mrsignerseam) == 48 and len(k.seam_attributes) == 8
    body = b"".join(
        [
            k.tee_tcb_svn,
            m("mrseam"),
            k.mrsignerseam,
            k.seam_attributes,
            bytes(8),  # td_attributes
            bytes.fromhex("e718060000000000"),  # xfam
            m("mrtd"),
            bytes(48),  # mrconfigid
            bytes(48),  # mrowner
            bytes(48),  # mrownerconfig
            m("rtmr0"),
            m("rtmr1"),
            m("rtmr2"),
            bytes(48),
            k.report_data,
        ]
    )
    if k.td15:
        body += (k.tee_tcb_svn2 if k.tee_tcb_svn2 is not None else k.tee_tcb_svn) + bytes(48)
    return body


def _flip(sig: bytes) -> bytes:
    return sig[:-1] + bytes([sig[-1] ^ 1])


def mint(knobs: Knobs | None = None, /, **overrides: Any) -> Minted:
    """Mint a quote and its collateral: ``mint(Knobs(...))`` or ``mint(tee="tdx", ...)``."""
    k = knobs or Knobs()
    if overrides:
        names = {f.name for f in fields(Knobs)}
        unknown = set(overrides) - names
        if unknown:
            raise TypeError(f"unknown knobs: {sorted(unknown)}")
        k = Knobs(**{**{f.name: getattr(k, f.name) for f in fields(Knobs)}, **overrides})
    r = _resolve(k)
    tdx = k.tee == "tdx"
    ca: CaType = r["ca"]

    # PCK chain (in the quote).
    ppki = pki(k.pck_pki)
    ext = sgx_extension(
        components=r["components"],
        pcesvn=r["pcesvn"],
        cpusvn=k.cpusvn,
        pce_id=k.pce_id,
        fmspc=r["fmspc"],
        platform_instance_id=hashlib.sha256(b"instance").digest()[:16]
        if ca == "platform"
        else None,
    )
    leaf = ppki.pck_leaf(ca, ext, k.pck_not_before, k.pck_not_after)
    pck_key = ppki.pck_keys[ca]
    pck_chain = _pem(leaf) + _pem(ppki.cas[ca]) + _pem(ppki.root) + b"\x00"

    # Collateral.
    cpki = pki(k.collateral_pki)
    tpki = pki(k.tcb_signing_pki or k.collateral_pki)
    crl_ca: CaType = k.pck_crl_ca or ca
    signing = tpki.tcb_signing(k.tcb_signing_not_after)
    root_revoked: list[int] = []
    if k.revoke_pck_ca:
        root_revoked.append(ppki.cas[ca].serial_number)
    if k.revoke_tcb_signing:
        root_revoked.append(signing.serial_number)
    root_crl = _crl(
        cpki,
        "root",
        number=k.root_crl_number,
        exact=k.crl_exact_number,
        revoked=tuple(root_revoked),
        this_update=k.root_crl_this_update,
        next_update=k.root_crl_next_update,
    )
    pck_crl = _crl(
        cpki,
        crl_ca,
        number=k.pck_crl_number,
        exact=k.crl_exact_number,
        revoked=(leaf.serial_number,) if k.revoke_pck_leaf else (),
        this_update=k.pck_crl_this_update,
        next_update=k.pck_crl_next_update,
    )
    signer_chain = _pem(signing) + _pem(tpki.root)
    collateral = DcapCollateral(
        pck_crl=_encode_crl(pck_crl, k.crl_encoding),
        pck_crl_issuer_chain=_pem(cpki.cas[crl_ca]) + _pem(cpki.root),
        root_ca_crl=_encode_crl(root_crl, k.crl_encoding),
        tcb_info=_signed_json("tcbInfo", _tcb_info(k, r), tpki.tcb_key),
        tcb_info_issuer_chain=signer_chain,
        qe_identity=_signed_json("enclaveIdentity", _qe_identity(k, r), tpki.tcb_key),
        qe_identity_issuer_chain=signer_chain,
    )

    # Quote body.
    version = r["version"]
    if tdx:
        body = _td_report(k)
        body_type = 3 if k.td15 else 2
    else:
        body = _enclave_report(
            cpusvn=k.cpusvn,
            miscselect=0,
            attributes=bytes.fromhex("07000000000000000700000000000000"),
            mrenclave=hashlib.sha256(b"app enclave").digest(),
            mrsigner=hashlib.sha256(b"app signer").digest(),
            isvprodid=0,
            isvsvn=0,
            report_data=k.report_data,
        )
        body_type = 1
    header = struct.pack(
        "<HHIHH16s20s",
        version,
        2,
        0x81 if tdx else 0,
        k.qe_isvsvn,
        r["pcesvn"],
        INTEL_QE_VENDOR_ID,
        hashlib.sha256(b"qe id").digest()[:16] + bytes(4),
    )
    descriptor = struct.pack("<HI", body_type, len(body)) if version == 5 else b""
    signed = header + descriptor + body

    att_key = _key("attestation-key")
    att_pub = _raw_public(att_key)
    quote_sig = _raw_sign(att_key, signed)
    if k.bad_quote_signature:
        quote_sig = _flip(quote_sig)

    # QE report, certifying the attestation key.
    binding = hashlib.sha256(att_pub + k.qe_auth_data).digest()
    if k.bad_report_data_binding:
        binding = bytes([binding[0] ^ 1]) + binding[1:]
    qe_report = _enclave_report(
        cpusvn=k.cpusvn,
        miscselect=k.qe_miscselect,
        attributes=k.qe_attributes,
        mrenclave=hashlib.sha256(b"quoting enclave").digest(),
        mrsigner=k.qe_mrsigner or r["qe_identity_mrsigner"],
        isvprodid=k.qe_isvprodid if k.qe_isvprodid is not None else r["qe_identity_isvprodid"],
        isvsvn=k.qe_isvsvn,
        report_data=binding + bytes(32),
    )
    qe_sig = _raw_sign(pck_key, qe_report)
    if k.bad_qe_report_signature:
        qe_sig = _flip(qe_sig)
    qe_block = (
        qe_report
        + qe_sig
        + struct.pack("<H", len(k.qe_auth_data))
        + k.qe_auth_data
        + struct.pack("<HI", 5, len(pck_chain))
        + pck_chain
    )
    if version == 3:
        auth = quote_sig + att_pub + qe_block
    else:
        auth = quote_sig + att_pub + struct.pack("<HI", 6, len(qe_block)) + qe_block
    quote = signed + struct.pack("<I", len(auth)) + auth + bytes(k.trailing_bytes)
    return Minted(quote, collateral, anchors("intel"))
