"""The Intel SGX PCK certificate extension (OID 1.2.840.113741.1.13.1). Parse only.

Intel SGX PCK Certificate and CRL Profile Specification, §1.3.5 "Intel SGX PCK Certificate"
(table "SGX Extensions"): a SEQUENCE of (OID, value) pairs:

- ``.1`` PPID, OCTET STRING (16)
- ``.2`` TCB, SEQUENCE of (OID, INTEGER) for ``.2.1``-``.2.16`` (SGX TCB component SVNs),
  ``.2.17`` PCESVN (INTEGER) and ``.2.18`` CPUSVN (OCTET STRING 16)
- ``.3`` PCE-ID, OCTET STRING (2)
- ``.4`` FMSPC, OCTET STRING (6)
- ``.5`` SGX Type, ENUMERATED (0 Standard, 1 Scalable, 2 Scalable with Integrity)
- Platform CA certificates only: ``.6`` PlatformInstanceID, OCTET STRING (16), and ``.7``
  Configuration, SEQUENCE of ``.7.1`` dynamicPlatform, ``.7.2`` cachedKeys, ``.7.3`` SMTEnabled
  (BOOLEAN, each optional)

A Processor CA certificate has 5 entries, a Platform CA certificate 7 (dcap.md §1.E step 19).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from attestd.errors import MalformedEvidence

__all__ = ["SGX_EXTENSION_OID", "SGX_EXTENSION_OID_DER", "PckExtension", "parse_pck_extension"]

SGX_EXTENSION_OID = "1.2.840.113741.1.13.1"
_STRUCT = "PckSgxExtension"
SGX_EXTENSION_OID_DER = bytes.fromhex("2a864886f84d010d01")  # its DER body; entries extend it

_SEQUENCE, _INTEGER, _OCTET_STRING, _OID, _ENUMERATED, _BOOLEAN = 0x30, 0x02, 0x04, 0x06, 0x0A, 0x01
_COMPONENTS = tuple(
    (SGX_EXTENSION_OID_DER + bytes([2, i]), f"tcb.sgxtcbcomp{i:02d}svn") for i in range(1, 17)
)


@dataclass(frozen=True, slots=True)
class PckExtension:
    ppid: bytes
    tcb_components: tuple[int, ...]  # 16 SGX TCB component SVNs
    pcesvn: int
    cpusvn: bytes
    pce_id: bytes
    fmspc: bytes
    sgx_type: int
    platform_instance_id: bytes | None = None
    dynamic_platform: bool | None = None
    cached_keys: bool | None = None
    smt_enabled: bool | None = None


def _tlv(data: bytes, pos: int, end: int, field: str) -> tuple[int, int, int]:
    """Read one DER TLV in ``data[pos:end]``; return (tag, value_start, value_end)."""
    if pos + 2 > end:
        raise MalformedEvidence(_STRUCT, field, pos, "truncated DER header")
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if n == 0 or n > 4 or pos + n > end:
            raise MalformedEvidence(_STRUCT, field, pos - 1, "bad DER length")
        length = int.from_bytes(data[pos : pos + n], "big")
        pos += n
    if pos + length > end:
        raise MalformedEvidence(_STRUCT, field, pos, f"DER value of {length} bytes overruns")
    return tag, pos, pos + length


def _expect(data: bytes, pos: int, end: int, tag: int, field: str) -> tuple[int, int]:
    t, s, e = _tlv(data, pos, end, field)
    if t != tag:
        raise MalformedEvidence(_STRUCT, field, pos, f"DER tag 0x{t:02x}, expected 0x{tag:02x}")
    return s, e


def _items(data: bytes, start: int, end: int, field: str) -> dict[bytes, tuple[int, int, int, int]]:
    """A SEQUENCE OF SEQUENCE {OID, value} -> {oid_body: (tag, value_start, value_end, offset)}."""
    out: dict[bytes, tuple[int, int, int, int]] = {}
    pos = start
    # Fast path: every element short-form (all lengths < 128), as in the TCB SEQUENCE.
    while pos + 4 <= end and data[pos] == _SEQUENCE and data[pos + 1] < 0x80:
        e = pos + 2 + data[pos + 1]
        if data[pos + 2] != _OID or e > end:
            break
        oe = pos + 4 + data[pos + 3]
        if oe + 2 > e or data[oe + 1] >= 0x80 or oe + 2 + data[oe + 1] != e:
            break
        oid = data[pos + 4 : oe]
        if oid in out:
            break
        out[oid] = (data[oe], oe + 2, e, pos)
        pos = e
    while pos < end:
        s, e = _expect(data, pos, end, _SEQUENCE, field)
        os_, oe = _expect(data, s, e, _OID, field)
        oid = data[os_:oe]
        tag, vs, ve = _tlv(data, oe, e, field)
        if ve != e:
            raise MalformedEvidence(_STRUCT, field, ve, "extra data in (OID, value) pair")
        if oid in out:
            raise MalformedEvidence(_STRUCT, field, pos, f"duplicate entry {oid.hex()}")
        out[oid] = (tag, vs, ve, pos)
        pos = e
    return out


def _get(
    data: bytes,
    items: dict[bytes, tuple[int, int, int, int]],
    oid: bytes,
    tag: int,
    name: str,
    size: int | None = None,
) -> bytes:
    got = items.get(oid)
    if got is None:
        raise MalformedEvidence(_STRUCT, name, 0, "required entry missing")
    t, s, e, off = got
    if t != tag:
        raise MalformedEvidence(_STRUCT, name, off, f"DER tag 0x{t:02x}, expected 0x{tag:02x}")
    if size is not None and e - s != size:
        raise MalformedEvidence(_STRUCT, name, off, f"{e - s} bytes, expected {size}")
    return data[s:e]


def _uint(raw: bytes, name: str) -> int:
    if not raw or raw[0] & 0x80 or len(raw) > 9:
        raise MalformedEvidence(_STRUCT, name, 0, "not a small non-negative INTEGER")
    return int.from_bytes(raw, "big")


def _svns(value: bytes, tcb: dict[bytes, tuple[int, int, int, int]]) -> tuple[int, ...]:
    """The 16 SGX TCB component SVNs. One pass for the well-formed case; anything unexpected
    goes through :func:`_get` and :func:`_uint`, which name the entry."""
    out = []
    for key, _ in _COMPONENTS:
        got = tcb.get(key)
        if (
            got is None
            or got[0] != _INTEGER
            or not 0 < got[2] - got[1] <= 9
            or value[got[1]] & 0x80
        ):
            break
        out.append(int.from_bytes(value[got[1] : got[2]], "big"))
    else:
        return tuple(out)
    return tuple([_uint(_get(value, tcb, key, _INTEGER, name), name) for key, name in _COMPONENTS])


_Tcb = tuple[tuple[int, ...], int, bytes]


def _tcb(value: bytes, start: int, end: int) -> _Tcb:
    """The TCB SEQUENCE: 16 component SVNs, PCESVN and CPUSVN, in any order, each checked."""
    tcb = _items(value, start, end, "tcb")
    p = SGX_EXTENSION_OID_DER
    pcesvn = _uint(_get(value, tcb, p + bytes([2, 17]), _INTEGER, "tcb.pcesvn"), "tcb.pcesvn")
    cpusvn = _get(value, tcb, p + bytes([2, 18]), _OCTET_STRING, "tcb.cpusvn", 16)
    return _svns(value, tcb), pcesvn, cpusvn


def _int_entry(arc: int) -> bytes:
    """SEQUENCE {OID .2.<arc>, INTEGER} with a minimal 1- or 2-byte non-negative INTEGER (the
    SEQUENCE length follows from it)."""
    oid = re.escape(b"\x06\x0b" + SGX_EXTENSION_OID_DER + bytes([2, arc]))
    return (
        b"(?:\x30\x10" + oid + b"\x02\x01([\x00-\x7f])"
        b"|\x30\x11" + oid + b"\x02\x02(\x00[\x80-\xff]|[\x01-\x7f][\x00-\xff]))"
    )


# Intel's own encoding of the TCB SEQUENCE: .2.1-.2.17 in order as minimal INTEGERs below
# 2^15, then .2.18 (CPUSVN). A subset of what _tcb accepts, read in one pass.
_TCB_LAYOUT = re.compile(
    b"".join(_int_entry(arc) for arc in range(1, 18))
    + re.escape(b"\x30\x1f\x06\x0b" + SGX_EXTENSION_OID_DER + b"\x02\x12\x04\x10")
    + b"(.{16})",
    re.DOTALL,
)


def _tcb_fast(value: bytes, start: int, end: int) -> _Tcb | None:
    """:func:`_tcb` for Intel's layout, or None for anything else (which :func:`_tcb` reads)."""
    m = _TCB_LAYOUT.fullmatch(value, start, end)
    if m is None:
        return None
    g = m.groups()
    svns = [int.from_bytes(a or b, "big") for a, b in zip(g[0:34:2], g[1:34:2], strict=True)]
    return tuple(svns[:16]), svns[16], g[34]


def parse_pck_extension(value: bytes) -> PckExtension:
    """Parse the DER value of the SGX extension; raises :class:`MalformedEvidence`."""
    s, e = _expect(value, 0, len(value), _SEQUENCE, "extension")
    if e != len(value):
        raise MalformedEvidence(_STRUCT, "extension", e, "trailing bytes")
    top = _items(value, s, e, "extension")
    p = SGX_EXTENSION_OID_DER
    if len(top) not in (5, 7):
        raise MalformedEvidence(_STRUCT, "extension", 0, f"{len(top)} entries, expected 5 or 7")
    tcb_raw = top.get(p + b"\x02")
    if tcb_raw is None or tcb_raw[0] != _SEQUENCE:
        raise MalformedEvidence(_STRUCT, "tcb", 0, "required SEQUENCE missing")
    comps, pcesvn, cpusvn = _tcb_fast(value, tcb_raw[1], tcb_raw[2]) or _tcb(
        value, tcb_raw[1], tcb_raw[2]
    )
    ppid = _get(value, top, p + b"\x01", _OCTET_STRING, "ppid", 16)
    pce_id = _get(value, top, p + b"\x03", _OCTET_STRING, "pceid", 2)
    fmspc = _get(value, top, p + b"\x04", _OCTET_STRING, "fmspc", 6)
    sgx_type = _uint(_get(value, top, p + b"\x05", _ENUMERATED, "sgx_type"), "sgx_type")
    if len(top) == 5:
        return PckExtension(ppid, comps, pcesvn, cpusvn, pce_id, fmspc, sgx_type)
    instance = _get(value, top, p + b"\x06", _OCTET_STRING, "platform_instance_id", 16)
    conf_raw = top.get(p + b"\x07")
    if conf_raw is None or conf_raw[0] != _SEQUENCE:
        raise MalformedEvidence(_STRUCT, "configuration", 0, "required SEQUENCE missing")
    conf = _items(value, conf_raw[1], conf_raw[2], "configuration")

    def flag(i: int, name: str) -> bool | None:
        if p + bytes([7, i]) not in conf:
            return None
        raw = _get(value, conf, p + bytes([7, i]), _BOOLEAN, name, 1)
        return raw != b"\x00"

    return PckExtension(
        ppid,
        comps,
        pcesvn,
        cpusvn,
        pce_id,
        fmspc,
        sgx_type,
        platform_instance_id=instance,
        dynamic_platform=flag(1, "configuration.dynamic_platform"),
        cached_keys=flag(2, "configuration.cached_keys"),
        smt_enabled=flag(3, "configuration.smt_enabled"),
    )
