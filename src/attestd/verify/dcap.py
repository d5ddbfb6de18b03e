"""Verify an Intel SGX or TDX ECDSA quote against Intel collateral, as Intel QVL/QvE decides.

The steps and their numbers are dcap.md §1 (Intel's spec section numbers in brackets). The result
is a :class:`DcapResult`: a quote that is genuine, its TCB status and advisory IDs, and what was
checked. Anything else raises a typed error from :mod:`attestd.errors`; nothing returns False.

Caching: a :class:`DcapVerifier` remembers what it verified, keyed by the exact bytes verified
(certificate chains, CRLs, TCB Info, QE Identity, QE report signatures). Time checks are never
cached: every validity window is checked again at each verification's time.
"""

from __future__ import annotations

import binascii
import hashlib
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from attestd.collateral.intel import (
    EnclaveIdentity,
    TcbInfo,
    TcbLevel,
    parse_enclave_identity,
    parse_tcb_info,
)
from attestd.collateral.source import CaType, CollateralSource, DcapCollateral, Tee
from attestd.errors import (
    AttestdError,
    CertificateExpired,
    CertificateRevoked,
    CollateralExpired,
    CollateralMalformed,
    CollateralRevoked,
    CollateralSignatureInvalid,
    CollateralUntrusted,
    InvalidCertificateChain,
    InvalidQeReportSignature,
    InvalidQuoteSignature,
    MalformedEvidence,
    QeIdentityMismatch,
    QeReportDataMismatch,
    TcbInfoMismatch,
    TcbNotSupported,
    TcbRevoked,
    TdxModuleMismatch,
    UnsupportedEvidence,
    UntrustedCertificateChain,
)
from attestd.evidence.quote import CERT_TYPE_PCK_CERT_CHAIN, BodyType, Quote, TdReport, parse_quote
from attestd.pki.certs import (
    X509_LOAD_ERRORS,
    TrustAnchors,
    crl_der,
    default_trust_anchors,
    ecdsa_p256_verify_raw,
    p256_public_key,
    spki_der,
    strict_x509,
)
from attestd.pki.der import CertFields, CrlFields, common_name
from attestd.pki.sgx_extension import SGX_EXTENSION_OID, PckExtension, parse_pck_extension
from attestd.verify import tcb

__all__ = ["INTEL_QE_VENDOR_ID", "DcapResult", "DcapVerifier", "TcbEvaluation"]

INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
_SGX_EXT = x509.ObjectIdentifier(SGX_EXTENSION_OID)
_CACHE_LIMIT = 4096
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_FAR_FUTURE = datetime.max.replace(tzinfo=UTC)
_FAR_PAST = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class TcbEvaluation:
    """How the status was reached: the level matched and each partial status."""

    platform_status: str  # SGX level status (for TDX: the level matching SGX and TDX)
    sgx_status: str
    qe_status: str
    module_status: str | None  # TDX only
    tcb_date: str
    qe_tcb_date: str
    tcb_evaluation_data_number: int
    qe_tcb_evaluation_data_number: int


@dataclass(frozen=True, slots=True)
class DcapResult:
    """A verified quote. ``tcb_status`` is Intel's final status; policy decides what it allows."""

    quote: Quote
    tee: Tee
    tcb_status: str
    advisory_ids: tuple[str, ...]
    evaluation: TcbEvaluation
    pck: PckExtension
    pck_ca: CaType
    verification_time: datetime
    collateral_expired: bool
    expired_items: tuple[str, ...]
    earliest_expiration: datetime
    collateral: DcapCollateral


class _Cert:
    """A certificate with what verification reads from it, extracted once from its DER: raw
    names (compared byte for byte, as QVL does), common name, serial, notAfter, TBS bytes and
    signature, and the P-256 key (built on first use)."""

    __slots__ = ("_key", "cert", "cn", "f")

    def __init__(self, der: bytes) -> None:
        self.cert = x509.load_der_x509_certificate(der)  # full validation by cryptography
        self.f = CertFields(der)
        # RFC 5280 §4.1.2.2: positive. cryptography only warns (when warnings are errors, the
        # warning itself is caught as a load error by the caller).
        if self.f.serial <= 0:
            raise ValueError(f"serial number {self.f.serial} is not positive")
        self.cn = common_name(self.f.subject)
        self._key: ec.EllipticCurvePublicKey | bool | None = False

    @property
    def issuer(self) -> bytes:
        return self.f.issuer

    @property
    def subject(self) -> bytes:
        return self.f.subject

    @property
    def serial(self) -> int:
        return self.f.serial

    @property
    def key(self) -> ec.EllipticCurvePublicKey | None:
        """The P-256 public key, or None if the certificate has another or an invalid key."""
        if self._key is False:
            point = self.f.p256_point
            try:
                self._key = (
                    None
                    if point is None
                    else ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
                )
            except ValueError:
                self._key = None
        assert not isinstance(self._key, bool)
        return self._key

    def use_key(self, key: ec.EllipticCurvePublicKey) -> None:
        """Use an already built key object for this certificate's key (same SPKI)."""
        if self._key is False:
            self._key = key

    def window(self, prefix: str) -> tuple[str, datetime | None, datetime]:
        """Step 11: QVL checks only notAfter of certificates."""
        return (f"{prefix}:{self.cn}", None, self.f.not_after)


_Window = tuple[str, datetime | None, datetime]


@dataclass(frozen=True, slots=True)
class _Windows:
    """Validity windows of cached material, with their intersection precomputed."""

    items: tuple[_Window, ...]
    max_start: datetime
    min_end: datetime

    @classmethod
    def of(cls, items: Sequence[_Window]) -> _Windows:
        starts = [s for _, s, _ in items if s is not None]
        return cls(tuple(items), max(starts, default=_FAR_PAST), min(e for _, _, e in items))


@dataclass(slots=True)
class _Chain:
    certs: tuple[_Cert, ...]
    windows: _Windows


@dataclass(slots=True)
class _Pck:
    chain: _Chain
    ext: PckExtension
    key: ec.EllipticCurvePublicKey
    ca: CaType
    issuer: bytes
    leaf_serial: int
    ca_serial: int
    leaf_der: bytes


@dataclass(slots=True)
class _Collateral:
    root_crl: x509.CertificateRevocationList
    pck_crl_issuer: bytes
    pck_crl: x509.CertificateRevocationList
    tcb_info: TcbInfo
    levels: tuple[TcbLevel, ...]
    qe_identity: EnclaveIdentity
    crl_chain_ca_serial: int
    windows: _Windows


@dataclass
class _Run:
    """Per-verification state: the time and what was found expired."""

    at: datetime
    allow_expired: bool
    expired: list[str] = field(default_factory=list)
    earliest: datetime = _FAR_FUTURE

    def windows(self, windows: _Windows, error: Callable[[str, str], AttestdError]) -> None:
        """Check every window at the verification time (one comparison when all are valid)."""
        self.earliest = min(self.earliest, windows.min_end)
        if windows.max_start <= self.at <= windows.min_end:
            return
        for item, start, end in windows.items:
            self.window(item, start, end, error)

    def window(
        self,
        item: str,
        start: datetime | None,
        end: datetime,
        error: Callable[[str, str], AttestdError],
    ) -> None:
        """``start`` None: only the end is checked (certificates, TCB Info, QE Identity)."""
        if (start is None or start <= self.at) and self.at <= end:
            return
        if self.allow_expired:
            self.expired.append(item)
            return
        early = start is not None and self.at < start
        when = "not valid before" if early else "expired at"
        stamp = start if start is not None and early else end
        raise error(
            item, f"{item}: {when} {stamp.isoformat()} (verification time {self.at.isoformat()})"
        )


def _cert_expired(item: str, message: str) -> AttestdError:
    return CertificateExpired(message)


def _collateral_expired(item: str, message: str) -> AttestdError:
    return CollateralExpired(item, message)


def _revoked(crl: x509.CertificateRevocationList, serial: int) -> bool:
    """Step 10: matching is by serial number only."""
    return crl.get_revoked_certificate_by_serial_number(serial) is not None


class DcapVerifier:
    """Verifies SGX and TDX quotes (dcap.md §1).

    :param collateral: where TCB Info, QE Identity, CRLs and their chains come from.
    :param trust_anchors: root certificates, pinned by public key. Default: the Intel SGX Root CA
        shipped in the package.
    :param allow_expired_collateral: default False. When True, collateral or certificates outside
        their validity window at the verification time do not fail verification; the result is
        marked ``collateral_expired`` and lists them (QvE's ``collateral_expiration_status``).
        Meant for audits of past evidence with archived collateral.
    """

    def __init__(
        self,
        *,
        collateral: CollateralSource,
        trust_anchors: TrustAnchors | None = None,
        allow_expired_collateral: bool = False,
    ) -> None:
        self.source = collateral
        self.anchors = trust_anchors or default_trust_anchors()
        self.allow_expired_collateral = allow_expired_collateral
        self._anchor_keys = self.anchors.public_keys
        self._anchor_certs = self.anchors.anchor_keys
        self._signed: set[tuple[bytes, bytes]] = set()
        self._pem: dict[bytes, tuple[_Cert, ...]] = {}
        self._certs: dict[bytes, _Cert] = {}
        self._pck: dict[bytes, _Pck] = {}
        self._collateral: dict[DcapCollateral, _Collateral] = {}
        self._qe_sig: set[tuple[bytes, bytes, bytes]] = set()
        self._att_keys: dict[bytes, ec.EllipticCurvePublicKey] = {}

    def clear_caches(self) -> None:
        for c in (
            self._signed,
            self._pem,
            self._certs,
            self._pck,
            self._collateral,
            self._qe_sig,
            self._att_keys,
        ):
            c.clear()

    # -- public API ---------------------------------------------------------------------------

    def verify(
        self,
        quote: Quote | bytes,
        *,
        at: datetime | None = None,
        pck_chain: bytes | None = None,
        collateral: DcapCollateral | None = None,
    ) -> DcapResult:
        """Verify ``quote`` at time ``at`` (default: now, UTC).

        :param pck_chain: the PCK certificate chain as PEM (leaf, CA, root), used instead of the
            quote's own: needed for certification data types 1-4, which carry no chain (Intel's
            library API takes it from the caller the same way).
        :param collateral: use this collateral instead of asking the source.
        """
        q = quote if isinstance(quote, Quote) else parse_quote(quote)
        run = _Run(
            at=(at or datetime.now(UTC)).astimezone(UTC),
            allow_expired=self.allow_expired_collateral,
        )
        tee: Tee = "tdx" if q.tee.name == "TDX" else "sgx"
        # [A.2] The QE vendor must be Intel.
        if q.header.qe_vendor_id != INTEL_QE_VENDOR_ID:
            raise UnsupportedEvidence(
                f"quote header qe_vendor_id {q.header.qe_vendor_id.hex()} at offset 12 is not "
                f"Intel's ({INTEL_QE_VENDOR_ID.hex()})"
            )

        # B. PCK certificate chain (steps 7-9, 11).
        pck = self._pck_chain(q, pck_chain)
        run.windows(pck.chain.windows, _cert_expired)

        # C/D. Collateral (steps 10, 12-16).
        coll = collateral or self.source.dcap_collateral(tee=tee, fmspc=pck.ext.fmspc, ca=pck.ca)
        vc = self._verified_collateral(coll)
        run.windows(vc.windows, _collateral_expired)

        # 10/17. CRLs: the PCK CRL must be the one of the leaf's issuer; nothing revoked.
        if vc.pck_crl_issuer != pck.issuer:
            raise CollateralUntrusted(
                f"pck_crl is issued by {common_name(vc.pck_crl_issuer)!r}, but the PCK "
                f"certificate by {common_name(pck.issuer)!r} (wrong CA type: need the "
                f"{pck.ca} CA CRL)"
            )
        if _revoked(vc.root_crl, pck.ca_serial):
            raise CertificateRevoked(
                f"PCK chain: {pck.chain.certs[1].cn} (serial {pck.ca_serial:x}) is revoked by "
                "the Root CA CRL"
            )
        if _revoked(vc.pck_crl, pck.leaf_serial):
            raise CertificateRevoked(
                f"PCK chain: the PCK certificate (serial {pck.leaf_serial:x}) is revoked by the "
                f"{pck.ca} CA CRL"
            )
        if _revoked(vc.root_crl, vc.crl_chain_ca_serial):
            raise CollateralRevoked(
                "pck_crl_issuer_chain: the PCK CA that signed the PCK CRL is revoked by the Root "
                "CA CRL"
            )

        # 18. TCB Info must fit the TEE and the platform.
        info = vc.tcb_info
        if info.id is None and tee == "tdx":
            raise TcbInfoMismatch("tcb_info: version 2 TCB Info cannot judge a TDX quote")
        if info.id is not None and info.id.lower() != tee:
            raise TcbInfoMismatch(
                f"tcb_info: id {info.id!r} does not match the {tee.upper()} quote"
            )
        if info.fmspc != pck.ext.fmspc:
            raise TcbInfoMismatch(
                f"tcb_info: fmspc {info.fmspc.hex()} differs from the PCK certificate's "
                f"{pck.ext.fmspc.hex()}"
            )
        if info.pce_id != pck.ext.pce_id:
            raise TcbInfoMismatch(
                f"tcb_info: pceId {info.pce_id.hex()} differs from the PCK certificate's "
                f"{pck.ext.pce_id.hex()}"
            )

        # 20. TDX module identity (mrsignerseam, seam attributes).
        td = q.body if isinstance(q.body, TdReport) else None
        if td is not None:
            self._check_tdx_module(q, td, info)

        # 21. The QE report signature, by the PCK key.
        qe = q.qe
        sig_key = (pck.leaf_der, qe.qe_report.raw, qe.qe_report_signature)
        if sig_key not in self._qe_sig:
            if not ecdsa_p256_verify_raw(pck.key, qe.qe_report_signature, qe.qe_report.raw):
                raise InvalidQeReportSignature(
                    "QE report signature (quote auth data) does not verify with the PCK "
                    "certificate's key"
                )
            self._remember(self._qe_sig, sig_key)

        # 22. QE_report.report_data[0:32] == SHA256(attestation_key || qe_auth_data).
        binding = hashlib.sha256(q.attestation_key + qe.qe_auth_data).digest()
        if qe.qe_report.report_data[:32] != binding:
            raise QeReportDataMismatch(
                "QE report report_data[0:32] is not SHA-256(attestation_key || qe_auth_data): "
                "the attestation key is not the one the QE certified"
            )

        # 23. QE identity.
        qe_status, qe_level_date = self._check_qe_identity(q, vc.qe_identity, tee)

        # 24. The quote signature over header || body, by the attestation key.
        key = self._att_keys.get(q.attestation_key)
        if key is None:
            try:
                key = p256_public_key(q.attestation_key)
            except ValueError as exc:
                raise UnsupportedEvidence(
                    "quote attestation_key (auth data offset 64) is not a P-256 point"
                ) from exc
            self._remember(self._att_keys, q.attestation_key, key)
        if not ecdsa_p256_verify_raw(key, q.signature, q.signed_data):
            raise InvalidQuoteSignature(
                "quote signature does not verify with the attestation key over header || body"
            )

        # 25-28. TCB level, TDX module status, TD relaunch, QE merge.
        return self._tcb(q, td, pck, coll, vc, run, tee, qe_status, qe_level_date)

    # -- steps --------------------------------------------------------------------------------

    def _tcb(
        self,
        q: Quote,
        td: TdReport | None,
        pck: _Pck,
        coll: DcapCollateral,
        vc: _Collateral,
        run: _Run,
        tee: Tee,
        qe_status: str,
        qe_date: str,
    ) -> DcapResult:
        info = vc.tcb_info
        tee_svn = td.tee_tcb_svn if td is not None else None
        m = tcb.match_tcb_levels(vc.levels, pck.ext.tcb_components, pck.ext.pcesvn, tee_svn)
        if m.sgx_level is None:
            raise TcbNotSupported(
                "no TCB level of the TCB Info is met by the PCK certificate's TCB "
                f"(SGX components {list(pck.ext.tcb_components)}, PCESVN {pck.ext.pcesvn})"
            )
        sgx_status = m.sgx_level.status
        level = m.sgx_level
        module_status: str | None = None
        if td is None:
            status = sgx_status
        else:
            if m.tdx_level is None:
                raise TcbNotSupported(
                    "no TCB level is met by both the PCK certificate's TCB and the TD's "
                    f"tee_tcb_svn {td.tee_tcb_svn.hex()}"
                )
            level = m.tdx_level
            module_status = self._module_status(q, td, info)
            status = tcb.converge_with_module(level.status, module_status)
            if status != tcb.REVOKED and q.body_type == BodyType.TD_REPORT15:
                assert td.tee_tcb_svn2 is not None
                status = tcb.relaunch_check(
                    info,
                    vc.levels,
                    td.tee_tcb_svn2,
                    sgx_status=sgx_status,
                    tdx_status=status,
                    module_status=module_status,
                    qe_status=qe_status,
                )
                if status == tcb.TDX_MODULE_MISMATCH:
                    raise TdxModuleMismatch(
                        f"tee_tcb_svn2 module version {td.tee_tcb_svn2[1]} has no TDX module "
                        "identity in the TCB Info"
                    )
        status = tcb.converge_with_qe(status, qe_status)
        if status == tcb.NOT_SUPPORTED:
            raise TcbNotSupported("the TCB is not supported by the collateral (QE or module level)")
        if status == tcb.REVOKED:
            raise TcbRevoked(
                f"TCB level is Revoked (platform {level.status}, QE {qe_status}"
                + (f", TDX module {module_status}" if module_status else "")
                + f"; advisories {', '.join(level.advisory_ids) or 'none'})"
            )
        return DcapResult(
            quote=q,
            tee=tee,
            tcb_status=status,
            advisory_ids=level.advisory_ids,
            evaluation=TcbEvaluation(
                platform_status=level.status,
                sgx_status=sgx_status,
                qe_status=qe_status,
                module_status=module_status,
                tcb_date=level.tcb_date,
                qe_tcb_date=qe_date,
                tcb_evaluation_data_number=info.tcb_evaluation_data_number,
                qe_tcb_evaluation_data_number=vc.qe_identity.tcb_evaluation_data_number,
            ),
            pck=pck.ext,
            pck_ca=pck.ca,
            verification_time=run.at,
            collateral_expired=bool(run.expired),
            expired_items=tuple(run.expired),
            earliest_expiration=run.earliest,
            collateral=coll,
        )

    def _check_tdx_module(self, q: Quote, td: TdReport, info: TcbInfo) -> None:
        """Step 20 (QVL QuoteVerifier, TDX): MRSIGNERSEAM and SEAMATTRIBUTES against the module
        identity of the TCB Info (``TDX_%02X`` of tee_tcb_svn[1] when it is > 0)."""
        module = info.tdx_module
        if module is None:
            raise TcbInfoMismatch("tcb_info: a TDX TCB Info must carry tdxModule")
        if q.header.version > 3 and td.tee_tcb_svn[1] > 0:
            ident = tcb.module_identity(info, td.tee_tcb_svn[1])
            if ident is None:
                raise TdxModuleMismatch(
                    f"TD report tee_tcb_svn[1] = {td.tee_tcb_svn[1]}: the TCB Info has no TDX "
                    f"module identity TDX_{td.tee_tcb_svn[1]:02X}"
                )
            module = ident.module
        if td.mrsignerseam != module.mrsigner:
            raise TdxModuleMismatch(
                f"TD report mrsignerseam {td.mrsignerseam.hex()} differs from the TDX module's "
                f"{module.mrsigner.hex()}"
            )
        # QVL compares the attributes without the mask, and requires all-zero SEAMATTRIBUTES.
        if td.seam_attributes != module.attributes or any(td.seam_attributes):
            raise TdxModuleMismatch(
                f"TD report seam_attributes {td.seam_attributes.hex()} (expected "
                f"{module.attributes.hex()}, all zero)"
            )

    def _module_status(self, q: Quote, td: TdReport, info: TcbInfo) -> str:
        """QVL ``checkTdxModuleTcbStatus`` [4.1.2.4.17.4.1]."""
        major, minor = td.tee_tcb_svn[1], td.tee_tcb_svn[0]
        if q.header.version > 3 and major == 0:
            return tcb.UP_TO_DATE
        ident = tcb.module_identity(info, major)
        if ident is None:
            raise TdxModuleMismatch(f"no TDX module identity TDX_{major:02X} in the TCB Info")
        lv = tcb.match_enclave_level(ident.tcb_levels, minor)
        if lv is None:
            raise TcbNotSupported(
                f"TDX module {ident.id} SVN {minor} is below every TCB level of its identity"
            )
        return lv.status

    def _check_qe_identity(self, q: Quote, ident: EnclaveIdentity, tee: Tee) -> tuple[str, str]:
        """Step 23 (QVL ``EnclaveReportVerifier``): returns the QE TCB status and date."""
        want = "TD_QE" if tee == "tdx" else "QE"
        if ident.id != want:
            raise QeIdentityMismatch(
                f"qe_identity: id {ident.id!r}, but a {tee.upper()} quote needs {want!r}"
            )
        rep = q.qe.qe_report
        # Byte-wise AND, as QVL compares the bytes as they appear in the report (little-endian).
        misc = rep.miscselect.to_bytes(4, "little")
        if _and(misc, ident.miscselect_mask) != ident.miscselect:
            raise QeIdentityMismatch(
                f"QE report miscselect {rep.miscselect:08x} & mask "
                f"{ident.miscselect_mask.hex()} != {ident.miscselect.hex()}"
            )
        if _and(rep.attributes, ident.attributes_mask) != ident.attributes:
            raise QeIdentityMismatch(
                f"QE report attributes {rep.attributes.hex()} & mask "
                f"{ident.attributes_mask.hex()} != {ident.attributes.hex()}"
            )
        if rep.mrsigner != ident.mrsigner:
            raise QeIdentityMismatch(
                f"QE report mrsigner {rep.mrsigner.hex()} is not the QE identity's "
                f"{ident.mrsigner.hex()}"
            )
        if rep.isv_prod_id != ident.isvprodid:
            raise QeIdentityMismatch(
                f"QE report isvprodid {rep.isv_prod_id} is not the QE identity's {ident.isvprodid}"
            )
        lv = tcb.match_enclave_level(ident.tcb_levels, rep.isv_svn)
        if lv is None:
            return tcb.NOT_SUPPORTED, ""
        return lv.status, lv.tcb_date

    # -- cached, time-independent verification of chains and collateral -----------------------

    def _remember(self, cache: Any, key: Any, value: Any = None) -> None:
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        if isinstance(cache, set):
            cache.add(key)
        else:
            cache[key] = value

    def _load_pem(self, data: bytes, what: str, error: type[AttestdError]) -> tuple[_Cert, ...]:
        got = self._pem.get(data)
        if got is None:
            certs = []
            try:
                for block in _pem_blocks(data):
                    cert = self._certs.get(block)
                    if cert is None:
                        cert = _Cert(_pem_body(block))
                        self._remember(self._certs, block, cert)
                    certs.append(cert)
            except X509_LOAD_ERRORS as exc:
                raise error(f"{what}: malformed certificate ({exc})") from exc
            if not certs:
                raise error(f"{what}: no PEM certificate")
            got = _leaf_first(certs)
            self._remember(self._pem, data, got)
        return got

    def _signed_by(self, child: _Cert, issuer: _Cert) -> bool:
        """Issuer name matches (raw DER) and the signature verifies with the issuer's key."""
        if child.issuer != issuer.subject:
            return False
        c = child.f
        issuer_key = issuer.key
        if issuer_key is None or not c.ecdsa_sha256:
            return False
        key = (c.tbs + c.signature, issuer.f.tbs)
        if key in self._signed:
            return True
        try:
            issuer_key.verify(c.signature, c.tbs, _ECDSA_SHA256)
        except InvalidSignature:
            return False
        self._remember(self._signed, key)
        return True

    def _anchored_root(self, root: _Cert, what: str, untrusted: type[AttestdError]) -> None:
        """Steps 8-9: the root is self-signed and has the public key of a trust anchor."""
        anchor_key = self._anchor_certs.get(root.f.tbs + root.f.signature)
        if anchor_key is not None:
            root.use_key(anchor_key)  # the anchor itself: its key object is already built
            return
        if not self._signed_by(root, root):
            raise untrusted(f"{what}: root {root.cn!r} is not a valid self-signed certificate")
        if root.key is None or spki_der(root.key) not in self._anchor_keys:
            raise untrusted(
                f"{what}: root {root.cert.subject.rfc4514_string()} is not a trust anchor "
                f"(trusted: {self.anchors.describe()})"
            )

    def _pck_chain(self, q: Quote, override: bytes | None) -> _Pck:
        cert = q.qe.certification
        embedded = override is None and cert.cert_type == CERT_TYPE_PCK_CERT_CHAIN
        if override is not None:
            data = override
        elif embedded:
            data = cert.data
        else:
            raise UnsupportedEvidence(
                f"certification data type {cert.cert_type} carries no PCK certificate chain; "
                "supply it (pck_chain)"
            )
        hit = self._pck.get(data)
        if hit is not None:
            return hit
        if embedded and not data.rstrip(b"\x00\r\n\t ").endswith(_PEM_END):
            cert.pem_chain()  # raises, naming the offset of what follows the last PEM block
        try:
            certs = self._load_pem(data, "PCK certificate chain", InvalidCertificateChain)
        except InvalidCertificateChain as exc:
            raise MalformedEvidence(
                "CertificationData", "pck_cert_chain", cert.offset, exc.message
            ) from exc
        # Step 7: exactly leaf, intermediate CA, root, with Intel's CN shapes.
        if len(certs) != 3:
            raise InvalidCertificateChain(f"PCK chain has {len(certs)} certificates, expected 3")
        leaf, ca, root = certs
        if "SGX Root CA" not in root.cn:
            raise InvalidCertificateChain(f"PCK chain root CN {root.cn!r} lacks 'SGX Root CA'")
        if "CA" not in ca.cn:
            raise InvalidCertificateChain(f"PCK chain intermediate CN {ca.cn!r} lacks 'CA'")
        if "SGX PCK Certificate" not in leaf.cn:
            raise InvalidCertificateChain(f"PCK leaf CN {leaf.cn!r} lacks 'SGX PCK Certificate'")
        # Steps 8-9.
        self._anchored_root(root, "PCK chain", UntrustedCertificateChain)
        if not self._signed_by(ca, root):
            raise InvalidCertificateChain(f"PCK chain: {ca.cn!r} is not signed by the root")
        if not self._signed_by(leaf, ca):
            raise InvalidCertificateChain(
                f"PCK chain: the PCK certificate is not signed by {ca.cn!r}"
            )
        try:
            ext_value = leaf.cert.extensions.get_extension_for_oid(_SGX_EXT).value
        except x509.ExtensionNotFound as exc:
            raise InvalidCertificateChain("PCK certificate lacks the SGX extension") from exc
        except ValueError as exc:
            raise InvalidCertificateChain(f"PCK certificate extensions: {exc}") from exc
        if not isinstance(ext_value, x509.UnrecognizedExtension):
            raise InvalidCertificateChain("PCK certificate SGX extension is not opaque DER")
        ext = parse_pck_extension(ext_value.value)
        key = leaf.key
        if key is None:
            raise InvalidCertificateChain("PCK certificate key is not a valid P-256 key")
        ca_type: CaType = "platform" if "Platform" in ca.cn else "processor"
        if (ext.platform_instance_id is not None) != (ca_type == "platform"):
            raise InvalidCertificateChain(
                f"PCK certificate from {ca.cn!r} has {7 if ext.platform_instance_id else 5} SGX "
                "extension entries"
            )
        pck = _Pck(
            chain=_Chain(certs, _Windows.of([c.window("pck_chain") for c in (root, ca, leaf)])),
            ext=ext,
            key=key,
            ca=ca_type,
            issuer=leaf.issuer,
            leaf_serial=leaf.serial,
            ca_serial=ca.serial,
            leaf_der=leaf.f.tbs,
        )
        self._remember(self._pck, data, pck)
        return pck

    def _crl(
        self, data: bytes, issuer: _Cert, item: str
    ) -> tuple[x509.CertificateRevocationList, bytes, datetime, datetime]:
        """Step 10: a CRL issued and signed by ``issuer``, with CRL number and AKI extensions."""
        try:
            with strict_x509():
                der = crl_der(data)
                crl = x509.load_der_x509_crl(der)
                f = CrlFields(der)
        except X509_LOAD_ERRORS as exc:
            raise CollateralMalformed(f"{item}: not a CRL in PEM, DER or hex-DER ({exc})") from exc
        if f.issuer != issuer.subject:
            raise CollateralUntrusted(
                f"{item}: issuer {common_name(f.issuer)!r} is not {issuer.cn!r}"
            )
        if not f.has_crl_number:
            raise CollateralMalformed(f"{item}: lacks the CRL number extension")
        if not f.has_aki:
            raise CollateralMalformed(f"{item}: lacks the authority key identifier extension")
        key = issuer.key
        if key is None or not f.ecdsa_sha256:
            raise CollateralSignatureInvalid(f"{item}: not signed with ECDSA P-256 SHA-256")
        try:
            key.verify(f.signature, f.tbs, _ECDSA_SHA256)
        except InvalidSignature as exc:
            raise CollateralSignatureInvalid(
                f"{item}: signature does not verify with {issuer.cn!r}"
            ) from exc
        if f.next_update is None:
            raise CollateralMalformed(f"{item}: no nextUpdate")
        return crl, f.issuer, f.this_update, f.next_update

    def _signing_chain(
        self, data: bytes, item: str, root_crl: x509.CertificateRevocationList
    ) -> tuple[_Cert, list[tuple[str, datetime | None, datetime]]]:
        """Step 13: exactly 'Intel SGX TCB Signing' and the root; not revoked by the Root CRL."""
        certs = self._load_pem(data, item, CollateralMalformed)
        if len(certs) != 2:
            raise CollateralMalformed(f"{item}: {len(certs)} certificates, expected 2")
        signing, root = certs
        if "SGX TCB Signing" not in signing.cn:
            raise CollateralMalformed(f"{item}: CN {signing.cn!r} lacks 'SGX TCB Signing'")
        self._anchored_root(root, item, CollateralUntrusted)
        if not self._signed_by(signing, root):
            raise CollateralSignatureInvalid(f"{item}: {signing.cn!r} is not signed by the root")
        if _revoked(root_crl, signing.serial):
            raise CollateralRevoked(f"{item}: {signing.cn!r} is revoked by the Root CA CRL")
        return signing, [signing.window(item), root.window(item)]

    def _verified_collateral(self, coll: DcapCollateral) -> _Collateral:
        hit = self._collateral.get(coll)
        if hit is not None:
            return hit
        windows: list[tuple[str, datetime | None, datetime]] = []
        # Step 10: PCK CRL issuer chain (intermediate CA, root) and the two CRLs.
        chain = self._load_pem(
            coll.pck_crl_issuer_chain, "pck_crl_issuer_chain", CollateralMalformed
        )
        if len(chain) != 2:
            raise CollateralMalformed(
                f"pck_crl_issuer_chain: {len(chain)} certificates, expected 2"
            )
        ca, root = chain
        self._anchored_root(root, "pck_crl_issuer_chain", CollateralUntrusted)
        if not self._signed_by(ca, root):
            raise CollateralSignatureInvalid(
                f"pck_crl_issuer_chain: {ca.cn!r} is not signed by the root"
            )
        windows += [ca.window("pck_crl_issuer_chain"), root.window("pck_crl_issuer_chain")]
        root_crl, _, start, end = self._crl(coll.root_ca_crl, root, "root_ca_crl")
        windows.append(("root_ca_crl", start, end))
        pck_crl, pck_crl_issuer, start, end = self._crl(coll.pck_crl, ca, "pck_crl")
        windows.append(("pck_crl", start, end))
        # Steps 12-15: TCB Info, signed over its exact bytes by the TCB Signing key.
        info = parse_tcb_info(coll.tcb_info)
        signing, w = self._signing_chain(
            coll.tcb_info_issuer_chain, "tcb_info_issuer_chain", root_crl
        )
        windows += w
        if not _verify_json(signing, info.signature, info.signed_bytes):
            raise CollateralSignatureInvalid(
                "tcb_info: signature does not verify over the tcbInfo bytes as received"
            )
        windows.append(("tcb_info", None, info.next_update))  # step 15: nextUpdate only
        # Step 16: QE Identity, likewise.
        ident = parse_enclave_identity(coll.qe_identity)
        signing, w = self._signing_chain(
            coll.qe_identity_issuer_chain, "qe_identity_issuer_chain", root_crl
        )
        windows += w
        if not _verify_json(signing, ident.signature, ident.signed_bytes):
            raise CollateralSignatureInvalid(
                "qe_identity: signature does not verify over the enclaveIdentity bytes as received"
            )
        windows.append(("qe_identity", None, ident.next_update))
        vc = _Collateral(
            root_crl=root_crl,
            pck_crl_issuer=pck_crl_issuer,
            pck_crl=pck_crl,
            tcb_info=info,
            levels=tcb.sorted_levels(info),
            qe_identity=ident,
            crl_chain_ca_serial=ca.serial,
            windows=_Windows.of(windows),
        )
        self._remember(self._collateral, coll, vc)
        return vc


def _verify_json(signer: _Cert, signature: bytes, data: bytes) -> bool:
    return signer.key is not None and ecdsa_p256_verify_raw(signer.key, signature, data)


def _p256_key(cert: x509.Certificate) -> ec.EllipticCurvePublicKey | None:
    """The certificate's P-256 public key, or None if it has another or an invalid one."""
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return None
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1":
        return key
    return None


def _leaf_first(certs: Sequence[_Cert]) -> tuple[_Cert, ...]:
    """Order a chain leaf first (Intel sends it so; some tools write the root first). A chain
    that is not a single path is returned as given and fails the checks that follow."""
    if all(a.issuer == b.subject for a, b in itertools.pairwise(certs)):
        return tuple(certs)  # already leaf first: the common case
    roots = [c for c in certs if c.issuer == c.subject]
    if len(roots) != 1:
        return tuple(certs)
    ordered = [roots[0]]
    rest = [c for c in certs if c is not roots[0]]
    while rest:
        nxt = [c for c in rest if c.issuer == ordered[-1].subject]
        if len(nxt) != 1:
            return tuple(certs)
        ordered.append(nxt[0])
        rest.remove(nxt[0])
    return tuple(reversed(ordered))


_PEM_BEGIN, _PEM_END = b"-----BEGIN CERTIFICATE-----", b"-----END CERTIFICATE-----"


def _pem_blocks(data: bytes) -> list[bytes]:
    """The PEM certificate blocks of ``data``, each as its exact text."""
    out, pos = [], 0
    while (i := data.find(_PEM_BEGIN, pos)) >= 0:
        j = data.find(_PEM_END, i)
        if j < 0:
            break
        pos = j + len(_PEM_END)
        out.append(data[i:pos])
    return out


def _pem_body(block: bytes) -> bytes:
    """The DER inside one PEM certificate block (RFC 7468: base64, whitespace allowed)."""
    body = block[len(_PEM_BEGIN) : -len(_PEM_END)]
    return binascii.a2b_base64(body.translate(None, b" \t\r\n"), strict_mode=True)


def _and(a: bytes, b: bytes) -> bytes:
    """Byte-wise AND of two equal-length byte strings."""
    return (int.from_bytes(a, "big") & int.from_bytes(b, "big")).to_bytes(len(a), "big")
