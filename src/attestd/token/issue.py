"""Issuing MAA-shaped JWTs: attestation tokens, management responses, draft-policy tokens.

The exact shape of MAA's tokens, checked against the recorded ones (maa-compat.md §0 items 5 and
6, §2.1, §2.2):

* Header, compact JSON in this key order: ``{"alg":"RS256","jku":"<base>/certs","kid":...,
  "typ":"JWT"}``; ``"alg":"none"`` and an empty signature segment (``hdr.payload.``) for
  draft-policy tokens.
* Payload: compact JSON with lexicographically sorted keys, nested objects included (so
  ``x-ms-runtime`` comes out re-sorted); ``iat``, ``nbf`` and ``exp`` are JSON integers,
  ``nbf = iat``; ``exp = iat + 8 h`` for attestation tokens and ``+ 1 h`` for management
  responses; ``jti`` is 64 lowercase hex characters. Management responses carry no ``jti``
  (``with_jti=False``).
* Signature: RS256 (RSASSA-PKCS1-v1_5 with SHA-256; 342 base64url characters for RSA-2048) or
  ES256 (raw ``r || s``, 64 bytes).

Signing goes straight to the ``cryptography`` key object held by :class:`SigningKey`: no JWT
library and no PEM parsing per token. The payload is serialized by orjson with
``OPT_SORT_KEYS``, which for JSON's own types (str, int within 64 bits, bool, None, list, dict
with str keys) writes exactly what ``json.dumps(sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`` writes, UTF-8 encoded, at a fraction of the cost. Two differences are left
as they are, because no MAA claim is a float or an integer beyond 64 bits: floats with a small
exponent (orjson ``1e-7``, json ``1e-07``: both valid JSON, the same number) and integers
outside the 64-bit range (orjson refuses them: :class:`TypeError` here). Nested ``Mapping``
values that are not dicts (for example ``MappingProxyType``) are serialized as objects.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from attestd.errors import ConfigurationError
from attestd.token.keys import SigningKey

__all__ = [
    "ATTESTATION_TOKEN_LIFETIME",
    "MANAGEMENT_TOKEN_LIFETIME",
    "REGISTERED_CLAIMS",
    "canonical_json",
    "issue_token",
    "unsigned_token",
]

#: ``exp - iat`` of an attestation token (maa-compat.md §0 item 5).
ATTESTATION_TOKEN_LIFETIME: Final = timedelta(hours=8)
#: ``exp - iat`` of a policy or certificate management response (maa-compat.md §0 item 5).
MANAGEMENT_TOKEN_LIFETIME: Final = timedelta(hours=1)

#: The claims the issuer sets; a ``claims`` mapping that holds any of them is refused.
REGISTERED_CLAIMS: Final = frozenset({"exp", "iat", "iss", "jti", "nbf"})

_PKCS1V15: Final = padding.PKCS1v15()
_SHA256: Final = hashes.SHA256()
_ECDSA_SHA256: Final = ec.ECDSA(hashes.SHA256())
_ORJSON_OPTIONS: Final = orjson.OPT_SORT_KEYS


def _b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _mapping_as_dict(value: object) -> dict[Any, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def canonical_json(value: object) -> bytes:
    """Compact JSON, keys sorted at every level, UTF-8, non-ASCII written as is: the
    serialization of MAA's token payloads (maa-compat.md §0 item 5). See the module docstring
    for how it relates to ``json.dumps``. Raises :class:`TypeError` for a value JSON cannot
    represent (including non-string object keys)."""
    try:
        return orjson.dumps(value, default=_mapping_as_dict, option=_ORJSON_OPTIONS)
    except orjson.JSONEncodeError as exc:
        raise TypeError(f"claims are not JSON-serializable: {exc}") from exc


def _header(alg: str, jku: str, kid: str) -> bytes:
    # A dict keeps insertion order and orjson writes it as given: MAA's order, which is also
    # sorted order.
    return _b64url(orjson.dumps({"alg": alg, "jku": jku, "kid": kid, "typ": "JWT"}))


def _payload(
    claims: Mapping[str, Any],
    *,
    issuer: str,
    now: datetime,
    lifetime: timedelta,
    jti: str | None,
    with_jti: bool,
) -> bytes:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    seconds = lifetime // timedelta(seconds=1)
    if seconds <= 0:
        raise ValueError(f"token lifetime must be at least one second, got {lifetime}")
    reserved = REGISTERED_CLAIMS.intersection(claims)
    if reserved:
        raise ValueError(f"claims must not set {', '.join(sorted(reserved))}: the issuer does")
    iat = int(now.timestamp())
    body: dict[str, Any] = dict(claims)
    body["iat"] = iat
    body["nbf"] = iat
    body["exp"] = iat + seconds
    body["iss"] = issuer
    if with_jti:
        body["jti"] = secrets.token_hex(32) if jti is None else jti
    return _b64url(canonical_json(body))


def _sign(key: SigningKey, data: bytes) -> bytes:
    private_key = key.private_key
    if isinstance(private_key, rsa.RSAPrivateKey):
        return private_key.sign(data, _PKCS1V15, _SHA256)
    r, s = decode_dss_signature(private_key.sign(data, _ECDSA_SHA256))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def issue_token(
    claims: Mapping[str, Any],
    *,
    key: SigningKey,
    issuer: str,
    now: datetime,
    lifetime: timedelta,
    jku: str,
    jti: str | None = None,
    with_jti: bool = True,
) -> str:
    """A signed JWT in MAA's form (module docstring): header ``{"alg","jku","kid","typ"}`` with
    ``kid = key.kid``; payload ``claims`` plus ``iat`` (``now``, whole seconds), ``nbf = iat``,
    ``exp = iat + lifetime`` (whole seconds), ``iss = issuer`` and ``jti`` (``jti`` if given,
    else 32 random bytes in lowercase hex; omitted when ``with_jti`` is false, as in MAA's
    management responses).

    Use :data:`ATTESTATION_TOKEN_LIFETIME` or :data:`MANAGEMENT_TOKEN_LIFETIME` for
    ``lifetime``. RS256 tokens are deterministic: the same inputs and ``jti`` give the same
    string. Raises ``ValueError`` when ``claims`` sets a registered claim
    (:data:`REGISTERED_CLAIMS`), ``now`` is naive or ``lifetime`` is under a second,
    ``TypeError`` for claims JSON cannot represent, and :class:`ConfigurationError` when ``now``
    is outside the signing certificate's validity."""
    payload = _payload(
        claims, issuer=issuer, now=now, lifetime=lifetime, jti=jti, with_jti=with_jti
    )
    if not key.not_before <= now <= key.not_after:
        raise ConfigurationError(
            f"signing key {key.kid} is valid from {key.not_before.isoformat()} to "
            f"{key.not_after.isoformat()}, not at {now.isoformat()}"
        )
    signing_input = _header(key.algorithm, jku, key.kid) + b"." + payload
    return (signing_input + b"." + _b64url(_sign(key, signing_input))).decode("ascii")


def unsigned_token(
    claims: Mapping[str, Any],
    *,
    issuer: str,
    now: datetime,
    lifetime: timedelta,
    jku: str,
    kid: str,
    jti: str | None = None,
    with_jti: bool = True,
) -> str:
    """The draft-policy token (maa-compat.md §0 item 6): the header of a signed token with
    ``"alg":"none"`` (``jku`` and ``kid`` still name the instance's signing key) and an empty
    signature, ``hdr.payload.``. The payload is built as by :func:`issue_token`."""
    header = _header("none", jku, kid)
    payload = _payload(
        claims, issuer=issuer, now=now, lifetime=lifetime, jti=jti, with_jti=with_jti
    )
    return (header + b"." + payload + b".").decode("ascii")
