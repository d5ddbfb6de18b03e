"""TCG PC Client event logs: every real log under vectors/tpm parses and replays to the PCRs
recorded beside it; typed event data from real events; hand-made malformed logs."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import struct
import uuid
from pathlib import Path
from typing import Any

import pytest

from attestd.errors import MalformedEvidence, UnsupportedEvidence
from attestd.evidence.eventlog import (
    ALG_SHA1,
    ALG_SHA256,
    ALG_SHA384,
    ALG_SHA512,
    Event,
    EventLog,
    EventType,
    parse_event_log,
    replay,
    replay_all,
    untrusted_action_string,
    untrusted_efi_variable,
    untrusted_image_load,
    untrusted_ipl_string,
    untrusted_separator,
    untrusted_sipa_events,
    untrusted_startup_locality,
)
from conftest import VECTORS

TPM = VECTORS / "tpm"
BANKS = {"sha1": ALG_SHA1, "sha256": ALG_SHA256, "sha384": ALG_SHA384, "sha512": ALG_SHA512}
EFI_GLOBAL_VARIABLE = uuid.UUID("8be4df61-93ca-11d2-aa0d-00e098032b8c")
EFI_IMAGE_SECURITY_DATABASE = uuid.UUID("d719b2cb-3d3a-4596-a3bc-dad00e67656f")


def load(rel: str) -> EventLog:
    return parse_event_log((TPM / rel).read_bytes())


def windows_log() -> tuple[bytes, dict[int, bytes]]:
    """go-attestation's Windows dump: ``Log.Raw`` is the WBCL in standard base64; ``Log.PCRs`` the
    24 SHA-1 PCRs (``DigestAlg`` 3 is Go's ``crypto.SHA1``), digests base64."""
    dump = json.loads((TPM / "go-eventlog/legacydata/windows_gcp_shielded_vm.json").read_text())
    pcrs = {}
    for p in dump["Log"]["PCRs"]:
        assert p["DigestAlg"] == 3
        pcrs[p["Index"]] = base64.b64decode(p["Digest"])
    return base64.b64decode(dump["Log"]["Raw"]), pcrs


def hex_pcrs(banks: dict[str, dict[str, str]]) -> dict[int, dict[int, str]]:
    return {
        BANKS[bank]: {int(k): v.lower().removeprefix("0x") for k, v in pcrs.items()}
        for bank, pcrs in banks.items()
    }


def replayed_hex(log: EventLog) -> dict[int, dict[int, str]]:
    return {alg: {k: v.hex() for k, v in pcrs.items()} for alg, pcrs in replay_all(log).items()}


# ---------------------------------------------------------------------------------------------
# Real logs against their expected PCRs


def _cases() -> list[Any]:
    cases: list[Any] = []
    # Known-good: PCRs read from the real TPMs (go-eventlog's extract_test.go).
    expected = json.loads((TPM / "go-eventlog/tpm/expected_pcrs.json").read_text())
    for name, entry in sorted(expected.items()):
        cases.append(pytest.param(f"go-eventlog/tpm/{name}", entry["pcrs"], None, id=name))
    # Known-good: each log replayed into swtpm and the PCRs read back from it.
    for p in sorted(TPM.glob("swtpm-replayed/*/tpm_pcrs.json")):
        entry = json.loads(p.read_text())
        rel = str(p.parent.relative_to(TPM) / "eventlog.bin")
        cases.append(pytest.param(rel, entry["pcrs"], None, id=f"swtpm-{p.parent.name}"))
    # Computed by an independent replayer (and tpm2_eventlog where it does not crash).
    for folder in (
        "go-attestation",
        "go-eventlog/legacydata",
        "tpm2-tools",
        "keylime",
        "tcglog-parser",
    ):
        computed = json.loads((TPM / folder / "computed_pcrs.json").read_text())
        for name, entry in sorted(computed.items()):
            cases.append(
                pytest.param(f"{folder}/{name}", entry["pcrs"], entry, id=f"{folder}/{name}")
            )
    return cases


# The reference replayer stops at a pcrIndex of 0xFFFFFFFF (go-eventlog's padding marker); this
# log ends with a real record there: Windows' EV_NO_ACTION trust point (SIPA 0xC0010004, the
# signed boot quote), which we keep as an event. It is never extended.
EXTRA_EVENTS = {
    "go-attestation/option_rom_eventlog": 1,
    "go-eventlog/legacydata/option_rom_eventlog": 1,
}


@pytest.mark.parametrize(("rel", "banks", "meta"), _cases())
def test_real_log_replays_to_expected(rel: str, banks: dict[str, Any], meta: Any) -> None:
    log = parse_event_log((TPM / rel).read_bytes())
    got = replayed_hex(log)
    expected = hex_pcrs(banks)
    # Every expected bank matches exactly (same PCR set, same values). Banks the log carries but
    # the reference does not list (sha384 in go-eventlog's and swtpm's files) are not compared.
    assert {alg: got.get(alg) for alg in expected} == expected
    if meta is not None:
        assert len(log.events) == meta["events"] + EXTRA_EVENTS.get(rel, 0)
        fmt = "legacy-sha1" if log.spec_id is None else "crypto-agile"
        assert meta["format"].startswith(fmt)
        localities = [loc for e in log.events if (loc := untrusted_startup_locality(e)) is not None]
        assert localities == (
            [] if meta["startup_locality"] is None else [meta["startup_locality"]]
        )


def _expected_yaml_pcrs(text: str) -> dict[int, dict[int, str]]:
    """The ``pcrs:`` block of tpm2_eventlog's output (``  sha1:`` / ``    7  : 0x…``)."""
    out: dict[int, dict[int, str]] = {}
    bank: dict[int, str] | None = None
    in_pcrs = False
    for line in text.splitlines():
        if line.startswith("pcrs:"):
            in_pcrs = True
        elif in_pcrs and (m := re.fullmatch(r"  (\w+):", line)):
            bank = out.setdefault(BANKS[m.group(1)], {})
        elif in_pcrs and bank is not None and (m := re.fullmatch(r"\s+(\d+)\s*: 0x(\w+)", line)):
            bank[int(m.group(1))] = m.group(2).lower()
    return out


@pytest.mark.parametrize(
    "yaml_path",
    sorted(TPM.glob("tpm2-tools/expected-yaml/*.yaml")),
    ids=lambda p: p.name,
)
def test_tpm2_tools_upstream_yaml(yaml_path: Path) -> None:
    """tpm2-tools' own fixture output (upstream tpm2_eventlog) for each of its logs."""
    log = load(f"tpm2-tools/{yaml_path.name.removesuffix('.yaml')}")
    expected = _expected_yaml_pcrs(yaml_path.read_text())
    assert expected
    assert replayed_hex(log) == expected


def test_windows_wbcl_replays_to_dumped_pcrs() -> None:
    raw, dumped = windows_log()
    log = parse_event_log(raw)
    assert log.spec_id is None and log.algorithms == (ALG_SHA1,) and len(log.events) == 21
    pcrs = replay(log, algorithm=ALG_SHA1)
    assert sorted(pcrs) == [0, 4, 5, 7, 11, 12, 13, 14]
    assert pcrs == {i: dumped[i] for i in pcrs}
    # PCRs the log does not touch hold their reset values in the dump.
    assert all(dumped[i] == bytes(20) for i in (1, 2, 3, 6, 8, 9, 10, 15, 16, 23))
    assert all(dumped[i] == b"\xff" * 20 for i in range(17, 23))


def test_windows_sipa_tlvs() -> None:
    raw, _ = windows_log()
    log = parse_event_log(raw)
    tagged = [e for e in log.events if e.event_type == EventType.EV_EVENT_TAG]
    assert [e.pcr for e in tagged] == [12, 13, 14, 12, 13, 14]
    (boundary,) = untrusted_sipa_events(tagged[0])
    assert boundary.tag == 0x40010001 and boundary.is_container  # TrustBoundary
    assert boundary.offset == tagged[0].data_offset
    by_tag = {c.tag: c for c in boundary.children}
    assert by_tag[0x00020002].data == (4).to_bytes(8, "little")  # BootCounter
    assert by_tag[0x00040001].data == b"\x00"  # BootDebugging off
    assert by_tag[0x00050002].data == b"\x01"  # CodeIntegrity on
    assert by_tag[0x00050003].data == b"\x00"  # TestSigning off
    module = by_tag[0x40010003]  # LoadedModuleAggregation: a nested container
    assert module.is_container and module.children
    assert module.offset == boundary.offset + 8 + 16  # after BootCounter (8 + 8 bytes)
    (pubkey,) = untrusted_sipa_events(tagged[2])  # AuthorityPubKey, not a container
    assert pubkey.tag == 0x00060002 and pubkey.children == () and pubkey.data[:2] == b"\x30\x82"
    seps = [untrusted_separator(e) for e in log.events if e.event_type == EventType.EV_SEPARATOR]
    assert [s.data for s in seps] == [bytes(4), b"WBCL", b"WBCL", b"WBCL"]
    assert not any(s.is_error for s in seps) and seps[0].value == 0


def test_keylime_startup_locality_3_sets_pcr0_start() -> None:
    log = load("keylime/binary_bios_measurements")
    (locality_event,) = [e for e in log.events if untrusted_startup_locality(e) is not None]
    assert locality_event.pcr == 0 and untrusted_startup_locality(locality_event) == 3
    pcr0 = replay(log, algorithm=ALG_SHA256)[0]
    # The same replay from an all-zero PCR0 (what tpm2_eventlog 5.4 does) differs.
    value = bytes(32)
    for e in log.events:
        if e.pcr == 0 and e.event_type != EventType.EV_NO_ACTION:
            value = hashlib.sha256(value + e.digests[ALG_SHA256]).digest()
    assert value != pcr0
    value = bytes(31) + b"\x03"
    for e in log.events:
        if e.pcr == 0 and e.event_type != EventType.EV_NO_ACTION:
            value = hashlib.sha256(value + e.digests[ALG_SHA256]).digest()
    assert value == pcr0


def test_keylime_b64_is_the_binary_log() -> None:
    b64 = (TPM / "keylime/mb_log.b64").read_bytes()
    assert base64.b64decode(b64) == (TPM / "keylime/mb_log.bin").read_bytes()


def test_spec_id_of_a_real_log() -> None:
    log = load("go-eventlog/tpm/rhel8-uefi.bin")
    assert log.spec_id is not None
    assert log.algorithms == (ALG_SHA1, ALG_SHA256, ALG_SHA384)
    assert [(a.algorithm_id, a.digest_size) for a in log.spec_id.algorithms] == [
        (ALG_SHA1, 20),
        (ALG_SHA256, 32),
        (ALG_SHA384, 48),
    ]
    assert (log.spec_id.spec_version_major, log.spec_id.spec_version_minor) == (2, 0)
    assert log.spec_id.uintn_size == 2
    first = log.events[0]
    assert first.index == 0 and first.offset == 0 and first.data_offset == 32
    assert first.event_type == EventType.EV_NO_ACTION
    assert log.events[1].offset == 32 + len(first.data)


def test_legacy_log_replays_only_sha1() -> None:
    log = load("go-eventlog/tpm/debian-10.bin")
    assert log.spec_id is None and log.algorithms == (ALG_SHA1,)
    assert list(replay_all(log)) == [ALG_SHA1]
    with pytest.raises(UnsupportedEvidence):
        replay(log, algorithm=ALG_SHA256)


def test_zero_padding_is_tolerated() -> None:
    raw = (TPM / "go-eventlog/tpm/arch-linux-workstation.bin").read_bytes()
    plain = parse_event_log(raw)
    padded = parse_event_log(raw + bytes(65536))
    assert padded.events == plain.events and padded.padding == 65536 and plain.padding == 0
    assert replay_all(padded) == replay_all(plain)
    legacy = (TPM / "go-eventlog/tpm/debian-10.bin").read_bytes()
    assert parse_event_log(legacy + bytes(100)).events == parse_event_log(legacy).events


def test_data_after_padding_is_parsed_not_hidden() -> None:
    raw = (TPM / "go-eventlog/tpm/arch-linux-workstation.bin").read_bytes()
    with pytest.raises(MalformedEvidence) as exc:
        parse_event_log(raw + bytes(64) + b"\x01")
    assert exc.value.structure == "TCG_PCR_EVENT2"
    assert exc.value.offset >= len(raw)


def test_event_type_lookup_is_safe() -> None:
    assert EventType.untrusted_lookup(0x80000001) is EventType.EV_EFI_VARIABLE_DRIVER_CONFIG
    assert EventType.untrusted_lookup(0x12345678) == 0x12345678
    assert not isinstance(EventType.untrusted_lookup(0x12345678), EventType)
    log = parse_event_log(legacy_record(0, 0x12345678, b"x"))
    assert log.events[0].event_type == 0x12345678
    assert log.events[0].untrusted_type_name == "0x12345678"


# ---------------------------------------------------------------------------------------------
# Typed event data from real events


def test_secure_boot_variable_in_rhel8() -> None:
    log = load("go-eventlog/tpm/rhel8-uefi.bin")
    config = [
        untrusted_efi_variable(e)
        for e in log.events
        if e.event_type == EventType.EV_EFI_VARIABLE_DRIVER_CONFIG
    ]
    assert [v.name for v in config] == ["SecureBoot", "PK", "KEK", "db", "dbx"]
    secure_boot = config[0]
    assert secure_boot.guid == EFI_GLOBAL_VARIABLE and secure_boot.data == b"\x01"
    assert config[3].guid == config[4].guid == EFI_IMAGE_SECURITY_DATABASE
    assert all(v.trailing_bytes == 0 for v in config)


def test_shim_variable_authority_slack_is_counted() -> None:
    log = load("go-eventlog/tpm/debian-10.bin")
    shim = [
        untrusted_efi_variable(e)
        for e in log.events
        if e.event_type == EventType.EV_EFI_VARIABLE_AUTHORITY
    ]
    assert [(v.name, v.trailing_bytes) for v in shim][-1] == ("Shim", 6)
    assert shim[-1].data[:2] == b"\x30\x82"  # a DER certificate


def test_boot_application_paths() -> None:
    log = load("go-eventlog/tpm/rhel8-uefi.bin")
    apps = [
        untrusted_image_load(e)
        for e in log.events
        if e.event_type == EventType.EV_EFI_BOOT_SERVICES_APPLICATION
    ]
    # shim, grub (loaded by shim), then the kernel (shim's loader logs no device path).
    assert [a.file_path for a in apps] == [
        "\\EFI\\redhat\\shimx64.efi",
        "\\EFI\\redhat\\grubx64.efi",
        None,
    ]
    assert [a.trailing_bytes for a in apps] == [0, 8, 8]
    assert apps[0].device_path[0].type == 0x02  # ACPI device path (PciRoot)
    arch = load("go-eventlog/tpm/arch-linux-workstation.bin")
    paths = [
        untrusted_image_load(e).file_path
        for e in arch.events
        if e.event_type == EventType.EV_EFI_BOOT_SERVICES_APPLICATION
    ]
    assert paths == ["\\EFI\\SYSTEMD\\SYSTEMD-BOOTX64.EFI", "\\vmlinuz-linux-lts"]


def test_kernel_command_lines() -> None:
    ubuntu = load("go-eventlog/tpm/ubuntu-2104-no-dbx.bin")
    ipl = [untrusted_ipl_string(e) for e in ubuntu.events if e.event_type == EventType.EV_IPL]
    cmdlines = [s.removeprefix("kernel_cmdline: ") for s in ipl if s.startswith("kernel_cmdline")]
    assert cmdlines == [
        "/boot/vmlinuz-5.11.0-1008-gcp root=PARTUUID=bf817bdf-6a3a-4221-8edb-2c1ca7c5537f ro "
        "scsi_mod.use_blk_mq=Y ima_hash=sha256 console=ttyS0 panic=-1"
    ]
    assert "grub_cmd: linux /boot/vmlinuz-5.11.0-1008-gcp" in " ".join(ipl)
    # systemd-boot logs the command line as UTF-16LE with an odd size (half a NUL at the end).
    arch = load("go-eventlog/tpm/arch-linux-workstation.bin")
    (sd_boot,) = [e for e in arch.events if e.event_type == EventType.EV_IPL]
    assert len(sd_boot.data) % 2 == 1
    assert untrusted_ipl_string(sd_boot).startswith("initrd=\\intel-ucode.img initrd=")
    assert untrusted_ipl_string(sd_boot).endswith("iommu=pt l1tf=off")


def test_efi_action_strings_and_separators() -> None:
    log = load("go-eventlog/tpm/rhel8-uefi.bin")
    actions = [
        untrusted_action_string(e) for e in log.events if e.event_type == EventType.EV_EFI_ACTION
    ]
    assert actions == [
        "Calling EFI Application from Boot Option",
        "Exit Boot Services Invocation",
        "Exit Boot Services Returned with Success",
    ]
    seps = [untrusted_separator(e) for e in log.events if e.event_type == EventType.EV_SEPARATOR]
    assert len(seps) == 8 and all(s.value == 0 and not s.is_error for s in seps)


def test_typed_helpers_check_the_event_type() -> None:
    log = load("go-eventlog/tpm/rhel8-uefi.bin")
    separator = next(e for e in log.events if e.event_type == EventType.EV_SEPARATOR)
    for helper in (untrusted_efi_variable, untrusted_image_load, untrusted_sipa_events):
        with pytest.raises(MalformedEvidence) as exc:
            helper(separator)
        assert exc.value.field == "eventType" and exc.value.offset == separator.offset + 4
    assert untrusted_startup_locality(separator) is None


# ---------------------------------------------------------------------------------------------
# Hand-made logs: builders, then annotated hex for the hostile cases


def legacy_record(pcr: int, event_type: int, data: bytes, digest: bytes = bytes(20)) -> bytes:
    return struct.pack("<II", pcr, event_type) + digest + struct.pack("<I", len(data)) + data


def spec_id_record(algs: list[tuple[int, int]]) -> bytes:
    body = SPEC_ID_HEAD + struct.pack("<I", len(algs))
    body += b"".join(struct.pack("<HH", a, s) for a, s in algs) + b"\x00"
    return legacy_record(0, EventType.EV_NO_ACTION, body)


SPEC_ID_HEAD = b"Spec ID Event03\x00" + struct.pack("<I", 0) + bytes([0, 2, 0, 2])


def agile_record(pcr: int, event_type: int, digests: dict[int, bytes], data: bytes) -> bytes:
    out = struct.pack("<III", pcr, event_type, len(digests))
    out += b"".join(struct.pack("<H", a) + d for a, d in digests.items())
    return out + struct.pack("<I", len(data)) + data


def sha256_event(pcr: int, event_type: int, data: bytes) -> bytes:
    return agile_record(pcr, event_type, {ALG_SHA256: hashlib.sha256(data).digest()}, data)


SHA256_ONLY = spec_id_record([(ALG_SHA256, 32)])
STARTUP_LOCALITY_3 = agile_record(
    0, EventType.EV_NO_ACTION, {ALG_SHA256: bytes(32)}, b"StartupLocality\x00\x03"
)
HCRTM = sha256_event(0, EventType.EV_EFI_HCRTM_EVENT, b"HCRTM")
CRTM_VERSION = sha256_event(0, EventType.EV_S_CRTM_VERSION, b"\x00\x00")


def extend(start: bytes, *events: bytes) -> bytes:
    value = start
    for data in events:
        value = hashlib.sha256(value + hashlib.sha256(data).digest()).digest()
    return value


def test_pcr0_start_values() -> None:
    plain = parse_event_log(SHA256_ONLY + CRTM_VERSION)
    assert replay(plain, algorithm=ALG_SHA256) == {0: extend(bytes(32), b"\x00\x00")}
    local3 = parse_event_log(SHA256_ONLY + STARTUP_LOCALITY_3 + CRTM_VERSION)
    assert replay(local3, algorithm=ALG_SHA256) == {0: extend(bytes(31) + b"\x03", b"\x00\x00")}
    # H-CRTM: PCR0 reset to 4 by _TPM_Hash_Start and the H-CRTM digest extended first; an
    # "H-CRTM CompMeas" EV_NO_ACTION only describes it and is never extended; the H-CRTM start
    # wins over the StartupLocality event.
    comp = agile_record(
        0,
        EventType.EV_NO_ACTION,
        {ALG_SHA256: bytes(32)},
        b"H-CRTM CompMeas\x00" + b"\x04BIOS\x00" + struct.pack("<H", 0),
    )
    hcrtm = parse_event_log(SHA256_ONLY + STARTUP_LOCALITY_3 + HCRTM + comp + CRTM_VERSION)
    assert replay(hcrtm, algorithm=ALG_SHA256) == {
        0: extend(bytes(31) + b"\x04", b"HCRTM", b"\x00\x00")
    }
    # A StartupLocality after PCR0's first measurement changes nothing.
    late = parse_event_log(SHA256_ONLY + CRTM_VERSION + STARTUP_LOCALITY_3)
    assert replay(late, algorithm=ALG_SHA256) == replay(plain, algorithm=ALG_SHA256)


def test_no_action_is_never_extended_and_other_pcrs_start_at_zero() -> None:
    log = parse_event_log(
        SHA256_ONLY
        + STARTUP_LOCALITY_3
        + sha256_event(7, EventType.EV_NO_ACTION, b"anything")
        + sha256_event(7, EventType.EV_SEPARATOR, bytes(4))
    )
    assert replay(log, algorithm=ALG_SHA256) == {7: extend(bytes(32), bytes(4))}


def test_hcrtm_after_other_pcr0_events_is_rejected() -> None:
    log = parse_event_log(SHA256_ONLY + CRTM_VERSION + HCRTM)
    with pytest.raises(MalformedEvidence) as exc:
        replay(log, algorithm=ALG_SHA256)
    assert exc.value.field == "eventType" and exc.value.offset == log.events[2].offset + 4


def test_impossible_startup_locality() -> None:
    bad = agile_record(0, EventType.EV_NO_ACTION, {}, b"StartupLocality\x00\x07")
    log = parse_event_log(SHA256_ONLY + bad + CRTM_VERSION)
    with pytest.raises(MalformedEvidence) as exc:
        replay(log, algorithm=ALG_SHA256)
    assert exc.value.field == "StartupLocality"
    assert exc.value.offset == log.events[1].data_offset + 16
    short = parse_event_log(
        SHA256_ONLY + agile_record(0, EventType.EV_NO_ACTION, {}, b"StartupLocality\x00")
    )
    with pytest.raises(MalformedEvidence) as exc:
        untrusted_startup_locality(short.events[1])
    assert exc.value.structure == "TCG_EfiStartupLocalityEvent"


def test_replay_rejects_pcr_out_of_range_and_missing_digests() -> None:
    log = parse_event_log(SHA256_ONLY + sha256_event(24, EventType.EV_SEPARATOR, bytes(4)))
    with pytest.raises(MalformedEvidence) as exc:
        replay(log, algorithm=ALG_SHA256)
    assert (exc.value.field, exc.value.offset) == ("pcrIndex", log.events[1].offset)
    two_banks = spec_id_record([(ALG_SHA1, 20), (ALG_SHA256, 32)])
    only_sha1 = agile_record(4, EventType.EV_SEPARATOR, {ALG_SHA1: bytes(20)}, bytes(4))
    log = parse_event_log(two_banks + only_sha1)
    assert list(replay_all(log)) == [ALG_SHA1]  # the incomplete sha256 bank is left out
    with pytest.raises(MalformedEvidence) as exc:
        replay(log, algorithm=ALG_SHA256)
    assert exc.value.field == "digests" and exc.value.offset == log.events[1].offset + 8


def test_unknown_algorithm_declared_by_spec_id_parses() -> None:
    spec = spec_id_record([(ALG_SHA256, 32), (0x1234, 3)])
    record = agile_record(
        4, EventType.EV_SEPARATOR, {0x1234: b"abc", ALG_SHA256: bytes(32)}, bytes(4)
    )
    log = parse_event_log(spec + record)
    assert log.algorithms == (ALG_SHA256, 0x1234)
    assert log.events[1].digests == {0x1234: b"abc", ALG_SHA256: bytes(32)}
    assert list(replay_all(log)) == [ALG_SHA256]
    with pytest.raises(UnsupportedEvidence):
        replay(log, algorithm=0x1234)


def test_separator_error_value() -> None:
    err = (1).to_bytes(4, "little")
    log = parse_event_log(
        SHA256_ONLY
        + agile_record(0, EventType.EV_SEPARATOR, {ALG_SHA256: hashlib.sha256(err).digest()}, b"E")
    )
    sep = untrusted_separator(log.events[1])
    assert sep.is_error and sep.value is None and sep.data == b"E"


def malformed(data: bytes) -> MalformedEvidence:
    with pytest.raises(MalformedEvidence) as exc:
        parse_event_log(data)
    return exc.value


def test_empty_and_all_zero_logs() -> None:
    assert malformed(b"").reason == "log is empty"
    assert malformed(bytes(4096)).reason == "log is all zeros"


def test_truncated_header() -> None:
    data = bytes.fromhex(
        "00000000"  # pcrIndex
        "03000000"  # eventType EV_NO_ACTION
        "0000000000000000000000000001"  # digest: 14 of 20 bytes, then the log ends
    )
    exc = malformed(data)
    assert (exc.structure, exc.field, exc.offset) == ("TCG_PCClientPCREvent", "digest", 8)


def test_legacy_event_size_past_the_end() -> None:
    data = bytes.fromhex(
        "00000000"  # pcrIndex
        "08000000"  # eventType EV_S_CRTM_VERSION
        "0000000000000000000000000000000000000000"  # digest
        "ffffff7f"  # eventDataSize 0x7FFFFFFF
        "0000"  # 2 bytes of event
    )
    exc = malformed(data)
    assert (exc.structure, exc.field, exc.offset) == ("TCG_PCClientPCREvent", "eventDataSize", 28)
    assert "2147483647" in exc.reason


# The Spec ID record shared by the crypto-agile cases: 32-byte SHA-1 header + 33 bytes of data.
SPEC_ID_SHA256 = bytes.fromhex(
    "00000000"  # pcrIndex 0
    "03000000"  # eventType EV_NO_ACTION
    "0000000000000000000000000000000000000000"  # digest (zeros)
    "21000000"  # eventDataSize 33
    "53706563204944204576656e74303300"  # "Spec ID Event03\0"
    "00000000"  # platformClass
    "00020002"  # specVersionMinor 0, Major 2, errata 0, uintnSize 2
    "01000000"  # numberOfAlgorithms 1
    "0b002000"  # algorithmId sha256, digestSize 32
    "00"  # vendorInfoSize 0
)
SPEC_ID_END = len(SPEC_ID_SHA256)  # 65: first TCG_PCR_EVENT2


def test_hand_made_spec_id_is_sha256_only() -> None:
    log = parse_event_log(SPEC_ID_SHA256 + sha256_event(7, EventType.EV_SEPARATOR, bytes(4)))
    assert log.algorithms == (ALG_SHA256,) and log.events[1].offset == SPEC_ID_END


def test_digest_count_huge() -> None:
    data = SPEC_ID_SHA256 + bytes.fromhex(
        "07000000"  # pcrIndex 7
        "04000000"  # eventType EV_SEPARATOR
        "ffffffff"  # digests.count 0xFFFFFFFF (the Spec ID event declares 1 algorithm)
        "0b00" + "00" * 32  # one sha256 digest
    )
    exc = malformed(data)
    assert (exc.structure, exc.field, exc.offset) == ("TCG_PCR_EVENT2", "digests.count", 73)


def test_agile_event_size_past_the_end() -> None:
    data = (
        SPEC_ID_SHA256
        + bytes.fromhex(
            "07000000"  # pcrIndex 7
            "04000000"  # eventType EV_SEPARATOR
            "01000000"  # digests.count 1
            "0b00"
            + "11"
            * 32  # sha256 digest
            + "00001000"  # eventSize 0x100000
            "00000000"  # 4 bytes of event
        )
    )
    exc = malformed(data)
    assert (exc.structure, exc.field, exc.offset) == ("TCG_PCR_EVENT2", "eventSize", 111)


def test_unknown_algorithm_in_event() -> None:
    data = SPEC_ID_SHA256 + bytes.fromhex(
        "07000000"  # pcrIndex 7
        "04000000"  # eventType EV_SEPARATOR
        "01000000"  # digests.count 1
        "0c00"
        + "00" * 48  # sha384: not declared by the Spec ID event, size unknown
        + "04000000"
        + "00000000"  # eventSize, event
    )
    exc = malformed(data)
    assert (exc.structure, exc.field, exc.offset) == ("TCG_PCR_EVENT2", "digests[0].hashAlg", 77)
    assert "0x000c" in exc.reason


def test_duplicate_digest_in_event() -> None:
    two = spec_id_record([(ALG_SHA1, 20), (ALG_SHA256, 32)])
    record = (
        struct.pack("<III", 7, EventType.EV_SEPARATOR, 2)  # pcr, type, count 2
        + struct.pack("<H", ALG_SHA256)
        + bytes(32)  # sha256
        + struct.pack("<H", ALG_SHA256)
        + bytes(32)  # sha256 again
        + struct.pack("<I", 4)
        + bytes(4)
    )
    exc = malformed(two + record)
    assert (exc.field, exc.offset) == ("digests[1].hashAlg", len(two) + 12 + 34)


def test_hostile_spec_id_events() -> None:
    def spec(body: bytes) -> bytes:
        return legacy_record(0, EventType.EV_NO_ACTION, b"Spec ID Event03\x00" + body)

    huge = spec(
        bytes.fromhex(
            "00000000"  # platformClass
            "00020002"  # versions, uintnSize
            "ffffffff"  # numberOfAlgorithms 0xFFFFFFFF
            "0b002000"  # one algorithm
            "00"  # vendorInfoSize
        )
    )
    exc = malformed(huge)
    assert exc.structure == "TCG_EfiSpecIDEvent (event 0)"
    assert (exc.field, exc.offset) == ("numberOfAlgorithms", 32 + 24)
    none = spec(bytes.fromhex("00000000000200020000000000"))  # numberOfAlgorithms 0
    assert malformed(none).field == "numberOfAlgorithms"
    wrong_size = spec(bytes.fromhex("0000000000020002010000000b00140000"))
    exc = malformed(wrong_size)  # sha256 declared with 20-byte digests
    assert (exc.field, exc.offset) == ("digestSizes[0].digestSize", 32 + 30)
    dup = spec(bytes.fromhex("0000000000020002020000000b0020000b00200000"))
    assert malformed(dup).field == "digestSizes[1].algorithmId"
    trailing = spec(bytes.fromhex("0000000000020002010000000b00200000ff"))
    assert malformed(trailing).field == "vendorInfo"
    vendor_past_end = spec(bytes.fromhex("0000000000020002010000000b00200005ff"))
    assert malformed(vendor_past_end).field == "vendorInfo"


def _event(event_type: int, data: bytes, data_offset: int = 1000) -> Event:
    return Event(
        0, 0, EventType.untrusted_lookup(event_type), {}, data, data_offset - 32, data_offset
    )


def test_malformed_efi_variable() -> None:
    data = bytes.fromhex(
        "61dfe48bca93d211aa0d00e098032b8c"  # VariableName EFI_GLOBAL_VARIABLE
        "0a00000000000000"  # UnicodeNameLength 10
        "ffffffffffffff7f"  # VariableDataLength 2^63-1
        "5300650063007500720065004200"  # "SecureB" ...
    )
    with pytest.raises(MalformedEvidence) as exc:
        untrusted_efi_variable(_event(EventType.EV_EFI_VARIABLE_DRIVER_CONFIG, data))
    assert exc.value.structure == "UEFI_VARIABLE_DATA (event 0)"
    assert (exc.value.field, exc.value.offset) == ("UnicodeNameLength", 1016)
    bad_utf16 = bytes.fromhex(
        "61dfe48bca93d211aa0d00e098032b8c0100000000000000000000000000000000d8"
    )  # a lone high surrogate
    with pytest.raises(MalformedEvidence) as exc:
        untrusted_efi_variable(_event(EventType.EV_EFI_VARIABLE_BOOT, bad_utf16))
    assert (exc.value.field, exc.value.offset) == ("UnicodeName", 1032)


def test_malformed_image_load() -> None:
    head = bytes(24)  # ImageLocationInMemory, ImageLengthInMemory, ImageLinkTimeAddress
    past_end = head + bytes.fromhex("ffffffff00000000")  # LengthOfDevicePath 2^32-1
    app = EventType.EV_EFI_BOOT_SERVICES_APPLICATION
    with pytest.raises(MalformedEvidence) as exc:
        untrusted_image_load(_event(app, past_end))
    assert (exc.value.field, exc.value.offset) == ("LengthOfDevicePath", 1024)
    short_node = head + bytes.fromhex(
        "0400000000000000"  # LengthOfDevicePath 4
        "04040200"  # File Path node with Length 2 (< its own 4-byte header)
    )
    with pytest.raises(MalformedEvidence) as exc:
        untrusted_image_load(_event(app, short_node))
    assert exc.value.structure == "EFI_DEVICE_PATH_PROTOCOL (event 0)"
    assert (exc.value.field, exc.value.offset) == ("node[0].Length", 1034)
    node_past_path = head + bytes.fromhex("0600000000000000040440005c00")
    with pytest.raises(MalformedEvidence) as exc:
        untrusted_image_load(_event(app, node_past_path))
    assert exc.value.field == "node[0].data"
    ok = head + bytes.fromhex("0e0000000000000004040a005c00610000007fff0400")
    image = untrusted_image_load(_event(app, ok))
    assert image.file_path == "\\a" and image.trailing_bytes == 0


def test_malformed_sipa() -> None:
    tag = EventType.EV_EVENT_TAG
    past_end = bytes.fromhex("01000140100000000200020008000000")  # 16 > 8 left
    with pytest.raises(MalformedEvidence) as exc:
        untrusted_sipa_events(_event(tag, past_end))
    assert (exc.value.field, exc.value.offset) == ("taggedEventDataSize", 1004)
    inner = bytes.fromhex("02000200ffffffff")  # child claims 4 GiB inside its container
    nested = struct.pack("<II", 0x40010001, len(inner)) + inner
    with pytest.raises(MalformedEvidence) as exc:
        untrusted_sipa_events(_event(tag, nested))
    assert (exc.value.field, exc.value.offset) == ("taggedEventDataSize", 1012)
    deep = b""
    for _ in range(40):  # containers nested 40 deep
        deep = struct.pack("<II", 0x40010001, len(deep)) + deep
    with pytest.raises(MalformedEvidence) as exc:
        untrusted_sipa_events(_event(tag, deep))
    assert "nested deeper" in exc.value.reason
    ok = struct.pack("<II", 0x40010001, 9) + struct.pack("<II", 0x00040001, 1) + b"\x00"
    (boundary,) = untrusted_sipa_events(_event(tag, ok))
    assert boundary.children[0].tag == 0x00040001 and boundary.children[0].offset == 1008


def test_malformed_strings() -> None:
    with pytest.raises(MalformedEvidence) as exc:
        untrusted_ipl_string(_event(EventType.EV_IPL, b"grub_cmd: \xff\xfe"))
    assert (exc.value.field, exc.value.offset) == ("event", 1010)
    assert untrusted_action_string(_event(EventType.EV_ACTION, b"Start Option ROM Scan")) == (
        "Start Option ROM Scan"
    )
    assert untrusted_ipl_string(_event(EventType.EV_IPL, b"kernel_cmdline: ro quiet\x00")) == (
        "kernel_cmdline: ro quiet"
    )
