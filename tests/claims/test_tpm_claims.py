"""TPM event-log claims: MAA's ``events`` JSON reproduced byte for byte from a real MAA token,
boot claims from a real Windows WBCL and real Linux logs checked against their real PCRs, and a
tampered log rejected naming the PCR."""

from __future__ import annotations

import base64
import json
import re
import struct
from collections.abc import Iterator
from typing import Any

import pytest

from attestd.claims.tpm import (
    WINDOWS_BOOT_CLAIMS,
    boot_claims,
    events_json,
    pcrs_json,
    tpm_claims,
    verify_event_log,
)
from attestd.claims.tpm_events import maa_json
from attestd.errors import PcrDigestMismatch, UnsupportedEvidence, VerificationError
from attestd.evidence.eventlog import (
    ALG_SHA1,
    ALG_SHA256,
    ALG_SHA384,
    EventLog,
    EventType,
    parse_event_log,
    replay_all,
)
from conftest import VECTORS

TPM = VECTORS / "tpm"
MAA_REPORT = VECTORS / "maa/attestation-client-samples/report_boot.claims.json"
BANKS = {"sha1": ALG_SHA1, "sha256": ALG_SHA256}
B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
GUID = re.compile(r"^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$")


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def maa_reference() -> tuple[str, dict[str, Any]]:
    """MAA's ``outputEvents`` claim (a JSON string in the token) and its parsed form."""
    claims = json.loads(MAA_REPORT.read_text())
    text = claims["x-ms-policy"]["outputEvents"]
    return text, json.loads(text)


def rebuild_maa_log(reference: dict[str, Any]) -> EventLog:
    """The TCG log MAA parsed, rebuilt from its own output: each event carries its full data
    (``RawData``) and its SHA-256 digest. A SHA-256-only Spec ID record is record 0, and an
    ``EV_NO_ACTION`` stands in for every ``EventSeq`` MAA skipped (0 and 34): MAA leaves records
    that are never extended out of ``events``."""
    spec = b"Spec ID Event03\x00" + struct.pack("<IBBBBIHHB", 0, 0, 2, 0, 2, 1, ALG_SHA256, 32, 0)
    out = struct.pack("<II", 0, EventType.EV_NO_ACTION) + bytes(20)
    out += struct.pack("<I", len(spec)) + spec

    def record(pcr: int, event_type: int, digest: bytes, data: bytes) -> bytes:
        head = struct.pack("<IIIH", pcr, event_type, 1, ALG_SHA256)
        return head + digest + struct.pack("<I", len(data)) + data

    seq = 1
    for event in reference["Events"]:
        while seq < event["EventSeq"]:
            out += record(0, EventType.EV_NO_ACTION, bytes(32), b"")
            seq += 1
        digest = _b64url(event["Digests"]["SHA256"])
        out += record(event["PcrIndex"], event["EventType"], digest, _b64url(event["RawData"]))
        seq += 1
    return parse_event_log(out)


def windows_gcp() -> tuple[EventLog, dict[int, dict[int, bytes]]]:
    """go-attestation's Windows Shielded VM dump: the WBCL and the 24 SHA-1 PCRs read from the
    real vTPM (``DigestAlg`` 3 is Go's crypto.SHA1)."""
    dump = json.loads((TPM / "go-eventlog/legacydata/windows_gcp_shielded_vm.json").read_text())
    pcrs = {}
    for p in dump["Log"]["PCRs"]:
        assert p["DigestAlg"] == 3
        pcrs[p["Index"]] = base64.b64decode(p["Digest"])
    return parse_event_log(base64.b64decode(dump["Log"]["Raw"])), {ALG_SHA1: pcrs}


def linux(name: str) -> tuple[bytes, dict[int, dict[int, bytes]]]:
    """A real go-eventlog log and the sha1/sha256 PCRs read from the TPM that wrote it."""
    expected = json.loads((TPM / "go-eventlog/tpm/expected_pcrs.json").read_text())[name]
    quoted = {
        BANKS[bank]: {int(k): bytes.fromhex(v) for k, v in values.items()}
        for bank, values in expected["pcrs"].items()
    }
    return (TPM / "go-eventlog/tpm" / name).read_bytes(), quoted


def walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    yield path, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from walk(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk(v, f"{path}[{i}]")


def event_by_name(events: dict[str, Any], name: str) -> dict[str, Any]:
    for event in events["Events"]:
        if event.get("ProcessedData", {}) and event["ProcessedData"].get("UnicodeName") == name:
            return event  # type: ignore[no-any-return]
    raise AssertionError(f"no variable {name}")


# ---------------------------------------------------------------------------------------------
# MAA's own output, reproduced


def test_events_json_equals_maa_reference_event_by_event() -> None:
    _, reference = maa_reference()
    ours = events_json(rebuild_maa_log(reference), replayed=None)
    assert len(ours["Events"]) == len(reference["Events"]) == 50
    for got, want in zip(ours["Events"], reference["Events"], strict=True):
        assert got == want, f"EventSeq {want['EventSeq']} ({want.get('EventTypeString')})"


def test_events_json_serializes_to_maa_string_byte_for_byte() -> None:
    text, reference = maa_reference()
    ours = events_json(rebuild_maa_log(reference), replayed=None)
    assert maa_json(ours) == text
    # The dicts themselves are in MAA's (sorted) key order, at every level.
    assert json.dumps(ours, separators=(",", ":")) == text


def test_maa_reference_events_after_replay_check() -> None:
    # No PCR values came with MAA's token; the rebuilt log against its own replay exercises the
    # verified path, which must render the same events.
    text, reference = maa_reference()
    log = rebuild_maa_log(reference)
    assert maa_json(events_json(log, replayed=replay_all(log))) == text


def test_boot_claims_on_maa_reference_machine() -> None:
    _, reference = maa_reference()
    log = rebuild_maa_log(reference)
    claims = boot_claims(verify_event_log(log, replay_all(log)))
    # Secure Boot on (SecureBoot = AQ), no boot debugging, no safe mode, no WinPE, VBS and the
    # IOMMU required.
    assert claims["tpmVersion"] == "2.0"
    assert claims["secureBootEnabled"] is True
    assert {k: claims[k] for k in WINDOWS_BOOT_CLAIMS} == dict.fromkeys(WINDOWS_BOOT_CLAIMS, True)
    apps = claims["x-attestd-efi-boot-applications"]
    assert [a["digests"]["sha256"] for a in apps] == [
        _b64url("_CrX8b4TQMu9AV1l74paah8BmEzxzF_5gx2T5HVYNj4").hex()
    ]


# ---------------------------------------------------------------------------------------------
# Windows WBCL (real vTPM, SHA-1 log and quote)


def test_windows_gcp_boot_claims() -> None:
    log, quoted = windows_gcp()
    verified = verify_event_log(log, quoted)
    assert verified.pcrs == {0, 4, 5, 7, 11, 12, 13, 14}
    assert verified.banks == (ALG_SHA1,)
    claims = boot_claims(verified)
    assert claims["secureBootEnabled"] is True
    # SIPA in PCR 12/13: BOOTDEBUGGING, SAFEMODE and WINPE all 0; no VBS_VSM_REQUIRED measured
    # (VSM_LAUNCH_TYPE 0), so VBS is not enabled.
    assert claims["bootDebuggingDisabled"] is True
    assert claims["notSafeMode"] is True
    assert claims["notWinPE"] is True
    assert claims["vbsEnabled"] is False
    assert claims["iommuEnabled"] is False  # nor VBS_IOMMU_REQUIRED
    assert claims["x-attestd-verified-pcrs"] == [0, 4, 5, 7, 11, 12, 13, 14]
    assert claims["x-attestd-efi-boot-applications"][0]["path"] == (
        "\\EFI\\Microsoft\\Boot\\bootmgfw.efi"
    )


def test_windows_gcp_events_json() -> None:
    log, quoted = windows_gcp()
    events = events_json(log, replayed=quoted)["Events"]
    assert [e["EventSeq"] for e in events] == list(range(21))
    assert all(set(e["Digests"]) == {"SHA1"} for e in events)
    pcr12 = next(e for e in events if e["PcrIndex"] == 12 and e["EventType"] == 6)
    tb = pcr12["ProcessedData"]["EVENT_TRUSTBOUNDARY"]
    assert tb["EVENT_BOOTDEBUGGING"] is False
    assert tb["EVENT_CODEINTEGRITY"] is True
    assert tb["EVENT_BITLOCKER_UNLOCK"] == {"String": "NONE", "Value": 0}
    assert tb["EVENT_MORBIT_API_STATUS"] == 0xC0000225
    winload = next(e for e in events if e["EventSeq"] == 14)["ProcessedData"]["EVENT_TRUSTBOUNDARY"]
    assert winload["EVENT_SAFEMODE"] is False
    assert winload["EVENT_WINPE"] is False
    assert winload["EVENT_SYSTEMROOT"] == "\\Windows"
    assert winload["EVENT_OSDEVICE"] == {
        "String": "OSDEVICE_TYPE_BLOCKIO_PARTITION",
        "Value": 65540,
    }
    # Tags MAA does not render are dropped: ELAM aggregation, SMT status.
    assert not any("ELAM" in k or "SMT" in k for k in winload)
    assert len(winload["EVENT_LOADEDMODULE_AGGREGATION"]) > 50
    # The standard-format db authority (with UnicodeName) next to MAA's bare-signature form.
    authority = next(e for e in events if e.get("EventTypeString") == "EV_EFI_VARIABLE_AUTHORITY")
    assert authority["ProcessedData"]["UnicodeName"] == "db"
    assert set(authority["ProcessedData"]["VariableData"]) == {"SignatureData", "SignatureOwner"}
    assert events[18]["ProcessedData"] == {"CappedHash[SHA1]": events[18]["Digests"]["SHA1"]}


def test_windows_gcp_pcrs_json() -> None:
    _, quoted = windows_gcp()
    pcrs = pcrs_json(quoted)["PCRs"]
    assert [p["Index"] for p in pcrs] == list(range(24))
    assert pcrs[0] == {"Digests": {"SHA1": quoted[ALG_SHA1][0].hex()}, "Index": 0}
    assert pcrs[17]["Digests"]["SHA1"] == "ff" * 20


# ---------------------------------------------------------------------------------------------
# Linux (real GCE logs, PCRs read from the real TPMs)


@pytest.mark.parametrize(
    ("name", "secure_boot"),
    [
        ("rhel8-uefi.bin", True),
        # go-eventlog describes this one as "Secure Boot ... enabled", but its PCR 7 measures
        # SecureBoot = 00 (and replays to the TPM's PCRs): the measurement wins.
        ("ubuntu-1804-amd-sev.bin", False),
        ("ubuntu-2104-no-secure-boot.bin", False),
        ("ubuntu-2104-no-dbx.bin", False),
        ("arch-linux-workstation.bin", False),
        ("debian-10.bin", True),
    ],
)
def test_linux_secure_boot(name: str, secure_boot: bool) -> None:
    raw, quoted = linux(name)
    claims = tpm_claims(parse_event_log(raw), quoted)
    assert claims["secureBootEnabled"] is secure_boot
    assert claims["tpmVersion"] == "2.0"
    # No SIPA events: the Windows-only claims are absent, not false and not true.
    assert not set(WINDOWS_BOOT_CLAIMS) & set(claims)
    assert claims["x-attestd-verified-pcrs"] == sorted(
        {int(k) for bank in quoted.values() for k in bank}
    )
    assert claims["pcrs"] == pcrs_json(quoted)


def test_linux_kernel_cmdline_and_boot_applications() -> None:
    raw, quoted = linux("rhel8-uefi.bin")
    claims = boot_claims(verify_event_log(parse_event_log(raw), quoted))
    cmdline = claims["x-attestd-kernel-cmdline"]
    assert cmdline.startswith("(hd0,gpt2)/boot/vmlinuz-4.18.0-240.22.1.el8_3.x86_64 root=UUID=")
    paths = [a["path"] for a in claims["x-attestd-efi-boot-applications"]]
    assert paths == ["\\EFI\\redhat\\shimx64.efi", "\\EFI\\redhat\\grubx64.efi", None]
    raw, quoted = linux("ubuntu-2104-no-secure-boot.bin")
    claims = boot_claims(verify_event_log(parse_event_log(raw), quoted))
    assert claims["x-attestd-kernel-cmdline"].startswith("/boot/vmlinuz-5.11.0-1006-gcp root=")


def test_linux_events_json_shapes_match_maa() -> None:
    """No MAA output exists for these logs: check the shapes and encodings MAA's sample shows."""
    raw, quoted = linux("rhel8-uefi.bin")
    log = parse_event_log(raw)
    assert ALG_SHA384 in log.algorithms  # carried by the log, not quoted
    events = events_json(log, replayed=quoted)
    _, reference = maa_reference()
    ref_pk = event_by_name(reference, "PK")
    pk = event_by_name(events, "PK")
    assert list(pk) == list(ref_pk)
    assert list(pk["ProcessedData"]) == list(ref_pk["ProcessedData"])
    entry, ref_entry = (
        pk["ProcessedData"]["VariableData"][0],
        ref_pk["ProcessedData"]["VariableData"][0],
    )
    assert list(entry) == list(ref_entry)
    assert list(entry["Signatures"][0]) == list(ref_entry["Signatures"][0])
    assert event_by_name(events, "SecureBoot")["ProcessedData"]["VariableData"] == "AQ"
    # A standard EV_EFI_VARIABLE_BOOT keeps its name (MAA's Linux sample policy reads
    # ProcessedData.UnicodeName == 'BootOrder' in PCR 1).
    boot_order = event_by_name(events, "BootOrder")
    assert boot_order["PcrIndex"] == 1
    assert boot_order["EventTypeString"] == "EV_EFI_VARIABLE_BOOT"
    for event in events["Events"]:
        assert list(event) == sorted(event)
        assert set(event["Digests"]) == {"SHA1", "SHA256"}
        assert ("EventTypeString" in event) == ("ProcessedData" in event)
        for path, value in walk(event):
            if path.endswith(("RawData", "SignatureData", "VariableData")) or ".Digests." in path:
                if isinstance(value, str):
                    assert B64URL.match(value), path
            if path.endswith(("Guid", "GUID", "SignatureOwner", "SignatureType")):
                assert GUID.match(value), path
    raw, quoted = linux("ubuntu-2104-no-secure-boot.bin")
    events = events_json(parse_event_log(raw), replayed=quoted)
    assert event_by_name(events, "SecureBoot")["ProcessedData"]["VariableData"] == "AA"


# ---------------------------------------------------------------------------------------------
# Only what replays becomes a claim


def _tamper_digest(raw: bytes, log: EventLog, index: int, alg: int) -> bytes:
    event = log.events[index]
    digest = event.digests[alg]
    at = raw.index(digest, event.offset, event.data_offset)
    return raw[:at] + bytes([digest[0] ^ 1]) + raw[at + 1 :]


def test_tampered_digest_names_pcr_and_bank() -> None:
    raw, quoted = linux("rhel8-uefi.bin")
    log = parse_event_log(raw)
    secure_boot = next(
        e
        for e in log.events
        if e.pcr == 7 and e.event_type == EventType.EV_EFI_VARIABLE_DRIVER_CONFIG
    )
    tampered = parse_event_log(_tamper_digest(raw, log, secure_boot.index, ALG_SHA256))
    with pytest.raises(PcrDigestMismatch) as excinfo:
        verify_event_log(tampered, quoted)
    message = str(excinfo.value)
    assert "PCR 7 (sha256 bank)" in message
    assert quoted[ALG_SHA256][7].hex() in message
    assert replay_all(tampered)[ALG_SHA256][7].hex() in message
    assert excinfo.value.selection == "sha256:7"
    # The SHA-1 digest of the same record still hashes its data: the altered record is named.
    assert excinfo.value.event == secure_boot.index
    assert f"event {secure_boot.index} (EV_EFI_VARIABLE_DRIVER_CONFIG at offset" in message
    assert "while its other digests are" in message
    with pytest.raises(PcrDigestMismatch):
        events_json(tampered, replayed=quoted)
    # Leaving PCR 7 out of the selection leaves the tampered event out of the claims.
    rest = [p for p in quoted[ALG_SHA256] if p != 7]
    events = events_json(tampered, replayed=quoted, pcrs=rest)["Events"]
    assert events and all(e["PcrIndex"] != 7 for e in events)


def test_tampered_windows_sipa_digest() -> None:
    log, quoted = windows_gcp()
    pcrs = dict(quoted[ALG_SHA1])
    pcrs[12] = bytes(20)
    with pytest.raises(PcrDigestMismatch, match=r"PCR 12 \(sha1 bank\)") as excinfo:
        verify_event_log(log, {ALG_SHA1: pcrs})
    # Every record is intact: the message says so and points at the last event of PCR 12.
    last = [e for e in log.events if e.pcr == 12][-1]
    assert excinfo.value.event == last.index
    assert "cannot be told from the final value" in str(excinfo.value)


def test_single_bank_tamper_names_the_event_whose_type_binds_its_data() -> None:
    """A legacy SHA-1 log has one bank; a separator (whose digest must hash its data) with an
    altered digest is still named."""
    log, quoted = windows_gcp()
    dump = json.loads((TPM / "go-eventlog/legacydata/windows_gcp_shielded_vm.json").read_text())
    raw = base64.b64decode(dump["Log"]["Raw"])
    separator = next(e for e in log.events if e.event_type == EventType.EV_SEPARATOR)
    tampered = parse_event_log(_tamper_digest(raw, log, separator.index, ALG_SHA1))
    with pytest.raises(PcrDigestMismatch, match=rf"PCR {separator.pcr} \(sha1 bank\)") as excinfo:
        verify_event_log(tampered, quoted)
    assert excinfo.value.event == separator.index
    assert "EV_SEPARATOR" in str(excinfo.value) and "as its type requires" in str(excinfo.value)


def test_unextended_pcr_mismatch_says_no_event() -> None:
    log, quoted = windows_gcp()
    bad = {ALG_SHA1: {**quoted[ALG_SHA1], 1: b"\x01" * 20}}
    with pytest.raises(PcrDigestMismatch, match="no event of the log extends it") as excinfo:
        verify_event_log(log, bad, pcrs=[1])
    assert excinfo.value.event is None


def test_relabelled_data_is_not_believed() -> None:
    """Event data is not covered by the PCRs: flipping SecureBoot from 00 to 01 still replays,
    but the data no longer hashes to the digest, so Secure Boot is not claimed."""
    raw, quoted = linux("ubuntu-2104-no-secure-boot.bin")
    log = parse_event_log(raw)
    event = next(
        e
        for e in log.events
        if e.pcr == 7 and e.event_type == EventType.EV_EFI_VARIABLE_DRIVER_CONFIG
    )
    assert event.data.endswith(b"\x00")
    end = event.data_offset + len(event.data)
    forged = parse_event_log(raw[: end - 1] + b"\x01" + raw[end:])
    verified = verify_event_log(forged, quoted)
    assert boot_claims(verified)["secureBootEnabled"] is False
    forged_json = events_json(forged, replayed=quoted)
    assert event_by_name(forged_json, "SecureBoot")["ProcessedData"]["VariableData"] == "AQ"


def test_forged_sipa_data_fails_closed() -> None:
    """Rewriting a SIPA value (BOOTDEBUGGING 00 -> 01) leaves the PCRs intact; the event no
    longer hashes to its digest, so none of the Windows claims can be true."""
    log, quoted = windows_gcp()
    dump = json.loads((TPM / "go-eventlog/legacydata/windows_gcp_shielded_vm.json").read_text())
    raw = base64.b64decode(dump["Log"]["Raw"])
    event = log.events[11]  # PCR 12, the boot manager's trust boundary
    # TLV: tag 0x00040001 (BOOTDEBUGGING), size 1, value 00.
    at = event.data_offset + event.data.index(bytes.fromhex("010004000100000000")) + 8
    flipped = parse_event_log(raw[:at] + b"\x01" + raw[at + 1 :])
    claims = boot_claims(verify_event_log(flipped, quoted))
    assert {k: claims[k] for k in WINDOWS_BOOT_CLAIMS} == dict.fromkeys(WINDOWS_BOOT_CLAIMS, False)


def test_selection_errors() -> None:
    log, quoted = windows_gcp()
    with pytest.raises(UnsupportedEvidence, match="no quoted PCR bank"):
        verify_event_log(log, {ALG_SHA256: {0: bytes(32)}})
    with pytest.raises(VerificationError, match="PCR 7 is not in the quote"):
        verify_event_log(log, {ALG_SHA1: {0: quoted[ALG_SHA1][0]}}, pcrs=[0, 7])
    only7 = verify_event_log(log, quoted, pcrs=[7])
    assert {e.pcr for e in only7.events} == {7}
    # A selected PCR the log never extends must hold its reset value.
    assert verify_event_log(log, quoted, pcrs=[1, 17]).events == ()
    bad = {ALG_SHA1: {**quoted[ALG_SHA1], 1: b"\x01" * 20}}
    with pytest.raises(PcrDigestMismatch, match="PCR 1"):
        verify_event_log(log, bad, pcrs=[1])


def test_pcrs_json_two_banks() -> None:
    pcrs = pcrs_json({ALG_SHA256: {7: b"\xaa" * 32, 0: b"\x01" * 32}, ALG_SHA1: {0: b"\x02" * 20}})
    assert pcrs == {
        "PCRs": [
            {"Digests": {"SHA1": "02" * 20, "SHA256": "01" * 32}, "Index": 0},
            {"Digests": {"SHA256": "aa" * 32}, "Index": 7},
        ]
    }
