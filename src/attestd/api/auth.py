"""Administrator authentication for management calls.

``Authorization: Bearer <credential>``, where the credential is either a locally issued API key
(stored hashed; ``attestd apikey create``) or, when an OpenID issuer is configured
(``[oidc]`` in the settings, :mod:`attestd.config`), a JWT from that issuer, as MAA's AAD mode
accepts Azure AD tokens.

API keys are recognised by their ``attestd_`` prefix and never reach the JWT path. A JWT is
accepted when, in this order:

1. it is at most 16 KiB and parses; its header ``alg`` is one of ``oidc_algorithms`` (``none``
   and ``HS*`` are never accepted, so a token "signed" with the issuer's public key as an HMAC
   secret is refused before any key is looked at);
2. its (not yet verified) ``iss`` is the configured issuer: tokens of other issuers are refused
   without contacting anyone;
3. its ``kid`` names a key of the issuer's JWKS. The JWKS location comes from
   ``{issuer}/.well-known/openid-configuration`` (whose ``issuer`` must equal the configured one;
   ``jwks_uri`` must be https, or http on a loopback host). Both are fetched with httpx (5 s
   timeout, no redirects, at most 1 MiB) and the keys are cached for ``oidc_jwks_cache_seconds``.
   An unknown ``kid`` triggers one refetch (key rotation at the IdP), at most once every 30 s,
   so junk tokens cannot make us hammer the IdP; a failed fetch is not retried for 10 s;
4. the signature verifies with that key (the algorithm bound to it: a JWK's own ``alg`` must
   match the header's; RSA keys shorter than 2048 bits are refused);
5. ``aud`` contains ``oidc_audience``; ``exp`` is present and not past, ``nbf`` (if present) is
   not in the future, both with 60 s leeway, against the service clock;
6. the role claim (``oidc_role_claim``: a list of strings or a space-separated string; a dotted
   path such as ``realm_access.roles`` if no top-level claim has that name) holds
   ``oidc_admin_role``;
7. it has a ``sub`` (or, failing that, an ``oid``): the actor recorded in the audit log is
   ``oidc:<sub or oid>``.

Every failure is :class:`~attestd.service.NotAuthorized` with a message saying which check
failed; no httpx or PyJWT exception escapes. The key cache is shared by the threads of one
process and guarded by a lock; a refresh happens under the lock, so concurrent requests wait for
one fetch instead of each making their own. The fetch is synchronous (it blocks the calling
thread; each of its two requests has 5 s timeouts) and rare: once per cache period in steady state.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt

from attestd._json import parse_json
from attestd.config import Settings
from attestd.service import AttestationService, NotAuthorized
from attestd.store.base import API_KEY_PREFIX

__all__ = ["Authenticator", "OidcVerifier"]

log = logging.getLogger("attestd.api.auth")

HTTP_TIMEOUT_SECONDS = 5.0
LEEWAY_SECONDS = 60
UNKNOWN_KID_REFETCH_INTERVAL = timedelta(seconds=30)
FAILED_FETCH_BACKOFF = timedelta(seconds=10)
MAX_DOCUMENT_BYTES = 1 << 20
MAX_TOKEN_CHARS = 16 * 1024
_LOOPBACK = ("localhost", "127.0.0.1", "::1")
_SIGNING_KTY = ("RSA", "EC", "OKP")


class Authenticator:
    def __init__(self, service: AttestationService) -> None:
        self.service = service
        settings = service.settings
        self.oidc: OidcVerifier | None = (
            OidcVerifier(settings, clock=lambda: service.clock()) if settings.oidc_issuer else None
        )

    def authenticate(self, authorization: str | None) -> str:
        """The acting administrator's name (for the audit log), or :class:`NotAuthorized`."""
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise NotAuthorized(
                "this operation needs 'Authorization: Bearer <administrator credential>'"
            )
        if token.startswith(API_KEY_PREFIX):
            name = self.service.store.verify_api_key(token)
            if name is not None:
                return f"apikey:{name}"
            raise NotAuthorized("the API key is not valid (unknown or revoked)")
        if self.oidc is None:
            raise NotAuthorized("the bearer token is not a valid administrator credential")
        return self.oidc.authenticate(token)


class _FetchError(Exception):
    """The issuer's configuration or keys could not be fetched or used (message says why)."""


class OidcVerifier:
    """Validates bearer JWTs of one OpenID issuer; caches its JWKS. Thread-safe."""

    def __init__(self, settings: Settings, *, clock: Callable[[], datetime]) -> None:
        self.issuer = settings.oidc_issuer
        self.audience = settings.oidc_audience
        self.role_claim = settings.oidc_role_claim
        self.admin_role = settings.oidc_admin_role
        self.algorithms = tuple(settings.oidc_algorithms)
        self.cache_for = timedelta(seconds=settings.oidc_jwks_cache_seconds)
        self.discovery_url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str | None, dict[str, Any]] = {}  # kid -> JWK (None: a key without kid)
        self._parsed: dict[tuple[str | None, str], jwt.PyJWK] = {}
        self._fetched_at: datetime | None = None  # last successful fetch
        self._attempted_at: datetime | None = None  # last fetch, successful or not
        self._last_error: str | None = None  # of the last fetch, if it failed

    # -- the token ---------------------------------------------------------------------------------

    def authenticate(self, token: str) -> str:
        try:
            return self._authenticate(token)
        except NotAuthorized:
            raise
        except Exception:  # fail closed: whatever went wrong, the caller is not authenticated
            log.exception("unexpected error while validating an OpenID token")
            raise NotAuthorized(
                "the bearer token could not be validated (internal error)"
            ) from None

    def _authenticate(self, token: str) -> str:
        if len(token) > MAX_TOKEN_CHARS:
            raise NotAuthorized(f"the bearer token is longer than {MAX_TOKEN_CHARS} characters")
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise NotAuthorized(
                f"the bearer token is neither an attestd API key nor a well-formed JWT ({exc})"
            ) from None
        alg = header.get("alg")
        if not isinstance(alg, str) or not alg:
            raise NotAuthorized("the token header names no signature algorithm ('alg')")
        if alg.lower() == "none":
            raise NotAuthorized("unsigned tokens (alg 'none') are never accepted")
        if alg.upper().startswith("HS"):
            raise NotAuthorized(f"symmetric signatures (alg {alg!r}) are never accepted")
        if alg not in self.algorithms:
            raise NotAuthorized(
                f"the token's algorithm {alg!r} is not accepted (accepted: "
                f"{', '.join(self.algorithms)})"
            )
        iss = unverified.get("iss")
        if iss != self.issuer:
            raise NotAuthorized(
                f"the token's issuer {iss!r} is not the configured OpenID issuer {self.issuer!r}"
            )
        kid = header.get("kid")
        key = self._key(kid if isinstance(kid, str) else None, alg)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                options={
                    "verify_exp": False,  # checked below against the service clock
                    "verify_nbf": False,
                    "verify_iat": False,
                    "require": ["iss", "aud", "exp"],
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.InvalidSignatureError:
            raise NotAuthorized(
                f"the token's signature does not verify with the issuer's key {kid!r}"
            ) from None
        except jwt.InvalidAudienceError:
            raise NotAuthorized(
                f"wrong audience: the token is for {unverified.get('aud')!r}, "
                f"this service is {self.audience!r}"
            ) from None
        except jwt.InvalidIssuerError:
            raise NotAuthorized(
                f"the token's issuer is not the configured OpenID issuer {self.issuer!r}"
            ) from None
        except jwt.MissingRequiredClaimError as exc:
            raise NotAuthorized(f"the token has no {exc.claim!r} claim") from None
        except jwt.InvalidKeyError as exc:
            raise NotAuthorized(f"the issuer's key {kid!r} is not acceptable: {exc}") from None
        except jwt.PyJWTError as exc:
            raise NotAuthorized(f"the token is not valid: {exc}") from None
        self._check_times(claims)
        self._check_role(claims)
        return f"oidc:{self._subject(claims)}"

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        now = self._clock()
        leeway = timedelta(seconds=LEEWAY_SECONDS)
        exp = _instant(claims.get("exp"), "exp")
        if now > exp + leeway:
            raise NotAuthorized(
                f"the token expired at {exp.isoformat()} (now {now.isoformat()}, "
                f"{LEEWAY_SECONDS} s leeway)"
            )
        if claims.get("nbf") is not None:
            nbf = _instant(claims["nbf"], "nbf")
            if now + leeway < nbf:
                raise NotAuthorized(
                    f"the token is not valid before {nbf.isoformat()} (now {now.isoformat()}, "
                    f"{LEEWAY_SECONDS} s leeway)"
                )

    def _check_role(self, claims: Mapping[str, Any]) -> None:
        value = _claim(claims, self.role_claim)
        if isinstance(value, str):
            roles = value.split()
        elif isinstance(value, list):
            roles = [r for r in value if isinstance(r, str)]
        else:
            roles = []
        if self.admin_role not in roles:
            if value is None:
                raise NotAuthorized(
                    f"missing role: the token has no {self.role_claim!r} claim (the administrator "
                    f"role {self.admin_role!r} is required)"
                )
            raise NotAuthorized(
                f"missing role: the token's {self.role_claim!r} claim does not include the "
                f"administrator role {self.admin_role!r}"
            )

    @staticmethod
    def _subject(claims: Mapping[str, Any]) -> str:
        for name in ("sub", "oid"):
            value = claims.get(name)
            if isinstance(value, str) and value.strip() and len(value) <= 256:
                return value.strip()
        raise NotAuthorized("the token names no subject (no usable 'sub' or 'oid' claim)")

    # -- the issuer's keys -------------------------------------------------------------------------

    def _key(self, kid: str | None, alg: str) -> jwt.PyJWK:
        """The issuer's key for ``kid``, bound to ``alg``; fetches the JWKS if needed."""
        with self._lock:
            now = self._clock()
            if self._fresh(now):
                jwk = self._lookup(kid)
                if jwk is None:
                    if _within(now, self._attempted_at, UNKNOWN_KID_REFETCH_INTERVAL):
                        raise NotAuthorized(self._unknown(kid, now))
                    log.info("unknown key id %r: refetching the issuer's JWKS", kid)
                    self._refresh(now)
            else:
                if self._last_error is not None and _within(
                    now, self._attempted_at, FAILED_FETCH_BACKOFF
                ):
                    raise NotAuthorized(
                        f"identity provider unreachable: {self._last_error} (retrying after "
                        f"{int(FAILED_FETCH_BACKOFF.total_seconds())} s)"
                    )
                self._refresh(now)
            jwk = self._lookup(kid)
            if jwk is None:
                raise NotAuthorized(self._unknown(kid, now))
            parsed = self._parsed.get((kid, alg))
            if parsed is None:
                declared = jwk.get("alg")
                if declared is not None and declared != alg:
                    raise NotAuthorized(
                        f"the token's algorithm {alg!r} does not match the issuer's key {kid!r} "
                        f"({declared!r})"
                    )
                try:
                    parsed = jwt.PyJWK(jwk, algorithm=alg)
                except jwt.PyJWTError as exc:
                    raise NotAuthorized(
                        f"the issuer's key {kid!r} cannot verify {alg} signatures ({exc})"
                    ) from None
                self._parsed[(kid, alg)] = parsed
            return parsed

    def _fresh(self, now: datetime) -> bool:
        return _within(now, self._fetched_at, self.cache_for)

    def _lookup(self, kid: str | None) -> dict[str, Any] | None:
        if kid is None and len(self._keys) == 1:  # no kid: fine if the issuer has one key
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    def _unknown(self, kid: str | None, now: datetime) -> str:
        if kid is None:
            return "the token header has no 'kid' and the issuer publishes several keys"
        age = int((now - self._attempted_at).total_seconds()) if self._attempted_at else 0
        return (
            f"unknown key: the token is signed with key {kid!r}, which the issuer's JWKS "
            f"(fetched {age} s ago) does not list"
        )

    def _refresh(self, now: datetime) -> None:
        """Fetch the discovery document and the JWKS; the lock is held."""
        self._attempted_at = now
        try:
            keys = self._fetch()
        except _FetchError as exc:
            self._last_error = str(exc)
            log.warning("cannot fetch the keys of OpenID issuer %s: %s", self.issuer, exc)
            raise NotAuthorized(f"identity provider unreachable: {exc}") from None
        self._keys = keys
        self._parsed = {}
        self._fetched_at = now
        self._last_error = None
        log.info("fetched %d signing key(s) of OpenID issuer %s", len(keys), self.issuer)

    def _fetch(self) -> dict[str | None, dict[str, Any]]:
        config = _get_json(self.discovery_url)
        if config.get("issuer") != self.issuer:
            raise _FetchError(
                f"{self.discovery_url} names issuer {config.get('issuer')!r}, "
                f"not the configured {self.issuer!r}"
            )
        jwks_uri = config.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not _acceptable_url(jwks_uri):
            raise _FetchError(f"{self.discovery_url}: jwks_uri {jwks_uri!r} is not an https:// URL")
        document = _get_json(jwks_uri)
        entries = document.get("keys")
        if not isinstance(entries, list):
            raise _FetchError(f"{jwks_uri} is not a JWK set (no 'keys' list)")
        keys: dict[str | None, dict[str, Any]] = {}
        for entry in entries:
            if not isinstance(entry, dict) or entry.get("kty") not in _SIGNING_KTY:
                continue
            if entry.get("use", "sig") != "sig":
                continue
            kid = entry.get("kid")
            if (kid is not None and not isinstance(kid, str)) or kid in keys:
                continue
            alg = entry.get("alg")
            if alg is not None and alg not in self.algorithms:
                continue
            try:
                jwt.PyJWK(entry)  # well-formed? (bound to the token's alg when used)
            except jwt.PyJWTError:
                continue
            keys[kid] = entry
        if not keys:
            raise _FetchError(f"{jwks_uri} has no usable signing keys")
        return keys


def _get_json(url: str) -> dict[str, Any]:
    body = bytearray()
    try:
        with httpx.stream(
            "GET",
            url,
            timeout=HTTP_TIMEOUT_SECONDS,
            follow_redirects=False,
            headers={"Accept": "application/json"},
        ) as response:
            if response.status_code != 200:
                raise _FetchError(f"GET {url}: HTTP {response.status_code}")
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise _FetchError(f"GET {url}: larger than {MAX_DOCUMENT_BYTES} bytes")
    except httpx.TimeoutException:
        raise _FetchError(f"GET {url}: no answer within {HTTP_TIMEOUT_SECONDS:g} s") from None
    except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as exc:
        raise _FetchError(f"GET {url}: {type(exc).__name__}: {exc}") from None
    try:
        data = parse_json(bytes(body))
    except ValueError:
        raise _FetchError(f"GET {url}: the answer is not JSON") from None
    if not isinstance(data, dict):
        raise _FetchError(f"GET {url}: the answer is not a JSON object")
    return data


def _acceptable_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    return bool(host) and (
        parts.scheme == "https" or (parts.scheme == "http" and host in _LOOPBACK)
    )


def _within(now: datetime, since: datetime | None, span: timedelta) -> bool:
    """``now`` is less than ``span`` after ``since`` (a clock that went back counts as not)."""
    return since is not None and timedelta(0) <= now - since < span


def _instant(value: Any, name: str) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise NotAuthorized(f"the token's {name!r} claim is not a number of seconds")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise NotAuthorized(f"the token's {name!r} claim is out of range") from None


def _claim(claims: Mapping[str, Any], name: str) -> Any:
    """Claim ``name``; if there is none, ``name`` as a dotted path into nested objects."""
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value
