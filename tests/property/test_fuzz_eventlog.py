"""Hypothesis over the TCG event log parser, replay and typed-data helpers: real logs mutated
(truncated, bit-flipped, counts and sizes overwritten with huge values, bytes inserted and
deleted) never raise anything but MalformedEvidence, and hostile 2 MB inputs finish quickly."""

from __future__ import annotations

import base64
import json
import random
import struct
import time
from collections.abc import Callable, Mapping

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attestd.claims.tpm import events_json, tpm_claims
from attestd.errors import EvidenceError, MalformedEvidence, PcrDigestMismatch
from attestd.evidence.eventlog import (
    ALG_SHA256,
    Event,
    EventLog,
    EventType,
    parse_event_log,
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
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _windows_raw() -> bytes:
    dump = json.loads((TPM / "go-eventlog/legacydata/windows_gcp_shielded_vm.json").read_text())
    return base64.b64decode(dump["Log"]["Raw"])


SEEDS = [
    (TPM / "go-eventlog/tpm/arch-linux-workstation.bin").read_bytes(),  # agile, systemd-boot
    (TPM / "go-eventlog/tpm/debian-10.bin").read_bytes(),  # legacy SHA-1, shim slack
    (TPM / "go-attestation/sb_cert_eventlog").read_bytes(),  # agile, 3 banks
    (TPM / "keylime/binary_bios_measurements").read_bytes(),  # StartupLocality 3
    (TPM / "go-attestation/short_no_action_eventlog").read_bytes(),  # 49 bytes
    (TPM / "tpm2-tools/event-uefivar.bin").read_bytes(),  # Spec ID declares unused banks
    _windows_raw(),  # WBCL: SIPA EV_EVENT_TAG, trust point at PCR 0xFFFFFFFF
]
SEED_LOGS = [parse_event_log(s) for s in SEEDS]


def _field_offsets(log: EventLog) -> list[int]:
    """Where the counts and sizes of each seed are: the targets for hostile values."""
    out: list[int] = []
    for e in log.events:
        out += [e.offset, e.offset + 4, e.data_offset - 4]  # pcrIndex, eventType, size
        if log.spec_id is not None and e.index > 0:
            out.append(e.offset + 8)  # digests.count
        if e.event_type in (
            EventType.EV_EFI_VARIABLE_DRIVER_CONFIG,
            EventType.EV_EFI_VARIABLE_BOOT,
            EventType.EV_EFI_VARIABLE_AUTHORITY,
            EventType.EV_EFI_BOOT_SERVICES_APPLICATION,
        ):
            out += [e.data_offset + 16, e.data_offset + 24]  # name/data lengths, device path
        if e.event_type == EventType.EV_EVENT_TAG:
            out += [e.data_offset + 4, e.data_offset + 12]  # TLV sizes
    if log.spec_id is not None:
        out.append(log.events[0].data_offset + 24)  # numberOfAlgorithms
    return out


FIELDS = [_field_offsets(log) for log in SEED_LOGS]
HUGE = [0, 1, 0x7F, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]


@st.composite
def mutated_log(draw: st.DrawFn) -> bytes:
    which = draw(st.integers(0, len(SEEDS) - 1))
    data = bytearray(SEEDS[which])
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        op = draw(st.sampled_from(["flip", "truncate", "count", "count", "insert", "delete"]))
        i = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del data[i:]
        elif op == "count":  # a hostile 4-byte count or size, usually at a real field
            if draw(st.booleans()):
                i = draw(st.sampled_from(FIELDS[which]))
            value = draw(st.sampled_from([*HUGE, len(data) + 1]))
            data[i : i + 4] = value.to_bytes(4, "little")
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[i : i + draw(st.integers(1, 64))]
    return bytes(data)


HELPERS: list[Callable[[Event], object]] = [
    untrusted_action_string,
    untrusted_efi_variable,
    untrusted_image_load,
    untrusted_ipl_string,
    untrusted_separator,
    untrusted_sipa_events,
    untrusted_startup_locality,
]


HELPER_FOR: dict[int, Callable[[Event], object]] = {
    EventType.EV_EFI_ACTION: untrusted_action_string,
    EventType.EV_ACTION: untrusted_action_string,
    EventType.EV_EFI_VARIABLE_DRIVER_CONFIG: untrusted_efi_variable,
    EventType.EV_EFI_VARIABLE_BOOT: untrusted_efi_variable,
    EventType.EV_EFI_VARIABLE_BOOT2: untrusted_efi_variable,
    EventType.EV_EFI_VARIABLE_AUTHORITY: untrusted_efi_variable,
    EventType.EV_EFI_BOOT_SERVICES_APPLICATION: untrusted_image_load,
    EventType.EV_EFI_BOOT_SERVICES_DRIVER: untrusted_image_load,
    EventType.EV_EFI_RUNTIME_SERVICES_DRIVER: untrusted_image_load,
    EventType.EV_IPL: untrusted_ipl_string,
    EventType.EV_SEPARATOR: untrusted_separator,
    EventType.EV_EVENT_TAG: untrusted_sipa_events,
    EventType.EV_NO_ACTION: untrusted_startup_locality,
}


def exercise(data: bytes) -> None:
    """Parse, replay every bank and read every event as the typed structure its (untrusted)
    type selects; only MalformedEvidence may come out."""
    try:
        log = parse_event_log(data)
    except MalformedEvidence:
        return
    try:
        replay_all(log)
    except MalformedEvidence:
        pass
    for event in log.events:
        helper = HELPER_FOR.get(event.event_type)
        if helper is not None:
            try:
                helper(event)
            except MalformedEvidence:
                pass


@FUZZ
@given(mutated_log())
def test_mutated_real_logs(data: bytes) -> None:
    exercise(data)


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(data: bytes) -> None:
    exercise(data)


_QUOTED = [replay_all(log) for log in SEED_LOGS]


@FUZZ
@given(mutated_log(), st.sampled_from(_QUOTED))
def test_claims_from_mutated_logs_against_real_pcrs(
    data: bytes, quoted: Mapping[int, Mapping[int, bytes]]
) -> None:
    """The claims stage on a mutated log checked against a real log's PCRs (mostly a replay
    mismatch, whose message names an event): only evidence errors, and a named event exists."""
    try:
        log = parse_event_log(data)
        tpm_claims(log, quoted)
        events_json(log, replayed=quoted)
    except PcrDigestMismatch as exc:
        assert exc.event is None or any(e.index == exc.event for e in log.events)
        assert "PCR" in str(exc)
    except EvidenceError:
        pass


SPEC_SHA256 = SEEDS[0][: SEED_LOGS[0].events[1].offset]  # arch's Spec ID record (sha1+sha256)


@FUZZ
@given(st.binary(max_size=2048))
def test_random_records_after_a_valid_spec_id(data: bytes) -> None:
    exercise(SPEC_SHA256 + data)


# Typed-data parsers on their own: every real event body of each kind, mutated, with the type
# that selects the parser.
_TYPED = [
    (e.event_type, e.data)
    for log in SEED_LOGS
    for e in log.events
    if e.event_type
    in (
        EventType.EV_EFI_VARIABLE_DRIVER_CONFIG,
        EventType.EV_EFI_VARIABLE_AUTHORITY,
        EventType.EV_EFI_BOOT_SERVICES_APPLICATION,
        EventType.EV_EFI_BOOT_SERVICES_DRIVER,
        EventType.EV_EVENT_TAG,
        EventType.EV_IPL,
        EventType.EV_EFI_ACTION,
    )
]


@st.composite
def mutated_event(draw: st.DrawFn) -> Event:
    event_type, body = draw(st.sampled_from(_TYPED))
    data = bytearray(body)
    for _ in range(draw(st.integers(1, 3))):
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["flip", "truncate", "count", "insert"]))
        if op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del data[i:]
        elif op == "count":
            size = draw(st.sampled_from([2, 4, 8]))
            value = draw(st.sampled_from([*HUGE, 2**63, 2**64 - 1]))
            data[i : i + size] = value.to_bytes(8, "little")[:size]
        else:
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
    return Event(0, 0, event_type, {ALG_SHA256: bytes(32)}, bytes(data), 0, 32)


@FUZZ
@given(mutated_event())
def test_mutated_typed_event_data(event: Event) -> None:
    for helper in HELPERS:
        try:
            helper(event)
        except MalformedEvidence:
            pass


# ---------------------------------------------------------------------------------------------
# Runtime: nothing quadratic. Each 2 MB case takes under half a second here
# (parse, replay of every bank, typed data of every event); the bound is loose.

TWO_MB = 2 * 1024 * 1024
BOUND_SECONDS = 5.0


def _legacy_records() -> bytes:
    one = struct.pack("<II", 7, EventType.EV_SEPARATOR) + bytes(20) + struct.pack("<I", 0)
    return one * (TWO_MB // len(one))


def _agile_records() -> bytes:
    one = struct.pack("<IIIH", 4, EventType.EV_SEPARATOR, 1, ALG_SHA256) + bytes(32)
    one += struct.pack("<I", 0)
    return SPEC_ID_SHA256_ONLY + one * (TWO_MB // len(one))


def _sipa_flat() -> bytes:
    tlv = struct.pack("<II", 0x00020001, 0)
    body = tlv * (TWO_MB // 8)
    head = struct.pack("<II", 12, EventType.EV_EVENT_TAG) + bytes(20)
    return head + struct.pack("<I", len(body)) + body


SPEC_ID_SHA256_ONLY = (
    struct.pack("<II", 0, EventType.EV_NO_ACTION)
    + bytes(20)
    + struct.pack("<I", 33)
    + b"Spec ID Event03\x00"
    + struct.pack("<IBBBBIHHB", 0, 0, 2, 0, 2, 1, ALG_SHA256, 32, 0)
)

BIG: dict[str, Callable[[], bytes]] = {
    "zeros": lambda: bytes(TWO_MB),
    "random": lambda: random.Random(0).randbytes(TWO_MB),
    "random-after-spec-id": lambda: SPEC_SHA256 + random.Random(1).randbytes(TWO_MB),
    "legacy-32-byte-records": _legacy_records,
    "agile-50-byte-records": _agile_records,
    "one-event-of-262144-sipa-tlvs": _sipa_flat,
    "real-log-then-2mb-zero-padding": lambda: SEEDS[0] + bytes(TWO_MB),
}


@pytest.mark.parametrize("name", sorted(BIG))
def test_two_megabytes_finish_quickly(name: str) -> None:
    data = BIG[name]()
    start = time.perf_counter()
    exercise(data)
    assert time.perf_counter() - start < BOUND_SECONDS
