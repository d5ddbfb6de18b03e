"""Service settings: typed, loaded once at startup from a TOML file and ``ATTESTD_*`` environment
variables (environment wins), then passed down. Every option has a documented default.

TOML keys (all optional)::

    instance_url = "http://127.0.0.1:8080"   # the token issuer ("iss") and /certs base URL
    database = "attestd.sqlite3"              # SQLite file (":memory:" for tests)
    mode = "aad"                              # "aad" (admins authenticate) or "isolated"
    token_algorithm = "RS256"                 # or "ES256"
    attest_requires_auth = false              # attest calls are anonymous by default
    max_body_bytes = 1048576                  # larger requests get 413
    verification_time = ""                    # fixed ISO 8601 time for archival instances
    allow_expired_collateral = false          # audit mode (tokens say so)
    isolated_signers = []                     # PEM files of the initial policy signers
    tpm_aik_roots = []                        # PEM files of the CAs AIK certificates chain to
                                              # (/attest/Tpm; each file may hold several certs)
    tpm_ek_roots = []                         # PEM files of the TPM manufacturer CAs EK
                                              # certificates chain to (/enroll/Tpm)

    [collateral]
    bundle = ""       # one bundle folder, or a folder of bundles (picked by FMSPC)
    pcs_url = ""      # Intel PCS v4 / PCCS base URL (used when bundle is empty)

    [oidc]            # administrators may also authenticate with bearer JWTs from an OpenID issuer
    issuer = ""                   # e.g. "https://login.microsoftonline.com/<tenant>/v2.0"; "" = off
    audience = ""                 # required "aud" (e.g. the app registration's client id or URI)
    role_claim = "roles"          # claim holding the roles (a list or a space-separated string);
                                  # a dotted path ("realm_access.roles") if no claim has that name
    admin_role = "Attestation.Administrator"   # role an administrator's token must carry
    jwks_cache_seconds = 300      # how long the issuer's keys are trusted before refetching (30..86400)
    algorithms = ["RS256", "ES256"]            # accepted "alg"s: RS*, PS*, ES*, EdDSA (never none/HS*)

The issuer must be ``https://`` (``http://`` only for ``localhost`` / ``127.0.0.1`` / ``[::1]``,
for tests and local development); its ``/.well-known/openid-configuration`` names the JWKS. API
keys (``attestd_...``) keep working beside it. See :mod:`attestd.api.auth`.

Environment: ``ATTESTD_CONFIG`` (path of the TOML file), ``ATTESTD_INSTANCE_URL``,
``ATTESTD_DATABASE``, ``ATTESTD_MODE``, ``ATTESTD_TOKEN_ALGORITHM``, ``ATTESTD_COLLATERAL``
(bundle folder), ``ATTESTD_PCS_URL``, ``ATTESTD_VERIFICATION_TIME``, ``ATTESTD_MAX_BODY_BYTES``,
``ATTESTD_ATTEST_REQUIRES_AUTH``, ``ATTESTD_ALLOW_EXPIRED_COLLATERAL``, ``ATTESTD_ISOLATED_SIGNERS``
(comma-separated PEM paths), ``ATTESTD_OIDC_ISSUER``, ``ATTESTD_OIDC_AUDIENCE``,
``ATTESTD_OIDC_ROLE_CLAIM``, ``ATTESTD_OIDC_ADMIN_ROLE``, ``ATTESTD_OIDC_JWKS_CACHE_SECONDS``,
``ATTESTD_OIDC_ALGORITHMS`` (comma-separated), ``ATTESTD_TPM_AIK_ROOTS`` (comma-separated PEM paths),
``ATTESTD_TPM_EK_ROOTS`` (comma-separated PEM paths).

``tpm_aik_roots`` are the trust anchors of TPM attestation (``POST /attest/Tpm``): with the TPM
policy's ``require_valid_aik_cert`` property true (MAA's default) the request's ``aik_cert`` must
chain to one of these certificates (directly or through intermediates sent with it), be valid now,
and certify the key that signed the quote. With no roots configured every such request fails
unless the policy sets ``require_valid_aik_cert`` to false. AIK certificates this instance issued
itself (``POST /enroll/Tpm``, signed by its own AIK CA, ``GET /enroll/ca``) are always accepted:
that CA is an implicit ``tpm_aik_roots`` entry.

``tpm_ek_roots`` are the trust anchors of TPM enrollment (``POST /enroll/Tpm``, an attestd
extension): an endorsement key certificate must chain to one of these certificates (directly, or
through intermediates the client sends or a configured file also holds) and be valid now. With
none configured every enrollment is refused.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from attestd.errors import ConfigurationError

__all__ = ["OIDC_ALGORITHMS", "Settings", "load_settings"]

#: Signature algorithms an OpenID issuer's tokens may use (asymmetric only: ``none`` and the HMAC
#: ``HS*`` family are never accepted, whatever is configured).
OIDC_ALGORITHMS = frozenset(
    ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
)
_LOOPBACK = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class Settings:
    instance_url: str = "http://127.0.0.1:8080"
    database: str = "attestd.sqlite3"
    mode: str = "aad"
    token_algorithm: str = "RS256"
    attest_requires_auth: bool = False
    max_body_bytes: int = 1 << 20
    verification_time: datetime | None = None
    allow_expired_collateral: bool = False
    isolated_signers: tuple[str, ...] = ()
    tpm_aik_roots: tuple[str, ...] = ()
    tpm_ek_roots: tuple[str, ...] = ()
    collateral_bundle: str = ""
    pcs_url: str = ""
    oidc_issuer: str = ""
    oidc_audience: str = ""
    oidc_role_claim: str = "roles"
    oidc_admin_role: str = "Attestation.Administrator"
    oidc_jwks_cache_seconds: int = 300
    oidc_algorithms: tuple[str, ...] = ("RS256", "ES256")
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.mode not in ("aad", "isolated"):
            raise ConfigurationError(f"mode {self.mode!r}: expected 'aad' or 'isolated'")
        if self.token_algorithm not in ("RS256", "ES256"):
            raise ConfigurationError(f"token_algorithm {self.token_algorithm!r}: RS256 or ES256")
        if self.max_body_bytes < 1024:
            raise ConfigurationError("max_body_bytes must be at least 1024")
        if self.instance_url.endswith("/"):
            object.__setattr__(self, "instance_url", self.instance_url.rstrip("/"))
        if self.oidc_issuer:
            self._check_oidc()

    def _check_oidc(self) -> None:
        issuer = self.oidc_issuer
        try:
            url = urlsplit(issuer)
            host = url.hostname
        except ValueError as exc:
            raise ConfigurationError(f"oidc issuer {issuer!r} is not a URL: {exc}") from exc
        if not host or url.scheme not in ("https", "http"):
            raise ConfigurationError(f"oidc issuer {issuer!r} must be an https:// URL")
        if url.scheme == "http" and host not in _LOOPBACK:
            raise ConfigurationError(
                f"oidc issuer {issuer!r} must be https:// (plain http only for localhost)"
            )
        if url.query or url.fragment or url.username or url.password:
            raise ConfigurationError(
                f"oidc issuer {issuer!r} must have no query, fragment or credentials"
            )
        if not self.oidc_audience.strip():
            raise ConfigurationError("oidc audience is required when an oidc issuer is set")
        if not self.oidc_role_claim.strip():
            raise ConfigurationError("oidc role_claim must not be empty")
        if not self.oidc_admin_role.strip() or any(c.isspace() for c in self.oidc_admin_role):
            raise ConfigurationError(
                f"oidc admin_role {self.oidc_admin_role!r} must be one non-empty word"
            )
        if not 30 <= self.oidc_jwks_cache_seconds <= 86400:
            raise ConfigurationError("oidc jwks_cache_seconds must be between 30 and 86400")
        algs = tuple(a.strip() for a in self.oidc_algorithms if a.strip())
        if not algs:
            raise ConfigurationError("oidc algorithms must name at least one algorithm")
        for alg in algs:
            if alg.lower() == "none" or alg.upper().startswith("HS"):
                raise ConfigurationError(
                    f"oidc algorithm {alg!r} is not allowed (only asymmetric signatures)"
                )
            if alg not in OIDC_ALGORITHMS:
                raise ConfigurationError(
                    f"oidc algorithm {alg!r}: expected some of {', '.join(sorted(OIDC_ALGORITHMS))}"
                )
        object.__setattr__(self, "oidc_algorithms", algs)


def _time(value: str) -> datetime | None:
    if not value:
        return None
    try:
        t = (
            datetime.fromtimestamp(float(value), UTC)
            if value.replace(".", "", 1).isdigit()
            else datetime.fromisoformat(value.replace("Z", "+00:00"))
        )
    except ValueError as exc:
        raise ConfigurationError(f"verification_time {value!r} is not ISO 8601 or Unix") from exc
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _names(value: Any) -> tuple[str, ...]:
    """A list of names: a TOML array, or a comma-separated string."""
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(str(v).strip() for v in items if str(v).strip())


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise ConfigurationError(f"{name}: expected an integer, got {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"{name}: expected an integer, got {value!r}") from exc


def _bool(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def load_settings(
    path: str | Path | None = None, *, env: Mapping[str, str] | None = None
) -> Settings:
    """Settings from the TOML file (``path`` or ``$ATTESTD_CONFIG``), then the environment."""
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    path = path or env.get("ATTESTD_CONFIG")
    if path:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigurationError(f"config {path}: {exc}") from exc
    coll = data.pop("collateral", {}) or {}
    oidc = data.pop("oidc", {}) or {}
    if not isinstance(oidc, dict):
        raise ConfigurationError("config: [oidc] must be a table")
    values: dict[str, Any] = dict(
        instance_url=str(data.get("instance_url", Settings.instance_url)),
        database=str(data.get("database", Settings.database)),
        mode=str(data.get("mode", Settings.mode)),
        token_algorithm=str(data.get("token_algorithm", Settings.token_algorithm)),
        attest_requires_auth=bool(data.get("attest_requires_auth", False)),
        max_body_bytes=int(data.get("max_body_bytes", Settings.max_body_bytes)),
        verification_time=_time(str(data.get("verification_time", ""))),
        allow_expired_collateral=bool(data.get("allow_expired_collateral", False)),
        isolated_signers=tuple(str(p) for p in data.get("isolated_signers", ())),
        tpm_aik_roots=_names(data.get("tpm_aik_roots", ())),
        tpm_ek_roots=_names(data.get("tpm_ek_roots", ())),
        collateral_bundle=str(coll.get("bundle", "")),
        pcs_url=str(coll.get("pcs_url", "")),
        oidc_issuer=str(oidc.get("issuer", "")),
        oidc_audience=str(oidc.get("audience", "")),
        oidc_role_claim=str(oidc.get("role_claim", Settings.oidc_role_claim)),
        oidc_admin_role=str(oidc.get("admin_role", Settings.oidc_admin_role)),
        oidc_jwks_cache_seconds=_int(
            oidc.get("jwks_cache_seconds", Settings.oidc_jwks_cache_seconds),
            "oidc jwks_cache_seconds",
        ),
        oidc_algorithms=_names(oidc.get("algorithms", Settings.oidc_algorithms)),
    )
    for key, name, conv in (
        ("ATTESTD_INSTANCE_URL", "instance_url", str),
        ("ATTESTD_DATABASE", "database", str),
        ("ATTESTD_MODE", "mode", str),
        ("ATTESTD_TOKEN_ALGORITHM", "token_algorithm", str),
        ("ATTESTD_COLLATERAL", "collateral_bundle", str),
        ("ATTESTD_PCS_URL", "pcs_url", str),
        ("ATTESTD_VERIFICATION_TIME", "verification_time", _time),
        ("ATTESTD_MAX_BODY_BYTES", "max_body_bytes", int),
        ("ATTESTD_ATTEST_REQUIRES_AUTH", "attest_requires_auth", _bool),
        ("ATTESTD_ALLOW_EXPIRED_COLLATERAL", "allow_expired_collateral", _bool),
        ("ATTESTD_ISOLATED_SIGNERS", "isolated_signers", lambda v: tuple(v.split(","))),
        ("ATTESTD_TPM_AIK_ROOTS", "tpm_aik_roots", _names),
        ("ATTESTD_TPM_EK_ROOTS", "tpm_ek_roots", _names),
        ("ATTESTD_OIDC_ISSUER", "oidc_issuer", str),
        ("ATTESTD_OIDC_AUDIENCE", "oidc_audience", str),
        ("ATTESTD_OIDC_ROLE_CLAIM", "oidc_role_claim", str),
        ("ATTESTD_OIDC_ADMIN_ROLE", "oidc_admin_role", str),
        ("ATTESTD_OIDC_JWKS_CACHE_SECONDS", "oidc_jwks_cache_seconds", int),
        ("ATTESTD_OIDC_ALGORITHMS", "oidc_algorithms", _names),
    ):
        if key in env and env[key] != "":
            try:
                values[name] = conv(env[key])
            except ValueError as exc:
                raise ConfigurationError(f"{key}: {exc}") from exc
    # One construction after the environment is applied: cross-field checks (an issuer needs an
    # audience) see the final values, whichever source each came from.
    return Settings(**values)
