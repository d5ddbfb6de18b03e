"""Verification of a parsed attReqV2 request (:mod:`attestd.verify.tpm_request`): the AIK, the
quote and its binding to the request key, the keys the AIK certified, the PCR selection, the
TCG logs, and the incoming claims (maa-compat.md §1.4, §2.2; tpm.md §5).

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
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from attestd.claims.tpm import (
    TPM_VERSION,
    events_json,
    log_claims,
    pcrs_json,
    verified_pcrs_json,
    verify_event_log,
)
from attestd.errors import (
    KeyNotCertified,
    MalformedEvidence,
    QualifyingDataMismatch,
    VerificationError,
)
from attestd.evidence.eventlog import parse_event_log
from attestd.evidence.tpm import ObjectAttribute, Public, parse_attest_header
from attestd.verify.tpm import AkPublic, VerifiedQuote, verify_certification, verify_quote
from attestd.verify.tpm_request import (
    AttestationRequest,
    InvalidTpmRequest,
    TpmAttestation,
    qualifying_data,
)

__all__ = [
    "DEFAULT_REQUIRED_PCR_MASK",
    "VerifiedAttestation",
    "chain_error",
    "verify_attestation",
]

DEFAULT_REQUIRED_PCR_MASK = 0xFFFFFF
_MAX_CHAIN = 5
_RESIDENT = ObjectAttribute.FIXED_TPM | ObjectAttribute.SENSITIVE_DATA_ORIGIN


@dataclass(frozen=True)
class VerifiedAttestation:
    """The incoming claims, and for the report the PCR values the TCG log vouches for
    (:func:`attestd.claims.tpm.verified_pcrs_json`; None without a log)."""

    claims: dict[str, Any]
    aik_validated: bool
    verified_pcrs: dict[str, Any] | None


def _fail(message: str) -> InvalidTpmRequest:
    return InvalidTpmRequest(message)


def _spki(key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def chain_error(
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
    """Verify ``request`` (module docstring) and return the incoming claims:
    :func:`attestd.claims.tpm.tpm_claims` plus ``aikValidated``, ``aikPubHash``,
    ``tpmVersion``, ``vbsReportPresent`` (false), ``bootEvents``, ``x-ms-tpm-request-key`` and
    ``x-ms-tpm-other-keys``. The challenge and service context are the caller's (checked)."""
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
        why = chain_error(att.aik_chain, roots, at)
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

    verified_pcrs = None
    if att.log is not None:
        verified_log = verify_event_log(parse_event_log(att.log), quote.pcrs)
        claims = log_claims(verified_log, quote.pcrs)
        claims["bootEvents"] = claims["events"]
        verified_pcrs = verified_pcrs_json(verified_log, quote.pcrs)
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
    return VerifiedAttestation(claims, validated, verified_pcrs)


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
