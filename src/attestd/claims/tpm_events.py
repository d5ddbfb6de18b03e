"""MAA's ``events`` claim: one TCG event rendered as Azure Attestation renders it. Which events
are rendered, and against which banks, is :mod:`attestd.claims.tpm`'s decision.

**Ground truth.** The JSON format copies a real MAA token (Attestation-Client-Samples
``report_boot.claims.json``, ``x-ms-policy.outputEvents``: 50 events of a Windows machine). Every
event there carries its full event data (``RawData``) and its SHA-256 digest, so the log can be
rebuilt and fed back through :func:`attestd.claims.tpm.events_json`; the output equals MAA's, byte for byte once
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

"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from attestd._binary import Reader
from attestd.errors import MalformedEvidence
from attestd.evidence.eventlog import (
    ALG_SHA1,
    ALG_SHA256,
    ALG_SHA384,
    ALG_SHA512,
    ALG_SM3_256,
    SIPA_BOOTDEBUGGING,
    SIPA_LOADEDMODULE_AGGREGATION,
    SIPA_SAFEMODE,
    SIPA_TRUSTBOUNDARY,
    SIPA_VBS_IOMMU_REQUIRED,
    SIPA_VBS_VSM_REQUIRED,
    SIPA_WINPE,
    Event,
    EventType,
    SipaEvent,
    algorithm_name,
    untrusted_action_string,
    untrusted_efi_variable,
    untrusted_sipa_events,
)

__all__ = ["bank_name", "maa_json", "render_event", "sorted_json"]

# Bank names in ``Digests`` / ``CappedHash[...]``: SHA256 seen in MAA's sample, the rest [I].
_BANK_NAMES = {
    ALG_SHA1: "SHA1",
    ALG_SHA256: "SHA256",
    ALG_SHA384: "SHA384",
    ALG_SHA512: "SHA512",
    ALG_SM3_256: "SM3_256",
}
_HASHLIB = {ALG_SHA1: "sha1", ALG_SHA256: "sha256", ALG_SHA384: "sha384", ALG_SHA512: "sha512"}


def bank_name(alg: int) -> str:
    return _BANK_NAMES.get(alg) or algorithm_name(alg).upper()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _guid(raw: bytes) -> str:
    return str(uuid.UUID(bytes_le=raw)).upper()


def sorted_json(value: Any) -> Any:
    """MAA's key order: every object's keys sorted (the token is serialized that way)."""
    if isinstance(value, dict):
        return {k: sorted_json(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [sorted_json(v) for v in value]
    return value


def maa_json(value: Any) -> str:
    """Serialize a claim value as MAA does in its tokens: compact, keys sorted. (Whether MAA
    escapes non-ASCII or ``+<>&'`` like .NET's default encoder is not visible in the sample;
    this escapes non-ASCII only.)"""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class _NotRendered(Exception):
    """The event type has no ``ProcessedData`` in MAA's format, or its data did not decode."""


def render_event(event: Event, banks: tuple[int, ...] | None) -> dict[str, Any]:
    digests = {
        bank_name(alg): _b64(d) for alg, d in event.digests.items() if banks is None or alg in banks
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
    return sorted_json(out)  # type: ignore[no-any-return]


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
    SIPA_TRUSTBOUNDARY: ("EVENT_TRUSTBOUNDARY", _sipa_container, False),
    SIPA_LOADEDMODULE_AGGREGATION: ("EVENT_LOADEDMODULE_AGGREGATION", _sipa_container, True),
    0x00020002: ("EVENT_BOOTCOUNTER", _sipa_int, False),
    0x00020003: ("EVENT_TRANSFER_CONTROL", _sipa_enum(_TRANSFER_CONTROL), False),
    0x00020005: ("EVENT_BITLOCKER_UNLOCK", _sipa_enum(_BITLOCKER_UNLOCK), False),
    0x00020006: ("EVENT_EVENTCOUNTER", _sipa_int, False),
    0x00020007: ("EVENT_COUNTERID", _sipa_int, False),
    0x00020009: ("EVENT_APPLICATION_SVN", _sipa_int, False),
    0x0002000A: ("EVENT_SVN_CHAIN_STATUS", _sipa_int, False),
    0x0002000B: ("EVENT_MORBIT_API_STATUS", _sipa_int, False),
    SIPA_BOOTDEBUGGING: ("EVENT_BOOTDEBUGGING", _sipa_bool, False),
    0x00040002: ("EVENT_BOOT_REVOCATION_LIST", _sipa_revocation_list, False),
    0x00050001: ("EVENT_OSKERNELDEBUG", _sipa_bool, False),
    0x00050002: ("EVENT_CODEINTEGRITY", _sipa_bool, False),
    0x00050003: ("EVENT_TESTSIGNING", _sipa_bool, False),
    0x00050004: ("EVENT_DATAEXECUTIONPREVENTION", _sipa_enum(_NX_POLICY), False),
    SIPA_SAFEMODE: ("EVENT_SAFEMODE", _sipa_bool, False),
    SIPA_WINPE: ("EVENT_WINPE", _sipa_bool, False),
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
    SIPA_VBS_VSM_REQUIRED: ("EVENT_VBS_VSM_REQUIRED", _sipa_bool, False),
    0x000A0002: ("EVENT_VBS_SECUREBOOT_REQUIRED", _sipa_bool, False),
    SIPA_VBS_IOMMU_REQUIRED: ("EVENT_VBS_IOMMU_REQUIRED", _sipa_bool, False),
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
