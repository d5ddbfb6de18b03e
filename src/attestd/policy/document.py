"""The policy *document* layer: the compact JWS that carries an attestation policy or a policy
signer certificate, its hashes, its signature and the trust decision on its signer.

Hand-written over pyca/cryptography, with no JWT library, because MAA clients send nonstandard
``alg`` values (maa-compat.md §0 item 8, §4 "SDK bugs a server must tolerate").

What is accepted (maa-compat.md §1.5, §0 items 8 and 9):

* Unsigned: header ``{"alg":"none"}`` and an empty signature segment (``hdr.payload.``).
* Signed: ``alg`` ``RS256`` / ``RSA256`` (SDK spelling, = RS256), ``PS256``, ``ES256`` /
  ``ECDH256`` (SDK spelling for EC keys, = ES256 with a raw ``r || s`` signature). ``alg`` is
  matched case-insensitively (the docs write ``None``). The signer is an X.509 chain, leaf first,
  standard base64 DER, in the top-level ``x5c`` or in ``jwk.x5c``; a bare JWK key without ``x5c``
  is refused (signers are certificates).
* Policy payload ``{"AttestationPolicy": base64url_nopad(utf8(text))}``. Padded base64url and
  plain base64 are accepted too, as clients vary (maa-compat.md §7: MAA's own strictness is
  unknown). An **empty payload segment** is the "no policy" form: MAA returns
  ``eyJhbGciOiJub25lIn0..`` when no policy is set (§1.5) and the SDK sends it, signed or not, to
  reset a policy; it parses to ``policy_text == ""``.
* Certificate payload ``{"policyCertificate" | "maa-policyCertificate" | "x-ms-policyCertificate":
  {"kty": ..., "x5c": [...]}}``. ``kty`` is not checked against the key: the Python SDK always
  sends ``"RSA"`` (§4).

Strict on purpose: the JWS must be the bare ASCII string (no surrounding whitespace: the token
hash is over the exact string, §0 item 2), at most :data:`MAX_JWS_LENGTH` characters, JSON without
duplicate keys, and no ``crit`` header. Anything malformed raises :class:`PolicyDocumentError`,
never another exception; a signature or trust failure raises :class:`PolicySignatureInvalid`.

**Trailing newlines.** :func:`policy_hash` hashes the text exactly; nothing is stripped or added.
The two vector files with published check values (``minimal_permit_all.txt``, 63 bytes, and
``default_sgx_openenclave_policy_service_2021.txt``, 501 bytes) end in ``};`` with no newline, and
the shared instance's recorded Get Policy returns the default SGX text byte for byte equal to the
file. Hashing the file contents as they are gives the published values; adding a ``\\n`` changes
them (``T0zzGOY_...`` and ``mYTmDYzh...``). So a trailing newline is part of the policy exactly
when it is part of the uploaded text.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from attestd._json import parse_json
from attestd.errors import ConfigurationError, PolicyDocumentError, PolicySignatureInvalid
from attestd.pki.certs import X509_LOAD_ERRORS, ecdsa_p256_verify_raw, strict_x509

__all__ = [
    "CERTIFICATE_CLAIMS",
    "MAX_CHAIN_LENGTH",
    "MAX_JWS_LENGTH",
    "Jwk",
    "PolicyDocument",
    "certificate_jwk",
    "certificate_thumbprint",
    "parse_policy_certificate_document",
    "parse_policy_document",
    "policy_hash",
    "policy_token_hash",
    "sign_policy",
    "sign_policy_certificate_document",
    "unsigned_policy",
    "verify_policy_certificate_document",
    "verify_policy_document",
]

MAX_JWS_LENGTH: Final = 1 << 20
"""Largest JWS accepted, in characters. MAA publishes no policy size limit (maa-compat.md §5);
this one is ours."""

MAX_CHAIN_LENGTH: Final = 16
"""Most certificates accepted in an ``x5c`` array."""

CERTIFICATE_CLAIMS: Final = ("policyCertificate", "maa-policyCertificate", "x-ms-policyCertificate")
"""The three payload names of a policy signer certificate (maa-compat.md §0 item 9)."""

POLICY_CLAIM: Final = "AttestationPolicy"

Jwk = dict[str, str | list[str]]
"""A JWK as MAA emits it: string members and the ``x5c`` list."""

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

# Header ``alg`` (lower-cased) -> the JOSE algorithm it means; None is "unsigned".
_ALGORITHMS: Final[dict[str, str | None]] = {
    "none": None,
    "rs256": "RS256",
    "rsa256": "RS256",
    "ps256": "PS256",
    "es256": "ES256",
    "ecdh256": "ES256",
}
_ACCEPTED_ALGS: Final = "none, RS256, RSA256, PS256, ES256, ECDH256"

_B64URL_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")
_B64_ANY = re.compile(r"[A-Za-z0-9+/_-]*(={0,2})")
_CERT_ERRORS = (*X509_LOAD_ERRORS, TypeError, x509.DuplicateExtension)
_VERIFY_ERRORS = (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm)


# -- hashes (maa-compat.md §0 items 1 and 2) -------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def policy_hash(policy_text: str) -> str:
    """``x-ms-policy-hash`` (maa-compat.md §0 item 1):
    ``base64url_nopad(SHA256(ascii(base64url_nopad(utf8(policy_text)))))``.

    The hash of the ``AttestationPolicy`` string of the canonical payload, so a signed and an
    unsigned upload of the same text hash alike. The text is hashed exactly as given: a trailing
    newline counts (see the module docstring). For a client that sent the text padded or in plain
    base64, this is still the hash of the canonical unpadded base64url form [I: whether MAA hashes
    such a string as sent is unknown, maa-compat.md §7]."""
    encoded = _b64url(policy_text.encode("utf-8")).encode("ascii")
    return _b64url(hashlib.sha256(encoded).digest())


def policy_token_hash(jws: str) -> str:
    """``x-ms-policy-token-hash`` (maa-compat.md §0 item 2, §1.5): ``base64url_nopad(SHA256(the
    policy JWS exactly as received))``, as the Set Policy response returns it."""
    return _b64url(hashlib.sha256(jws.encode("utf-8")).digest())


def certificate_thumbprint(cert: x509.Certificate) -> str:
    """Uppercase hex SHA-1 of the certificate DER, as ``x-ms-certificate-thumbprint``
    (maa-compat.md §1.5)."""
    return cert.fingerprint(hashes.SHA1()).hex().upper()


def _x5c_entry(cert: x509.Certificate) -> str:
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode("ascii")


def _key_kty_alg(key: CertificatePublicKeyTypes) -> tuple[str, str]:
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC", "ES256"
    raise PolicyDocumentError(f"unsupported signer key type {type(key).__name__}")


def certificate_jwk(
    cert: x509.Certificate, *, form: Literal["management", "attestation"] = "management"
) -> Jwk:
    """The JWK MAA uses to name a certificate (maa-compat.md §1.5).

    ``form="management"`` is ``{"alg","kty","use","x5c"}``, as in the Set Policy response's
    ``x-ms-policy-signer`` and in GET ``/certificates`` ``keys[]`` [V]. ``form="attestation"`` is
    ``{"kty","x5c"}``, as in the ``x-ms-policy-signer`` of attestation tokens [V, the nine signed-
    policy attest tokens of the Python SDK recordings]. ``alg`` follows the key type (RSA ->
    ``RS256``, as recorded, including for certificates added without any ``alg``; EC -> ``ES256``
    [I]); ``x5c`` is the certificate alone, in standard base64."""
    try:
        kty, alg = _key_kty_alg(cert.public_key())
    except _CERT_ERRORS as exc:
        raise PolicyDocumentError(f"certificate public key does not load ({exc})") from exc
    if form == "attestation":
        return {"kty": kty, "x5c": [_x5c_entry(cert)]}
    return {"alg": alg, "kty": kty, "use": "sig", "x5c": [_x5c_entry(cert)]}


# -- the document -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyDocument:
    """A parsed policy JWS (maa-compat.md §1.5). Structure only: nothing here has been checked
    against a signature or a trusted signer until :func:`verify_policy_document` says so.

    ``jws`` is the string exactly as received (Get Policy returns it byte for byte, and the token
    hash is over it). ``algorithm`` is the JOSE name the header's ``alg`` means (``RSA256`` ->
    ``RS256``, ``ECDH256`` -> ``ES256``), ``None`` when unsigned. ``signer`` is the leaf of
    ``chain``. ``policy_text`` is ``""`` for the empty-payload "no policy" form."""

    policy_text: str
    jws: str
    signed: bool
    algorithm: str | None
    signer: x509.Certificate | None
    chain: tuple[x509.Certificate, ...]

    @property
    def policy_hash(self) -> str:
        """``x-ms-policy-hash`` of the text (maa-compat.md §0 item 1)."""
        return policy_hash(self.policy_text)

    @property
    def token_hash(self) -> str:
        """``x-ms-policy-token-hash`` of the JWS (maa-compat.md §0 item 2)."""
        return policy_token_hash(self.jws)

    def signer_jwk(self, *, form: Literal["management", "attestation"] = "management") -> Jwk:
        """MAA's ``x-ms-policy-signer`` value for this document (maa-compat.md §1.5).

        The Set Policy response carries ``{"alg":"RS256","kty":"RSA","use":"sig","x5c":[leaf]}``
        (``form="management"``, the default); attestation tokens evaluated under a signed policy
        carry ``{"kty":"RSA","x5c":[leaf]}`` (``form="attestation"``). See
        :func:`certificate_jwk`. Raises :class:`PolicyDocumentError` for an unsigned document."""
        if self.signer is None:
            raise PolicyDocumentError("an unsigned policy has no signer")
        return certificate_jwk(self.signer, form=form)


@dataclass(frozen=True)
class _Jws:
    header: dict[str, Any]
    payload: bytes
    signing_input: bytes
    signature: bytes
    algorithm: str | None
    chain: tuple[x509.Certificate, ...]


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _b64url_segment(segment: str, what: str) -> bytes:
    """One compact-JWS segment: base64url, unpadded (correct ``=`` padding is tolerated)."""
    body = segment.rstrip("=")
    pad = len(segment) - len(body)
    if not _B64URL_SEGMENT.fullmatch(body) or len(body) % 4 == 1:
        raise PolicyDocumentError(f"{what} is not base64url")
    if pad and (pad > 2 or (len(body) + pad) % 4):
        raise PolicyDocumentError(f"{what} has wrong base64 padding")
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))


def _b64_lenient(value: str, what: str) -> bytes:
    """base64url or standard base64, padded or not (values inside the JSON, maa-compat.md §1.5)."""
    m = _B64_ANY.fullmatch(value)
    if m is None:
        raise PolicyDocumentError(f"{what} is not base64 or base64url")
    body = value[: len(value) - len(m.group(1))]
    if len(body) % 4 == 1 or (m.group(1) and len(value) % 4):
        raise PolicyDocumentError(f"{what} has a wrong base64 length or padding")
    std = body.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(std + "=" * (-len(std) % 4), validate=True)
    except binascii.Error as exc:  # pragma: no cover - the pattern already guarantees this
        raise PolicyDocumentError(f"{what} is not base64 ({exc})") from exc


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise PolicyDocumentError(f"duplicate JSON member {_short(key)}")
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise PolicyDocumentError(f"JSON constant {name} is not allowed")


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyDocumentError(f"{what} is not UTF-8 ({exc.reason})") from exc
    try:
        value = parse_json(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except PolicyDocumentError as exc:
        raise PolicyDocumentError(f"{what}: {exc.message}") from exc
    except ValueError as exc:
        raise PolicyDocumentError(f"{what} is not JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise PolicyDocumentError(f"{what} is not a JSON object")
    return value


def _load_x5c(value: object, what: str) -> tuple[x509.Certificate, ...]:
    if not isinstance(value, list) or not value:
        raise PolicyDocumentError(f"{what} must be a non-empty array of base64 DER certificates")
    if len(value) > MAX_CHAIN_LENGTH:
        raise PolicyDocumentError(
            f"{what} has {len(value)} certificates, at most {MAX_CHAIN_LENGTH}"
        )
    certs: list[x509.Certificate] = []
    for i, entry in enumerate(value):
        if not isinstance(entry, str):
            raise PolicyDocumentError(f"{what}[{i}] is not a string")
        der = _b64_lenient(entry, f"{what}[{i}]")
        try:
            with strict_x509():
                cert = x509.load_der_x509_certificate(der)
                # Surface here, once, what cryptography parses lazily and we use later.
                _ = (cert.public_key(), cert.extensions, cert.issuer, cert.subject)
        except _CERT_ERRORS as exc:
            raise PolicyDocumentError(f"{what}[{i}] is not an X.509 certificate ({exc})") from exc
        certs.append(cert)
    return tuple(certs)


def _header_chain(header: dict[str, Any]) -> tuple[x509.Certificate, ...]:
    """The signer chain from ``x5c`` or ``jwk.x5c`` (maa-compat.md §0 item 8)."""
    top = _load_x5c(header["x5c"], "header x5c") if "x5c" in header else None
    nested = None
    if "jwk" in header:
        jwk = header["jwk"]
        if not isinstance(jwk, dict):
            raise PolicyDocumentError("header jwk is not a JSON object")
        if "x5c" in jwk:
            nested = _load_x5c(jwk["x5c"], "header jwk.x5c")
    if top is not None and nested is not None and top != nested:
        raise PolicyDocumentError("header x5c and jwk.x5c name different certificates")
    chain = top if top is not None else nested
    if chain is None:
        raise PolicyDocumentError(
            "a signed policy JWS needs its signer's certificate chain in x5c or jwk.x5c"
        )
    return chain


def _parse_jws(jws: object) -> _Jws:
    if not isinstance(jws, str):
        raise PolicyDocumentError(f"a policy JWS is a string, not {type(jws).__name__}")
    if len(jws) > MAX_JWS_LENGTH:
        raise PolicyDocumentError(f"JWS is {len(jws)} characters, at most {MAX_JWS_LENGTH}")
    if not jws.isascii():
        raise PolicyDocumentError("JWS contains non-ASCII characters")
    if any(c.isspace() for c in jws):
        raise PolicyDocumentError("JWS contains whitespace (send the compact JWS string only)")
    parts = jws.split(".")
    if len(parts) != 3:
        raise PolicyDocumentError(
            f"a compact JWS has 3 dot-separated parts (header.payload.signature), not {len(parts)}"
        )
    header_b64, payload_b64, signature_b64 = parts
    header = _json_object(_b64url_segment(header_b64, "JWS header"), "JWS header")
    payload = _b64url_segment(payload_b64, "JWS payload")
    signature = _b64url_segment(signature_b64, "JWS signature")

    if "crit" in header:
        raise PolicyDocumentError("JWS header 'crit' is not supported")
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise PolicyDocumentError("JWS header has no string 'alg'")
    try:
        algorithm = _ALGORITHMS[alg.lower()]
    except KeyError:
        raise PolicyDocumentError(
            f"unsupported JWS alg {_short(alg)} (accepted: {_ACCEPTED_ALGS})"
        ) from None
    if algorithm is None:
        if signature_b64:
            raise PolicyDocumentError("an unsigned (alg none) JWS must have an empty signature")
        chain: tuple[x509.Certificate, ...] = ()
    else:
        if not signature:
            raise PolicyDocumentError(f"JWS alg {alg} but the signature is empty")
        chain = _header_chain(header)
    signing_input = f"{header_b64}.{payload_b64}".encode("ascii")
    return _Jws(header, payload, signing_input, signature, algorithm, chain)


def _policy_text(payload: bytes) -> str:
    """``AttestationPolicy`` from the payload (maa-compat.md §1.5); ``""`` for an empty payload."""
    if not payload:
        return ""
    claims = _json_object(payload, "JWS payload")
    if POLICY_CLAIM not in claims:
        near = [k for k in claims if k.lower() == POLICY_CLAIM.lower()]
        hint = f" (found {_short(near[0])}; the name is case-sensitive)" if near else ""
        raise PolicyDocumentError(f"JWS payload has no {POLICY_CLAIM!r} claim{hint}")
    value = claims[POLICY_CLAIM]
    if not isinstance(value, str):
        raise PolicyDocumentError(f"{POLICY_CLAIM} must be a base64url string")
    raw = _b64_lenient(value, POLICY_CLAIM)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyDocumentError(f"{POLICY_CLAIM} is not UTF-8 text ({exc.reason})") from exc


def parse_policy_document(jws: str) -> PolicyDocument:
    """Parse a policy JWS (maa-compat.md §1.5, §0 item 8). Structure only, no trust decision.

    Raises :class:`PolicyDocumentError` for anything malformed, naming the problem. The caller
    decides whether plain-text policies are accepted; this takes only JWS."""
    return _parse_document(jws)[0]


def _parse_document(jws: str) -> tuple[PolicyDocument, _Jws]:
    parsed = _parse_jws(jws)
    doc = PolicyDocument(
        policy_text=_policy_text(parsed.payload),
        jws=jws,
        signed=parsed.algorithm is not None,
        algorithm=parsed.algorithm,
        signer=parsed.chain[0] if parsed.chain else None,
        chain=parsed.chain,
    )
    return doc, parsed


# -- signatures and trust ---------------------------------------------------------------------


def _signature_ok(parsed: _Jws) -> bool:
    leaf = parsed.chain[0]
    key = leaf.public_key()
    data, sig = parsed.signing_input, parsed.signature
    try:
        if parsed.algorithm in ("RS256", "PS256"):
            if not isinstance(key, rsa.RSAPublicKey):
                return False
            pad: padding.AsymmetricPadding = (
                padding.PKCS1v15()
                if parsed.algorithm == "RS256"
                else padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.AUTO)
            )
            key.verify(sig, data, pad, hashes.SHA256())
            return True
        if parsed.algorithm == "ES256":
            if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(
                key.curve, ec.SECP256R1
            ):
                return False
            return ecdsa_p256_verify_raw(key, sig, data)
    except _VERIFY_ERRORS:
        return False
    return False


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except (x509.ExtensionNotFound, *_CERT_ERRORS):
        return False
    return bc.ca


def _issued_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    if not _is_ca(issuer):
        return False
    try:
        child.verify_directly_issued_by(issuer)
    except _VERIFY_ERRORS:
        return False
    return True


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _chains_to_trusted(
    chain: Sequence[x509.Certificate], trusted_signers: Sequence[x509.Certificate]
) -> bool:
    """Whether the leaf is a trusted signer (same DER), or is issued, through the ``x5c``
    intermediates, by one. Every issuer must be a CA (BasicConstraints ``CA=true``, as MAA asks
    of a signer chain's root, maa-compat.md §1.5). Validity periods are not checked: the
    instance's configured signers decide, and recorded signer certificates have long expired."""
    trusted_der = {_der(t) for t in trusted_signers}
    current, rest = chain[0], list(chain[1:])
    while True:
        if _der(current) in trusted_der:
            return True
        if any(_issued_by(current, t) for t in trusted_signers):
            return True
        nxt = next((c for c in rest if _issued_by(current, c)), None)
        if nxt is None:
            return False
        rest.remove(nxt)
        current = nxt


def _verify_signed(parsed: _Jws, trusted_signers: Sequence[x509.Certificate], what: str) -> None:
    assert parsed.chain  # a signed _Jws always carries one
    if not _signature_ok(parsed):
        raise PolicySignatureInvalid(
            f"the {what} signature ({parsed.algorithm}) does not verify with the x5c leaf "
            f"{_subject(parsed.chain[0])}"
        )
    if not _chains_to_trusted(parsed.chain, trusted_signers):
        raise PolicySignatureInvalid(
            f"the {what} signer {_subject(parsed.chain[0])} is not a trusted policy signer "
            "and does not chain to one"
        )


def _subject(cert: x509.Certificate) -> str:
    try:
        return repr(cert.subject.rfc4514_string())
    except ValueError:  # pragma: no cover - names were loaded at parse time
        return "(unprintable subject)"


def verify_policy_document(
    doc: PolicyDocument,
    *,
    trusted_signers: Sequence[x509.Certificate],
    require_signed: bool,
) -> None:
    """The trust decision on a parsed policy document (maa-compat.md §1.5 "Isolated mode").

    Passes when the document is unsigned and ``require_signed`` is false, or when it is signed,
    its signature verifies with the leaf of its ``x5c`` chain, and that leaf is one of
    ``trusted_signers`` (same DER) or chains to one by signature. Raises
    :class:`PolicySignatureInvalid` otherwise. The document's fields are re-derived from
    ``doc.jws``, so a hand-altered :class:`PolicyDocument` does not verify."""
    try:
        reparsed, parsed = _parse_document(doc.jws)
    except PolicyDocumentError as exc:
        raise PolicySignatureInvalid(f"policy document does not parse: {exc.message}") from exc
    if reparsed != doc:
        raise PolicySignatureInvalid("policy document fields do not match its JWS")
    if parsed.algorithm is None:
        if require_signed:
            raise PolicySignatureInvalid(
                "this instance requires policies signed by a trusted policy signer; "
                "the policy JWS is unsigned (alg none)"
            )
        return
    _verify_signed(parsed, trusted_signers, "policy")


# -- policy certificate documents (certificates:add / :remove) --------------------------------


def _certificate_claim(payload: bytes) -> x509.Certificate:
    if not payload:
        raise PolicyDocumentError("JWS payload is empty; expected a policyCertificate claim")
    claims = _json_object(payload, "JWS payload")
    present = [name for name in CERTIFICATE_CLAIMS if name in claims]
    if not present:
        raise PolicyDocumentError(
            "JWS payload has none of the claims " + ", ".join(CERTIFICATE_CLAIMS)
        )
    if len(present) > 1:
        raise PolicyDocumentError(f"JWS payload has more than one certificate claim: {present}")
    name = present[0]
    jwk = claims[name]
    if not isinstance(jwk, dict):
        raise PolicyDocumentError(f"{name} must be a JWK object with x5c")
    if "kty" in jwk and not isinstance(jwk["kty"], str):
        raise PolicyDocumentError(f"{name}.kty is not a string")
    if "x5c" not in jwk:
        raise PolicyDocumentError(f"{name} has no x5c certificate")
    return _load_x5c(jwk["x5c"], f"{name}.x5c")[0]


def parse_policy_certificate_document(
    jws: str,
) -> tuple[tuple[x509.Certificate, ...], x509.Certificate]:
    """Parse a certificates:add / :remove body (maa-compat.md §1.5, §0 item 9): returns the
    signer chain from the header (leaf first; ``()`` when unsigned) and the certificate named by
    the payload (the first entry of its ``x5c``). Structure only; see
    :func:`verify_policy_certificate_document`."""
    parsed = _parse_jws(jws)
    return parsed.chain, _certificate_claim(parsed.payload)


def verify_policy_certificate_document(
    jws: str, *, trusted_signers: Sequence[x509.Certificate]
) -> x509.Certificate:
    """Parse a certificates:add / :remove body and require it to be signed by an existing policy
    signer (maa-compat.md §1.5): returns the certificate being added or removed. Raises
    :class:`PolicyDocumentError` when malformed, :class:`PolicySignatureInvalid` when unsigned or
    not signed by (a chain to) one of ``trusted_signers``."""
    parsed = _parse_jws(jws)
    certificate = _certificate_claim(parsed.payload)
    if parsed.algorithm is None:
        raise PolicySignatureInvalid(
            "a policy certificate change must be signed by an existing policy signer; "
            "the JWS is unsigned (alg none)"
        )
    _verify_signed(parsed, trusted_signers, "policy certificate document")
    return certificate


# -- producing documents ----------------------------------------------------------------------


def _compact(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def _policy_payload(policy_text: str) -> bytes:
    return _compact({POLICY_CLAIM: _b64url(policy_text.encode("utf-8"))})


def unsigned_policy(policy_text: str) -> str:
    """The unsigned policy JWS: ``{"alg":"none"}`` header, ``{"AttestationPolicy": ...}``
    payload, empty signature (maa-compat.md §1.5)."""
    return f"{_b64url(_compact({'alg': 'none'}))}.{_b64url(_policy_payload(policy_text))}."


def _sign_jws(
    payload: bytes,
    *,
    key: PrivateKey,
    certificate: x509.Certificate,
    chain: Sequence[x509.Certificate],
    algorithm: str | None,
    header_style: Literal["x5c", "jwk"],
) -> str:
    public = key.public_key()
    if _der_spki(public) != _der_spki(certificate.public_key()):
        raise ConfigurationError("the signing key does not match the certificate's public key")
    if algorithm is None:
        algorithm = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
    jose = _ALGORITHMS.get(algorithm.lower())
    if jose is None:
        raise ConfigurationError(
            f"cannot sign with alg {_short(algorithm)} (use one of RS256, RSA256, PS256, ES256, ECDH256)"
        )
    if jose in ("RS256", "PS256") and not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigurationError(f"alg {algorithm} needs an RSA key")
    if jose == "ES256" and not (
        isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)
    ):
        raise ConfigurationError(f"alg {algorithm} needs an EC P-256 key")
    x5c = [_x5c_entry(c) for c in (certificate, *chain)]
    header: dict[str, object] = {"alg": algorithm}
    if header_style == "x5c":
        header["x5c"] = x5c
    else:
        header["jwk"] = {"x5c": x5c}
    signing_input = f"{_b64url(_compact(header))}.{_b64url(payload)}"
    data = signing_input.encode("ascii")
    if isinstance(key, rsa.RSAPrivateKey):
        pad: padding.AsymmetricPadding = (
            padding.PKCS1v15()
            if jose == "RS256"
            else padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH)
        )
        signature = key.sign(data, pad, hashes.SHA256())
    else:
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{signing_input}.{_b64url(signature)}"


def _der_spki(key: CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def sign_policy(
    policy_text: str,
    *,
    key: PrivateKey,
    certificate: x509.Certificate,
    algorithm: str | None = None,
    header_style: Literal["x5c", "jwk"] = "x5c",
    chain: Sequence[x509.Certificate] = (),
) -> str:
    """A signed policy JWS in MAA's form (maa-compat.md §1.5, §0 item 8).

    ``algorithm`` defaults to ``RS256`` for an RSA key and ``ES256`` for an EC P-256 key; any
    accepted spelling (``RSA256``, ``ECDH256``, ``PS256``, ...) is written to the header as given.
    ``header_style="x5c"`` puts the chain in the top-level ``x5c`` (the docs' form),
    ``"jwk"`` in ``jwk.x5c`` (the Python SDK's form). ``chain`` holds intermediates to send after
    ``certificate``. ES256 signatures are raw ``r || s``. Raises :class:`ConfigurationError` when
    the key does not match the certificate or the algorithm."""
    return _sign_jws(
        _policy_payload(policy_text),
        key=key,
        certificate=certificate,
        chain=chain,
        algorithm=algorithm,
        header_style=header_style,
    )


def sign_policy_certificate_document(
    certificate: x509.Certificate,
    *,
    key: PrivateKey,
    signer_certificate: x509.Certificate,
    claim: str = "policyCertificate",
    algorithm: str | None = None,
    header_style: Literal["x5c", "jwk"] = "x5c",
    chain: Sequence[x509.Certificate] = (),
) -> str:
    """A certificates:add / :remove body (maa-compat.md §1.5): payload
    ``{claim: {"kty": ..., "x5c": [certificate]}}`` signed by ``key`` / ``signer_certificate``.
    ``claim`` is one of :data:`CERTIFICATE_CLAIMS`."""
    if claim not in CERTIFICATE_CLAIMS:
        raise ConfigurationError(f"claim must be one of {', '.join(CERTIFICATE_CLAIMS)}")
    jwk = certificate_jwk(certificate, form="attestation")
    return _sign_jws(
        _compact({claim: jwk}),
        key=key,
        certificate=signer_certificate,
        chain=chain,
        algorithm=algorithm,
        header_style=header_style,
    )
