"""Step 2 of MAA's TPM protocol (maa-compat.md §1.4, tpm.md §5): the ``attReqV2`` request.

:func:`parse_request` takes the compact JWS of ``{"payload": {"request": "<JWS>"}}``, checks its
header (``alg`` RS256 or PS256, ``typ`` ``attReqV2``) and its signature with the RSA
``request_key`` it carries, and returns the typed request.
:func:`attestd.verify.tpm_attestation.verify_attestation` then verifies it and returns the
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

Verification (the AIK, the PCRs, the logs, the certified keys, ``bootEvents``) is
:mod:`attestd.verify.tpm_attestation`.

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
from json.decoder import scanstring  # type: ignore[attr-defined]
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from attestd._json import parse_json
from attestd.errors import (
    EvidenceError,
)
from attestd.evidence.tpm import (
    HASH_DIGEST_SIZES,
    Public,
    parse_public,
    parse_tpm2b_public,
)
from attestd.verify.tpm import AkPublic

__all__ = [
    "AttestationRequest",
    "CertifiedKey",
    "InvalidTpmRequest",
    "TpmAttestation",
    "parse_request",
    "qualifying_data",
]

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
_MAX_OTHER_KEYS = 2  # maa-compat.md §1.4


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
    if public.public_key() != key:  # cryptography compares the key material
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
        header = parse_json(b64_any(head_b64, "request JWS header"))
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
        payload = parse_json(text, object_pairs_hook=_no_duplicates)
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


def qualifying_data(jwk_text: bytes, challenge: bytes, hash_alg: str) -> bytes:
    """``HASH(UTF8(jwk as sent) || 0x00 || challenge)`` (module docstring)."""
    return _HASH_ALGS[hash_alg.lower()](jwk_text + b"\x00" + challenge).digest()
