"""Step 2 of MAA's TPM protocol (maa-compat.md §1.4, tpm.md §5): the ``attReqV2`` request.

:func:`parse_request` takes the compact JWS of ``{"payload": {"request": "<JWS>"}}``, checks its
header (``alg`` RS256 or PS256, ``typ`` ``attReqV2``) and its signature with the RSA
``request_key`` it carries, and returns the typed request. :func:`verify_attestation` then
verifies ``tpm_att_data.current_attestation`` (and ``boot_attestation``) and returns the
incoming claims. The service (:mod:`attestd.service`) opens the ``service_context``, evaluates
the policy and issues the report.

**Payload** (``att_data`` of the JWS payload)::

    {"att_type": "basic",                      # optional; "vbs" is not supported
     "att_data": {
       "challenge": "<b64url, from step 1>", "service_context": "<from step 1>",
       "rp_data": "<string>", "nonce": "<string>",                 # both optional
       "request_key": {"jwk": {"kty": "RSA", "n": ..., "e": ...},
                       "info": {"tpm_quote": {"hash_alg": "sha-256"}}},   # or tpm_certify
       "other_keys": [{"jwk": {...}, "info": {"tpm_certify": {...}}}],   # optional, at most 2
       "tpm_att_data": {"current_attestation": {
         "logs": [{"type": "TCG", "log": "<b64>"}],              # at most one TCG log
         "aik_cert": "<b64 DER>" | ["<leaf>", "<intermediate>", ...],
         "aik_pub": {JWK} | "<b64 TPM2B_PUBLIC or TPMT_PUBLIC>",
         "pcrs": [{"algorithm": 11, "values": [{"index": 0, "digest": "<b64>"}]}],
         "quote": "<b64 TPMS_ATTEST>", "signature": "<b64 TPMT_SIGNATURE>"},
       "boot_attestation": {...}}}}              # optional, the same fields (bootEvents)

Byte strings may be standard base64 or base64url, padded or not. ``algorithm`` is a TPM_ALG_ID
(4 = SHA-1, 11 = SHA-256, 12 = SHA-384, 13 = SHA-512) or its name (``"sha256"``).

**Key binding.** ``info.tpm_quote.hash_alg`` (``sha-256``, ``sha-384`` or ``sha-512``; the
names without the dash too) names HASH, and the quote's ``extraData`` must equal
``HASH(UTF8(jwk as sent) || 0x00 || challenge)``. attestd defines the two inputs exactly:

* *jwk as sent* is the **exact text of the ``jwk`` value in the JWS payload**, from its ``{`` to
  its ``}``, whitespace and member order included, as UTF-8 (the payload is decoded from the
  JWS, never re-serialized). A client computes it from the very JSON text it signs; attestd
  does not canonicalize, so a client that hashes a different serialization of the same JWK
  fails with a qualifying-data mismatch. Duplicate member names anywhere in the payload are
  refused, so the ``jwk`` text is unambiguous.
* *challenge* is the **decoded** 16 challenge bytes of step 1 (not its base64url text).

Alternatively ``info.tpm_certify`` = ``{"public": TPM2B_PUBLIC or TPMT_PUBLIC, "certification":
TPMS_ATTEST, "signature": TPMT_SIGNATURE}`` (base64) binds a TPM-resident request key: the AIK's
``TPM2_Certify`` of it (:func:`attestd.verify.tpm.verify_certification`: signature, magic, type,
and the Name of ``public``, whose key must be the ``jwk`` and whose attributes must include
``fixedTPM`` and ``sensitiveDataOrigin``, so the key was made in that TPM and cannot leave it);
the quote's ``extraData`` is then the challenge itself. Each ``other_keys`` entry needs the
same ``tpm_certify``; verified ones come back as ``x-ms-tpm-other-keys`` (``[{"jwk", "info"}]``
as sent), in the report too.

**AIK.** The quote signer is ``aik_pub`` (a JWK, or a ``TPM2B_PUBLIC``/``TPMT_PUBLIC``, which
:func:`attestd.verify.tpm.verify_quote` also checks to be a restricted signing key), else the
public key of ``aik_cert``; when both are sent they must be the same key. ``aikValidated`` is
true when ``aik_cert`` chains to a configured root (``tpm_aik_roots``; intermediates may follow
the leaf in ``aik_cert``), every certificate is valid at the verification time, and it certifies
that signer. With ``require_valid_aik_cert`` (default true) anything else is refused.
``aikPubHash`` is ``base64(SHA-256(DER SubjectPublicKeyInfo of the AIK))`` (standard base64 with
padding, per MAA's claim-set documentation [I: no real value to compare with]).

**PCRs.** Every PCR of ``required_pcr_mask`` (default ``0xFFFFFF``: PCRs 0-23) must be in the
quote's selection, in at least one bank. The TCG log must replay to the quoted values of every
PCR it extends that the quote selects (:func:`attestd.claims.tpm.verify_event_log`); only those
events become claims. Without a log there are no boot claims, only ``pcrs`` and ``tpmVersion``.

**bootEvents.** MAA gives v1.2 policies ``events`` (the current log) and ``bootEvents`` (the
log of the boot). A Windows machine resumed from hibernation sends the quote and log it took at
boot as ``boot_attestation`` (same fields as ``current_attestation``); attestd then verifies
that quote with the current AIK (any ``aik_pub``/``aik_cert`` it carries must be that key),
replays its log against it, and requires it to come from the current TPM power cycle: the same
(key-obfuscated) ``clockInfo.resetCount`` and ``firmwareVersion`` as the fresh quote, and a
``clockInfo.clock`` no later. Its ``extraData`` is not checked (it predates the challenge; the
fresh quote carries the freshness). Without ``boot_attestation`` the current log is the boot
log and ``bootEvents`` equals ``events`` [I: MAA's behaviour here is undocumented].

Every failure raises an :class:`~attestd.errors.EvidenceError` (HTTP 400 ``InvalidParameter``)
with a message naming the field or the check.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from json.decoder import scanstring  # type: ignore[attr-defined]
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from attestd.claims.tpm import TPM_VERSION, events_json, pcrs_json, tpm_claims
from attestd.errors import (
    EvidenceError,
    KeyNotCertified,
    MalformedEvidence,
    QualifyingDataMismatch,
    VerificationError,
)
from attestd.evidence.eventlog import parse_event_log
from attestd.evidence.tpm import (
    HASH_DIGEST_SIZES,
    ObjectAttribute,
    Public,
    parse_attest_header,
    parse_public,
    parse_tpm2b_public,
)
from attestd.verify.tpm import AkPublic, VerifiedQuote, verify_certification, verify_quote

__all__ = [
    "DEFAULT_REQUIRED_PCR_MASK",
    "AttestationRequest",
    "InvalidTpmRequest",
    "TpmAttestation",
    "parse_request",
    "qualifying_data",
    "verify_attestation",
]

DEFAULT_REQUIRED_PCR_MASK = 0xFFFFFF
_HASH_ALGS = {
    "sha-256": hashlib.sha256,
    "sha256": hashlib.sha256,
    "sha-384": hashlib.sha384,
    "sha384": hashlib.sha384,
    "sha-512": hashlib.sha512,
    "sha512": hashlib.sha512,
}
_ALG_NAMES = {"sha1": 0x0004, "sha256": 0x000B, "sha384": 0x000C, "sha512": 0x000D}
_JWS_ALGS = ("RS256", "PS256")
_PRIVATE_JWK_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth")
_MAX_CHAIN = 5
_MAX_OTHER_KEYS = 2  # maa-compat.md §1.4
_RESIDENT = ObjectAttribute.FIXED_TPM | ObjectAttribute.SENSITIVE_DATA_ORIGIN


class InvalidTpmRequest(EvidenceError):
    """The attReqV2 request is malformed or fails a check (HTTP 400 InvalidParameter)."""

    code = "InvalidTpmRequest"


@dataclass(frozen=True)
class TpmAttestation:
    """``tpm_att_data.current_attestation`` or ``boot_attestation``, decoded and unverified."""

    log: bytes | None
    aik_chain: tuple[x509.Certificate, ...]  # leaf first; empty when no aik_cert was sent
    aik_pub: AkPublic | None
    pcrs: Mapping[int, Mapping[int, bytes]]
    quote: bytes
    signature: bytes


@dataclass(frozen=True)
class AttestationRequest:
    """An attReqV2 request whose JWS signature verified with its own ``request_key``."""

    challenge: bytes
    service_context: str
    rp_data: str | None
    nonce: str | None
    request_jwk: dict[str, Any]
    request_key_info: dict[str, Any]
    jwk_text: bytes  # the jwk exactly as sent (see the module docstring)
    hash_alg: str | None  # info.tpm_quote.hash_alg, lower case; None: bound by tpm_certify
    current: TpmAttestation
    boot: TpmAttestation | None = None
    certified: tuple[CertifiedKey, ...] = ()  # the request key's (first, if any) and others'
    other_keys: tuple[dict[str, Any], ...] = ()  # att_data.other_keys as sent


@dataclass(frozen=True)
class CertifiedKey:
    """A key with a ``tpm_certify`` binding, decoded; :func:`verify_attestation` checks that the
    AIK certified it."""

    field: str  # where it was in the payload, for messages
    public: Public
    certification: bytes
    signature: bytes


@dataclass(frozen=True)
class VerifiedAttestation:
    claims: dict[str, Any]
    aik_validated: bool


# -- small decoders -------------------------------------------------------------------------------


def _fail(message: str) -> InvalidTpmRequest:
    return InvalidTpmRequest(message)


def b64_any(value: object, field: str) -> bytes:
    """Standard base64 or base64url, padded or not."""
    if not isinstance(value, str) or not value:
        raise _fail(f"'{field}' must be a non-empty base64 or base64url string")
    text = value.strip().replace("+", "-").replace("/", "_").rstrip("=")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise _fail(f"'{field}' is neither base64 nor base64url: {exc}") from exc


def _obj(value: object, field: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _fail(f"'{field}' must be a JSON object")
    return value


def _str(value: object, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(f"'{field}' must be a non-empty string")
    return value


def _int(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(f"'{field}' must be an integer")
    return value


def _certified_key(
    key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey, value: object, base: str
) -> CertifiedKey:
    """``{public, certification, signature}``: the key's TPMT_PUBLIC (or TPM2B_PUBLIC), and the
    TPMS_ATTEST and TPMT_SIGNATURE of a ``TPM2_Certify`` of it by the AIK. The public area must
    hold the JWK's key."""
    certify = _obj(value, base)
    public = _tpm_public(certify.get("public"), f"{base}.public")
    if _spki(public.public_key()) != _spki(key):
        raise _fail(f"'{base}.public' is not the key of the JWK it certifies")
    return CertifiedKey(
        base,
        public,
        b64_any(certify.get("certification"), f"{base}.certification"),
        b64_any(certify.get("signature"), f"{base}.signature"),
    )


def _tpm_public(value: object, field: str, *, jwk: bool = False) -> Public:
    """A base64 TPM2B_PUBLIC, or a bare TPMT_PUBLIC."""
    blob = b64_any(value, field)
    try:
        return parse_tpm2b_public(blob)
    except EvidenceError:
        try:
            return parse_public(blob)
        except EvidenceError as exc:
            kinds = (
                "a JWK nor a TPM2B_PUBLIC/TPMT_PUBLIC"
                if jwk
                else "a TPM2B_PUBLIC nor a TPMT_PUBLIC"
            )
            raise _fail(f"'{field}' is neither {kinds}: {exc}") from exc


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _fail(f"the request payload repeats the member {key!r}")
        out[key] = value
    return out


def _value_span(text: str, path: Sequence[str]) -> tuple[int, int]:
    """Start and end offsets of the value at ``path`` (object members) in the JSON ``text``,
    which has already parsed without duplicate members."""
    decoder = json.JSONDecoder()
    ws = " \t\n\r"
    i = 0
    for depth, name in enumerate(path):
        while text[i] in ws:
            i += 1
        if text[i] != "{":  # pragma: no cover - the parsed payload had an object here
            raise _fail(f"'{'.'.join(path[:depth])}' is not an object")
        i += 1
        while True:
            while text[i] in ws or text[i] == ",":
                i += 1
            if text[i] == "}":  # pragma: no cover - the member exists in the parsed payload
                raise _fail(f"'{'.'.join(path[: depth + 1])}' is missing")
            key, i = scanstring(text, i + 1)
            while text[i] in ws or text[i] == ":":
                i += 1
            if key == name:
                break
            _, i = decoder.raw_decode(text, i)
    _, end = decoder.raw_decode(text, i)
    return i, end


def _rsa_jwk(jwk: Mapping[str, Any], field: str) -> rsa.RSAPublicKey:
    if jwk.get("kty") != "RSA":
        raise _fail(f"'{field}' must be an RSA JWK (kty 'RSA'), got kty {jwk.get('kty')!r}")
    private = [m for m in _PRIVATE_JWK_MEMBERS if m in jwk]
    if private:
        raise _fail(f"'{field}' must be a public key: it carries {', '.join(private)}")
    n = int.from_bytes(b64_any(jwk.get("n"), f"{field}.n"), "big")
    e = int.from_bytes(b64_any(jwk.get("e"), f"{field}.e"), "big")
    try:
        return rsa.RSAPublicNumbers(e, n).public_key()
    except ValueError as exc:
        raise _fail(f"'{field}' is not a usable RSA public key: {exc}") from exc


_CURVES: dict[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(),
    "P-384": ec.SECP384R1(),
    "P-521": ec.SECP521R1(),
}


def _public_jwk(jwk: Mapping[str, Any], field: str) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
    if jwk.get("kty") != "EC":
        return _rsa_jwk(jwk, field)
    if "d" in jwk:
        raise _fail(f"'{field}' must be a public key: it carries d")
    curve = _CURVES.get(str(jwk.get("crv")))
    if curve is None:
        raise _fail(f"'{field}.crv' must be one of {', '.join(_CURVES)}")
    x = int.from_bytes(b64_any(jwk.get("x"), f"{field}.x"), "big")
    y = int.from_bytes(b64_any(jwk.get("y"), f"{field}.y"), "big")
    try:
        return ec.EllipticCurvePublicNumbers(x, y, curve).public_key()
    except ValueError as exc:
        raise _fail(f"'{field}' is not a point on {jwk.get('crv')}: {exc}") from exc


# -- parsing --------------------------------------------------------------------------------------


def parse_request(jws: object) -> AttestationRequest:
    """Decode the attReqV2 JWS, verify its signature with the ``request_key`` of its payload
    and decode the payload (module docstring). Raises :class:`InvalidTpmRequest`."""
    if not isinstance(jws, str) or jws.count(".") != 2:
        raise _fail("'request' must be a compact JWS (header.payload.signature)")
    head_b64, body_b64, sig_b64 = jws.split(".")
    try:
        header = json.loads(b64_any(head_b64, "request JWS header"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _fail(f"the request JWS header is not JSON: {exc}") from exc
    header = _obj(header, "request JWS header")
    alg = header.get("alg")
    if alg not in _JWS_ALGS:
        raise _fail(f"the request JWS 'alg' must be RS256 or PS256, not {alg!r}")
    typ = header.get("typ")
    if typ == "attReq":
        raise _fail("attReq (protocol v1) requests are not supported: send typ 'attReqV2'")
    if typ != "attReqV2":
        raise _fail(f"the request JWS 'typ' must be 'attReqV2', not {typ!r}")
    raw = b64_any(body_b64, "request JWS payload")
    try:
        text = raw.decode("utf-8")
        payload = json.loads(text, object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, InvalidTpmRequest):
            raise
        raise _fail(f"the request JWS payload is not UTF-8 JSON: {exc}") from exc
    payload = _obj(payload, "request payload")
    att_type = payload.get("att_type", "basic")
    if att_type != "basic":
        raise _fail(f"'att_type' {att_type!r} is not supported (only 'basic')")
    att = _obj(payload.get("att_data"), "att_data")
    request_key = _obj(att.get("request_key"), "att_data.request_key")
    if "attest_key" in att:
        raise _fail("'att_data.attest_key' is protocol v1: send 'request_key' (attReqV2)")
    jwk = dict(_obj(request_key.get("jwk"), "att_data.request_key.jwk"))
    key = _rsa_jwk(jwk, "att_data.request_key.jwk")

    # The signature, before anything in the payload is believed.
    signature = b64_any(sig_b64, "request JWS signature")
    signed = f"{head_b64}.{body_b64}".encode("ascii")
    pad: padding.AsymmetricPadding = (
        padding.PKCS1v15()
        if alg == "RS256"
        else padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
    )
    try:
        key.verify(signature, signed, pad, hashes.SHA256())
    except (InvalidSignature, ValueError) as exc:
        raise _fail(
            f"the request JWS {alg} signature does not verify with att_data.request_key.jwk"
        ) from exc

    info = dict(_obj(request_key.get("info"), "att_data.request_key.info"))
    if "tpm_quote" not in info and "tpm_certify" not in info:
        raise _fail(
            "'att_data.request_key.info' binds the key with neither tpm_quote nor tpm_certify"
        )
    hash_alg: str | None = None
    if "tpm_quote" in info:
        quote_info = _obj(info.get("tpm_quote"), "att_data.request_key.info.tpm_quote")
        hash_alg = _str(quote_info.get("hash_alg"), "att_data.request_key.info.tpm_quote.hash_alg")
        if hash_alg.lower() not in _HASH_ALGS:
            raise _fail(
                f"'request_key.info.tpm_quote.hash_alg' {hash_alg!r} is not supported "
                "(sha-256, sha-384 or sha-512)"
            )
        hash_alg = hash_alg.lower()
    certified = (
        [_certified_key(key, info.get("tpm_certify"), "att_data.request_key.info.tpm_certify")]
        if "tpm_certify" in info
        else []
    )
    other_keys = att.get("other_keys", [])
    if not isinstance(other_keys, list) or len(other_keys) > _MAX_OTHER_KEYS:
        raise _fail(f"'att_data.other_keys' must be a list of at most {_MAX_OTHER_KEYS} keys")
    for i, item in enumerate(other_keys):
        base = f"att_data.other_keys[{i}]"
        entry = _obj(item, base)
        other = _public_jwk(_obj(entry.get("jwk"), f"{base}.jwk"), f"{base}.jwk")
        other_info = _obj(entry.get("info"), f"{base}.info")
        if "tpm_certify" not in other_info:
            raise _fail(f"'{base}.info.tpm_certify' is required: an uncertified key proves nothing")
        certified.append(
            _certified_key(other, other_info["tpm_certify"], f"{base}.info.tpm_certify")
        )
    start, end = _value_span(text, ("att_data", "request_key", "jwk"))
    rp_data = att.get("rp_data")
    nonce = att.get("nonce")
    for name, value in (("rp_data", rp_data), ("nonce", nonce)):
        if value is not None and not isinstance(value, str):
            raise _fail(f"'att_data.{name}' must be a string")
    tpm = _obj(att.get("tpm_att_data"), "att_data.tpm_att_data")
    boot = tpm.get("boot_attestation")
    return AttestationRequest(
        challenge=b64_any(att.get("challenge"), "att_data.challenge"),
        service_context=_str(att.get("service_context"), "att_data.service_context"),
        rp_data=rp_data,
        nonce=nonce,
        request_jwk=jwk,
        request_key_info=info,
        jwk_text=text[start:end].encode("utf-8"),
        hash_alg=hash_alg,
        certified=tuple(certified),
        other_keys=tuple(other_keys),
        current=_attestation(tpm.get("current_attestation"), "current_attestation"),
        boot=None if boot is None else _attestation(boot, "boot_attestation"),
    )


def _attestation(value: object, name: str) -> TpmAttestation:
    base = f"tpm_att_data.{name}"
    att = _obj(value, base)
    logs = att.get("logs", [])
    if not isinstance(logs, list):
        raise _fail(f"'{base}.logs' must be a list")
    log: bytes | None = None
    for i, item in enumerate(logs):
        entry = _obj(item, f"{base}.logs[{i}]")
        if entry.get("type") != "TCG":
            raise _fail(f"'{base}.logs[{i}].type' {entry.get('type')!r} is not supported (TCG)")
        if log is not None:
            raise _fail(f"'{base}.logs' holds more than one TCG log")
        log = b64_any(entry.get("log"), f"{base}.logs[{i}].log")

    certs = att.get("aik_cert")
    chain: list[x509.Certificate] = []
    if certs is not None:
        items = certs if isinstance(certs, list) else [certs]
        for i, item in enumerate(items):
            field = f"{base}.aik_cert" + (f"[{i}]" if isinstance(certs, list) else "")
            try:
                chain.append(x509.load_der_x509_certificate(b64_any(item, field)))
            except ValueError as exc:
                raise _fail(f"'{field}' is not a DER X.509 certificate: {exc}") from exc

    aik_pub: AkPublic | None = None
    pub = att.get("aik_pub")
    if isinstance(pub, dict):
        aik_pub = _public_jwk(pub, f"{base}.aik_pub")
    elif pub is not None:
        aik_pub = _tpm_public(pub, f"{base}.aik_pub", jwk=True)
    if aik_pub is None and not chain:
        raise _fail(f"'{base}' carries neither aik_pub nor aik_cert")

    return TpmAttestation(
        log=log,
        aik_chain=tuple(chain),
        aik_pub=aik_pub,
        pcrs=_pcrs(att.get("pcrs"), f"{base}.pcrs"),
        quote=b64_any(att.get("quote"), f"{base}.quote"),
        signature=b64_any(att.get("signature"), f"{base}.signature"),
    )


def _boot_events(
    boot: TpmAttestation,
    signer: AkPublic,
    pub_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
    current: VerifiedQuote,
) -> dict[str, Any]:
    """``bootEvents`` from ``boot_attestation``: the quote a Windows machine took at boot, with
    its boot log, sent again after resuming from hibernation (module docstring)."""
    base = "tpm_att_data.boot_attestation"
    for key, field in (
        (
            boot.aik_pub.public_key() if isinstance(boot.aik_pub, Public) else boot.aik_pub,
            "aik_pub",
        ),
        (boot.aik_chain[0].public_key() if boot.aik_chain else None, "aik_cert"),
    ):
        if key is not None and _spki(key) != _spki(pub_key):  # type: ignore[arg-type]
            raise _fail(f"'{base}.{field}' is not the AIK of the current attestation")
    if boot.log is None:
        raise _fail(f"'{base}.logs' must carry the boot TCG log")
    # The boot quote predates the challenge: its extraData is whatever the client chose then.
    extra = parse_attest_header(boot.quote).extra_data
    verified = verify_quote(
        boot.quote, boot.signature, signer, pcr_values=boot.pcrs, qualifying_data=extra
    )
    # TPM 2.0 Part 2 §10.11.1 (TPMS_CLOCK_INFO): resetCount counts TPM Resets (reboots),
    # restartCount the restarts and resumes since. Part 3 §18.1: for a key outside the
    # endorsement and platform hierarchies both (and firmwareVersion) are obfuscated with a
    # value fixed for that key, so under one AIK equal values still mean equal counts; their
    # order cannot be compared, Clock's can.
    then, now = verified.attest.clock_info, current.attest.clock_info
    if then.reset_count != current.attest.clock_info.reset_count:
        raise _fail(
            f"'{base}.quote' is from another boot: its clockInfo.resetCount differs from the "
            "current quote's (the TPM was reset since)"
        )
    if then.clock > now.clock:
        raise _fail(
            f"'{base}.quote' is later than the current quote (clockInfo.clock {then.clock} > "
            f"{now.clock})"
        )
    if verified.attest.firmware_version != current.attest.firmware_version:
        raise _fail(f"'{base}.quote' was signed by other TPM firmware (firmwareVersion differs)")
    return events_json(parse_event_log(boot.log), replayed=verified.pcrs)


def _pcrs(value: object, base: str) -> dict[int, dict[int, bytes]]:
    if not isinstance(value, list) or not value:
        raise _fail(f"'{base}' must be a non-empty list of {{algorithm, values}}")
    out: dict[int, dict[int, bytes]] = {}
    for i, item in enumerate(value):
        bank = _obj(item, f"{base}[{i}]")
        raw_alg = bank.get("algorithm")
        alg = _ALG_NAMES.get(raw_alg.lower().replace("-", "")) if isinstance(raw_alg, str) else None
        if alg is None:
            alg = _int(raw_alg, f"{base}[{i}].algorithm")
        if alg not in HASH_DIGEST_SIZES:
            raise _fail(f"'{base}[{i}].algorithm' {raw_alg!r} is not a TPM hash algorithm")
        if alg in out:
            raise _fail(f"'{base}' lists algorithm {raw_alg!r} twice")
        values = bank.get("values")
        if not isinstance(values, list):
            raise _fail(f"'{base}[{i}].values' must be a list of {{index, digest}}")
        digests: dict[int, bytes] = {}
        for j, v in enumerate(values):
            entry = _obj(v, f"{base}[{i}].values[{j}]")
            index = _int(entry.get("index"), f"{base}[{i}].values[{j}].index")
            if not 0 <= index <= 23 or index in digests:
                raise _fail(f"'{base}[{i}].values[{j}].index' {index} is not a new PCR 0-23")
            digest = b64_any(entry.get("digest"), f"{base}[{i}].values[{j}].digest")
            if len(digest) != HASH_DIGEST_SIZES[alg]:
                raise _fail(
                    f"'{base}[{i}].values[{j}].digest' has {len(digest)} bytes, "
                    f"expected {HASH_DIGEST_SIZES[alg]}"
                )
            digests[index] = digest
        out[alg] = digests
    return out


# -- verification ---------------------------------------------------------------------------------


def qualifying_data(jwk_text: bytes, challenge: bytes, hash_alg: str) -> bytes:
    """``HASH(UTF8(jwk as sent) || 0x00 || challenge)`` (module docstring)."""
    return _HASH_ALGS[hash_alg.lower()](jwk_text + b"\x00" + challenge).digest()


def _spki(key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _chain_error(
    chain: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    at: datetime,
    *,
    kind: str = "AIK",
    setting: str = "tpm_aik_roots",
) -> str | None:
    """None if ``chain[0]`` chains to a root through ``chain[1:]``, all valid at ``at``; else
    why not. ``kind`` (``AIK``, ``EK``) and ``setting`` name the certificate and the roots in
    the messages."""
    if not roots:
        return f"no {kind} roots are configured ({setting})"

    def valid(cert: x509.Certificate, what: str) -> str | None:
        if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
            return (
                f"{what} {cert.subject.rfc4514_string()} is valid from "
                f"{cert.not_valid_before_utc.isoformat()} to {cert.not_valid_after_utc.isoformat()},"
                f" not at {at.isoformat()}"
            )
        return None

    def issued_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
        if child.issuer != issuer.subject:
            return False
        try:
            child.verify_directly_issued_by(issuer)
        except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
            return False
        return True

    current = chain[0]
    root_ders = {r.public_bytes(Encoding.DER) for r in roots}
    intermediates = list(chain[1:])
    for depth in range(_MAX_CHAIN):
        why = valid(current, f"the {kind} certificate" if depth == 0 else "the intermediate")
        if why:
            return why
        if current.public_bytes(Encoding.DER) in root_ders:
            return None
        for root in roots:
            if issued_by(current, root):
                return valid(root, f"the {kind} root")
        for cand in intermediates:
            if issued_by(current, cand):
                try:
                    ca = cand.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
                except x509.ExtensionNotFound:
                    ca = False
                if not ca:
                    return f"{cand.subject.rfc4514_string()} is not a CA certificate"
                intermediates.remove(cand)
                current = cand
                break
        else:
            return (
                f"the {kind} certificate does not chain to a configured {kind} root "
                f"(issuer {current.issuer.rfc4514_string()} is not trusted)"
            )
    return f"the {kind} certificate chain is too long"


def verify_attestation(
    request: AttestationRequest,
    *,
    roots: Sequence[x509.Certificate],
    require_valid_aik_cert: bool,
    required_pcr_mask: int,
    at: datetime,
) -> VerifiedAttestation:
    """Verify ``request.current`` (module docstring) and return the incoming claims:
    :func:`attestd.claims.tpm.tpm_claims` plus ``aikValidated``, ``aikPubHash``,
    ``tpmVersion``, ``vbsReportPresent`` (false), ``bootEvents`` and ``x-ms-tpm-request-key``. The challenge and service context are the caller's (already checked)."""
    att = request.current
    base = "tpm_att_data.current_attestation"
    cert_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey | None = None
    if att.aik_chain:
        certified = att.aik_chain[0].public_key()
        if not isinstance(certified, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            raise _fail(f"'{base}.aik_cert' certifies neither an RSA nor an ECC key")
        cert_key = certified
    signer: AkPublic
    if att.aik_pub is not None:
        signer = att.aik_pub
        pub_key = signer.public_key() if isinstance(signer, Public) else signer
        if cert_key is not None and _spki(cert_key) != _spki(pub_key):
            raise _fail(f"'{base}.aik_pub' is not the public key of '{base}.aik_cert'")
    else:
        assert cert_key is not None  # parse_request refused neither
        signer = pub_key = cert_key

    validated = False
    if att.aik_chain:
        why = _chain_error(att.aik_chain, roots, at)
        validated = why is None
        if why is not None and require_valid_aik_cert:
            raise _fail(f"AIK certificate rejected (require_valid_aik_cert): {why}")
    elif require_valid_aik_cert:
        raise _fail(
            f"'{base}.aik_cert' is required: the TPM policy's require_valid_aik_cert is true"
        )

    if request.hash_alg is not None:
        expected = qualifying_data(request.jwk_text, request.challenge, request.hash_alg)
        binding = f"{request.hash_alg}(request_key.jwk as sent || 0x00 || challenge)"
    else:  # the key is bound by tpm_certify; the quote carries the challenge itself
        expected, binding = request.challenge, "the challenge"
    try:
        quote = verify_quote(
            att.quote, att.signature, signer, pcr_values=att.pcrs, qualifying_data=expected
        )
    except QualifyingDataMismatch as exc:
        raise QualifyingDataMismatch(
            f"the quote is not bound to this request: its extraData is not {binding}"
        ) from exc
    for key in request.certified:
        try:
            verify_certification(key.certification, key.signature, signer, certified=key.public)
        except VerificationError as exc:
            raise KeyNotCertified(f"'{key.field}': {exc}") from exc
        except MalformedEvidence as exc:
            raise _fail(f"'{key.field}.certification': {exc}") from exc
        # As go-attestation's certification check: the TPM generated the key and will not let it
        # leave (fixedTPM cannot be set on an imported or externally loaded private key).
        if not key.public.has(_RESIDENT):
            raise KeyNotCertified(
                f"'{key.field}.public': objectAttributes 0x{key.public.object_attributes:08x} "
                "lack fixedTPM or sensitiveDataOrigin: the key may exist outside this TPM"
            )

    selected = {p for sel in quote.attest.attested.pcr_select for p in sel.pcrs}
    missing = [p for p in range(24) if required_pcr_mask >> p & 1 and p not in selected]
    if missing:
        raise _fail(
            f"the quote does not select PCR {', '.join(map(str, missing))}, required by "
            f"required_pcr_mask 0x{required_pcr_mask:06X}"
        )

    if att.log is not None:
        claims = tpm_claims(parse_event_log(att.log), quote.pcrs)
        claims["bootEvents"] = claims["events"]
    else:
        claims = {"pcrs": pcrs_json(quote.pcrs)}
    if request.boot is not None:
        claims["bootEvents"] = _boot_events(request.boot, signer, pub_key, quote)
    claims["tpmVersion"] = TPM_VERSION
    claims["vbsReportPresent"] = False  # att_type "vbs" is refused by parse_request
    claims["aikValidated"] = validated
    claims["aikPubHash"] = base64.b64encode(hashlib.sha256(_spki(pub_key)).digest()).decode()
    claims["x-ms-tpm-request-key"] = {"jwk": request.request_jwk, "info": request.request_key_info}
    if request.other_keys:
        claims["x-ms-tpm-other-keys"] = list(request.other_keys)
    return VerifiedAttestation(claims, validated)
