"""Verify an Intel SGX or TDX ECDSA quote against Intel collateral, as Intel QVL/QvE decides.

The steps and their numbers are dcap.md §1 (Intel's spec section numbers in brackets). The result
is a :class:`DcapResult`: a quote that is genuine, its TCB status and advisory IDs, and what was
checked. Anything else raises a typed error from :mod:`attestd.errors`; nothing returns False.

Caching: a :class:`DcapVerifier` remembers what it verified, keyed by the exact bytes verified
(certificate chains, CRLs, TCB Info, QE Identity, QE report signatures). Time checks are never
cached: every validity window is checked again at each verification's time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric import ec

from attestd.collateral.intel import (
    EnclaveIdentity,
    TcbInfo,
)
from attestd.collateral.source import CaType, CollateralSource, DcapCollateral, Tee
from attestd.errors import (
    AttestdError,
    CertificateExpired,
    CertificateRevoked,
    CollateralExpired,
    CollateralRevoked,
    CollateralUntrusted,
    InvalidQeReportSignature,
    InvalidQuoteSignature,
    QeIdentityMismatch,
    QeReportDataMismatch,
    TcbInfoMismatch,
    TcbNotSupported,
    TcbRevoked,
    TdxModuleMismatch,
    UnsupportedEvidence,
)
from attestd.evidence.quote import BodyType, Quote, TdReport, parse_quote
from attestd.pki.certs import (
    TrustAnchors,
    default_trust_anchors,
    ecdsa_p256_verify_raw,
    p256_public_key,
)
from attestd.pki.der import common_name
from attestd.pki.sgx_extension import PckExtension
from attestd.verify import tcb
from attestd.verify.trust import (
    PckChain,
    TrustCache,
    VerifiedCollateral,
    Windows,
    remember,
    revoked,
)

__all__ = ["INTEL_QE_VENDOR_ID", "DcapResult", "DcapVerifier", "TcbEvaluation"]

INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
_FAR_FUTURE = datetime.max.replace(tzinfo=UTC)


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


@dataclass
class _Run:
    """Per-verification state: the time and what was found expired."""

    at: datetime
    allow_expired: bool
    expired: list[str] = field(default_factory=list)
    earliest: datetime = _FAR_FUTURE

    def windows(self, windows: Windows, error: Callable[[str, str], AttestdError]) -> None:
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
        self.trust = TrustCache(self.anchors)
        self._qe_sig: set[tuple[bytes, bytes, bytes]] = set()
        self._att_keys: dict[bytes, ec.EllipticCurvePublicKey] = {}

    def clear_caches(self) -> None:
        """Forget everything verified so far (the next verification is cold)."""
        self.trust.clear()
        self._qe_sig.clear()
        self._att_keys.clear()

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
        pck = self.trust.pck_chain(q, pck_chain)
        run.windows(pck.chain.windows, _cert_expired)

        # C/D. Collateral (steps 10, 12-16).
        coll = collateral or self.source.dcap_collateral(tee=tee, fmspc=pck.ext.fmspc, ca=pck.ca)
        vc = self.trust.collateral(coll)
        run.windows(vc.windows, _collateral_expired)

        # 10/17. CRLs: the PCK CRL must be the one of the leaf's issuer; nothing revoked.
        if vc.pck_crl_issuer != pck.issuer:
            raise CollateralUntrusted(
                f"pck_crl is issued by {common_name(vc.pck_crl_issuer)!r}, but the PCK "
                f"certificate by {common_name(pck.issuer)!r} (wrong CA type: need the "
                f"{pck.ca} CA CRL)"
            )
        if revoked(vc.root_crl, pck.ca_serial):
            raise CertificateRevoked(
                f"PCK chain: {pck.chain.certs[1].cn} (serial {pck.ca_serial:x}) is revoked by "
                "the Root CA CRL"
            )
        if revoked(vc.pck_crl, pck.leaf_serial):
            raise CertificateRevoked(
                f"PCK chain: the PCK certificate (serial {pck.leaf_serial:x}) is revoked by the "
                f"{pck.ca} CA CRL"
            )
        if revoked(vc.root_crl, vc.crl_chain_ca_serial):
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
            remember(self._qe_sig, sig_key)

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
            remember(self._att_keys, q.attestation_key, key)
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
        pck: PckChain,
        coll: DcapCollateral,
        vc: VerifiedCollateral,
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


def _and(a: bytes, b: bytes) -> bytes:
    """Byte-wise AND of two equal-length byte strings."""
    return (int.from_bytes(a, "big") & int.from_bytes(b, "big")).to_bytes(len(a), "big")
