"""Intel PCS collateral documents: TCB Info (v2, v3) and Enclave Identity (v2). Parse only.

Formats: Intel SGX/TDX PCS API v4 ("Get TCB Info", "Get Quoting Enclave Identity") and dcap.md §1.C/D.
The signature covers the exact bytes of the ``tcbInfo`` / ``enclaveIdentity`` value as received
(dcap.md §1.C step 14: re-serialising breaks it), so the parser keeps that span verbatim.

Each document's schema is written down once, as msgspec structs (``_TcbInfoV2``, ``_TcbInfoV3``,
``_EnclaveIdentity``): decoding checks every type, range, status and hex size in one pass, and a
failure names the JSON path (``tcbInfo.tcbLevels[3].tcb.pcesvn: Expected `int` >= 0``). Unknown
members are ignored, as Intel QVL ignores them; a member given twice keeps its last value.
The parsed documents are frozen msgspec structs too: immutable like frozen dataclasses, and
built in C, which counts on a cold verification (each TCB level is one).
"""

from __future__ import annotations

import json
import operator
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

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

_DECODER = json.JSONDecoder()
_CANONICAL = {
    key: re.compile(
        rb'\{"' + key.encode() + rb'":(\{.*\}),"signature":"([0-9a-fA-F]{128})"\}[\x00\s]*',
        re.DOTALL,
    )
    for key in ("tcbInfo", "enclaveIdentity")
}


def signed_span(raw: bytes, key: str, what: str) -> tuple[bytes, bytes]:
    """Split ``{"<key>": {...}, "signature": "<hex>"}`` into the exact bytes of the ``key`` value
    and the raw r || s signature (64 bytes). The value is only checked to be a JSON object."""
    raw = bytes(raw)
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
    except (ValueError, IndexError, RecursionError) as exc:
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
    return text[start:end].encode("utf-8"), sig


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _decode(
    raw: bytes, key: str, what: str, decoder: msgspec.json.Decoder[Any]
) -> tuple[Any, bytes, bytes]:
    """(the decoded ``key`` value, its exact bytes, the signature). Intel's compact layout is
    split by one regular expression; anything else (whitespace, other member order, a value the
    typed decoder refuses) goes through :func:`signed_span`, which finds the true span."""
    fast = _CANONICAL[key].fullmatch(raw)
    if fast is not None:
        try:
            return (
                decoder.decode(fast.group(1)),
                fast.group(1),
                bytes.fromhex(fast.group(2).decode()),
            )
        except (msgspec.DecodeError, RecursionError):
            pass  # not the compact layout after all, or invalid: the exact path decides and names it
    signed, sig = signed_span(raw, key, what)
    try:
        return decoder.decode(signed), signed, sig
    except msgspec.DecodeError as exc:
        message, _, path = str(exc).partition(" - at `$")
        where = f"{key}{path.rstrip('`')}" if path else key
        raise CollateralMalformed(f"{what}: {where}: {message}") from exc
    except RecursionError as exc:  # msgspec's nesting limit
        raise CollateralMalformed(f"{what}: {key}: nested too deeply") from exc


def _time(value: str, path: str) -> datetime:
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise CollateralMalformed(f"{path}: {value!r} is not an ISO 8601 time") from exc
    return t if t.tzinfo else t.replace(tzinfo=UTC)


class TcbLevel(Struct, frozen=True, gc=False):
    sgx_components: tuple[int, ...]  # 16 SVNs
    pcesvn: int
    tdx_components: tuple[int, ...] | None  # 16 SVNs (TDX TCB Info only)
    tcb_date: str
    status: str
    advisory_ids: tuple[str, ...]


class EnclaveTcbLevel(Struct, frozen=True, gc=False):
    isvsvn: int
    tcb_date: str
    status: str
    advisory_ids: tuple[str, ...]


class TdxModule(Struct, frozen=True, gc=False):
    mrsigner: bytes  # 48
    attributes: bytes  # 8
    attributes_mask: bytes  # 8


class TdxModuleIdentity(Struct, frozen=True, gc=False):
    id: str  # "TDX_01", ...
    module: TdxModule
    tcb_levels: tuple[EnclaveTcbLevel, ...]


class TcbInfo(Struct, frozen=True, gc=False):
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


class EnclaveIdentity(Struct, frozen=True, gc=False):
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


# -- The schemas (Intel PCS API v4), checked by msgspec while decoding ---------------------------

# Numbers are non-negative and fit 63 bits. Not narrower: Intel's own QVL sample TCB Info
# (tests/vectors/dcap/intel-qvl-sampledata/tdx) has component SVNs above 255, and QVL accepts it.
_U = Annotated[int, Meta(ge=0, le=0x7FFF_FFFF_FFFF_FFFF)]
_PlatformStatus = Literal[
    "UpToDate",
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDate",
    "OutOfDateConfigurationNeeded",
    "Revoked",
]
_EnclaveStatus = Literal["UpToDate", "OutOfDate", "Revoked"]
_Hex2 = Annotated[str, Meta(pattern="^[0-9a-fA-F]{4}$")]
_Hex4 = Annotated[str, Meta(pattern="^[0-9a-fA-F]{8}$")]
_Hex6 = Annotated[str, Meta(pattern="^[0-9a-fA-F]{12}$")]
_Hex8 = Annotated[str, Meta(pattern="^[0-9a-fA-F]{16}$")]
_Hex16 = Annotated[str, Meta(pattern="^[0-9a-fA-F]{32}$")]
_Hex32 = Annotated[str, Meta(pattern="^[0-9a-fA-F]{64}$")]
_Hex48 = Annotated[str, Meta(pattern="^[0-9a-fA-F]{96}$")]


def _json_name(name: str) -> str:
    """Intel's member name for a field: camelCase, ``advisoryIDs``, and TCB Info v2's
    ``sgxtcbcompNNsvn`` for ``cNN``."""
    if name == "advisory_ids":
        return "advisoryIDs"
    if name[0] == "c" and name[1:].isdigit():
        return f"sgxtcbcomp{name[1:]}svn"
    head, *rest = name.split("_")
    return head + "".join(word.capitalize() for word in rest)


class _Json(Struct, frozen=True, gc=False, rename=_json_name):
    """Unknown members are ignored; required members are those without a default. Subclasses
    inherit the naming and, at run time, frozenness (repeated for the type checker)."""


class _Svn(_Json, frozen=True):
    svn: _U


_Components = Annotated[tuple[_Svn, ...], Meta(min_length=16, max_length=16)]


class _TcbV2(_Json, frozen=True):
    c01: _U
    c02: _U
    c03: _U
    c04: _U
    c05: _U
    c06: _U
    c07: _U
    c08: _U
    c09: _U
    c10: _U
    c11: _U
    c12: _U
    c13: _U
    c14: _U
    c15: _U
    c16: _U
    pcesvn: _U


class _TcbV3(_Json, frozen=True):
    sgxtcbcomponents: _Components
    pcesvn: _U
    tdxtcbcomponents: _Components | msgspec.UnsetType = msgspec.UNSET


class _LevelV2(_Json, frozen=True):
    tcb: _TcbV2
    tcb_date: str
    tcb_status: _PlatformStatus
    advisory_ids: tuple[str, ...] = ()


class _LevelV3(_LevelV2, frozen=True):
    tcb: _TcbV3  # type: ignore[assignment]


class _EnclaveTcb(_Json, frozen=True):
    isvsvn: _U


class _EnclaveLevel(_Json, frozen=True):
    tcb: _EnclaveTcb
    tcb_date: str
    tcb_status: _EnclaveStatus
    advisory_ids: tuple[str, ...] = ()


_EnclaveLevels = Annotated[tuple[_EnclaveLevel, ...], Meta(min_length=1)]


class _Module(_Json, frozen=True):
    mrsigner: _Hex48
    attributes: _Hex8
    attributes_mask: _Hex8


class _ModuleIdentity(_Module, frozen=True):
    id: str
    tcb_levels: _EnclaveLevels


class _TcbInfo(_Json, frozen=True, tag_field="version"):
    issue_date: str
    next_update: str
    fmspc: _Hex6
    pce_id: _Hex2
    tcb_type: Literal[0]
    tcb_evaluation_data_number: _U
    tdx_module: _Module | msgspec.UnsetType = msgspec.UNSET
    tdx_module_identities: tuple[_ModuleIdentity, ...] | msgspec.UnsetType = msgspec.UNSET


class _TcbInfoV2(_TcbInfo, frozen=True, kw_only=True, tag=2):
    tcb_levels: Annotated[tuple[_LevelV2, ...], Meta(min_length=1)]


class _TcbInfoV3(_TcbInfo, frozen=True, kw_only=True, tag=3):
    id: Literal["SGX", "TDX"]
    tcb_levels: Annotated[tuple[_LevelV3, ...], Meta(min_length=1)]


class _EnclaveIdentity(_Json, frozen=True):
    id: Literal["QE", "QVE", "TD_QE"]
    version: Literal[2]
    issue_date: str
    next_update: str
    tcb_evaluation_data_number: _U
    miscselect: _Hex4
    miscselect_mask: _Hex4
    attributes: _Hex16
    attributes_mask: _Hex16
    mrsigner: _Hex32
    isvprodid: _U
    tcb_levels: _EnclaveLevels


_TCB_INFO = msgspec.json.Decoder(_TcbInfoV2 | _TcbInfoV3)
_ENCLAVE_IDENTITY = msgspec.json.Decoder(_EnclaveIdentity)
_SVN = operator.attrgetter("svn")
_V2_SVNS = operator.attrgetter(*(f"c{n:02d}" for n in range(1, 17)))


def _enclave_levels(levels: tuple[_EnclaveLevel, ...]) -> tuple[EnclaveTcbLevel, ...]:
    return tuple(
        EnclaveTcbLevel(lv.tcb.isvsvn, lv.tcb_date, lv.tcb_status, lv.advisory_ids) for lv in levels
    )


def _module(m: _Module) -> TdxModule:
    return TdxModule(
        bytes.fromhex(m.mrsigner), bytes.fromhex(m.attributes), bytes.fromhex(m.attributes_mask)
    )


def parse_tcb_info(raw: bytes, what: str = "tcb_info") -> TcbInfo:
    info, signed, sig = _decode(raw, "tcbInfo", what, _TCB_INFO)
    tee_id = info.id if isinstance(info, _TcbInfoV3) else None
    is_tdx = tee_id == "TDX"
    has_module = info.tdx_module is not msgspec.UNSET
    if not is_tdx and (has_module or info.tdx_module_identities is not msgspec.UNSET):
        raise CollateralMalformed(f"{what}: tcbInfo: SGX TCB Info must not carry tdxModule")
    if is_tdx and not has_module:
        raise CollateralMalformed(f"{what}: tcbInfo.tdxModule: missing")
    levels = []
    for i, lv in enumerate(info.tcb_levels):
        t = lv.tcb
        sgx = _V2_SVNS(t) if isinstance(t, _TcbV2) else tuple(map(_SVN, t.sgxtcbcomponents))
        tdx = None
        if is_tdx:
            if t.tdxtcbcomponents is msgspec.UNSET:
                raise CollateralMalformed(
                    f"{what}: tcbInfo.tcbLevels[{i}].tcb.tdxtcbcomponents: missing"
                )
            tdx = tuple(map(_SVN, t.tdxtcbcomponents))
        levels.append(TcbLevel(sgx, t.pcesvn, tdx, lv.tcb_date, lv.tcb_status, lv.advisory_ids))
    identities = info.tdx_module_identities or ()
    return TcbInfo(
        version=2 if tee_id is None else 3,
        id=tee_id,
        issue_date=_time(info.issue_date, "tcbInfo.issueDate"),
        next_update=_time(info.next_update, "tcbInfo.nextUpdate"),
        fmspc=bytes.fromhex(info.fmspc),
        pce_id=bytes.fromhex(info.pce_id),
        tcb_type=info.tcb_type,
        tcb_evaluation_data_number=info.tcb_evaluation_data_number,
        tcb_levels=tuple(levels),
        tdx_module=_module(info.tdx_module) if has_module else None,
        tdx_module_identities=tuple(
            TdxModuleIdentity(m.id, _module(m), _enclave_levels(m.tcb_levels)) for m in identities
        ),
        signed_bytes=signed,
        signature=sig,
    )


def parse_enclave_identity(raw: bytes, what: str = "qe_identity") -> EnclaveIdentity:
    e, signed, sig = _decode(raw, "enclaveIdentity", what, _ENCLAVE_IDENTITY)
    return EnclaveIdentity(
        id=e.id,
        version=e.version,
        issue_date=_time(e.issue_date, "enclaveIdentity.issueDate"),
        next_update=_time(e.next_update, "enclaveIdentity.nextUpdate"),
        tcb_evaluation_data_number=e.tcb_evaluation_data_number,
        miscselect=bytes.fromhex(e.miscselect),
        miscselect_mask=bytes.fromhex(e.miscselect_mask),
        attributes=bytes.fromhex(e.attributes),
        attributes_mask=bytes.fromhex(e.attributes_mask),
        mrsigner=bytes.fromhex(e.mrsigner),
        isvprodid=e.isvprodid,
        tcb_levels=_enclave_levels(e.tcb_levels),
        signed_bytes=signed,
        signature=sig,
    )
