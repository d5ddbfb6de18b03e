"""Intel PCS collateral documents: TCB Info (v2, v3) and Enclave Identity (v2). Parse only.

Formats: Intel SGX/TDX PCS API v4 ("Get TCB Info", "Get Quoting Enclave Identity") and dcap.md §1.C/D.
The signature covers the exact bytes of the ``tcbInfo`` / ``enclaveIdentity`` value as received
(dcap.md §1.C step 14: re-serialising breaks it), so the parser keeps that span verbatim.
"""

from __future__ import annotations

import json
import operator
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from attestd.errors import CollateralMalformed

__all__ = [
    "EnclaveIdentity",
    "EnclaveTcbLevel",
    "TcbInfo",
    "TcbLevel",
    "TdxModule",
    "TdxModuleIdentity",
    "parse_enclave_identity",
    "parse_tcb_info",
    "signed_span",
]

PLATFORM_STATUSES = frozenset(
    {
        "UpToDate",
        "SWHardeningNeeded",
        "ConfigurationNeeded",
        "ConfigurationAndSWHardeningNeeded",
        "OutOfDate",
        "OutOfDateConfigurationNeeded",
        "Revoked",
    }
)
ENCLAVE_STATUSES = frozenset({"UpToDate", "OutOfDate", "Revoked"})

_DECODER = json.JSONDecoder()
_CANONICAL = {
    key: re.compile(
        rb'\{"' + key.encode() + rb'":(\{.*\}),"signature":"([0-9a-fA-F]{128})"\}[\x00\s]*',
        re.DOTALL,
    )
    for key in ("tcbInfo", "enclaveIdentity")
}


def signed_span(raw: bytes, key: str, what: str) -> tuple[bytes, dict[str, Any], bytes]:
    """Split ``{"<key>": {...}, "signature": "<hex>"}`` into the exact bytes of the ``key`` value,
    its decoded object, and the raw r || s signature (64 bytes)."""
    raw = bytes(raw)
    fast = _CANONICAL[key].fullmatch(raw) if key in _CANONICAL else None
    if fast is not None:  # Intel's compact layout: decode just the signed value, with orjson
        try:
            body = orjson.loads(fast.group(1))
        except orjson.JSONDecodeError:
            body = None
        if isinstance(body, dict):
            return fast.group(1), body, bytes.fromhex(fast.group(2).decode("ascii"))
    try:
        text = raw.rstrip(b"\x00").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CollateralMalformed(f"{what}: not UTF-8 ({exc})") from exc
    spans: dict[str, tuple[int, int, Any]] = {}
    try:
        pos = _skip_ws(text, 0)
        if text[pos : pos + 1] != "{":
            raise ValueError("expected a JSON object")
        pos = _skip_ws(text, pos + 1)
        while text[pos : pos + 1] != "}":
            name, pos = _DECODER.raw_decode(text, pos)
            if not isinstance(name, str):
                raise ValueError("object key is not a string")
            pos = _skip_ws(text, pos)
            if text[pos : pos + 1] != ":":
                raise ValueError(f"expected ':' at {pos}")
            start = _skip_ws(text, pos + 1)
            value, end = _DECODER.raw_decode(text, start)
            if name in spans:
                raise ValueError(f"duplicate key {name!r}")
            spans[name] = (start, end, value)
            pos = _skip_ws(text, end)
            if text[pos : pos + 1] == ",":
                pos = _skip_ws(text, pos + 1)
            elif text[pos : pos + 1] != "}":
                raise ValueError(f"expected ',' or '}}' at {pos}")
        if text[_skip_ws(text, pos + 1) :]:
            raise ValueError("data after the JSON object")
    except (ValueError, IndexError) as exc:
        raise CollateralMalformed(f"{what}: not a JSON document ({exc})") from exc
    if key not in spans or "signature" not in spans:
        raise CollateralMalformed(f"{what}: expected keys {key!r} and 'signature'")
    start, end, body = spans[key]
    sig_hex = spans["signature"][2]
    if not isinstance(body, dict):
        raise CollateralMalformed(f"{what}: {key!r} is not an object")
    try:
        sig = bytes.fromhex(sig_hex) if isinstance(sig_hex, str) else b""
    except ValueError:
        sig = b""
    if len(sig) != 64:
        raise CollateralMalformed(f"{what}: 'signature' must be 128 hex digits (r || s)")
    return text[start:end].encode("utf-8"), body, sig


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


class _Obj:
    """Typed field access over a decoded JSON object; errors name the path."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, dict):
            raise CollateralMalformed(f"{path}: expected an object")
        self.d: dict[str, Any] = data
        self.path = path

    def has(self, key: str) -> bool:
        return key in self.d

    def _get(self, key: str) -> Any:
        if key not in self.d:
            raise CollateralMalformed(f"{self.path}.{key}: missing")
        return self.d[key]

    def integer(self, key: str) -> int:
        v = self._get(key)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise CollateralMalformed(f"{self.path}.{key}: expected a non-negative integer")
        return v

    def string(self, key: str) -> str:
        v = self._get(key)
        if not isinstance(v, str):
            raise CollateralMalformed(f"{self.path}.{key}: expected a string")
        return v

    def hex(self, key: str, size: int) -> bytes:
        v = self.string(key)
        try:
            b = bytes.fromhex(v)
        except ValueError as exc:
            raise CollateralMalformed(f"{self.path}.{key}: not hex") from exc
        if len(b) != size:
            raise CollateralMalformed(f"{self.path}.{key}: {len(b)} bytes, expected {size}")
        return b

    def time(self, key: str) -> datetime:
        v = self.string(key)
        try:
            t = datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError as exc:
            raise CollateralMalformed(f"{self.path}.{key}: not an ISO 8601 time") from exc
        return t if t.tzinfo else t.replace(tzinfo=UTC)

    def obj(self, key: str) -> _Obj:
        return _Obj(self._get(key), f"{self.path}.{key}")

    def array(self, key: str) -> list[Any]:
        v = self._get(key)
        if not isinstance(v, list):
            raise CollateralMalformed(f"{self.path}.{key}: expected an array")
        return v

    def strings(self, key: str) -> tuple[str, ...]:
        if key not in self.d:
            return ()
        v = self.array(key)
        if not all(isinstance(x, str) for x in v):
            raise CollateralMalformed(f"{self.path}.{key}: expected an array of strings")
        return tuple(v)


@dataclass(frozen=True, slots=True)
class TcbLevel:
    sgx_components: tuple[int, ...]  # 16 SVNs
    pcesvn: int
    tdx_components: tuple[int, ...] | None  # 16 SVNs (TDX TCB Info only)
    tcb_date: str
    status: str
    advisory_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EnclaveTcbLevel:
    isvsvn: int
    tcb_date: str
    status: str
    advisory_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TdxModule:
    mrsigner: bytes  # 48
    attributes: bytes  # 8
    attributes_mask: bytes  # 8


@dataclass(frozen=True, slots=True)
class TdxModuleIdentity:
    id: str  # "TDX_01", ...
    module: TdxModule
    tcb_levels: tuple[EnclaveTcbLevel, ...]


@dataclass(frozen=True, slots=True)
class TcbInfo:
    version: int
    id: str | None  # "SGX" or "TDX" (v3); None in v2 (SGX)
    issue_date: datetime
    next_update: datetime
    fmspc: bytes
    pce_id: bytes
    tcb_type: int
    tcb_evaluation_data_number: int
    tcb_levels: tuple[TcbLevel, ...]
    tdx_module: TdxModule | None
    tdx_module_identities: tuple[TdxModuleIdentity, ...]
    signed_bytes: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class EnclaveIdentity:
    id: str  # QE, QVE, TD_QE
    version: int
    issue_date: datetime
    next_update: datetime
    tcb_evaluation_data_number: int
    miscselect: bytes  # 4
    miscselect_mask: bytes  # 4
    attributes: bytes  # 16
    attributes_mask: bytes  # 16
    mrsigner: bytes  # 32
    isvprodid: int
    tcb_levels: tuple[EnclaveTcbLevel, ...]
    signed_bytes: bytes
    signature: bytes


def _enclave_levels(items: list[Any], path: str, svn_key: str) -> tuple[EnclaveTcbLevel, ...]:
    if not items:
        raise CollateralMalformed(f"{path}: empty")
    try:  # fast path for well-formed levels; the loop below names the first bad field
        fast = []
        for item in items:
            svn, date, status = item["tcb"][svn_key], item["tcbDate"], item["tcbStatus"]
            advisories = item.get("advisoryIDs", [])
            if (
                type(svn) is not int
                or svn < 0
                or type(date) is not str
                or status not in ENCLAVE_STATUSES
                or type(advisories) is not list
                or not {*map(type, advisories)} <= {str}
            ):
                break
            fast.append(EnclaveTcbLevel(svn, date, status, tuple(advisories)))
        else:
            return tuple(fast)
    except (TypeError, KeyError, AttributeError):
        pass
    out = []
    for i, item in enumerate(items):
        lv = _Obj(item, f"{path}[{i}]")
        status = lv.string("tcbStatus")
        if status not in ENCLAVE_STATUSES:
            raise CollateralMalformed(f"{path}[{i}].tcbStatus: unknown status {status!r}")
        out.append(
            EnclaveTcbLevel(
                lv.obj("tcb").integer(svn_key),
                lv.string("tcbDate"),
                status,
                lv.strings("advisoryIDs"),
            )
        )
    return tuple(out)


def _module(o: _Obj) -> TdxModule:
    return TdxModule(o.hex("mrsigner", 48), o.hex("attributes", 8), o.hex("attributesMask", 8))


def parse_tcb_info(raw: bytes, what: str = "tcb_info") -> TcbInfo:
    signed, body, sig = signed_span(raw, "tcbInfo", what)
    t = _Obj(body, "tcbInfo")
    version = t.integer("version")
    if version not in (2, 3):
        raise CollateralMalformed(f"tcbInfo.version: {version} (2 or 3 supported)")
    tcb_type = t.integer("tcbType")
    if tcb_type != 0:
        raise CollateralMalformed(f"tcbInfo.tcbType: {tcb_type} (only 0 is defined)")
    tee_id: str | None = None
    if version == 3:
        tee_id = t.string("id")
        if tee_id not in ("SGX", "TDX"):
            raise CollateralMalformed(f"tcbInfo.id: {tee_id!r} (SGX or TDX)")
    is_tdx = tee_id == "TDX"
    if not is_tdx and (t.has("tdxModule") or t.has("tdxModuleIdentities")):
        raise CollateralMalformed("tcbInfo: SGX TCB Info must not carry tdxModule")
    module = _module(t.obj("tdxModule")) if is_tdx else None
    identities: list[TdxModuleIdentity] = []
    if is_tdx and t.has("tdxModuleIdentities"):
        for i, item in enumerate(t.array("tdxModuleIdentities")):
            o = _Obj(item, f"tcbInfo.tdxModuleIdentities[{i}]")
            identities.append(
                TdxModuleIdentity(
                    o.string("id"),
                    _module(o),
                    _enclave_levels(o.array("tcbLevels"), f"{o.path}.tcbLevels", "isvsvn"),
                )
            )
    raw_levels = t.array("tcbLevels")
    if not raw_levels:
        raise CollateralMalformed("tcbInfo.tcbLevels: empty")
    levels = _fast_levels(raw_levels, version, is_tdx) or _levels(raw_levels, version, is_tdx)
    return TcbInfo(
        version=version,
        id=tee_id,
        issue_date=t.time("issueDate"),
        next_update=t.time("nextUpdate"),
        fmspc=t.hex("fmspc", 6),
        pce_id=t.hex("pceId", 2),
        tcb_type=tcb_type,
        tcb_evaluation_data_number=t.integer("tcbEvaluationDataNumber"),
        tcb_levels=tuple(levels),
        tdx_module=module,
        tdx_module_identities=tuple(identities),
        signed_bytes=signed,
        signature=sig,
    )


def _levels(raw_levels: list[Any], version: int, is_tdx: bool) -> tuple[TcbLevel, ...]:
    """TCB levels, checking every field and naming the first bad one."""
    levels: list[TcbLevel] = []
    for i, item in enumerate(raw_levels):
        lv = _Obj(item, f"tcbInfo.tcbLevels[{i}]")
        tcb = lv.obj("tcb")
        if version == 2:
            sgx = tuple(tcb.integer(f"sgxtcbcomp{n:02d}svn") for n in range(1, 17))
        else:
            sgx = _components(tcb, "sgxtcbcomponents")
        tdx = _components(tcb, "tdxtcbcomponents") if is_tdx else None
        status = lv.string("tcbStatus")
        if status not in PLATFORM_STATUSES:
            raise CollateralMalformed(f"{lv.path}.tcbStatus: unknown status {status!r}")
        levels.append(
            TcbLevel(
                sgx,
                tcb.integer("pcesvn"),
                tdx,
                lv.string("tcbDate"),
                status,
                lv.strings("advisoryIDs"),
            )
        )
    return tuple(levels)


_INT, _STR = {int}, {str}
_SVN = operator.itemgetter("svn")
_V2_KEYS = tuple(f"sgxtcbcomp{n:02d}svn" for n in range(1, 17))


def _fast_levels(raw_levels: list[Any], version: int, is_tdx: bool) -> tuple[TcbLevel, ...] | None:
    """The same as :func:`_levels` for well-formed input, without per-field wrappers (this runs
    on every cold verification); None on anything unexpected, so that :func:`_levels` can name it.
    The types of all SVNs, dates and advisory IDs are checked at once, after the loop."""
    out: list[TcbLevel] = []
    svns: list[Any] = []
    texts: list[Any] = []
    try:
        for item in raw_levels:
            tcb = item["tcb"]
            if version == 2:
                sgx = tuple(map(tcb.__getitem__, _V2_KEYS))
            else:
                sgx = tuple(map(_SVN, tcb["sgxtcbcomponents"]))
            tdx = tuple(map(_SVN, tcb["tdxtcbcomponents"])) if is_tdx else None
            pcesvn, status, date = tcb["pcesvn"], item["tcbStatus"], item["tcbDate"]
            advisories = item.get("advisoryIDs", [])
            if (
                len(sgx) != 16
                or (tdx is not None and len(tdx) != 16)
                or status not in PLATFORM_STATUSES
                or type(advisories) is not list
            ):
                return None
            svns += sgx
            svns += tdx or ()
            svns.append(pcesvn)
            texts.append(date)
            texts += advisories
            out.append(TcbLevel(sgx, pcesvn, tdx, date, status, tuple(advisories)))
    except (TypeError, KeyError, AttributeError):
        return None
    if {*map(type, svns)} != _INT or min(svns) < 0 or {*map(type, texts)} != _STR:
        return None
    return tuple(out)


def _components(tcb: _Obj, key: str) -> tuple[int, ...]:
    items = tcb.array(key)
    if len(items) != 16:
        raise CollateralMalformed(f"{tcb.path}.{key}: {len(items)} entries, expected 16")
    try:  # fast path for well-formed input; the slow path below names the bad entry
        svns = tuple(c["svn"] for c in items)
        if all(type(v) is int and v >= 0 for v in svns):
            return svns
    except (TypeError, KeyError):
        pass
    return tuple(_Obj(c, f"{tcb.path}.{key}[{i}]").integer("svn") for i, c in enumerate(items))


def parse_enclave_identity(raw: bytes, what: str = "qe_identity") -> EnclaveIdentity:
    signed, body, sig = signed_span(raw, "enclaveIdentity", what)
    e = _Obj(body, "enclaveIdentity")
    version = e.integer("version")
    if version != 2:
        raise CollateralMalformed(f"enclaveIdentity.version: {version} (2 supported)")
    ident = e.string("id")
    if ident not in ("QE", "QVE", "TD_QE"):
        raise CollateralMalformed(f"enclaveIdentity.id: {ident!r} (QE, QVE or TD_QE)")
    return EnclaveIdentity(
        id=ident,
        version=version,
        issue_date=e.time("issueDate"),
        next_update=e.time("nextUpdate"),
        tcb_evaluation_data_number=e.integer("tcbEvaluationDataNumber"),
        miscselect=e.hex("miscselect", 4),
        miscselect_mask=e.hex("miscselectMask", 4),
        attributes=e.hex("attributes", 16),
        attributes_mask=e.hex("attributesMask", 16),
        mrsigner=e.hex("mrsigner", 32),
        isvprodid=e.integer("isvprodid"),
        tcb_levels=_enclave_levels(e.array("tcbLevels"), "enclaveIdentity.tcbLevels", "isvsvn"),
        signed_bytes=signed,
        signature=sig,
    )
