"""The DCAP quote and Open Enclave parsers on real quotes and on hand-made malformed ones."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from attestd.errors import MalformedEvidence, UnsupportedEvidence
from attestd.evidence.openenclave import parse_openenclave_report
from attestd.evidence.quote import BodyType, TeeType, parse_quote
from conftest import DCAP, MAA_OFFLINE

REAL = {
    # path: (version, tee, body type, certification data type, trailing bytes)
    "phala-dcap-qvl/sgx_v3/quote.bin": (3, TeeType.SGX, BodyType.SGX_ENCLAVE_REPORT, 5, 0),
    "phala-dcap-qvl/tdx_v4/quote.bin": (4, TeeType.TDX, BodyType.TD_REPORT10, 5, 70),
    "phala-dcap-qvl/tdx_v4_outdated/quote.bin": (5, TeeType.TDX, BodyType.TD_REPORT15, 5, 0),
    "go-tdx-guest/tdx_v4_spr_e4/quote.bin": (4, TeeType.TDX, BodyType.TD_REPORT10, 5, 39),
    "go-tdx-guest/tdx_v5_sample_partial/quote.bin": (5, TeeType.TDX, BodyType.TD_REPORT15, 5, 0),
    "teepot/tdx_1/quote.bin": (4, TeeType.TDX, BodyType.TD_REPORT10, 5, 3065),
    "intel-qvl-sampledata/quote.dat": (3, TeeType.SGX, BodyType.SGX_ENCLAVE_REPORT, 1, 0),
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_quotes(name: str) -> None:
    version, tee, body, cert_type, trailing = REAL[name]
    q = parse_quote((DCAP / name).read_bytes())
    assert q.header.version == version
    assert q.tee == tee
    assert q.body_type == body
    assert q.qe.certification.cert_type == cert_type
    assert q.trailing_bytes == trailing
    assert q.header.qe_vendor_id.hex() == "939a7233f79c4ca9940a0db3957f0607"
    signed = 48 + {1: 384, 2: 584, 3: 648}[body] + (6 if version == 5 else 0)
    assert q.signed_data == q.raw[:signed]
    if cert_type == 5:
        chain = q.qe.certification.pem_chain()
        assert len(chain) == 3
        assert all(c.startswith(b"-----BEGIN CERTIFICATE-----") for c in chain)


def test_td15_fields() -> None:
    q = parse_quote((DCAP / "go-tdx-guest/tdx_v5_sample_partial/quote.bin").read_bytes())
    td = q.td_report
    assert td.tee_tcb_svn2 is not None and len(td.tee_tcb_svn2) == 16
    assert td.mrservicetd is not None and len(td.mrservicetd) == 48
    with pytest.raises(UnsupportedEvidence):
        _ = q.enclave_report


def test_sgx_report_fields() -> None:
    q = parse_quote((MAA_OFFLINE / "pysdk_b779_nondebug__2023-05/quote.bin").read_bytes())
    rep = q.enclave_report
    assert rep.mrenclave.hex().startswith("b7792026")
    assert rep.isv_prod_id == 1 and rep.isv_svn == 1 and rep.debug is False
    assert q.qe.qe_report.isv_svn == 5  # QE ISVSVN recorded in meta.json


def test_ppid_certification_data() -> None:
    q = parse_quote((DCAP / "intel-qvl-sampledata/quote.dat").read_bytes())
    info = q.qe.certification.ppid_info()
    assert len(info.ppid) == 16 and len(info.cpusvn) == 16
    assert info.pceid is None  # Intel's synthetic sample stops after PCESVN
    with pytest.raises(UnsupportedEvidence):
        q.qe.certification.pem_chain()


def test_open_enclave_header() -> None:
    raw = (MAA_OFFLINE / "pysdk_b779_nondebug__2023-05/openenclave_report.bin").read_bytes()
    report = parse_openenclave_report(raw)
    assert (report.version, report.report_type, report.report_size) == (1, 2, len(raw) - 16)
    bad = struct.pack("<IIQ", 1, 2, len(raw)) + raw[16:]
    with pytest.raises(MalformedEvidence) as err:
        parse_openenclave_report(bad)
    assert err.value.field == "report_size" and err.value.offset == 8
    with pytest.raises(UnsupportedEvidence):
        parse_openenclave_report(struct.pack("<IIQ", 1, 1, len(raw) - 16) + raw[16:])


def _sgx() -> bytes:
    return (DCAP / "phala-dcap-qvl/sgx_v3/quote.bin").read_bytes()


def test_truncated_header_names_field_and_offset() -> None:
    with pytest.raises(MalformedEvidence) as err:
        parse_quote(_sgx()[:30])
    assert err.value.structure == "Quote"
    assert err.value.field == "user_data"
    assert err.value.offset == 28
    assert "Quote.user_data at offset 28" in str(err.value)


def test_auth_data_size_overrun() -> None:
    q = bytearray(_sgx())
    struct.pack_into("<I", q, 432, 0xFFFFFF)
    with pytest.raises(MalformedEvidence) as err:
        parse_quote(bytes(q))
    assert err.value.field == "auth_data" and err.value.offset == 436


def test_qe_auth_size_overrun() -> None:
    q = bytearray(_sgx())
    struct.pack_into("<H", q, 436 + 128 + 384 + 64, 0xFFFF)
    with pytest.raises(MalformedEvidence) as err:
        parse_quote(bytes(q))
    assert err.value.field == "qe_auth_data"


def test_unknown_version_and_key_type() -> None:
    q = bytearray(_sgx())
    q[0] = 9
    with pytest.raises(UnsupportedEvidence):
        parse_quote(bytes(q))
    q = bytearray(_sgx())
    q[2] = 3  # ECDSA-384-with-P-384: Intel rejects it too
    with pytest.raises(UnsupportedEvidence):
        parse_quote(bytes(q))


def test_v3_with_tdx_tee_type_is_unsupported() -> None:
    q = bytearray(_sgx())
    q[4] = 0x81
    with pytest.raises(UnsupportedEvidence):
        parse_quote(bytes(q))


def test_v4_requires_outer_type_6() -> None:
    q = bytearray((DCAP / "phala-dcap-qvl/tdx_v4/quote.bin").read_bytes())
    off = 48 + 584 + 4 + 128
    assert struct.unpack_from("<H", q, off)[0] == 6
    struct.pack_into("<H", q, off, 5)
    with pytest.raises(MalformedEvidence) as err:
        parse_quote(bytes(q))
    assert err.value.field == "certification_data_type" and err.value.offset == off


def test_v5_body_size_must_match_type() -> None:
    q = bytearray((DCAP / "go-tdx-guest/tdx_v5_sample_partial/quote.bin").read_bytes())
    assert struct.unpack_from("<HI", q, 48) == (3, 648)
    struct.pack_into("<I", q, 50, 584)
    with pytest.raises(MalformedEvidence) as err:
        parse_quote(bytes(q))
    assert err.value.field == "body_size"
    struct.pack_into("<HI", q, 48, 1, 384)  # SGX body in a TDX quote
    with pytest.raises(MalformedEvidence) as err:
        parse_quote(bytes(q))
    assert err.value.field == "body_type"


def test_pem_chain_with_garbage_after_is_rejected() -> None:
    q = parse_quote(_sgx())
    cert = q.qe.certification
    broken = type(cert)(cert.cert_type, cert.data.rstrip(b"\0") + b"junk", cert.offset)
    with pytest.raises(MalformedEvidence):
        broken.pem_chain()


def test_bytearray_and_memoryview_input() -> None:
    data = _sgx()
    assert parse_quote(bytearray(data)).raw == data
    assert parse_quote(memoryview(data)).raw == data  # type: ignore[arg-type]


def test_all_vectors_parse(tmp_path: Path) -> None:
    paths = list(DCAP.glob("*/*/quote.bin")) + list(MAA_OFFLINE.glob("*/quote.bin"))
    assert len(paths) == 31
    for p in paths:
        parse_quote(p.read_bytes())
