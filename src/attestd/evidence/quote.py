"""Intel SGX and TDX ECDSA quotes (DCAP), versions 3, 4 and 5. Parse only: no crypto, no judgement.

Layouts follow the Intel SGX ECDSA Quote Library API (quote v3, appendix A "Quote Format"), the Intel
TDX DCAP Quoting Library API (quote v4, §A.3) and the Intel TDX DCAP Quote Generation Library and
Quote Verification Library spec for v5 (§A.3.2 "Quote Body"); the checklist is dcap.md §1.A.
All integers are little-endian.

Trailing bytes after the authentication data are accepted, as Intel's QVL does (TDX quote buffers
are padded); their count is kept in :attr:`Quote.trailing_bytes`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from attestd._binary import Reader
from attestd.errors import MalformedEvidence, UnsupportedEvidence

__all__ = [
    "CERT_TYPE_PCK_CERT_CHAIN",
    "CERT_TYPE_QE_REPORT",
    "BodyType",
    "CertificationData",
    "EnclaveReport",
    "PpidInfo",
    "QeReportCertificationData",
    "Quote",
    "QuoteHeader",
    "TdReport",
    "TeeType",
    "parse_quote",
]

HEADER_SIZE = 48
ENCLAVE_REPORT_SIZE = 384
TD_REPORT10_SIZE = 584
TD_REPORT15_SIZE = 648
ATT_KEY_TYPE_ECDSA_P256 = 2
CERT_TYPE_PPID_CLEAR = 1
CERT_TYPE_PPID_RSA2048 = 2
CERT_TYPE_PPID_RSA3072 = 3
CERT_TYPE_PCK_CERT = 4
CERT_TYPE_PCK_CERT_CHAIN = 5
CERT_TYPE_QE_REPORT = 6


class TeeType(IntEnum):
    SGX = 0x00000000
    TDX = 0x00000081


class BodyType(IntEnum):
    """Quote v5 body types (v3/v4 bodies are mapped to the same values)."""

    SGX_ENCLAVE_REPORT = 1
    TD_REPORT10 = 2
    TD_REPORT15 = 3


@dataclass(frozen=True, slots=True)
class QuoteHeader:
    """Quote header, 48 bytes (sgx_quote_header_t / tdx quote header)."""

    version: int  # 0x00 u16
    att_key_type: int  # 0x02 u16: 2 = ECDSA-256-with-P-256, 3 = ECDSA-384-with-P-384
    tee_type: int  # 0x04 u32: 0 = SGX, 0x81 = TDX (v3: reserved)
    qe_svn: int  # 0x08 u16
    pce_svn: int  # 0x0A u16
    qe_vendor_id: bytes  # 0x0C 16 bytes
    user_data: bytes  # 0x1C 20 bytes


_ENCLAVE_REPORT = struct.Struct("<16sI12x16s16s32s32x32s32x64sHHH42x16s64s")
assert _ENCLAVE_REPORT.size == ENCLAVE_REPORT_SIZE


@dataclass(frozen=True, slots=True)
class EnclaveReport:
    """SGX enclave report body, 384 bytes (sgx_report_body_t, SGX SDM Vol. 3D §38.15 REPORT)."""

    cpusvn: bytes  # 0x000 16
    miscselect: int  # 0x010 u32
    isv_ext_prod_id: bytes  # 0x030 16 (after 12 reserved)
    attributes: bytes  # 0x030 16: flags u64 || xfrm u64
    mrenclave: bytes  # 0x040 32
    mrsigner: bytes  # 0x080 32 (after 32 reserved)
    config_id: bytes  # 0x0C0 64 (after 32 reserved)
    isv_prod_id: int  # 0x100 u16
    isv_svn: int  # 0x102 u16
    config_svn: int  # 0x104 u16
    isv_family_id: bytes  # 0x130 16 (after 42 reserved)
    report_data: bytes  # 0x140 64
    raw: bytes

    @classmethod
    def parse(cls, r: Reader) -> EnclaveReport:
        raw = r.take(ENCLAVE_REPORT_SIZE, "enclave_report")
        f = _ENCLAVE_REPORT.unpack(raw)
        return cls(f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10], f[11], raw)

    @property
    def debug(self) -> bool:
        """ATTRIBUTES.DEBUG (bit 1 of the flags)."""
        return bool(self.attributes[0] & 0x02)


_TD_REPORT10 = struct.Struct("<16s48s48s8s8s8s48s48s48s48s48s48s48s48s64s")
assert _TD_REPORT10.size == TD_REPORT10_SIZE


@dataclass(frozen=True, slots=True)
class TdReport:
    """TD report body: TD 1.0 (584 bytes) or TD 1.5 (648 bytes: adds tee_tcb_svn2, mrservicetd)."""

    tee_tcb_svn: bytes  # 0x000 16
    mrseam: bytes  # 0x010 48
    mrsignerseam: bytes  # 0x040 48
    seam_attributes: bytes  # 0x070 8
    td_attributes: bytes  # 0x078 8
    xfam: bytes  # 0x080 8
    mrtd: bytes  # 0x088 48
    mrconfigid: bytes  # 0x0B8 48
    mrowner: bytes  # 0x0E8 48
    mrownerconfig: bytes  # 0x118 48
    rtmr: tuple[bytes, bytes, bytes, bytes]  # 0x148 4 x 48
    report_data: bytes  # 0x208 64
    tee_tcb_svn2: bytes | None  # 0x248 16 (TD 1.5 only)
    mrservicetd: bytes | None  # 0x258 48 (TD 1.5 only)
    raw: bytes

    @classmethod
    def parse(cls, r: Reader, *, td15: bool) -> TdReport:
        raw = r.take(TD_REPORT15_SIZE if td15 else TD_REPORT10_SIZE, "td_report")
        f = _TD_REPORT10.unpack_from(raw)
        svn2 = raw[TD_REPORT10_SIZE : TD_REPORT10_SIZE + 16] if td15 else None
        mrservicetd = raw[TD_REPORT10_SIZE + 16 :] if td15 else None
        rtmr = (f[10], f[11], f[12], f[13])
        return cls(
            f[0],
            f[1],
            f[2],
            f[3],
            f[4],
            f[5],
            f[6],
            f[7],
            f[8],
            f[9],
            rtmr,
            f[14],
            svn2,
            mrservicetd,
            raw,
        )

    @property
    def debug(self) -> bool:
        """TDATTRIBUTES.DEBUG (bit 0)."""
        return bool(self.td_attributes[0] & 0x01)


@dataclass(frozen=True, slots=True)
class PpidInfo:
    """Certification data types 1-3: PPID (clear or RSA-encrypted) || CPUSVN || PCESVN || PCEID."""

    ppid: bytes
    cpusvn: bytes
    pcesvn: int
    pceid: bytes | None


_PPID_SIZES = {CERT_TYPE_PPID_CLEAR: 16, CERT_TYPE_PPID_RSA2048: 256, CERT_TYPE_PPID_RSA3072: 384}


@dataclass(frozen=True, slots=True)
class CertificationData:
    """QE certification data (type u16, size u32, data). Types 1-5; 6 is unwrapped by the parser."""

    cert_type: int
    data: bytes
    offset: int  # absolute offset of ``data`` in the quote, for error messages

    def pem_chain(self) -> list[bytes]:
        """Type 5: the concatenated PEM certificates (leaf first), NUL terminator stripped."""
        if self.cert_type != CERT_TYPE_PCK_CERT_CHAIN:
            raise UnsupportedEvidence(
                f"certification data type {self.cert_type} carries no PCK certificate chain"
            )
        text = self.data.rstrip(b"\x00")
        begin, end = b"-----BEGIN CERTIFICATE-----", b"-----END CERTIFICATE-----"
        out: list[bytes] = []
        pos = 0
        while True:
            i = text.find(begin, pos)
            if i < 0:
                break
            j = text.find(end, i)
            if j < 0:
                raise MalformedEvidence(
                    "CertificationData", "pck_cert_chain", self.offset + i, "unterminated PEM block"
                )
            out.append(text[i : j + len(end)] + b"\n")
            pos = j + len(end)
        if text[pos:].strip():
            raise MalformedEvidence(
                "CertificationData", "pck_cert_chain", self.offset + pos, "data after the last PEM"
            )
        return out

    def ppid_info(self) -> PpidInfo:
        """Types 1-3: the PPID and the platform's raw TCB (used to fetch a PCK certificate)."""
        n = _PPID_SIZES.get(self.cert_type)
        if n is None:
            raise UnsupportedEvidence(f"certification data type {self.cert_type} carries no PPID")
        r = Reader(self.data, "CertificationData.ppid")
        ppid, cpusvn, pcesvn = r.take(n, "ppid"), r.take(16, "cpusvn"), r.u16("pcesvn")
        # PCEID ends the structure in the spec; Intel's own QVL sample data omits it.
        pceid = r.take(2, "pceid") if r.remaining else None
        r.expect_end("pceid")
        return PpidInfo(ppid, cpusvn, pcesvn, pceid)


@dataclass(frozen=True, slots=True)
class QeReportCertificationData:
    """QE report certification data (type 6 in v4/v5; inline in the v3 auth data)."""

    qe_report: EnclaveReport
    qe_report_signature: bytes  # raw r || s, 64 bytes
    qe_auth_data: bytes
    certification: CertificationData


@dataclass(frozen=True, slots=True)
class Quote:
    """A parsed, *unverified* DCAP quote."""

    header: QuoteHeader
    body_type: BodyType
    body: EnclaveReport | TdReport
    signed_data: bytes  # header || body (v5: including the 6-byte body descriptor)
    signature: bytes  # ECDSA P-256 raw r || s over signed_data
    attestation_key: bytes  # raw X || Y, P-256
    qe: QeReportCertificationData
    trailing_bytes: int
    raw: bytes

    @property
    def tee(self) -> TeeType:
        return TeeType.TDX if self.body_type != BodyType.SGX_ENCLAVE_REPORT else TeeType.SGX

    @property
    def enclave_report(self) -> EnclaveReport:
        if not isinstance(self.body, EnclaveReport):
            raise UnsupportedEvidence("a TDX quote has no SGX enclave report")
        return self.body

    @property
    def td_report(self) -> TdReport:
        if not isinstance(self.body, TdReport):
            raise UnsupportedEvidence("an SGX quote has no TD report")
        return self.body


def _parse_header(r: Reader) -> QuoteHeader:
    version = r.u16("version")
    if version not in (3, 4, 5):
        raise UnsupportedEvidence(f"quote version {version} at offset 0 (3, 4 and 5 are supported)")
    att_key_type = r.u16("att_key_type")
    if att_key_type != ATT_KEY_TYPE_ECDSA_P256:
        raise UnsupportedEvidence(
            f"quote att_key_type {att_key_type} at offset 2 (only 2, ECDSA-256-with-P-256)"
        )
    return QuoteHeader(
        version,
        att_key_type,
        r.u32("tee_type"),
        r.u16("qe_svn"),
        r.u16("pce_svn"),
        r.take(16, "qe_vendor_id"),
        r.take(20, "user_data"),
    )


def _parse_body(r: Reader, header: QuoteHeader) -> tuple[BodyType, EnclaveReport | TdReport]:
    tee = header.tee_type
    if tee not in (TeeType.SGX, TeeType.TDX):
        raise r.fail("tee_type", f"unknown TEE type 0x{tee:x}", offset=4)
    if header.version == 3:
        if tee != TeeType.SGX:
            raise UnsupportedEvidence("quote version 3 with TDX tee_type (v3 is SGX only)")
        return BodyType.SGX_ENCLAVE_REPORT, EnclaveReport.parse(r)
    if header.version == 4:
        if tee == TeeType.SGX:
            return BodyType.SGX_ENCLAVE_REPORT, EnclaveReport.parse(r)
        return BodyType.TD_REPORT10, TdReport.parse(r, td15=False)
    # Version 5: sgx_quote5 body descriptor (body_type u16, size u32) before the body.
    at = r.offset
    body_type = r.u16("body_type")
    size = r.u32("body_size")
    expected = {1: ENCLAVE_REPORT_SIZE, 2: TD_REPORT10_SIZE, 3: TD_REPORT15_SIZE}.get(body_type)
    if expected is None:
        raise r.fail("body_type", f"unknown body type {body_type}", offset=at)
    if size != expected:
        raise r.fail("body_size", f"{size} for body type {body_type} (expected {expected})")
    if (tee == TeeType.SGX) != (body_type == BodyType.SGX_ENCLAVE_REPORT):
        raise r.fail("body_type", f"body type {body_type} with tee_type 0x{tee:x}", offset=at)
    if body_type == BodyType.SGX_ENCLAVE_REPORT:
        return BodyType.SGX_ENCLAVE_REPORT, EnclaveReport.parse(r)
    kind = BodyType(body_type)
    return kind, TdReport.parse(r, td15=kind == BodyType.TD_REPORT15)


def _parse_cert_data(r: Reader) -> CertificationData:
    cert_type = r.u16("certification_data_type")
    size = r.u32("certification_data_size")
    at = r.offset
    data = r.take(size, "certification_data")
    return CertificationData(cert_type, data, at)


def _parse_qe_block(r: Reader) -> QeReportCertificationData:
    qe_report = EnclaveReport.parse(r)
    qe_sig = r.take(64, "qe_report_signature")
    qe_auth = r.take(r.u16("qe_auth_data_size"), "qe_auth_data")
    cert = _parse_cert_data(r)
    if cert.cert_type not in (1, 2, 3, 4, 5):
        raise r.fail(
            "certification_data_type",
            f"type {cert.cert_type} (1-5 expected)",
            offset=cert.offset - 6,
        )
    r.expect_end("certification_data")
    return QeReportCertificationData(qe_report, qe_sig, qe_auth, cert)


def parse_quote(data: bytes) -> Quote:
    """Parse an SGX or TDX ECDSA quote (v3, v4 or v5). Raises :class:`MalformedEvidence` or
    :class:`UnsupportedEvidence`; never anything else."""
    data = bytes(data)
    r = Reader(data, "Quote")
    header = _parse_header(r)
    body_type, body = _parse_body(r, header)
    signed_end = r.offset
    auth_size = r.u32("auth_data_size")
    auth = r.sub(auth_size, "QuoteAuthData", "auth_data")
    signature = auth.take(64, "quote_signature")
    attestation_key = auth.take(64, "attestation_key")
    if header.version == 3:
        qe = _parse_qe_block(auth)
    else:
        outer = _parse_cert_data(auth)
        if outer.cert_type != CERT_TYPE_QE_REPORT:
            raise MalformedEvidence(
                "QuoteAuthData",
                "certification_data_type",
                outer.offset - 6,
                f"type {outer.cert_type}; quote v{header.version} requires 6 (QE report)",
            )
        auth.expect_end("certification_data")
        qe = _parse_qe_block(
            Reader(
                data,
                "QeReportCertificationData",
                start=outer.offset,
                end=outer.offset + len(outer.data),
            )
        )
    return Quote(
        header=header,
        body_type=body_type,
        body=body,
        signed_data=data[:signed_end],
        signature=signature,
        attestation_key=attestation_key,
        qe=qe,
        trailing_bytes=r.remaining,
        raw=data,
    )
