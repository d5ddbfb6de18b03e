"""Claims from a verified TPM event log, with Azure Attestation's names and encodings.

Three things come out of a TCG log here, all only from events whose PCRs replay to the values of
a verified quote (:func:`verify_event_log`):

* ``events``: MAA's parsed log, ``{"Events": [...]}`` (:func:`events_json`; each event is
  rendered by :mod:`attestd.claims.tpm_events`, which documents the format);
* ``pcrs``: ``{"PCRs": [{"Digests": {...}, "Index": n}]}`` (:func:`pcrs_json`);
* the boolean boot claims ``secureBootEnabled``, ``bootDebuggingDisabled``, ``notSafeMode``,
  ``notWinPE``, ``vbsEnabled``, ``iommuEnabled`` and ``tpmVersion``, plus attestd's
  ``x-attestd-`` claims (:func:`boot_claims`).

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

import hashlib
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from attestd.claims.tpm_events import bank_name, render_event, sorted_json
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
    SIPA_BOOTDEBUGGING,
    SIPA_SAFEMODE,
    SIPA_VBS_IOMMU_REQUIRED,
    SIPA_VBS_MANDATORY_ENFORCEMENT,
    SIPA_VBS_VSM_REQUIRED,
    SIPA_WINPE,
    Event,
    EventLog,
    EventType,
    SipaEvent,
    algorithm_name,
    replay_all,
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
    "log_claims",
    "pcrs_json",
    "tpm_claims",
    "verified_pcrs_json",
    "verify_event_log",
]

_HASHLIB = {ALG_SHA1: "sha1", ALG_SHA256: "sha256", ALG_SHA384: "sha384", ALG_SHA512: "sha512"}
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
            bank_name(alg): bytes(bank[index]).hex()
            for alg, bank in pcr_values.items()
            if index in bank
        }
        out.append({"Digests": digests, "Index": index})
    return sorted_json({"PCRs": out})  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------------
# ``events``


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
    return {"Events": [render_event(e, banks) for e in events]}


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
        SIPA_BOOTDEBUGGING,
        SIPA_SAFEMODE,
        SIPA_WINPE,
        SIPA_VBS_VSM_REQUIRED,
        SIPA_VBS_IOMMU_REQUIRED,
        SIPA_VBS_MANDATORY_ENFORCEMENT,
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
        "bootDebuggingDisabled": only([SIPA_BOOTDEBUGGING], _SIPA_PROPERTY_PCRS, False),
        "iommuEnabled": only([SIPA_VBS_IOMMU_REQUIRED], _SIPA_VBS_PCRS, True),
        "notSafeMode": only([SIPA_SAFEMODE], _SIPA_PROPERTY_PCRS, False),
        "notWinPE": only([SIPA_WINPE], _SIPA_PROPERTY_PCRS, False),
        "vbsEnabled": only(
            [SIPA_VBS_VSM_REQUIRED, SIPA_VBS_MANDATORY_ENFORCEMENT], _SIPA_VBS_PCRS, True
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
    return log_claims(verify_event_log(log, quoted, pcrs=pcrs), quoted)


def log_claims(
    verified: VerifiedEventLog, quoted: Mapping[int, Mapping[int, bytes]]
) -> dict[str, Any]:
    """:func:`tpm_claims` of a log already checked against ``quoted``."""
    claims = boot_claims(verified)
    claims["events"] = {"Events": [render_event(e, verified.banks) for e in verified.events]}
    claims["pcrs"] = pcrs_json(quoted)
    return claims


def verified_pcrs_json(
    verified: VerifiedEventLog, quoted: Mapping[int, Mapping[int, bytes]]
) -> dict[str, Any]:
    """:func:`pcrs_json` of only what the log vouches for: the quoted values of the PCRs it
    replays (``x-attestd-verified-pcrs``) in the banks whose replay equalled the quote (so not
    the SHA-256 bank under a legacy SHA-1 log)."""
    return pcrs_json({alg: {p: quoted[alg][p] for p in verified.pcrs} for alg in verified.banks})
