"""Claims from a verified TPM event log, with Azure Attestation's names and encodings.

Three things come out of a TCG log here, all only from events whose PCRs replay to the values of
a verified quote (:func:`verify_event_log`):

* ``events``: MAA's parsed log, ``{"Events": [...]}`` (:func:`events_json`);
* ``pcrs``: ``{"PCRs": [{"Digests": {...}, "Index": n}]}`` (:func:`pcrs_json`);
* the boolean boot claims ``secureBootEnabled``, ``bootDebuggingDisabled``, ``notSafeMode``,
  ``notWinPE``, ``vbsEnabled``, ``iommuEnabled`` and ``tpmVersion``, plus attestd's ``x-attestd-`` claims
  (:func:`boot_claims`).

**Ground truth.** The JSON format copies a real MAA token (Attestation-Client-Samples
``report_boot.claims.json``, ``x-ms-policy.outputEvents``: 50 events of a Windows machine). Every
event there carries its full event data (``RawData``) and its SHA-256 digest, so the log can be
rebuilt and fed back through :func:`events_json`; the output equals MAA's, byte for byte once
serialized (:func:`maa_json`). What that sample shows, and what attestd therefore does:

* Keys are sorted at every level (MAA serializes claims with sorted keys). ``EventSeq`` is the
  record's index in the log (the Spec ID record is 0). ``EV_NO_ACTION`` records are left out:
  they are never extended, so no quote covers them (MAA's sequence 0, the Spec ID record, and 34
  are missing).
* ``Digests`` maps ``SHA1``/``SHA256``/... to **base64url without padding**; so does ``RawData``
  (``""`` for empty data) and every byte string inside ``ProcessedData``. GUIDs are upper-case
  ``8BE4DF61-93CA-11D2-AA0D-00E098032B8C``.
* ``EventTypeString`` and ``ProcessedData`` appear together and only for the event types MAA
  decodes, and only when the decoding succeeds. ``EV_S_CRTM_CONTENTS``, ``EV_S_CRTM_VERSION``,
  ``EV_POST_CODE`` and ``EV_COMPACT_HASH`` have neither. ``EV_NONHOST_INFO`` with empty data gets
  ``ProcessedData: null``; with data, neither (both seen in the sample).
* ``EV_EFI_VARIABLE_*``: ``{UnicodeName, VariableData, VariableGuid}`` when the data is a
  ``UEFI_VARIABLE_DATA``. ``VariableData`` is base64url, except for PK/KEK/db/dbx/dbt/dbr, which
  are parsed ``EFI_SIGNATURE_LIST``\\ s (``[{SignatureType, SignatureTypeString, Signatures:
  [{SignatureData, SignatureOwner}]}]``). Firmware that measures only the variable's value
  (the sample's ``EV_EFI_VARIABLE_BOOT``) gets ``{VariableData: <RawData>}``; an
  ``EV_EFI_VARIABLE_AUTHORITY`` holding a bare ``EFI_SIGNATURE_DATA`` gets ``{VariableData:
  {SignatureData, SignatureOwner}}``.
* ``EV_EFI_PLATFORM_FIRMWARE_BLOB``: ``{BlobBase, BlobLength}``; ``EV_EFI_ACTION``: ``{Data}``;
  ``EV_SEPARATOR``: ``{"CappedHash[SHA256]": <digest>}``; ``EV_EFI_GPT_EVENT``:
  ``{Partitions, UEFIPartitionHeader}``; ``EV_EFI_BOOT_SERVICES_APPLICATION``:
  ``{DevicePath: {SubType, Type: {String, Value}} (first node only), ImageLengthInMemory,
  ImageLinkTimeAddress, ImageLocationInMemory}``.
* Windows ``EV_EVENT_TAG`` (SIPA): each TLV becomes ``EVENT_<name>`` (the ``SIPAEVENT_`` names of
  wbcl.h), containers become objects, and a few tags are always lists (loaded modules, authority
  keys, SI policies and signers). Six tags present in the sample are **not** rendered by MAA
  (MORBIT_NOT_CANCELABLE, HYPERVISOR_MMIO_NX_POLICY, HYPERVISOR_MSR_FILTER_POLICY, SMT_STATUS,
  LSAISO_CONFIG, HYPERVISOR_BOOT_DMA_PROTECTION); attestd renders exactly the tags whose
  rendering the sample shows and drops the rest (ELAM and DRTM tags included).

Not covered by the sample, so inferred [I] and marked in the tables below: digest names other than
``SHA256``; ``CappedHash[...]`` for other banks; enum strings beyond the values seen; device path
type names other than ``ACPI``; ``EV_EFI_BOOT_SERVICES_DRIVER``/``EV_EFI_RUNTIME_SERVICES_DRIVER``
and ``EV_EFI_VARIABLE_BOOT2`` rendered like their verified siblings; ``EFI_SIGNATURE_LIST``
type names other than X509 and SHA256; the ``Options`` text of a non-default SBCP. ``pcrs`` uses
**lower-case hex** digests: MAA's documented sample policy compares ``PCRs[].Digests.SHA256``
with a hex string (tpm-attestation-sample-policies.md); no real ``pcrs`` claim was available.

**Boot claims** follow MAA's documented 1.2 sample policies and Microsoft's PCPTool
(``TpmAttGetPlatformAttestationProperties``), never the label of an event alone: an event's type
and data are only believed when its data hashes to its digest in every verified bank.

* ``secureBootEnabled``: exactly one ``EV_EFI_VARIABLE_DRIVER_CONFIG`` in PCR 7 for
  EFI_GLOBAL_VARIABLE ``SecureBoot``, whose value is ``01``, data-bound. Otherwise ``false``.
* ``bootDebuggingDisabled`` / ``notSafeMode`` / ``notWinPE``: every SIPA BOOTDEBUGGING / SAFEMODE
  / WINPE value measured in PCRs 12, 13, 19, 20 is 0, and there is at least one (MAA's sample
  policy: ``ContainsOnlyValue(set, false)``). ``vbsEnabled``: every VBS_VSM_REQUIRED and
  VBS_MANDATORY_ENFORCEMENT value in PCRs 12 and 19 is 1, and there is at least one.
  ``iommuEnabled``: the same rule for VBS_IOMMU_REQUIRED [I: neither MAA's documentation nor
  PCPTool says which event MAA reads; this is the SIPA flag by which Windows requires the IOMMU
  for VBS, the measured counterpart of the claim's name].
  A SIPA event in those PCRs that is not data-bound, does not parse, or has a value of the wrong
  size makes all five ``false`` (fail closed).
* **Linux** (and any log without SIPA events in those PCRs): the five Windows claims are
  **absent**. They describe Windows boot configuration that such a log never measures; ``true``
  would assert what was not measured, and ``false`` would assert a bad Windows state. A policy
  requiring ``value == true`` fails closed either way.
* ``tpmVersion`` is ``"2.0"``: attestd verifies TPM 2.0 quotes only.
* attestd's own: ``x-attestd-verified-pcrs``; ``x-attestd-kernel-cmdline`` (GRUB's
  ``kernel_cmdline: ...`` / ``grub_kernel_cmdline ...`` in PCR 8, whose digest covers the command
  line; the last one wins); ``x-attestd-efi-boot-applications`` (PCR 4 Authenticode digests,
  hex per bank, with the image's file path, which **no digest covers**: a label only).

Not here: ``aikValidated``/``aikPubHash`` (they come from the AK, not the log),
``vbsReportPresent`` (:mod:`attestd.verify.tpm_request`: always false, VBS reports are not
supported) and the VBS enclave claims, ``bootEvents`` (:mod:`attestd.verify.tpm_request`
renders the boot log through :func:`events_json` the same way), and Linux IMA events
(``IMA_MEASUREMENT_EVENT``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from attestd._binary import Reader
from attestd.errors import (
    MalformedEvidence,
    PcrDigestMismatch,
    UnsupportedEvidence,
    VerificationError,
)
from attestd.evidence.eventlog import (
    ALG_SHA1,
    ALG_SHA256,
    ALG_SHA384,
    ALG_SHA512,
    ALG_SM3_256,
    Event,
    EventLog,
    EventType,
    SipaEvent,
    algorithm_name,
    replay_all,
    untrusted_action_string,
    untrusted_efi_variable,
    untrusted_image_load,
    untrusted_ipl_string,
    untrusted_sipa_events,
)

__all__ = [
    "WINDOWS_BOOT_CLAIMS",
    "VerifiedEventLog",
    "boot_claims",
    "events_json",
    "maa_json",
    "pcrs_json",
    "tpm_claims",
    "verify_event_log",
]

_PREFIX = "x-attestd-"  # the same prefix as attestd.claims.dcap.ATTESTD_PREFIX
TPM_VERSION = "2.0"
WINDOWS_BOOT_CLAIMS = (
    "bootDebuggingDisabled",
    "iommuEnabled",
    "notSafeMode",
    "notWinPE",
    "vbsEnabled",
)

EFI_GLOBAL_VARIABLE = uuid.UUID("8be4df61-93ca-11d2-aa0d-00e098032b8c")

# Bank names in ``Digests`` / ``CappedHash[...]``: SHA256 seen in MAA's sample, the rest [I].
_BANK_NAMES = {
    ALG_SHA1: "SHA1",
    ALG_SHA256: "SHA256",
    ALG_SHA384: "SHA384",
    ALG_SHA512: "SHA512",
    ALG_SM3_256: "SM3_256",
}
_HASHLIB = {ALG_SHA1: "sha1", ALG_SHA256: "sha256", ALG_SHA384: "sha384", ALG_SHA512: "sha512"}


def _bank_name(alg: int) -> str:
    return _BANK_NAMES.get(alg) or algorithm_name(alg).upper()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _guid(raw: bytes) -> str:
    return str(uuid.UUID(bytes_le=raw)).upper()


def _sorted(value: Any) -> Any:
    """MAA's key order: every object's keys sorted (the token is serialized that way)."""
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def maa_json(value: Any) -> str:
    """Serialize a claim value as MAA does in its tokens: compact, keys sorted. (Whether MAA
    escapes non-ASCII or ``+<>&'`` like .NET's default encoder is not visible in the sample;
    this escapes non-ASCII only.)"""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# ---------------------------------------------------------------------------------------------
# Replay against the quote


@dataclass(frozen=True, slots=True)
class VerifiedEventLog:
    """The part of a log that a verified quote vouches for.

    ``events`` are the extending events (no ``EV_NO_ACTION``) of ``pcrs``, in log order;
    ``banks`` the TPM_ALG_IDs whose replay equalled the quoted values. Only the digests in these
    banks are bound; an event's type and data are bound only where the data hashes to them.
    """

    log: EventLog
    events: tuple[Event, ...]
    banks: tuple[int, ...]
    pcrs: frozenset[int]


def _reset_value(pcr: int, size: int) -> bytes:
    # PC Client Platform TPM Profile: PCR 17-22 reset to all ones (until a DRTM launch).
    return b"\xff" * size if 17 <= pcr <= 22 else bytes(size)


def verify_event_log(
    log: EventLog,
    quoted: Mapping[int, Mapping[int, bytes]],
    *,
    pcrs: Collection[int] | None = None,
) -> VerifiedEventLog:
    """Replay ``log`` and compare it with ``quoted`` (``{alg_id: {pcr: value}}``, taken from a
    quote whose signature and ``pcrDigest`` the caller has verified).

    Every bank of ``quoted`` that the log carries (every extending event has a digest for it) is
    replayed and compared. ``pcrs`` defaults to the PCRs the log extends that every compared bank
    quotes; events of other PCRs are dropped. A selected PCR the log never extends must hold its
    reset value. Raises :class:`PcrDigestMismatch` naming the PCR, the bank and both values;
    :class:`UnsupportedEvidence` when the log carries none of the quoted banks;
    :class:`VerificationError` when an explicitly selected PCR is not in the quote.
    """
    replayed = replay_all(log)
    banks = tuple(alg for alg in sorted(quoted) if alg in replayed)
    if not banks:
        have = ", ".join(algorithm_name(a) for a in sorted(replayed)) or "none"
        want = ", ".join(algorithm_name(a) for a in sorted(quoted)) or "none"
        raise UnsupportedEvidence(
            f"the event log carries no quoted PCR bank (quote: {want}; log: {have})"
        )
    extended = {e.pcr for e in log.events if e.event_type != EventType.EV_NO_ACTION}
    if pcrs is None:
        selected = {p for p in extended if all(p in quoted[alg] for alg in banks)}
    else:
        selected = set(pcrs)
        for alg in banks:
            missing = sorted(selected - set(quoted[alg]))
            if missing:
                raise VerificationError(
                    f"PCR {missing[0]} is not in the quote's {algorithm_name(alg)} selection"
                )
    for alg in banks:
        name = algorithm_name(alg)
        for pcr in sorted(selected):
            expected = bytes(quoted[alg][pcr])
            got = replayed[alg].get(pcr)
            if got is None:
                got = _reset_value(pcr, len(expected))
            if got != expected:
                culprit, why = _mismatch_culprit(log, pcr, alg, banks)
                raise PcrDigestMismatch(
                    f"PCR {pcr} ({name} bank): the quote has {expected.hex()}, "
                    f"the event log replays to {got.hex()}; {why}",
                    selection=f"{name}:{pcr}",
                    event=None if culprit is None else culprit.index,
                )
    events = tuple(
        e for e in log.events if e.event_type != EventType.EV_NO_ACTION and e.pcr in selected
    )
    return VerifiedEventLog(log, events, banks, frozenset(selected))


#: Event types whose digest is, by definition, the hash of their event data (TCG PC Client
#: Platform Firmware Profile 1.05, §10.4.1 and §10.4.4): a digest that is not is a record that
#: was altered (or firmware that broke the rule).
_DATA_DIGEST_TYPES = frozenset(
    {
        EventType.EV_SEPARATOR,
        EventType.EV_ACTION,
        EventType.EV_EFI_ACTION,
        EventType.EV_EFI_VARIABLE_DRIVER_CONFIG,
        EventType.EV_EFI_VARIABLE_AUTHORITY,
        EventType.EV_EFI_GPT_EVENT,
        EventType.EV_EVENT_TAG,
    }
)


def _mismatch_culprit(
    log: EventLog, pcr: int, alg: int, banks: Iterable[int]
) -> tuple[Event | None, str]:
    """The event a replay mismatch of ``pcr`` in bank ``alg`` points at, and a sentence saying
    why. A quote holds only final values, so no verifier can always tell which record changed;
    this names, in order of evidence: the first event whose ``alg`` digest is not the hash of
    its data although its digest in another bank is (one bank's digest was altered); the first
    event of a type whose digest must be the hash of its data (:data:`_DATA_DIGEST_TYPES`) for
    which it is not; else the last event extending the PCR."""
    extending = [e for e in log.events if e.pcr == pcr and e.event_type != EventType.EV_NO_ACTION]
    if not extending:
        return None, "no event of the log extends it, so it should hold its reset value"
    name = algorithm_name(alg)
    hasher = _HASHLIB.get(alg)

    def matches(event: Event, bank: int) -> bool | None:
        h = _HASHLIB.get(bank)
        if h is None or bank not in event.digests:
            return None
        return hashlib.new(h, event.data).digest() == event.digests[bank]

    def where(event: Event) -> str:
        return f"event {event.index} ({event.untrusted_type_name} at offset {event.offset})"

    if hasher is not None:
        for event in extending:
            if matches(event, alg) is False and any(
                matches(event, other) for other in banks if other != alg
            ):
                return event, (
                    f"{where(event)} has a {name} digest that is not the hash of its data, "
                    "while its other digests are"
                )
        for event in extending:
            if event.event_type in _DATA_DIGEST_TYPES and matches(event, alg) is False:
                return event, (
                    f"{where(event)} has a {name} digest that is not the hash of its data, "
                    "as its type requires"
                )
    last = extending[-1]
    return last, (
        f"{len(extending)} events extend it (the first is event {extending[0].index}, the last "
        f"{where(last)}); which record differs from what was measured cannot be told from the "
        "final value"
    )


def _bound(event: Event, banks: Iterable[int]) -> bool:
    """Whether ``event.data`` hashes to the event's digest in every bank of ``banks`` that can be
    computed here (and at least one could)."""
    checked = False
    for alg in banks:
        name = _HASHLIB.get(alg)
        if name is None:
            continue
        if hashlib.new(name, event.data).digest() != event.digests.get(alg):
            return False
        checked = True
    return checked


# ---------------------------------------------------------------------------------------------
# ``pcrs``


def pcrs_json(pcr_values: Mapping[int, Mapping[int, bytes]]) -> dict[str, Any]:
    """MAA's ``pcrs`` claim from ``{alg_id: {pcr: value}}``: ``{"PCRs": [{"Digests": {"SHA1":
    hex, "SHA256": hex}, "Index": n}]}``, by index, lower-case hex (MAA's documented sample
    policy compares ``Digests.SHA256`` with hex)."""
    indexes = sorted({p for bank in pcr_values.values() for p in bank})
    out = []
    for index in indexes:
        digests = {
            _bank_name(alg): bytes(bank[index]).hex()
            for alg, bank in pcr_values.items()
            if index in bank
        }
        out.append({"Digests": digests, "Index": index})
    return _sorted({"PCRs": out})  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------------
# ``events``


class _NotRendered(Exception):
    """The event type has no ``ProcessedData`` in MAA's format, or its data did not decode."""


def events_json(
    log: EventLog,
    *,
    replayed: Mapping[int, Mapping[int, bytes]] | None,
    pcrs: Collection[int] | None = None,
) -> dict[str, Any]:
    """MAA's ``events`` claim: ``{"Events": [...]}`` (format in the module docstring).

    ``replayed`` is ``{alg_id: {pcr: value}}`` from a verified quote: the log is checked against
    it (:func:`verify_event_log`, which raises on a mismatch), only the events of the verified
    PCRs are rendered, and ``Digests`` lists only the verified banks. ``None`` renders every
    extending event with all its digests, unverified: for display and for comparing the parser
    with MAA's, never for claims.
    """
    if replayed is None:
        events = tuple(e for e in log.events if e.event_type != EventType.EV_NO_ACTION)
        banks: tuple[int, ...] | None = None
    else:
        verified = verify_event_log(log, replayed, pcrs=pcrs)
        events, banks = verified.events, verified.banks
    return {"Events": [_event_json(e, banks) for e in events]}


def _event_json(event: Event, banks: tuple[int, ...] | None) -> dict[str, Any]:
    digests = {
        _bank_name(alg): _b64(d)
        for alg, d in event.digests.items()
        if banks is None or alg in banks
    }
    out: dict[str, Any] = {
        "Digests": digests,
        "EventSeq": event.index,
        "EventType": int(event.event_type),
        "PcrIndex": event.pcr,
        "RawData": _b64(event.data),
    }
    render = _RENDERERS.get(int(event.event_type))
    if render is not None:
        try:
            processed = render(event, digests)
        except (_NotRendered, MalformedEvidence, ValueError):
            pass
        else:
            out["EventTypeString"] = EventType(int(event.event_type)).name
            out["ProcessedData"] = processed
    return _sorted(out)  # type: ignore[no-any-return]


def _u64(r: Reader, name: str) -> int:
    return int.from_bytes(r.take(8, name), "little")


def _utf16(raw: bytes) -> str:
    """UTF-16LE text up to the first NUL (names are NUL-padded or NUL-terminated)."""
    return raw.decode("utf-16-le").split("\x00", 1)[0]


def _separator(event: Event, digests: Mapping[str, str]) -> Any:
    return {f"CappedHash[{name}]": value for name, value in digests.items()}


def _efi_action(event: Event, digests: Mapping[str, str]) -> Any:
    return {"Data": untrusted_action_string(event)}


def _firmware_blob(event: Event, digests: Mapping[str, str]) -> Any:
    """``UEFI_PLATFORM_FIRMWARE_BLOB`` (PFP §10.2.4): BlobBase u64, BlobLength u64."""
    r = Reader(event.data, "UEFI_PLATFORM_FIRMWARE_BLOB")
    base = _u64(r, "BlobBase")
    length = _u64(r, "BlobLength")
    r.expect_end("BlobLength")
    return {"BlobBase": base, "BlobLength": length}


def _nonhost_info(event: Event, digests: Mapping[str, str]) -> Any:
    # MAA's sample: empty data -> ProcessedData null; data it does not decode -> nothing.
    if event.data:
        raise _NotRendered
    return None


# EFI_SIGNATURE_LIST SignatureType GUIDs (UEFI 2.10 §32.4.1). X509 and SHA256 seen in MAA's
# sample; the other names [I].
_SIGNATURE_TYPES = {
    uuid.UUID("c1c41626-504c-4092-aca9-41f936934328"): "EFI_CERT_SHA256_GUID",
    uuid.UUID("a5c059a1-94e4-4aa7-87b5-ab155c2bf072"): "EFI_CERT_X509_GUID",
    uuid.UUID("3c5766e8-269c-4e34-aa14-ed776e85b3b6"): "EFI_CERT_RSA2048_GUID",
    uuid.UUID("e2b36190-879b-4a3d-ad8d-f2e7bba32784"): "EFI_CERT_RSA2048_SHA256_GUID",
    uuid.UUID("826ca512-cf10-4ac9-b187-be01496631bd"): "EFI_CERT_SHA1_GUID",
    uuid.UUID("67f8444f-8743-48f1-a328-1eaab8736080"): "EFI_CERT_RSA2048_SHA1_GUID",
    uuid.UUID("0b6e5233-a65c-44c9-9407-d9ab83bfc8bd"): "EFI_CERT_SHA224_GUID",
    uuid.UUID("ff3e5307-9fd0-48c9-85f1-8ad56c701e01"): "EFI_CERT_SHA384_GUID",
    uuid.UUID("093e0fae-a6c4-4f50-9f1b-d41e2b89c19a"): "EFI_CERT_SHA512_GUID",
    uuid.UUID("3bd2a492-96c0-4079-b420-fcf98ef103ed"): "EFI_CERT_X509_SHA256_GUID",
    uuid.UUID("7076876e-80c2-4ee6-aad2-28b349a6865b"): "EFI_CERT_X509_SHA384_GUID",
    uuid.UUID("446dbf63-2502-4cda-bcfa-2465d2b0fe9d"): "EFI_CERT_X509_SHA512_GUID",
    uuid.UUID("4aafd29d-68df-49ee-8aa9-347d375665a7"): "EFI_CERT_TYPE_PKCS7_GUID",
}
_SIGNATURE_DATABASES = frozenset({"PK", "KEK", "db", "dbx", "dbt", "dbr"})


def _signature_lists(data: bytes) -> list[dict[str, Any]]:
    """A sequence of ``EFI_SIGNATURE_LIST`` (UEFI §32.4.1): SignatureType GUID, SignatureListSize
    u32, SignatureHeaderSize u32, SignatureSize u32, SignatureHeader, then ``EFI_SIGNATURE_DATA``
    (SignatureOwner GUID, SignatureData) of SignatureSize bytes each."""
    r = Reader(data, "EFI_SIGNATURE_LIST")
    lists: list[dict[str, Any]] = []
    while r.remaining:
        sig_type = uuid.UUID(bytes_le=r.take(16, "SignatureType"))
        list_size = r.u32("SignatureListSize")
        header_size = r.u32("SignatureHeaderSize")
        sig_size = r.u32("SignatureSize")
        body = list_size - 28 - header_size
        if body < 0 or sig_size < 16 or body % sig_size:
            raise _NotRendered
        r.take(header_size, "SignatureHeader")
        signatures = []
        for _ in range(body // sig_size):
            owner = _guid(r.take(16, "SignatureOwner"))
            signatures.append(
                {
                    "SignatureData": _b64(r.take(sig_size - 16, "SignatureData")),
                    "SignatureOwner": owner,
                }
            )
        entry: dict[str, Any] = {"SignatureType": str(sig_type).upper(), "Signatures": signatures}
        type_name = _SIGNATURE_TYPES.get(sig_type)
        if type_name is not None:
            entry["SignatureTypeString"] = type_name
        lists.append(entry)
    return lists


def _signature_data(data: bytes) -> dict[str, Any]:
    """One ``EFI_SIGNATURE_DATA``: SignatureOwner GUID, SignatureData."""
    if len(data) < 16:
        raise _NotRendered
    return {"SignatureData": _b64(data[16:]), "SignatureOwner": _guid(data[:16])}


def _efi_variable(event: Event, digests: Mapping[str, str]) -> Any:
    try:
        var = untrusted_efi_variable(event)
    except MalformedEvidence:
        # Not a UEFI_VARIABLE_DATA: the firmware measured the value alone (MAA's sample).
        if event.event_type == EventType.EV_EFI_VARIABLE_AUTHORITY:
            return {"VariableData": _signature_data(event.data)}
        return {"VariableData": _b64(event.data)}
    value: Any = _b64(var.data)
    if event.event_type == EventType.EV_EFI_VARIABLE_DRIVER_CONFIG:
        if var.name in _SIGNATURE_DATABASES:
            try:
                value = _signature_lists(var.data)
            except (_NotRendered, MalformedEvidence):
                value = _b64(var.data)
    elif event.event_type == EventType.EV_EFI_VARIABLE_AUTHORITY and var.name == "db":
        try:
            value = _signature_data(var.data)
        except _NotRendered:
            value = _b64(var.data)
    return {
        "UnicodeName": var.name,
        "VariableData": value,
        "VariableGuid": str(var.guid).upper(),
    }


def _gpt(event: Event, digests: Mapping[str, str]) -> Any:
    """``UEFI_GPT_DATA`` (PFP §10.2.5): ``EFI_PARTITION_TABLE_HEADER`` (UEFI §5.3.2, 92 bytes),
    NumberOfPartitions u64, then the partition entries (UEFI §5.3.3) of SizeOfPartitionEntry
    bytes each. Field names are MAA's (``FirstUseableLBA``)."""
    r = Reader(event.data, "UEFI_GPT_DATA")
    signature = _u64(r, "Signature")
    revision = r.u32("Revision")
    header_size = r.u32("HeaderSize")
    crc = r.u32("HeaderCRC32")
    r.take(4, "Reserved")
    header: dict[str, Any] = {
        "Header": {
            "CRC32": crc,
            "HeaderSize": header_size,
            "Revision": revision,
            "Signature": signature,
        },
        "MyLBA": _u64(r, "MyLBA"),
        "AlternateLBA": _u64(r, "AlternateLBA"),
        "FirstUseableLBA": _u64(r, "FirstUsableLBA"),
        "LastUseableLBA": _u64(r, "LastUsableLBA"),
        "DiskGUID": _guid(r.take(16, "DiskGUID")),
        "PartitionEntryLBA": _u64(r, "PartitionEntryLBA"),
        "NumberOfPartitionEntries": r.u32("NumberOfPartitionEntries"),
        "SizeOfPartitionEntry": r.u32("SizeOfPartitionEntry"),
        "PartitionEntryArrayCRC32": r.u32("PartitionEntryArrayCRC32"),
    }
    count = _u64(r, "NumberOfPartitions")
    entry_size = header["SizeOfPartitionEntry"]
    if entry_size < 128 or count * entry_size != r.remaining:
        raise _NotRendered
    partitions = []
    for _ in range(count):
        p = r.sub(entry_size, "EFI_PARTITION_ENTRY", "Partitions")
        partitions.append(
            {
                "PartitionTypeGUID": _guid(p.take(16, "PartitionTypeGUID")),
                "UniquePartitionGUID": _guid(p.take(16, "UniquePartitionGUID")),
                "StartingLBA": _u64(p, "StartingLBA"),
                "EndingLBA": _u64(p, "EndingLBA"),
                "Attributes": _u64(p, "Attributes"),
                "PartitionName": _utf16(p.take(72, "PartitionName")),
            }
        )
    return {"Partitions": partitions, "UEFIPartitionHeader": header}


# EFI_DEVICE_PATH_PROTOCOL.Type (UEFI §10.3.1): "ACPI" seen in MAA's sample, the others [I].
_DEVICE_PATH_TYPES = {1: "Hardware", 2: "ACPI", 3: "Messaging", 4: "Media", 5: "BBS", 0x7F: "End"}


def _image_load(event: Event, digests: Mapping[str, str]) -> Any:
    """``UEFI_IMAGE_LOAD_EVENT`` (PFP §10.2.3): the three u64 fields and the Type/SubType of the
    first device path node, as MAA renders it."""
    r = Reader(event.data, "UEFI_IMAGE_LOAD_EVENT")
    out: dict[str, Any] = {
        "ImageLocationInMemory": _u64(r, "ImageLocationInMemory"),
        "ImageLengthInMemory": _u64(r, "ImageLengthInMemory"),
        "ImageLinkTimeAddress": _u64(r, "ImageLinkTimeAddress"),
    }
    dp_len = _u64(r, "LengthOfDevicePath")
    if dp_len >= 4 and r.remaining >= 4:
        node_type, subtype = r.take(2, "DevicePath")
        type_json: dict[str, Any] = {"Value": node_type}
        type_name = _DEVICE_PATH_TYPES.get(node_type)
        if type_name is not None:
            type_json["String"] = type_name
        out["DevicePath"] = {"SubType": subtype, "Type": type_json}
    return out


# ---------------------------------------------------------------------------------------------
# Windows SIPA (EV_EVENT_TAG)

_SIPA_TRUSTBOUNDARY = 0x40010001
_SIPA_LOADEDMODULE_AGGREGATION = 0x40010003
_SIPA_BOOTDEBUGGING = 0x00040001
_SIPA_SAFEMODE = 0x00050005
_SIPA_WINPE = 0x00050006
_SIPA_VBS_VSM_REQUIRED = 0x000A0001
_SIPA_VBS_IOMMU_REQUIRED = 0x000A0003
_SIPA_VBS_MANDATORY_ENFORCEMENT = 0x000A0006

# TPM_ALG_ID inside SIPA payloads: SHA256 seen, the rest [I].
_SIPA_HASH_ALGS = {
    ALG_SHA1: "SHA1",
    ALG_SHA256: "SHA256",
    ALG_SHA384: "SHA384",
    ALG_SHA512: "SHA512",
}

_SipaRender = Callable[[SipaEvent], Any]


def _sipa_int(t: SipaEvent) -> int:
    if len(t.data) not in (1, 2, 4, 8):
        raise _NotRendered
    return int.from_bytes(t.data, "little")


def _sipa_bool(t: SipaEvent) -> bool:
    if len(t.data) != 1:
        raise _NotRendered
    return t.data != b"\x00"


def _sipa_bytes(t: SipaEvent) -> str:
    return _b64(t.data)


def _sipa_text(t: SipaEvent) -> str:
    return _utf16(t.data)


def _sipa_enum(names: Mapping[int, str]) -> _SipaRender:
    """``{"String": name, "Value": n}``; a value without a known name gets ``Value`` only."""

    def render(t: SipaEvent) -> Any:
        value = _sipa_int(t)
        name = names.get(value)
        return {"Value": value} if name is None else {"String": name, "Value": value}

    return render


def _hash_alg(alg: int) -> str:
    name = _SIPA_HASH_ALGS.get(alg)
    if name is None:
        raise _NotRendered
    return name


def _sipa_revocation_list(t: SipaEvent) -> Any:
    """``SIPAEVENT_REVOCATION_LIST_PAYLOAD``: CreationTime i64 (FILETIME), DigestLength u32,
    HashAlgID u16, Digest."""
    r = Reader(t.data, "SIPAEVENT_REVOCATION_LIST_PAYLOAD")
    created = int.from_bytes(r.take(8, "CreationTime"), "little", signed=True)
    length = r.u32("DigestLength")
    alg = r.u16("HashAlgID")
    digest = r.take(length, "Digest")
    r.expect_end("Digest")
    return {
        "CreationTime": created,
        "Digest": _b64(digest),
        "HashAlgId": _hash_alg(alg),
        "RawData": _b64(t.data),
    }


def _sipa_sbcp_info(t: SipaEvent) -> Any:
    """``SIPAEVENT_SBCP_INFO_PAYLOAD_V1``: PayloadVersion u32, VarDataOffset u32, HashAlgID u16,
    DigestLength u16, Options u32, SignersCount u32, VarData (the digest at VarDataOffset)."""
    r = Reader(t.data, "SIPAEVENT_SBCP_INFO_PAYLOAD_V1")
    version = r.u32("PayloadVersion")
    offset = r.u32("VarDataOffset")
    alg = r.u16("HashAlgID")
    length = r.u16("DigestLength")
    options = r.u32("Options")
    signers = r.u32("SignersCount")
    if offset + length > len(t.data) or offset < r.offset:
        raise _NotRendered
    text = (
        "SecureBootPolicy: default (no options set)"
        if options == 0
        else f"SecureBootPolicy: 0x{options:08x}"  # [I]: MAA's text for other options unknown
    )
    return {
        "Digest": _b64(t.data[offset : offset + length]),
        "HashAlgId": _hash_alg(alg),
        "Options": text,
        "PayloadVersion": version,
        "SignersCount": signers,
    }


def _sipa_si_policy(t: SipaEvent) -> Any:
    """``SIPAEVENT_SI_POLICY_PAYLOAD``: PolicyVersion u64, PolicyNameLength u16, HashAlgID u16,
    DigestLength u32, PolicyName (UTF-16), Digest."""
    r = Reader(t.data, "SIPAEVENT_SI_POLICY_PAYLOAD")
    version = _u64(r, "PolicyVersion")
    name_len = r.u16("PolicyNameLength")
    alg = r.u16("HashAlgID")
    length = r.u32("DigestLength")
    name = _utf16(r.take(name_len, "PolicyName"))
    digest = r.take(length, "Digest")
    r.expect_end("Digest")
    return {
        "Digest": _b64(digest),
        "HashAlgId": _hash_alg(alg),
        "PolicyName": name,
        "PolicyVersion": version,
        "RawData": _b64(t.data),
    }


def _sipa_si_policy_signer(t: SipaEvent) -> Any:
    """``SIPAEVENT_SI_POLICY_SIGNER_PAYLOAD``: RootID u32, CertificatesLength u32,
    CertificatesCount u16, PolicyNameLength u16, EKUsLength u16, EKUsCount u16, then PolicyName
    (UTF-16), the EKUs (u8 length + OID contents each) and the certificates (PublisherLength u16,
    IssuerLength u16, CapiHashAlgId u32, DigestLength u16, Publisher, Issuer, Digest each)."""
    r = Reader(t.data, "SIPAEVENT_SI_POLICY_SIGNER_PAYLOAD")
    root = r.u32("RootID")
    certs_len = r.u32("CertificatesLength")
    certs_count = r.u16("CertificatesCount")
    name_len = r.u16("PolicyNameLength")
    ekus_len = r.u16("EKUsLength")
    ekus_count = r.u16("EKUsCount")
    name = _utf16(r.take(name_len, "PolicyName"))
    e = r.sub(ekus_len, "EKUs", "EKUs")
    ekus = [_b64(e.take(e.take(1, "length")[0], "EKU")) for _ in range(ekus_count)]
    e.expect_end("EKUs")
    c = r.sub(certs_len, "Certificates", "Certificates")
    certs = []
    for _ in range(certs_count):
        publisher_len = c.u16("PublisherLength")
        issuer_len = c.u16("IssuerLength")
        capi_alg = c.u32("CapiHashAlgId")
        digest_len = c.u16("DigestLength")
        publisher = _utf16(c.take(publisher_len, "Publisher"))
        issuer = _utf16(c.take(issuer_len, "Issuer"))
        certs.append(
            {
                "CapiHashAlgId": capi_alg,
                "Digest": _b64(c.take(digest_len, "Digest")),
                "IssuerCommonName": issuer,
                "PublisherCommonName": publisher,
            }
        )
    c.expect_end("Certificates")
    r.expect_end("Certificates")
    return {
        "Certificates": certs,
        "EKUs": ekus,
        "PolicyName": name,
        "RawData": _b64(t.data),
        "RootId": root,
    }


def _sipa_vsm_idk(t: SipaEvent) -> Any:
    """``SIPAEVENT_VSM_IDK_INFO_PAYLOAD``: KeyAlgID u32 (1 = RSA), then for RSA KeyBitLength u32,
    PublicExpLengthBytes u32, ModulusSizeBytes u32, the exponent and the modulus."""
    r = Reader(t.data, "SIPAEVENT_VSM_IDK_INFO_PAYLOAD")
    if r.u32("KeyAlgID") != 1:
        raise _NotRendered
    bits = r.u32("KeyBitLength")
    exp_len = r.u32("PublicExpLengthBytes")
    mod_len = r.u32("ModulusSizeBytes")
    exponent = r.take(exp_len, "PublicExponent")
    modulus = r.take(mod_len, "Modulus")
    r.expect_end("Modulus")
    return {
        "RsaKeyBitLength": bits,
        "RsaModulus": _b64(modulus),
        "RsaPublicExponent": _b64(exponent),
        "Vsm_idk_alg_id": "VSM_IDK_ALG_ID_RSA",
    }


def _sipa_object(tlvs: Iterable[SipaEvent]) -> dict[str, Any]:
    """SIPA TLVs as MAA renders them: known tags by name, list tags collected, others dropped."""
    out: dict[str, Any] = {}
    for t in tlvs:
        spec = _SIPA.get(t.tag)
        if spec is None:
            continue
        name, render, is_list = spec
        value = render(t)
        if is_list:
            out.setdefault(name, []).append(value)
        else:
            out[name] = value  # [I] a repeated single-value tag: the last one wins
    return out


def _sipa_container(t: SipaEvent) -> Any:
    return _sipa_object(t.children)


# Enum names. [V] = seen in MAA's sample; the rest from wbcl.h (FVEB_UNLOCK_FLAG_*,
# OSDEVICE_TYPE_*), wincrypt.h (CALG_*), PCPTool (SiBootAppResume) and the BCD enumerations
# (NxPolicy*, HypervisorLaunchOff) [I].
_TRANSFER_CONTROL = {1: "SiBootAppOsLoader", 2: "SiBootAppResume", 5: "SiBootHypervisor"}
_BITLOCKER_UNLOCK = {
    0x000: "NONE",
    0x001: "CACHED",  # [V]
    0x002: "MEDIA",
    0x004: "TPM",  # [V]
    0x010: "PIN",
    0x020: "EXTERNAL",
    0x040: "RECOVERY",
    0x080: "PASSPHRASE",
    0x100: "NBP",
    0x200: "AUK_OSFVEINFO",
}
_OSDEVICE = {
    0x00000000: "OSDEVICE_TYPE_UNKNOWN",
    0x00010001: "OSDEVICE_TYPE_BLOCKIO_HARDDISK",
    0x00010002: "OSDEVICE_TYPE_BLOCKIO_REMOVABLEDISK",
    0x00010003: "OSDEVICE_TYPE_BLOCKIO_CDROM",
    0x00010004: "OSDEVICE_TYPE_BLOCKIO_PARTITION",  # [V]
    0x00010005: "OSDEVICE_TYPE_BLOCKIO_FILE",
    0x00010006: "OSDEVICE_TYPE_BLOCKIO_RAMDISK",
    0x00010007: "OSDEVICE_TYPE_BLOCKIO_VIRTUALHARDDISK",
    0x00020000: "OSDEVICE_TYPE_SERIAL",
    0x00030000: "OSDEVICE_TYPE_UDP",
    0x00040000: "OSDEVICE_TYPE_VMBUS",
    0x00050000: "OSDEVICE_TYPE_COMPOSITE",
}
_CALG = {
    0x8003: "CALG_MD5",
    0x8004: "CALG_SHA1",
    0x800C: "CALG_SHA_256",  # [V]
    0x800D: "CALG_SHA_384",
    0x800E: "CALG_SHA_512",
}
_NX_POLICY = {
    0: "NxPolicyOptIn",
    1: "NxPolicyOptOut",
    2: "NxPolicyAlwaysOff",
    3: "NxPolicyAlwaysOn",
}
_HYPERVISOR_LAUNCH = {0: "HypervisorLaunchOff", 1: "HypervisorLaunchAuto"}  # Auto [V]

# tag -> (MAA name, renderer, always a list). Exactly the tags MAA's sample renders.
_SIPA: dict[int, tuple[str, _SipaRender, bool]] = {
    _SIPA_TRUSTBOUNDARY: ("EVENT_TRUSTBOUNDARY", _sipa_container, False),
    _SIPA_LOADEDMODULE_AGGREGATION: ("EVENT_LOADEDMODULE_AGGREGATION", _sipa_container, True),
    0x00020002: ("EVENT_BOOTCOUNTER", _sipa_int, False),
    0x00020003: ("EVENT_TRANSFER_CONTROL", _sipa_enum(_TRANSFER_CONTROL), False),
    0x00020005: ("EVENT_BITLOCKER_UNLOCK", _sipa_enum(_BITLOCKER_UNLOCK), False),
    0x00020006: ("EVENT_EVENTCOUNTER", _sipa_int, False),
    0x00020007: ("EVENT_COUNTERID", _sipa_int, False),
    0x00020009: ("EVENT_APPLICATION_SVN", _sipa_int, False),
    0x0002000A: ("EVENT_SVN_CHAIN_STATUS", _sipa_int, False),
    0x0002000B: ("EVENT_MORBIT_API_STATUS", _sipa_int, False),
    _SIPA_BOOTDEBUGGING: ("EVENT_BOOTDEBUGGING", _sipa_bool, False),
    0x00040002: ("EVENT_BOOT_REVOCATION_LIST", _sipa_revocation_list, False),
    0x00050001: ("EVENT_OSKERNELDEBUG", _sipa_bool, False),
    0x00050002: ("EVENT_CODEINTEGRITY", _sipa_bool, False),
    0x00050003: ("EVENT_TESTSIGNING", _sipa_bool, False),
    0x00050004: ("EVENT_DATAEXECUTIONPREVENTION", _sipa_enum(_NX_POLICY), False),
    _SIPA_SAFEMODE: ("EVENT_SAFEMODE", _sipa_bool, False),
    _SIPA_WINPE: ("EVENT_WINPE", _sipa_bool, False),
    0x00050008: ("EVENT_OSDEVICE", _sipa_enum(_OSDEVICE), False),
    0x00050009: ("EVENT_SYSTEMROOT", _sipa_text, False),
    0x0005000A: ("EVENT_HYPERVISOR_LAUNCH_TYPE", _sipa_enum(_HYPERVISOR_LAUNCH), False),
    0x0005000C: ("EVENT_HYPERVISOR_IOMMU_POLICY", _sipa_enum({1: "BtIommuPolicyEnable"}), False),
    0x0005000D: ("EVENT_HYPERVISOR_DEBUG", _sipa_bool, False),
    0x0005000E: ("EVENT_DRIVER_LOAD_POLICY", _sipa_enum({1: "GoodPlusUnknown"}), False),
    0x0005000F: ("EVENT_SI_POLICY", _sipa_si_policy, True),
    0x00050012: ("EVENT_VSM_LAUNCH_TYPE", _sipa_enum({1: "VsmLaunchAuto"}), False),
    0x00050013: ("EVENT_OS_REVOCATION_LIST", _sipa_revocation_list, False),
    0x00050020: ("EVENT_VSM_IDK_INFO", _sipa_vsm_idk, False),
    0x00050021: ("EVENT_FLIGHTSIGNING", _sipa_bool, False),
    0x00050022: ("EVENT_PAGEFILE_ENCRYPTION_ENABLED", _sipa_bool, False),
    0x00050023: ("EVENT_VSM_IDKS_INFO", _sipa_vsm_idk, False),
    0x00050024: ("EVENT_HIBERNATION_DISABLED", _sipa_bool, False),
    0x00050025: ("EVENT_DUMPS_DISABLED", _sipa_bool, False),
    0x00050026: ("EVENT_DUMP_ENCRYPTION_ENABLED", _sipa_bool, False),
    0x00050029: ("EVENT_SBCP_INFO", _sipa_sbcp_info, False),
    0x00050031: ("EVENT_SI_POLICY_SIGNER", _sipa_si_policy_signer, True),
    0x00050032: ("EVENT_SI_POLICY_UPDATE_SIGNER", _sipa_si_policy_signer, True),
    0x00060002: ("EVENT_AUTHORITYPUBKEY", _sipa_bytes, True),
    0x00070001: ("EVENT_FILEPATH", _sipa_text, False),
    0x00070002: ("EVENT_IMAGESIZE", _sipa_int, False),
    0x00070003: ("EVENT_HASHALGORITHMID", _sipa_enum(_CALG), False),
    0x00070004: ("EVENT_AUTHENTICODEHASH", _sipa_bytes, False),
    0x00070005: ("EVENT_AUTHORITYISSUER", _sipa_text, False),
    0x00070006: ("EVENT_AUTHORITYSERIAL", _sipa_bytes, False),
    0x00070007: ("EVENT_IMAGEBASE", _sipa_int, False),
    0x00070008: ("EVENT_AUTHORITYPUBLISHER", _sipa_text, False),
    0x00070009: ("EVENT_AUTHORITYSHA1THUMBPRINT", _sipa_bytes, False),
    0x0007000A: ("EVENT_IMAGEVALIDATED", _sipa_bool, False),
    0x0007000B: ("EVENT_MODULE_SVN", _sipa_int, False),
    _SIPA_VBS_VSM_REQUIRED: ("EVENT_VBS_VSM_REQUIRED", _sipa_bool, False),
    0x000A0002: ("EVENT_VBS_SECUREBOOT_REQUIRED", _sipa_bool, False),
    _SIPA_VBS_IOMMU_REQUIRED: ("EVENT_VBS_IOMMU_REQUIRED", _sipa_bool, False),
    0x000A0004: ("EVENT_VBS_MMIO_NX_REQUIRED", _sipa_bool, False),
    0x000A0005: ("EVENT_VBS_MSR_FILTERING_REQUIRED", _sipa_bool, False),
    0x000A0007: (
        "EVENT_VBS_HVCI_POLICY",
        _sipa_enum({1: "HypervisorEnforcedCodeIntegrityEnable"}),
        False,
    ),
    0x000A0008: (
        "EVENT_VBS_MICROSOFT_BOOT_CHAIN_REQUIRED",
        _sipa_enum({1: "VbsBootChainSignerEnforceSoft"}),
        False,
    ),
    0x000A000A: ("EVENT_VBS_VSM_NOSECRETS_ENFORCED", _sipa_bool, False),
}


def _event_tag(event: Event, digests: Mapping[str, str]) -> Any:
    return _sipa_object(untrusted_sipa_events(event))


_Renderer = Callable[[Event, Mapping[str, str]], Any]
_RENDERERS: dict[int, _Renderer] = {
    EventType.EV_SEPARATOR: _separator,
    EventType.EV_EVENT_TAG: _event_tag,
    EventType.EV_NONHOST_INFO: _nonhost_info,
    EventType.EV_EFI_VARIABLE_DRIVER_CONFIG: _efi_variable,
    EventType.EV_EFI_VARIABLE_BOOT: _efi_variable,
    EventType.EV_EFI_VARIABLE_BOOT2: _efi_variable,  # [I]
    EventType.EV_EFI_VARIABLE_AUTHORITY: _efi_variable,
    EventType.EV_EFI_BOOT_SERVICES_APPLICATION: _image_load,
    EventType.EV_EFI_BOOT_SERVICES_DRIVER: _image_load,  # [I]
    EventType.EV_EFI_RUNTIME_SERVICES_DRIVER: _image_load,  # [I]
    EventType.EV_EFI_GPT_EVENT: _gpt,
    EventType.EV_EFI_ACTION: _efi_action,
    EventType.EV_EFI_PLATFORM_FIRMWARE_BLOB: _firmware_blob,
}


# ---------------------------------------------------------------------------------------------
# Boot claims

# MAA's sample policies: boolProperties from PCRs 12, 13, 19, 20; VBS from PCRs 12 and 19.
_SIPA_PROPERTY_PCRS = frozenset({12, 13, 19, 20})
_SIPA_VBS_PCRS = frozenset({12, 19})


def _flatten(tlvs: Iterable[SipaEvent]) -> Iterator[SipaEvent]:
    for t in tlvs:
        yield t
        yield from _flatten(t.children)


def _secure_boot_enabled(verified: VerifiedEventLog) -> bool:
    found: list[tuple[Event, bytes]] = []
    for e in verified.events:
        if e.pcr != 7 or e.event_type != EventType.EV_EFI_VARIABLE_DRIVER_CONFIG:
            continue
        try:
            var = untrusted_efi_variable(e)
        except MalformedEvidence:
            continue
        if var.guid == EFI_GLOBAL_VARIABLE and var.name == "SecureBoot":
            found.append((e, var.data))
    if len(found) != 1:
        return False
    event, value = found[0]
    return value == b"\x01" and _bound(event, verified.banks)


def _windows_claims(verified: VerifiedEventLog) -> dict[str, bool] | None:
    tagged = [
        e
        for e in verified.events
        if e.event_type == EventType.EV_EVENT_TAG and e.pcr in _SIPA_PROPERTY_PCRS
    ]
    if not tagged:
        return None
    failed = dict.fromkeys(WINDOWS_BOOT_CLAIMS, False)
    values: dict[int, list[tuple[int, bool]]] = {}
    flags = {
        _SIPA_BOOTDEBUGGING,
        _SIPA_SAFEMODE,
        _SIPA_WINPE,
        _SIPA_VBS_VSM_REQUIRED,
        _SIPA_VBS_IOMMU_REQUIRED,
        _SIPA_VBS_MANDATORY_ENFORCEMENT,
    }
    for e in tagged:
        if not _bound(e, verified.banks):
            return failed
        try:
            tlvs = list(_flatten(untrusted_sipa_events(e)))
        except MalformedEvidence:
            return failed
        for t in tlvs:
            if t.tag in flags:
                if len(t.data) != 1:  # PCPTool: a BYTE, anything else is invalid
                    return failed
                values.setdefault(t.tag, []).append((e.pcr, t.data != b"\x00"))

    def only(tags: Iterable[int], pcrs: frozenset[int], wanted: bool) -> bool:
        seen = [v for tag in tags for pcr, v in values.get(tag, []) if pcr in pcrs]
        return bool(seen) and all(v == wanted for v in seen)

    return {
        "bootDebuggingDisabled": only([_SIPA_BOOTDEBUGGING], _SIPA_PROPERTY_PCRS, False),
        "iommuEnabled": only([_SIPA_VBS_IOMMU_REQUIRED], _SIPA_VBS_PCRS, True),
        "notSafeMode": only([_SIPA_SAFEMODE], _SIPA_PROPERTY_PCRS, False),
        "notWinPE": only([_SIPA_WINPE], _SIPA_PROPERTY_PCRS, False),
        "vbsEnabled": only(
            [_SIPA_VBS_VSM_REQUIRED, _SIPA_VBS_MANDATORY_ENFORCEMENT], _SIPA_VBS_PCRS, True
        ),
    }


_GRUB_CMDLINE_PREFIXES = (b"kernel_cmdline: ", b"grub_kernel_cmdline ")


def _kernel_cmdline(verified: VerifiedEventLog) -> str | None:
    """GRUB measures the command line into PCR 8 and logs it behind a prefix; the digest covers
    the command line alone, without the prefix and the trailing NUL."""
    cmdline: str | None = None
    for e in verified.events:
        if e.pcr != 8 or e.event_type != EventType.EV_IPL:
            continue
        for prefix in _GRUB_CMDLINE_PREFIXES:
            if not e.data.startswith(prefix):
                continue
            text = e.data[len(prefix) :].rstrip(b"\x00")
            probe = Event(e.index, e.pcr, e.event_type, e.digests, text, e.offset, e.data_offset)
            if _bound(probe, verified.banks):
                try:
                    cmdline = untrusted_ipl_string(probe)
                except MalformedEvidence:
                    continue
    return cmdline


def _boot_applications(verified: VerifiedEventLog) -> list[dict[str, Any]]:
    apps: list[dict[str, Any]] = []
    for e in verified.events:
        if e.pcr != 4 or e.event_type != EventType.EV_EFI_BOOT_SERVICES_APPLICATION:
            continue
        try:
            path = untrusted_image_load(e).file_path
        except MalformedEvidence:
            path = None
        digests = {algorithm_name(a): e.digests[a].hex() for a in verified.banks if a in e.digests}
        apps.append({"digests": digests, "path": path})
    return apps


def boot_claims(verified: VerifiedEventLog) -> dict[str, Any]:
    """The boolean boot claims under MAA's names and attestd's ``x-attestd-`` claims (derivation
    in the module docstring). Windows-only claims are absent for logs without SIPA events."""
    claims: dict[str, Any] = {
        "tpmVersion": TPM_VERSION,
        "secureBootEnabled": _secure_boot_enabled(verified),
    }
    windows = _windows_claims(verified)
    if windows is not None:
        claims.update(windows)
    claims[f"{_PREFIX}verified-pcrs"] = sorted(verified.pcrs)
    cmdline = _kernel_cmdline(verified)
    if cmdline is not None:
        claims[f"{_PREFIX}kernel-cmdline"] = cmdline
    apps = _boot_applications(verified)
    if apps:
        claims[f"{_PREFIX}efi-boot-applications"] = apps
    return claims


def tpm_claims(
    log: EventLog,
    quoted: Mapping[int, Mapping[int, bytes]],
    *,
    pcrs: Collection[int] | None = None,
) -> dict[str, Any]:
    """Everything above for one verified quote: ``events``, ``pcrs`` (the quoted values) and
    :func:`boot_claims`. Raises like :func:`verify_event_log`."""
    verified = verify_event_log(log, quoted, pcrs=pcrs)
    claims = boot_claims(verified)
    claims["events"] = {"Events": [_event_json(e, verified.banks) for e in verified.events]}
    claims["pcrs"] = pcrs_json(quoted)
    return claims
