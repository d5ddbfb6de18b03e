"""TCB Info and Enclave Identity parsing (collateral/intel): every real document reads the same
as an independent reading with the json module, whatever its layout, and each malformed field
is refused with an error that names its JSON path."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from attestd.collateral.intel import parse_enclave_identity, parse_tcb_info, signed_span
from attestd.errors import CollateralMalformed
from conftest import VECTORS


def _documents(key: str) -> list[Path]:
    out = []
    for path in sorted(VECTORS.rglob("*.json")):
        try:
            doc = json.loads(path.read_bytes().rstrip(b"\x00"))
        except ValueError:
            continue
        if isinstance(doc, dict) and key in doc and "signature" in doc:
            out.append(path)
    return out


TCB_INFOS = _documents("tcbInfo")
IDENTITIES = _documents("enclaveIdentity")


def test_every_real_document_is_found() -> None:
    assert len(TCB_INFOS) >= 30
    assert len(IDENTITIES) >= 30


def _svns(tcb: dict[str, Any], key: str) -> tuple[int, ...]:
    if key in tcb:
        return tuple(c["svn"] for c in tcb[key])
    return tuple(tcb[f"sgxtcbcomp{n:02d}svn"] for n in range(1, 17))


@pytest.mark.parametrize("path", TCB_INFOS, ids=lambda p: str(p.relative_to(VECTORS)))
def test_tcb_info_reads_as_the_json_says(path: Path) -> None:
    raw = path.read_bytes()
    info = parse_tcb_info(raw)
    body = json.loads(raw.rstrip(b"\x00"))["tcbInfo"]
    assert info.version == body["version"]
    assert info.id == body.get("id")
    assert info.fmspc.hex() == body["fmspc"].lower()
    assert info.tcb_evaluation_data_number == body["tcbEvaluationDataNumber"]
    want = [
        (
            _svns(lv["tcb"], "sgxtcbcomponents"),
            lv["tcb"]["pcesvn"],
            _svns(lv["tcb"], "tdxtcbcomponents") if body.get("id") == "TDX" else None,
            lv["tcbDate"],
            lv["tcbStatus"],
            tuple(lv.get("advisoryIDs", ())),
        )
        for lv in body["tcbLevels"]
    ]
    got = [
        (lv.sgx_components, lv.pcesvn, lv.tdx_components, lv.tcb_date, lv.status, lv.advisory_ids)
        for lv in info.tcb_levels
    ]
    assert got == want
    modules = body.get("tdxModuleIdentities", [])
    assert [(m.id, [lv.isvsvn for lv in m.tcb_levels]) for m in info.tdx_module_identities] == [
        (m["id"], [lv["tcb"]["isvsvn"] for lv in m["tcbLevels"]]) for m in modules
    ]
    assert (info.signed_bytes, info.signature) == signed_span(raw, "tcbInfo", "tcb_info")


@pytest.mark.parametrize("path", IDENTITIES, ids=lambda p: str(p.relative_to(VECTORS)))
def test_enclave_identity_reads_as_the_json_says(path: Path) -> None:
    raw = path.read_bytes()
    ident = parse_enclave_identity(raw)
    body = json.loads(raw.rstrip(b"\x00"))["enclaveIdentity"]
    assert (ident.id, ident.isvprodid, ident.mrsigner.hex()) == (
        body["id"],
        body["isvprodid"],
        body["mrsigner"].lower(),
    )
    assert [(lv.isvsvn, lv.status, lv.advisory_ids) for lv in ident.tcb_levels] == [
        (lv["tcb"]["isvsvn"], lv["tcbStatus"], tuple(lv.get("advisoryIDs", ())))
        for lv in body["tcbLevels"]
    ]
    assert (ident.signed_bytes, ident.signature) == signed_span(
        raw, "enclaveIdentity", "qe_identity"
    )


SGX_V3 = VECTORS / "dcap/phala-dcap-qvl/sgx_v3/tcb_info.json"
TDX_V4 = VECTORS / "dcap/phala-dcap-qvl/tdx_v4/tcb_info.json"
QE = VECTORS / "dcap/phala-dcap-qvl/sgx_v3/qe_identity.json"


def test_any_layout_reads_the_same() -> None:
    """Whitespace, member order and extra top-level members leave the values as they were; the
    signed bytes are then the value exactly as written."""
    raw = SGX_V3.read_bytes()
    doc = json.loads(raw)
    compact = parse_tcb_info(raw)
    for text in (
        json.dumps(doc, indent=2),
        json.dumps({"signature": doc["signature"], "tcbInfo": doc["tcbInfo"]}),
        json.dumps({"tcbInfo": doc["tcbInfo"], "note": 1, "signature": doc["signature"]}),
    ):
        info = parse_tcb_info(text.encode())
        assert info.tcb_levels == compact.tcb_levels
        assert info.next_update == compact.next_update
        assert json.loads(info.signed_bytes) == doc["tcbInfo"]


Edit = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Edit:
    def edit(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = body
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        if value is _DELETE:
            del node[int(last) if last.isdigit() else last]
        else:
            node[int(last) if last.isdigit() else last] = value

    return edit


_DELETE = object()

# (document, edit of its body, what the error must name)
MALFORMED: list[tuple[Path, str, Edit, str]] = [
    (
        SGX_V3,
        "tcbInfo",
        _set("tcbLevels.0.tcb.sgxtcbcomponents.3.svn", -1),
        "tcbLevels[0].tcb.sgxtcbcomponents[3].svn",
    ),
    (SGX_V3, "tcbInfo", _set("tcbLevels.2.tcb.pcesvn", True), "tcbLevels[2].tcb.pcesvn"),
    (SGX_V3, "tcbInfo", _set("tcbLevels.1.tcb.pcesvn", 1.5), "tcbLevels[1].tcb.pcesvn"),
    (
        SGX_V3,
        "tcbInfo",
        _set("tcbLevels.0.tcb.sgxtcbcomponents.15", _DELETE),
        "tcbLevels[0].tcb.sgxtcbcomponents",
    ),
    (SGX_V3, "tcbInfo", _set("tcbLevels.4.tcbStatus", "Fine"), "tcbLevels[4].tcbStatus"),
    (
        SGX_V3,
        "tcbInfo",
        _set("tcbLevels.0.advisoryIDs", "INTEL-SA-00615"),
        "tcbLevels[0].advisoryIDs",
    ),
    (SGX_V3, "tcbInfo", _set("tcbLevels.0.tcbDate", _DELETE), "tcbDate"),
    (SGX_V3, "tcbInfo", _set("tcbLevels", []), "tcbInfo.tcbLevels"),
    (SGX_V3, "tcbInfo", _set("version", 4), "tcbInfo.version"),
    (SGX_V3, "tcbInfo", _set("tcbType", 1), "tcbInfo.tcbType"),
    (SGX_V3, "tcbInfo", _set("id", "SEV"), "tcbInfo.id"),
    (SGX_V3, "tcbInfo", _set("fmspc", "00906ED5000"), "tcbInfo.fmspc"),
    (SGX_V3, "tcbInfo", _set("pceId", "zz00"), "tcbInfo.pceId"),
    (SGX_V3, "tcbInfo", _set("nextUpdate", "next week"), "tcbInfo.nextUpdate"),
    (
        SGX_V3,
        "tcbInfo",
        _set(
            "tdxModule", {"mrsigner": "00" * 48, "attributes": "00" * 8, "attributesMask": "ff" * 8}
        ),
        "must not carry tdxModule",
    ),
    (TDX_V4, "tcbInfo", _set("tdxModule", _DELETE), "tcbInfo.tdxModule"),
    (TDX_V4, "tcbInfo", _set("tdxModule.mrsigner", "00" * 47), "tcbInfo.tdxModule.mrsigner"),
    (
        TDX_V4,
        "tcbInfo",
        _set("tcbLevels.0.tcb.tdxtcbcomponents", _DELETE),
        "tcbLevels[0].tcb.tdxtcbcomponents",
    ),
    (
        TDX_V4,
        "tcbInfo",
        _set("tdxModuleIdentities.0.tcbLevels", []),
        "tdxModuleIdentities[0].tcbLevels",
    ),
    (
        TDX_V4,
        "tcbInfo",
        _set("tdxModuleIdentities.0.tcbLevels.0.tcbStatus", "SWHardeningNeeded"),
        "tdxModuleIdentities[0].tcbLevels[0].tcbStatus",
    ),
    (QE, "enclaveIdentity", _set("version", 3), "enclaveIdentity.version"),
    (QE, "enclaveIdentity", _set("id", "XE"), "enclaveIdentity.id"),
    (QE, "enclaveIdentity", _set("mrsigner", "00" * 31), "enclaveIdentity.mrsigner"),
    (QE, "enclaveIdentity", _set("isvprodid", -1), "enclaveIdentity.isvprodid"),
    (
        QE,
        "enclaveIdentity",
        _set("tcbLevels.1.tcb.isvsvn", "8"),
        "enclaveIdentity.tcbLevels[1].tcb.isvsvn",
    ),
    (QE, "enclaveIdentity", _set("tcbLevels", []), "enclaveIdentity.tcbLevels"),
    (QE, "enclaveIdentity", _set("issueDate", 20240101), "enclaveIdentity.issueDate"),
]


@pytest.mark.parametrize(("path", "key", "edit", "named"), MALFORMED, ids=[m[3] for m in MALFORMED])
@pytest.mark.parametrize("indent", [None, 1], ids=["compact", "indented"])
def test_malformed_field_is_refused_by_name(
    path: Path, key: str, edit: Edit, named: str, indent: int | None
) -> None:
    doc = json.loads(path.read_bytes())
    body = copy.deepcopy(doc[key])
    edit(body)
    raw = json.dumps({key: body, "signature": doc["signature"]}, indent=indent).encode()
    if indent is None:
        raw = raw.replace(b", ", b",").replace(b": ", b":")
    parse = parse_tcb_info if key == "tcbInfo" else parse_enclave_identity
    with pytest.raises(CollateralMalformed) as err:
        parse(raw)
    assert named in err.value.message


def test_the_signed_span_must_be_an_object_with_a_signature() -> None:
    doc = json.loads(SGX_V3.read_bytes())
    for raw in (
        b'{"tcbInfo":[1],"signature":"' + doc["signature"].encode() + b'"}',
        json.dumps({"tcbInfo": doc["tcbInfo"]}).encode(),
        json.dumps({"tcbInfo": doc["tcbInfo"], "signature": "abcd"}).encode(),
        SGX_V3.read_bytes()[:-40],
        b"\xff" + SGX_V3.read_bytes(),
    ):
        with pytest.raises(CollateralMalformed):
            parse_tcb_info(raw)


@pytest.mark.parametrize("spaced", [False, True], ids=["compact", "spaced"])
@pytest.mark.parametrize(
    "nested", [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000]
)
def test_deep_nesting_is_malformed_not_a_crash(nested: bytes, spaced: bool) -> None:
    """Both JSON readers stop at their nesting limit with RecursionError; that is a malformed
    document, in either layout, for both documents (an unknown member is still decoded)."""
    sig = json.loads(SGX_V3.read_bytes())["signature"].encode()
    sep = b" " if spaced else b""
    for key, parse in (("tcbInfo", parse_tcb_info), ("enclaveIdentity", parse_enclave_identity)):
        raw = b'{"%s":%s{"x":%s}%s,"signature":"%s"}' % (key.encode(), sep, nested, sep, sig)
        with pytest.raises(CollateralMalformed):
            parse(raw)
