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

    [collateral]
    bundle = ""       # one bundle folder, or a folder of bundles (picked by FMSPC)
    pcs_url = ""      # Intel PCS v4 / PCCS base URL (used when bundle is empty)

Environment: ``ATTESTD_CONFIG`` (path of the TOML file), ``ATTESTD_INSTANCE_URL``,
``ATTESTD_DATABASE``, ``ATTESTD_MODE``, ``ATTESTD_TOKEN_ALGORITHM``, ``ATTESTD_COLLATERAL``
(bundle folder), ``ATTESTD_PCS_URL``, ``ATTESTD_VERIFICATION_TIME``, ``ATTESTD_MAX_BODY_BYTES``,
``ATTESTD_ATTEST_REQUIRES_AUTH``, ``ATTESTD_ALLOW_EXPIRED_COLLATERAL``, ``ATTESTD_ISOLATED_SIGNERS``
(comma-separated PEM paths).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from attestd.errors import ConfigurationError

__all__ = ["Settings", "load_settings"]


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
    collateral_bundle: str = ""
    pcs_url: str = ""
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
    s = Settings(
        instance_url=str(data.get("instance_url", Settings.instance_url)),
        database=str(data.get("database", Settings.database)),
        mode=str(data.get("mode", Settings.mode)),
        token_algorithm=str(data.get("token_algorithm", Settings.token_algorithm)),
        attest_requires_auth=bool(data.get("attest_requires_auth", False)),
        max_body_bytes=int(data.get("max_body_bytes", Settings.max_body_bytes)),
        verification_time=_time(str(data.get("verification_time", ""))),
        allow_expired_collateral=bool(data.get("allow_expired_collateral", False)),
        isolated_signers=tuple(str(p) for p in data.get("isolated_signers", ())),
        collateral_bundle=str(coll.get("bundle", "")),
        pcs_url=str(coll.get("pcs_url", "")),
    )
    overrides: dict[str, Any] = {}
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
    ):
        if key in env and env[key] != "":
            try:
                overrides[name] = conv(env[key])
            except ValueError as exc:
                raise ConfigurationError(f"{key}: {exc}") from exc
    return replace(s, **overrides) if overrides else s
