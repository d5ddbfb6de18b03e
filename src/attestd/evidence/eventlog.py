"""TCG PC Client event logs (``binary_bios_measurements``, the Windows WBCL) and PCR replay.

Parse only: no judgement and no signature checking. Everything in an :class:`EventLog` is
**untrusted** until its replay has been compared with PCR values from a verified quote; even then
only the digests are bound, never the event type or the event data (an attacker who controls the
log can label any digest with any type and any data, see go-attestation's
``docs/event-log-disclosure.md``). Helpers that read typed event data are therefore named
``untrusted_*``; the caller must decide which events to believe (for example, only those whose data
hashes to the replayed digest).

Spec references (all little-endian):

* TCG PC Client Platform Firmware Profile Specification (PFP), Family 2.0, Level 00, Revision 1.05
  (v23): §10.2.1 ``TCG_PCClientPCREvent`` (the SHA-1 record), §10.2.2 ``TCG_PCR_EVENT2`` (the
  crypto-agile record, with ``TPML_DIGEST_VALUES``), §10.4.1 "Event Types" (Table 9),
  §10.4.5.1 "Specification ID Version Event" (``TCG_EfiSpecIDEvent``, "Spec ID Event03"),
  §10.4.5.3 "Startup Locality Event" (``TCG_EfiStartupLocalityEvent``), the other §10.4.5
  EV_NO_ACTION events (``TCG_HCRTMComponentEvent``, "H-CRTM CompMeas"), §10.4.3 EV_ACTION
  strings, §10.2.3 ``UEFI_IMAGE_LOAD_EVENT``, §10.2.6 ``UEFI_VARIABLE_DATA``.
* TCG PC Client Specific Implementation Specification for Conventional BIOS 1.21:
  ``TCG_PCClientTaggedEventStruct`` (the EV_EVENT_TAG data) and §3.3.2.2 "Error Conditions"
  (the EV_SEPARATOR error value).
* TCG EFI Protocol Specification rev 0.13 §5.1/§5.2 (the same two record formats).
* TPM 2.0 Library Part 1 rev 1.59 §34.3 (H-CRTM: PCR0 is reset to locality 4 by
  ``_TPM_Hash_Start``).
* Microsoft SIPA (System Integrity Platform Attestation) TLVs inside ``EV_EVENT_TAG``, as
  go-attestation ``attest/win_events.go`` reads them.

Format detection (PFP §10.2.1, tpm.md §2): the first record is always a SHA-1 record. If it is an
``EV_NO_ACTION`` whose data begins with ``"Spec ID Event03\\0"`` the rest of the log is
crypto-agile and the Spec ID event lists the digest algorithms and their sizes; otherwise the
whole log is legacy SHA-1 records.

Padding: logs read from sysfs, ACPI or a fixed buffer may end with zero bytes. When everything from
the start of a record to the end of the input is ``0x00``, parsing stops and the number of padding
bytes is kept in :attr:`EventLog.padding`. A record that is followed by anything but zeros is parsed
as a record, so padding can never hide data. (go-eventlog also treats a pcrIndex of 0xFFFFFFFF as
padding; Windows logs end with a real EV_NO_ACTION record there, the SIPA trust point, so it is
kept as an event. EV_NO_ACTION records are never replayed, whatever their PCR index.)
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType

from attestd._binary import Reader
from attestd.errors import MalformedEvidence, UnsupportedEvidence

__all__ = [
    "ALG_SHA1",
    "ALG_SHA256",
    "ALG_SHA384",
    "ALG_SHA512",
    "ALG_SM3_256",
    "NUM_PCRS",
    "SIPA_BOOTDEBUGGING",
    "SIPA_LOADEDMODULE_AGGREGATION",
    "SIPA_SAFEMODE",
    "SIPA_TRUSTBOUNDARY",
    "SIPA_VBS_IOMMU_REQUIRED",
    "SIPA_VBS_MANDATORY_ENFORCEMENT",
    "SIPA_VBS_VSM_REQUIRED",
    "SIPA_WINPE",
    "AlgorithmSize",
    "DevicePathNode",
    "EfiVariable",
    "Event",
    "EventLog",
    "EventType",
    "ImageLoad",
    "Separator",
    "SipaEvent",
    "SpecId",
    "algorithm_name",
    "parse_event_log",
    "replay",
    "replay_all",
    "untrusted_action_string",
    "untrusted_efi_variable",
    "untrusted_image_load",
    "untrusted_ipl_string",
    "untrusted_separator",
    "untrusted_sipa_events",
    "untrusted_startup_locality",
]

# TPM_ALG_ID values (TPM 2.0 Library Part 2, §6.3 Table 9).
ALG_SHA1 = 0x0004
ALG_SHA256 = 0x000B
ALG_SHA384 = 0x000C
ALG_SHA512 = 0x000D
ALG_SM3_256 = 0x0012
ALG_SHA3_256 = 0x0027
ALG_SHA3_384 = 0x0028
ALG_SHA3_512 = 0x0029

# alg id -> (name, digest size, hashlib name)
_HASHES: dict[int, tuple[str, int, str]] = {
    ALG_SHA1: ("sha1", 20, "sha1"),
    ALG_SHA256: ("sha256", 32, "sha256"),
    ALG_SHA384: ("sha384", 48, "sha384"),
    ALG_SHA512: ("sha512", 64, "sha512"),
    ALG_SM3_256: ("sm3_256", 32, "sm3"),
    ALG_SHA3_256: ("sha3_256", 32, "sha3_256"),
    ALG_SHA3_384: ("sha3_384", 48, "sha3_384"),
    ALG_SHA3_512: ("sha3_512", 64, "sha3_512"),
}

NUM_PCRS = 24
"""PC Client TPMs have PCRs 0-23 (PC Client Platform TPM Profile, §4.6.1)."""

SHA1_RECORD = "TCG_PCClientPCREvent"
AGILE_RECORD = "TCG_PCR_EVENT2"
SPEC_ID_SIGNATURE = b"Spec ID Event03\x00"
STARTUP_LOCALITY_SIGNATURE = b"StartupLocality\x00"
HCRTM_COMPONENT_SIGNATURE = b"H-CRTM CompMeas\x00"
_SIPA_TYPE_MASK = 0x000F0000
_SIPA_CONTAINER = 0x00010000
_SIPA_MAX_DEPTH = 16


def algorithm_name(alg: int) -> str:
    """``sha256`` for 0x000B; ``alg_0x1234`` for an algorithm attestd does not know."""
    known = _HASHES.get(alg)
    return known[0] if known else f"alg_0x{alg:04x}"


class EventType(IntEnum):
    """Event types, PFP §10.4.1 Table 9 (values from the spec; the names are the spec's).

    The type of an event is **untrusted**: it is not covered by the digest. Use
    :meth:`untrusted_lookup` to turn a raw value into a member; unknown values stay plain ints.
    """

    EV_PREBOOT_CERT = 0x00000000
    EV_POST_CODE = 0x00000001
    EV_UNUSED = 0x00000002
    EV_NO_ACTION = 0x00000003
    EV_SEPARATOR = 0x00000004
    EV_ACTION = 0x00000005
    EV_EVENT_TAG = 0x00000006
    EV_S_CRTM_CONTENTS = 0x00000007
    EV_S_CRTM_VERSION = 0x00000008
    EV_CPU_MICROCODE = 0x00000009
    EV_PLATFORM_CONFIG_FLAGS = 0x0000000A
    EV_TABLE_OF_DEVICES = 0x0000000B
    EV_COMPACT_HASH = 0x0000000C
    EV_IPL = 0x0000000D
    EV_IPL_PARTITION_DATA = 0x0000000E
    EV_NONHOST_CODE = 0x0000000F
    EV_NONHOST_CONFIG = 0x00000010
    EV_NONHOST_INFO = 0x00000011
    EV_OMIT_BOOT_DEVICE_EVENTS = 0x00000012
    EV_POST_CODE2 = 0x00000013
    EV_EFI_VARIABLE_DRIVER_CONFIG = 0x80000001
    EV_EFI_VARIABLE_BOOT = 0x80000002
    EV_EFI_BOOT_SERVICES_APPLICATION = 0x80000003
    EV_EFI_BOOT_SERVICES_DRIVER = 0x80000004
    EV_EFI_RUNTIME_SERVICES_DRIVER = 0x80000005
    EV_EFI_GPT_EVENT = 0x80000006
    EV_EFI_ACTION = 0x80000007
    EV_EFI_PLATFORM_FIRMWARE_BLOB = 0x80000008
    EV_EFI_HANDOFF_TABLES = 0x80000009
    EV_EFI_PLATFORM_FIRMWARE_BLOB2 = 0x8000000A
    EV_EFI_HANDOFF_TABLES2 = 0x8000000B
    EV_EFI_VARIABLE_BOOT2 = 0x8000000C
    EV_EFI_GPT_EVENT2 = 0x8000000D
    EV_EFI_HCRTM_EVENT = 0x80000010
    EV_EFI_VARIABLE_AUTHORITY = 0x800000E0
    EV_EFI_SPDM_FIRMWARE_BLOB = 0x800000E1
    EV_EFI_SPDM_FIRMWARE_CONFIG = 0x800000E2
    EV_EFI_SPDM_DEVICE_POLICY = 0x800000E3
    EV_EFI_SPDM_DEVICE_AUTHORITY = 0x800000E4

    @classmethod
    def untrusted_lookup(cls, value: int) -> EventType | int:
        """The member for ``value``, or ``value`` itself when the spec does not define it."""
        try:
            return cls(value)
        except ValueError:
            return value


def _event_type_name(value: int) -> str:
    t = EventType.untrusted_lookup(value)
    return t.name if isinstance(t, EventType) else f"0x{value:08x}"


@dataclass(frozen=True, slots=True)
class AlgorithmSize:
    """``TCG_EfiSpecIdEventAlgorithmSize`` (PFP §10.4.5.1): algorithmId u16, digestSize u16."""

    algorithm_id: int
    digest_size: int


@dataclass(frozen=True, slots=True)
class SpecId:
    """``TCG_EfiSpecIDEvent`` (PFP §10.4.5.1), the data of the first record of a crypto-agile log.

    Offsets within the event data: signature 0x00 (16 bytes, ``"Spec ID Event03\\0"``),
    platformClass 0x10 u32, specVersionMinor 0x14 u8, specVersionMajor 0x15 u8, specErrata 0x16 u8,
    uintnSize 0x17 u8, numberOfAlgorithms 0x18 u32, digestSizes[numberOfAlgorithms] (4 bytes each),
    vendorInfoSize u8, vendorInfo. Versions are recorded, not judged.
    """

    platform_class: int
    spec_version_minor: int
    spec_version_major: int
    spec_errata: int
    uintn_size: int
    algorithms: tuple[AlgorithmSize, ...]
    vendor_info: bytes


@dataclass(frozen=True, slots=True)
class Event:
    """One record of the log, either format.

    ``index`` is the record's position in the log (the Spec ID record of a crypto-agile log is
    index 0), ``offset`` the byte offset of the record and ``data_offset`` that of its event data.
    ``event_type`` is an :class:`EventType` when the value is known, else the raw int; like
    ``data`` it is **untrusted** (not covered by any digest). ``digests`` maps TPM_ALG_ID to the
    digest bytes: one SHA-1 digest for a legacy record, the ``TPML_DIGEST_VALUES`` of a
    crypto-agile one.
    """

    index: int
    pcr: int
    event_type: EventType | int
    digests: Mapping[int, bytes] = field(hash=False)
    data: bytes
    offset: int
    data_offset: int

    @property
    def untrusted_type_name(self) -> str:
        return _event_type_name(self.event_type)


@dataclass(frozen=True, slots=True)
class EventLog:
    """A parsed, unverified measurement log.

    ``spec_id`` is the Spec ID event of a crypto-agile log (``None`` for a legacy SHA-1 log);
    ``algorithms`` the TPM_ALG_IDs the log carries digests for (``(ALG_SHA1,)`` for a legacy log);
    ``padding`` the number of trailing zero bytes that were skipped.
    """

    spec_id: SpecId | None
    events: tuple[Event, ...]
    algorithms: tuple[int, ...]
    padding: int = 0


def parse_event_log(data: bytes) -> EventLog:
    """Parse a TCG PC Client event log in either format (see the module docstring).

    Raises :class:`MalformedEvidence` naming the record structure, the field and its absolute byte
    offset. Every count and size is checked against the bytes left before anything is read.
    """
    data = bytes(data)
    # Start of the trailing run of zero bytes: a record starting there or later is padding.
    content_end = len(data.rstrip(b"\x00"))
    if content_end == 0:
        raise MalformedEvidence(
            "TCG event log", "first event", 0, "log is empty" if not data else "log is all zeros"
        )
    r = Reader(data, SHA1_RECORD)
    first = _read_sha1_record(r, 0)
    spec_id: SpecId | None = None
    if first.event_type == EventType.EV_NO_ACTION and first.data.startswith(SPEC_ID_SIGNATURE):
        spec_id = _parse_spec_id(first)
    events = [first]
    if spec_id is None:
        algorithms: tuple[int, ...] = (ALG_SHA1,)
        while r.offset < content_end:
            events.append(_read_sha1_record(r, len(events)))
    else:
        sizes = {a.algorithm_id: a.digest_size for a in spec_id.algorithms}
        algorithms = tuple(sizes)
        r = Reader(data, AGILE_RECORD, start=r.offset)
        while r.offset < content_end:
            events.append(_read_agile_record(r, len(events), sizes))
    return EventLog(spec_id, tuple(events), algorithms, len(data) - r.offset)


def _read_sha1_record(r: Reader, index: int) -> Event:
    """``TCG_PCClientPCREvent`` (PFP §10.2.1): pcrIndex u32 @0, eventType u32 @4, digest[20] @8,
    eventDataSize u32 @28, event[eventDataSize] @32."""
    start = r.offset
    pcr = r.u32("pcrIndex")
    event_type = r.u32("eventType")
    digests = {ALG_SHA1: r.take(20, "digest")}
    return _event(r, "eventDataSize", index, pcr, event_type, digests, start)


def _event(
    r: Reader,
    size_field: str,
    index: int,
    pcr: int,
    event_type: int,
    digests: dict[int, bytes],
    start: int,
) -> Event:
    """The record's event data (a UINT32 size, then the bytes) and the :class:`Event`."""
    size_at = r.offset
    size = r.u32(size_field)
    if size > r.remaining:
        raise r.fail(size_field, f"declares {size} bytes, {r.remaining} left", offset=size_at)
    data_offset = r.offset
    body = r.take(size, "event")
    return Event(
        index,
        pcr,
        EventType.untrusted_lookup(event_type),
        MappingProxyType(digests),
        body,
        start,
        data_offset,
    )


def _read_agile_record(r: Reader, index: int, sizes: Mapping[int, int]) -> Event:
    """``TCG_PCR_EVENT2`` (PFP §10.2.2): pcrIndex u32 @0, eventType u32 @4, digests
    (``TPML_DIGEST_VALUES``: count u32 @8, then count x {hashAlg u16, digest[size from the Spec ID
    event]}), eventSize u32, event[eventSize]."""
    start = r.offset
    pcr = r.u32("pcrIndex")
    event_type = r.u32("eventType")
    count_at = r.offset
    count = r.u32("digests.count")
    if count > len(sizes):
        raise r.fail(
            "digests.count",
            f"{count} digests, but the Spec ID event declares {len(sizes)} algorithms",
            offset=count_at,
        )
    digests: dict[int, bytes] = {}
    for i in range(count):
        alg_at = r.offset
        alg = r.u16(f"digests[{i}].hashAlg")
        size = sizes.get(alg)
        if size is None:
            raise r.fail(
                f"digests[{i}].hashAlg",
                f"algorithm 0x{alg:04x} is not declared by the Spec ID event",
                offset=alg_at,
            )
        if alg in digests:
            raise r.fail(
                f"digests[{i}].hashAlg",
                f"duplicate digest for {algorithm_name(alg)}",
                offset=alg_at,
            )
        digests[alg] = r.take(size, f"digests[{i}].digest")
    return _event(r, "eventSize", index, pcr, event_type, digests, start)


def _parse_spec_id(event: Event) -> SpecId:
    """``TCG_EfiSpecIDEvent`` (PFP §10.4.5.1); see :class:`SpecId` for the layout."""
    r = Reader(event.data, "TCG_EfiSpecIDEvent")
    with _absolute(event):
        r.take(16, "signature")
        platform_class = r.u32("platformClass")
        minor, major, errata, uintn = r.take(4, "specVersion")
        n_at = r.offset
        n = r.u32("numberOfAlgorithms")
        if n == 0:
            raise r.fail("numberOfAlgorithms", "no digest algorithms", offset=n_at)
        if n * 4 > r.remaining:
            raise r.fail(
                "numberOfAlgorithms",
                f"{n} algorithms need {n * 4} bytes, {r.remaining} left",
                offset=n_at,
            )
        algorithms: list[AlgorithmSize] = []
        seen: set[int] = set()
        for i in range(n):
            at = r.offset
            alg = r.u16(f"digestSizes[{i}].algorithmId")
            size = r.u16(f"digestSizes[{i}].digestSize")
            if alg in seen:
                raise r.fail(
                    f"digestSizes[{i}].algorithmId", f"duplicate algorithm 0x{alg:04x}", offset=at
                )
            known = _HASHES.get(alg)
            if known is not None and known[1] != size:
                raise r.fail(
                    f"digestSizes[{i}].digestSize",
                    f"{known[0]} digests are {known[1]} bytes, not {size}",
                    offset=at + 2,
                )
            seen.add(alg)
            algorithms.append(AlgorithmSize(alg, size))
        vendor_size = r.take(1, "vendorInfoSize")[0]
        vendor_info = r.take(vendor_size, "vendorInfo")
        r.expect_end("vendorInfo")
    return SpecId(platform_class, minor, major, errata, uintn, tuple(algorithms), vendor_info)


@contextmanager
def _absolute(event: Event) -> Iterator[None]:
    """Rebase :class:`MalformedEvidence` offsets from within ``event.data`` to the whole log."""
    try:
        yield
    except MalformedEvidence as exc:
        raise MalformedEvidence(
            f"{exc.structure} (event {event.index})",
            exc.field,
            exc.offset + event.data_offset,
            exc.reason,
        ) from None


# ---------------------------------------------------------------------------------------------
# Replay


def _hasher(alg: int) -> Callable[[bytes], bytes] | None:
    known = _HASHES.get(alg)
    if known is None:
        return None
    name = known[2]
    try:
        hashlib.new(name)
    except ValueError:  # e.g. sm3 on an OpenSSL build without it
        return None
    return lambda b: hashlib.new(name, b).digest()


def _pcr0_locality(log: EventLog) -> tuple[int, Event | None]:
    """The locality PCR0 was reset to before its first extend, and the event that says so.

    * An ``EV_EFI_HCRTM_EVENT`` in PCR0 means an H-CRTM measured the first code with
      ``_TPM_Hash_Start`` at locality 4, which resets PCR0 to 4 (TPM 2.0 Library Part 1 §34.3)
      and extends the H-CRTM digest (that event itself). It must be PCR0's first measurement;
      it wins over any StartupLocality event (as tpm2-tools >= 5.6 does).
    * Otherwise a StartupLocality ``EV_NO_ACTION`` in PCR0 before PCR0's first measurement gives
      the locality ``TPM2_Startup`` was sent from, 0 or 3 (PFP §10.4.5.3); PCR0 starts at
      ``00..00 || locality``. Later StartupLocality events are ignored (the TPM was already started).
    * ``"H-CRTM CompMeas"`` ``EV_NO_ACTION`` events (PFP §10.4.5) only describe what the H-CRTM
      measured; like every ``EV_NO_ACTION`` they are never extended and do not change the start.
    """
    locality = 0
    source: Event | None = None
    extended = False
    for e in log.events:
        if e.pcr != 0:
            continue
        if e.event_type == EventType.EV_NO_ACTION:
            value = untrusted_startup_locality(e)
            if value is not None and not extended:
                locality, source = value, e
            continue
        if e.event_type == EventType.EV_EFI_HCRTM_EVENT:
            if extended:
                raise MalformedEvidence(
                    _record(log), "eventType", e.offset + 4, "H-CRTM event after other PCR0 events"
                )
            locality, source = 4, e
        extended = True
    if locality > 4 and source is not None:
        raise MalformedEvidence(
            "TCG_EfiStartupLocalityEvent",
            "StartupLocality",
            source.data_offset + 16,
            f"locality {locality} does not exist (0-4)",
        )
    return locality, source


def _record(log: EventLog) -> str:
    return SHA1_RECORD if log.spec_id is None else AGILE_RECORD


def replay(log: EventLog, *, algorithm: int) -> dict[int, bytes]:
    """Replay the log into one PCR bank: ``{pcr: value}`` for every PCR the log extends.

    Only PCRs with at least one extending event are returned; the others were not touched by the
    log and still hold their reset value (zeros for PCR 0-16 and 23; PCR 17-22 are all ones until a
    DRTM launch). Each PCR starts at zero, except PCR0, whose start value is the locality byte
    ``00..00 || L`` (see :func:`_pcr0_locality`); then ``PCR = H(PCR || digest)`` for every event
    in log order except ``EV_NO_ACTION`` (PFP §10.4.5: never extended).

    ``algorithm`` is a TPM_ALG_ID. A legacy SHA-1 log replays only ``ALG_SHA1``. Raises
    :class:`UnsupportedEvidence` if the log carries no digests for ``algorithm`` (or attestd cannot
    compute it), and :class:`MalformedEvidence` for an extending event outside PCR 0-23, one
    without a digest for ``algorithm``, or an impossible PCR0 locality.
    """
    if algorithm not in log.algorithms:
        raise UnsupportedEvidence(f"the event log has no {algorithm_name(algorithm)} digests")
    hash_ = _hasher(algorithm)
    if hash_ is None:
        raise UnsupportedEvidence(f"cannot compute {algorithm_name(algorithm)} digests")
    size = _HASHES[algorithm][1]  # a Spec ID event declaring another size does not parse
    locality, _ = _pcr0_locality(log)
    pcrs: dict[int, bytes] = {}
    record = _record(log)
    for e in log.events:
        if e.event_type == EventType.EV_NO_ACTION:
            continue
        if e.pcr >= NUM_PCRS:
            raise MalformedEvidence(record, "pcrIndex", e.offset, f"PCR {e.pcr} is not 0-23")
        digest = e.digests.get(algorithm)
        if digest is None:
            raise MalformedEvidence(
                record,
                "digests",
                e.offset + 8,
                f"event {e.index} has no {algorithm_name(algorithm)} digest",
            )
        current = pcrs.get(e.pcr)
        if current is None:
            current = bytes(size - 1) + bytes([locality if e.pcr == 0 else 0])
        pcrs[e.pcr] = hash_(current + digest)
    return pcrs


def replay_all(log: EventLog) -> dict[int, dict[int, bytes]]:
    """:func:`replay` for every bank the log carries: ``{alg_id: {pcr: value}}``.

    A bank is carried when every extending event has a digest for it. The Spec ID event may
    declare more algorithms than the events carry (tpm2-tools' one-event test logs declare
    sha384/sha512 and give only sha1/sha256 digests); such banks, and banks whose hash attestd
    cannot compute, are left out, and :func:`replay` on them raises."""
    out: dict[int, dict[int, bytes]] = {}
    for alg in log.algorithms:
        if _hasher(alg) is None:
            continue
        if all(alg in e.digests for e in log.events if e.event_type != EventType.EV_NO_ACTION):
            out[alg] = replay(log, algorithm=alg)
    return out


# ---------------------------------------------------------------------------------------------
# Typed event data (untrusted: parse on demand, only for events the caller chose to believe)


def _expect_type(event: Event, structure: str, *types: EventType) -> None:
    if event.event_type not in types:
        wanted = ", ".join(t.name for t in types)
        raise MalformedEvidence(
            structure,
            "eventType",
            event.offset + 4,
            f"event {event.index} is {_event_type_name(event.event_type)}, not {wanted}",
        )


def _u64(r: Reader, name: str) -> int:
    return int.from_bytes(r.take(8, name), "little")


def _utf16(r: Reader, raw: bytes, name: str, at: int) -> str:
    try:
        return raw.decode("utf-16-le")
    except UnicodeDecodeError as exc:
        raise r.fail(name, f"not UTF-16LE: {exc.reason}", offset=at) from None


@dataclass(frozen=True, slots=True)
class EfiVariable:
    """``UEFI_VARIABLE_DATA`` (PFP §10.2.6): VariableName GUID @0 (16 bytes, EFI_GUID byte
    order), UnicodeNameLength u64 @16 (in UTF-16 code units), VariableDataLength u64 @24,
    UnicodeName @32 (UTF-16LE, not NUL-terminated), VariableData.

    ``trailing_bytes`` counts the bytes after VariableData. Real logs have them: shim measures
    its ``EV_EFI_VARIABLE_AUTHORITY`` events with the ``sizeof`` of the C struct, leaving 6 bytes
    of slack (debian-10, cos-85/93, sb_cert logs). They are not part of the variable.
    """

    guid: uuid.UUID
    name: str
    data: bytes
    trailing_bytes: int


_VARIABLE_TYPES = (
    EventType.EV_EFI_VARIABLE_DRIVER_CONFIG,
    EventType.EV_EFI_VARIABLE_BOOT,
    EventType.EV_EFI_VARIABLE_BOOT2,
    EventType.EV_EFI_VARIABLE_AUTHORITY,
)


def untrusted_efi_variable(event: Event) -> EfiVariable:
    """The ``UEFI_VARIABLE_DATA`` of an EV_EFI_VARIABLE_DRIVER_CONFIG / _BOOT / _BOOT2 /
    _AUTHORITY event (SecureBoot, PK, KEK, db, dbx, Boot####, the db entry that verified an
    image). Trailing bytes after VariableData are an error."""
    _expect_type(event, "UEFI_VARIABLE_DATA", *_VARIABLE_TYPES)
    r = Reader(event.data, "UEFI_VARIABLE_DATA")
    with _absolute(event):
        guid = uuid.UUID(bytes_le=r.take(16, "VariableName"))
        name_len = _u64(r, "UnicodeNameLength")
        data_len = _u64(r, "VariableDataLength")
        if name_len * 2 + data_len > r.remaining:
            raise r.fail(
                "UnicodeNameLength",
                f"name ({name_len} chars) and data ({data_len} bytes) exceed the "
                f"{r.remaining} bytes left",
                offset=16,
            )
        name_at = r.offset
        name = _utf16(r, r.take(name_len * 2, "UnicodeName"), "UnicodeName", name_at)
        value = r.take(data_len, "VariableData")
    return EfiVariable(guid, name, value, r.remaining)


@dataclass(frozen=True, slots=True)
class DevicePathNode:
    """``EFI_DEVICE_PATH_PROTOCOL`` node (UEFI 2.10 §10.3.1): Type u8, SubType u8, Length u16
    (including this 4-byte header), then node data."""

    type: int
    subtype: int
    data: bytes

    @property
    def is_file_path(self) -> bool:
        """Media Device Path / File Path Media Device Path (UEFI §10.3.5.4)."""
        return self.type == 0x04 and self.subtype == 0x04


@dataclass(frozen=True, slots=True)
class ImageLoad:
    """``UEFI_IMAGE_LOAD_EVENT`` (PFP §10.2.3): ImageLocationInMemory u64 @0,
    ImageLengthInMemory u64 @8, ImageLinkTimeAddress u64 @16, LengthOfDevicePath u64 @24,
    DevicePath @32 (parsed into nodes up to the End of Entire Device Path node).

    ``trailing_bytes`` counts the bytes after the device path. Real logs have 8 or 9: EDK2 and
    shim size the event with the ``sizeof`` of the C struct, and shim's own loader logs
    LengthOfDevicePath 0 followed by slack (rhel8, debian-10, cos, keylime mb_log).
    """

    image_location_in_memory: int
    image_length_in_memory: int
    image_link_time_address: int
    device_path: tuple[DevicePathNode, ...]
    trailing_bytes: int

    @property
    def file_path(self) -> str | None:
        """The File Path node(s) of the device path joined (``\\EFI\\BOOT\\BOOTX64.EFI``), or
        ``None`` when the image was not loaded from a file (e.g. a PCI option ROM)."""
        parts: list[str] = []
        for node in self.device_path:
            if node.is_file_path:
                # Node text was validated as UTF-16LE when parsed.
                parts.append(node.data.decode("utf-16-le").rstrip("\x00"))
        if not parts:
            return None
        path = parts[0]
        for part in parts[1:]:
            path = path.rstrip("\\") + "\\" + part.lstrip("\\")
        return path


_IMAGE_TYPES = (
    EventType.EV_EFI_BOOT_SERVICES_APPLICATION,
    EventType.EV_EFI_BOOT_SERVICES_DRIVER,
    EventType.EV_EFI_RUNTIME_SERVICES_DRIVER,
)


def untrusted_image_load(event: Event) -> ImageLoad:
    """The ``UEFI_IMAGE_LOAD_EVENT`` of an EV_EFI_BOOT_SERVICES_APPLICATION / _DRIVER /
    EV_EFI_RUNTIME_SERVICES_DRIVER event (shim, grub, systemd-boot, the kernel, option ROMs).
    The digest of such an event is the image's Authenticode hash, not a hash of this data."""
    _expect_type(event, "UEFI_IMAGE_LOAD_EVENT", *_IMAGE_TYPES)
    r = Reader(event.data, "UEFI_IMAGE_LOAD_EVENT")
    with _absolute(event):
        location = _u64(r, "ImageLocationInMemory")
        length = _u64(r, "ImageLengthInMemory")
        link = _u64(r, "ImageLinkTimeAddress")
        dp_len_at = r.offset
        dp_len = _u64(r, "LengthOfDevicePath")
        if dp_len > r.remaining:
            raise r.fail(
                "LengthOfDevicePath",
                f"declares {dp_len} bytes, {r.remaining} left",
                offset=dp_len_at,
            )
        nodes = _device_path(r.sub(dp_len, "EFI_DEVICE_PATH_PROTOCOL", "DevicePath"))
    return ImageLoad(location, length, link, nodes, r.remaining)


def _device_path(r: Reader) -> tuple[DevicePathNode, ...]:
    nodes: list[DevicePathNode] = []
    while r.remaining:
        at = r.offset
        i = len(nodes)
        node_type = r.take(1, f"node[{i}].Type")[0]
        subtype = r.take(1, f"node[{i}].SubType")[0]
        length = r.u16(f"node[{i}].Length")
        if length < 4:
            raise r.fail(f"node[{i}].Length", f"{length} is shorter than the header", offset=at + 2)
        data_at = r.offset
        data = r.take(length - 4, f"node[{i}].data")
        node = DevicePathNode(node_type, subtype, data)
        if node.is_file_path:
            _utf16(r, data, f"node[{i}].PathName", data_at)
        if node_type == 0x7F and subtype == 0xFF:  # End of Entire Device Path
            r.expect_end(f"node[{i}]")
            break
        nodes.append(node)
    return tuple(nodes)


@dataclass(frozen=True, slots=True)
class Separator:
    """An EV_SEPARATOR (PFP §10.4.1 Table 9; PC Client Implementation Spec 1.21 §3.3.2.2 "Error
    Conditions", as tcglog-parser reads it). ``value`` is the 4-byte
    little-endian value (0 or 0xFFFFFFFF normally), or ``None`` when the data is not 4 bytes
    (Windows uses ``"WBCL"``, an error separator may carry error details); ``is_error`` when a
    digest is that of the error value ``01 00 00 00``."""

    data: bytes
    value: int | None
    is_error: bool


_SEPARATOR_ERROR = (1).to_bytes(4, "little")


def untrusted_separator(event: Event) -> Separator:
    _expect_type(event, "EV_SEPARATOR", EventType.EV_SEPARATOR)
    value = int.from_bytes(event.data, "little") if len(event.data) == 4 else None
    is_error = False
    for alg, digest in event.digests.items():
        h = _hasher(alg)
        if h is not None and h(_SEPARATOR_ERROR) == digest:
            is_error = True
    return Separator(event.data, value, is_error)


def _text(event: Event, structure: str) -> str:
    raw = event.data
    if len(raw) >= 2 and not any(raw[1::2]) and (len(raw) % 2 == 0 or raw[-1] == 0):
        # UTF-16LE with every code unit < 0x100: systemd-boot's kernel command line (PCR 12, and
        # PCR 8 in old versions, which log an odd size that cuts the final NUL in half).
        raw, encoding = raw[: len(raw) & ~1], "utf-16-le"
    else:
        encoding = "utf-8"
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise MalformedEvidence(
            structure, "event", event.data_offset + exc.start, f"not {encoding}: {exc.reason}"
        ) from None
    return text.rstrip("\x00")


def untrusted_ipl_string(event: Event) -> str:
    """The text of an EV_IPL event: GRUB's ``grub_cmd: …`` / ``kernel_cmdline: …`` (PCR 8) and
    file paths (PCR 9), shim's ``MokList`` names (PCR 14), systemd-boot's kernel command line
    (UTF-16LE, PCR 12; PCR 8 in old versions). Trailing NULs are removed. The data is read as
    UTF-16LE when every odd byte is zero, otherwise it must be UTF-8."""
    _expect_type(event, "EV_IPL", EventType.EV_IPL)
    return _text(event, "EV_IPL")


def untrusted_action_string(event: Event) -> str:
    """The ASCII string of an EV_ACTION or EV_EFI_ACTION event (PFP §10.4.3, e.g. "Calling EFI
    Application from Boot Option", "Exit Boot Services Invocation")."""
    _expect_type(event, "EV_EFI_ACTION", EventType.EV_ACTION, EventType.EV_EFI_ACTION)
    return _text(event, _event_type_name(event.event_type))


def untrusted_startup_locality(event: Event) -> int | None:
    """The locality of a StartupLocality event (``TCG_EfiStartupLocalityEvent``, PFP §10.4.5.3:
    Signature ``"StartupLocality\\0"`` then one byte), or ``None`` when ``event`` is not one."""
    if event.event_type != EventType.EV_NO_ACTION:
        return None
    if not event.data.startswith(STARTUP_LOCALITY_SIGNATURE):
        return None
    if len(event.data) != len(STARTUP_LOCALITY_SIGNATURE) + 1:
        raise MalformedEvidence(
            "TCG_EfiStartupLocalityEvent",
            "StartupLocality",
            event.data_offset + 16,
            f"event data is {len(event.data)} bytes, not 17",
        )
    return event.data[16]


#: The SIPA tags (wbcl.h ``SIPAEVENT_*``) that claims are derived from.
SIPA_TRUSTBOUNDARY = 0x40010001
SIPA_LOADEDMODULE_AGGREGATION = 0x40010003
SIPA_BOOTDEBUGGING = 0x00040001
SIPA_SAFEMODE = 0x00050005
SIPA_WINPE = 0x00050006
SIPA_VBS_VSM_REQUIRED = 0x000A0001
SIPA_VBS_IOMMU_REQUIRED = 0x000A0003
SIPA_VBS_MANDATORY_ENFORCEMENT = 0x000A0006


@dataclass(frozen=True, slots=True)
class SipaEvent:
    """One Windows SIPA TLV: Type u32, Size u32, Data[Size]. Containers (``type & 0x000F0000 ==
    0x00010000``, e.g. TrustBoundary 0x40010001) hold further TLVs in ``children``. ``offset`` is
    the absolute offset of the TLV in the log."""

    tag: int
    data: bytes
    children: tuple[SipaEvent, ...]
    offset: int

    @property
    def is_container(self) -> bool:
        return self.tag & _SIPA_TYPE_MASK == _SIPA_CONTAINER


def untrusted_sipa_events(event: Event) -> tuple[SipaEvent, ...]:
    """The TLVs of an EV_EVENT_TAG event. The event data is a ``TCG_PCClientTaggedEventStruct``
    (taggedEventID u32, taggedEventDataSize u32, data), which Windows uses as a SIPA
    TLV; the data may hold several of them back to back. Only the framing is parsed: tag ids,
    sizes and nesting (at most 16 levels); the meaning of each SIPA value is left to the claims."""
    _expect_type(event, "TCG_PCClientTaggedEvent", EventType.EV_EVENT_TAG)
    with _absolute(event):
        return _sipa_list(event.data, 0, len(event.data), event.data_offset, 0)


def _sipa_list(buf: bytes, start: int, end: int, base: int, depth: int) -> tuple[SipaEvent, ...]:
    r = Reader(buf, "TCG_PCClientTaggedEvent", start=start, end=end)
    if depth > _SIPA_MAX_DEPTH:
        raise r.fail("taggedEventData", f"SIPA containers nested deeper than {_SIPA_MAX_DEPTH}")
    out: list[SipaEvent] = []
    while r.remaining:
        at = r.offset
        tag = r.u32("taggedEventID")
        size_at = r.offset
        size = r.u32("taggedEventDataSize")
        if size > r.remaining:
            raise r.fail(
                "taggedEventDataSize", f"declares {size} bytes, {r.remaining} left", offset=size_at
            )
        body_at = r.offset
        body = r.take(size, "taggedEventData")
        children: tuple[SipaEvent, ...] = ()
        if tag & _SIPA_TYPE_MASK == _SIPA_CONTAINER:
            children = _sipa_list(buf, body_at, body_at + size, base, depth + 1)
        out.append(SipaEvent(tag, body, children, base + at))
    return tuple(out)
