"""The relying party: verify an attestation token from an attestd (or MAA) instance.

OpenID discovery (``/.well-known/openid-configuration``) gives the issuer and ``jwks_uri``; the
JWKS is cached and fetched again when a token names an unknown ``kid`` (key rotation). The
signature (RS256/ES256 only: never ``none``), ``exp``/``nbf`` (with a small leeway) and the
issuer are checked; a failure raises :class:`TokenInvalid`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt

from attestd.errors import AttestdError

__all__ = ["TokenInvalid", "TokenVerifier"]

ALGORITHMS = ("RS256", "ES256")


class TokenInvalid(AttestdError):
    code = "TokenInvalid"


class TokenVerifier:
    """Verifies tokens of one instance.

    :param endpoint: the instance URL (also the expected ``iss``).
    :param client: an ``httpx.Client`` (default: a new one, 10 s timeout).
    :param leeway: seconds of clock skew allowed on ``exp``/``nbf`` (default 60).
    :param min_refresh_interval: do not refetch the JWKS more often than this (default 30 s),
        so a stream of tokens with a bogus ``kid`` cannot hammer the issuer.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        client: httpx.Client | None = None,
        leeway: int = 60,
        min_refresh_interval: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._client = client or httpx.Client(timeout=10.0)
        self.leeway = leeway
        self.min_refresh_interval = min_refresh_interval
        self.clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = -1e18
        self._jwks_uri: str | None = None
        self._issuer: str | None = None

    def _get(self, url: str) -> Any:
        try:
            r = self._client.get(url, headers={"Accept": "application/json"})
            r.raise_for_status()
            return r.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise TokenInvalid(f"cannot fetch {url}: {exc}") from exc

    def discover(self) -> None:
        meta = self._get(f"{self.endpoint}/.well-known/openid-configuration")
        issuer, jwks_uri = meta.get("issuer"), meta.get("jwks_uri")
        if issuer != self.endpoint or not isinstance(jwks_uri, str):
            raise TokenInvalid(
                f"OpenID metadata names issuer {issuer!r}, expected {self.endpoint!r}"
            )
        self._issuer, self._jwks_uri = issuer, jwks_uri

    def _refresh(self) -> None:
        if self._jwks_uri is None:
            self.discover()
        assert self._jwks_uri is not None
        data = self._get(self._jwks_uri)
        try:
            keyset = jwt.PyJWKSet.from_dict(data)
        except jwt.PyJWTError as exc:
            raise TokenInvalid(f"the JWKS at {self._jwks_uri} is unusable: {exc}") from exc
        self._keys = {k.key_id: k for k in keyset.keys if k.key_id}
        self._fetched_at = self.clock()

    def key_for(self, kid: str) -> jwt.PyJWK:
        with self._lock:
            key = self._keys.get(kid)
            if key is None and self.clock() - self._fetched_at >= self.min_refresh_interval:
                self._refresh()
                key = self._keys.get(kid)
        if key is None:
            raise TokenInvalid(f"no signing key with kid {kid!r} at {self.endpoint}")
        return key

    def verify(self, token: str) -> dict[str, Any]:
        """The verified claims, or :class:`TokenInvalid` naming what failed."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenInvalid(f"not a JWT: {exc}") from exc
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGORITHMS:
            raise TokenInvalid(f"token algorithm {alg!r} is not accepted (RS256, ES256)")
        if not isinstance(kid, str):
            raise TokenInvalid("the token header has no kid")
        key = self.key_for(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                issuer=self._issuer or self.endpoint,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "iss"]},
            )
        except jwt.PyJWTError as exc:
            raise TokenInvalid(f"token rejected: {exc}") from exc
        return claims

    def close(self) -> None:
        self._client.close()
