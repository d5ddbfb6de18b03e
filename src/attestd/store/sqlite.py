"""The embedded default :class:`~attestd.store.base.Store`: one SQLite file (stdlib ``sqlite3``).

**Threading.** One connection per store, opened with ``check_same_thread=False`` and used only
under a lock, so a store can be shared by every thread of a server. SQLite serializes writers
anyway, and the reads attestd does are single indexed lookups, so one connection costs little and
keeps ``:memory:`` (where each connection would be a separate, empty database) working the same
way as a file. Other *processes* (the CLI rotating keys next to a running server) are handled by
WAL mode, ``BEGIN IMMEDIATE`` for every write and a busy timeout.

**Transactions.** The connection is in autocommit mode (``isolation_level=None``); every mutating
method runs in one explicit ``BEGIN IMMEDIATE`` ... ``COMMIT``, together with the audit entry it
writes, and rolls back on any exception.

**Schema.** :mod:`attestd.store.migrations`, applied on open (``PRAGMA user_version``).

**Errors.** ``sqlite3.Error`` is translated into :class:`~attestd.store.base.StorageError` in
exactly one place, :meth:`SQLiteStore._guard`; argument errors are
:class:`~attestd.errors.ConfigurationError`, raised before touching the database.

**API keys.** A secret is ``attestd_`` + 32 bytes from :mod:`secrets`, URL-safe base64. Stored
is ``SHA-256("attestd-api-key-v1" || 0x00 || secret)`` (scheme ``sha256-v1``). A slow KDF or a
per-key salt protects *guessable* secrets; a 256-bit random secret cannot be guessed, so they would
only add latency to every authenticated request. The fixed prefix separates this digest from any
other SHA-256 use. :meth:`SQLiteStore.verify_api_key` compares the digest with *every* stored one
with :func:`hmac.compare_digest`, without an early exit, so its timing does not depend on which
key (if any) matched; an administrator's key list is short.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from attestd.errors import ConfigurationError
from attestd.store import migrations
from attestd.store.base import (
    API_KEY_PREFIX,
    AuditEntry,
    CachedResponse,
    CaKeyRecord,
    PolicyHistoryEntry,
    SigningKeyRecord,
    StorageError,
    StoredPolicy,
    normalize_attestation_type,
)

__all__ = ["MEMORY", "SQLiteStore"]

_log = logging.getLogger(__name__)

#: The path that opens a private in-memory database.
MEMORY = ":memory:"

_API_KEY_SCHEME = "sha256-v1"
_API_KEY_DOMAIN = b"attestd-api-key-v1\x00"
_SEEDED_FLAG = "signers.seeded_at"
_KEY_COLUMNS = "kid, algorithm, private_key_pem, certificate_pem, created_at, retired_at, active"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _ts(value: datetime, what: str) -> str:
    """A datetime as stored: ISO-8601, UTC, always with microseconds (text order = time order)."""
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ConfigurationError(f"{what} must be a timezone-aware datetime, not {value!r}")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _opt_ts(value: datetime | None, what: str) -> str | None:
    return None if value is None else _ts(value, what)


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _opt_dt(text: str | None) -> datetime | None:
    return None if text is None else _dt(text)


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{what} must be a non-empty string, not {value!r}")
    return value


def _der(value: object) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview) or len(value) == 0:
        raise ConfigurationError("a signer certificate must be non-empty DER bytes")
    return bytes(value)


def _thumbprint(der: bytes) -> str:
    """MAA's certificate thumbprint: upper-case hex SHA-1 of the DER (maa-compat.md §1.5)."""
    return hashlib.sha1(der).hexdigest().upper()


def _json(value: Mapping[str, Any], what: str) -> str:
    try:
        return json.dumps(dict(value), sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"{what} must be JSON-serializable: {exc}") from exc


def _api_key_digest(secret: str) -> bytes:
    return hashlib.sha256(_API_KEY_DOMAIN + secret.encode("utf-8")).digest()


class SQLiteStore:
    """A :class:`~attestd.store.base.Store` in one SQLite database (see the module docstring).

    :param path: the database file (created, with its schema, if missing; its directory must
        exist), or ``":memory:"`` for a private in-memory database that lives as long as the store.
    :param now_fn: returns the current time (aware) for the few records the caller gives no time
        for (migrations applied, signer seeding, key pruning). Default ``datetime.now(UTC)``.
    :param busy_timeout: seconds to wait for another process's write lock. Default 5.

    Raises :class:`StorageError` if the file cannot be opened or migrated, or was written by a
    newer attestd. Close it with :meth:`close` or use it as a context manager.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        now_fn: Callable[[], datetime] = _utc_now,
        busy_timeout: float = 5.0,
    ) -> None:
        if not isinstance(path, str | Path) or str(path) == "":
            raise ConfigurationError(f"store path must be a non-empty str or Path, not {path!r}")
        self._path = str(path)
        self._now_fn = now_fn
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        conn: sqlite3.Connection | None = None
        try:
            with self._guard("open"):
                conn = sqlite3.connect(
                    self._path,
                    timeout=busy_timeout,
                    isolation_level=None,
                    check_same_thread=False,
                )
                conn.execute("PRAGMA foreign_keys = ON")
                if self._path != MEMORY:
                    conn.execute("PRAGMA journal_mode = WAL")
                applied = migrations.migrate(conn, now=self._now())
            if applied:
                _log.info("store %s: applied schema migrations %s", self._path, applied)
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        self._conn = conn

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def path(self) -> str:
        return self._path

    def close(self) -> None:
        """Close the connection. Idempotent; any other call afterwards raises StorageError."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                try:
                    conn.close()
                except sqlite3.Error as exc:
                    raise StorageError(f"SQLite store {self._path}: close: {exc}") from exc

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else "open"
        return f"SQLiteStore({self._path!r}, {state})"

    # -- the one sqlite3 boundary -------------------------------------------------------------

    def _now(self) -> str:
        return _ts(self._now_fn(), "now_fn()")

    @contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        """Translate ``sqlite3.Error`` into StorageError: the only place that does."""
        try:
            yield
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite store {self._path}: {what}: {exc}") from exc

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageError(f"SQLite store {self._path} is closed")
        return self._conn

    @contextmanager
    def _read(self, what: str) -> Iterator[sqlite3.Connection]:
        with self._lock, self._guard(what):
            yield self._connection()

    @contextmanager
    def _write(self, what: str) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``), committed if the block returns, rolled
        back if it raises anything."""
        with self._lock, self._guard(what):
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @staticmethod
    def _audit(
        conn: sqlite3.Connection,
        *,
        actor: str,
        action: str,
        detail: Mapping[str, Any],
        policy_hash: str | None,
        at: str,
    ) -> None:
        conn.execute(
            "INSERT INTO audit_log (at, actor, action, detail, policy_hash) VALUES (?, ?, ?, ?, ?)",
            (at, actor, action, _json(detail, "audit detail"), policy_hash),
        )

    # -- policies -------------------------------------------------------------------------------

    def get_policy(self, attestation_type: str) -> StoredPolicy | None:
        atype = normalize_attestation_type(attestation_type)
        with self._read("get_policy") as conn:
            row = conn.execute(
                "SELECT attestation_type, text, jws, policy_hash, signer_pem, set_at, set_by "
                "FROM policies WHERE attestation_type = ?",
                (atype,),
            ).fetchone()
        if row is None:
            return None
        return StoredPolicy(
            attestation_type=row[0],
            text=row[1],
            jws=row[2],
            policy_hash=row[3],
            signer_pem=None if row[4] is None else bytes(row[4]),
            set_at=_dt(row[5]),
            set_by=row[6],
        )

    def set_policy(self, policy: StoredPolicy) -> None:
        if not isinstance(policy, StoredPolicy):
            raise ConfigurationError(
                f"set_policy takes a StoredPolicy, not {type(policy).__name__}"
            )
        atype = normalize_attestation_type(policy.attestation_type)
        text = policy.text
        jws = _text(policy.jws, "policy jws")
        policy_hash = _text(policy.policy_hash, "policy hash")
        actor = _text(policy.set_by, "set_by")
        at = _ts(policy.set_at, "set_at")
        if not isinstance(text, str):
            raise ConfigurationError("policy text must be a string")
        signer = None if policy.signer_pem is None else bytes(policy.signer_pem)
        with self._write("set_policy") as conn:
            conn.execute(
                "INSERT INTO policies "
                "(attestation_type, text, jws, policy_hash, signer_pem, set_at, set_by) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (attestation_type) DO UPDATE SET text = excluded.text, "
                "jws = excluded.jws, policy_hash = excluded.policy_hash, "
                "signer_pem = excluded.signer_pem, set_at = excluded.set_at, "
                "set_by = excluded.set_by",
                (atype, text, jws, policy_hash, signer, at, actor),
            )
            conn.execute(
                "INSERT INTO policy_history "
                "(attestation_type, action, text, jws, policy_hash, signer_pem, at, actor) "
                "VALUES (?, 'set', ?, ?, ?, ?, ?, ?)",
                (atype, text, jws, policy_hash, signer, at, actor),
            )
            self._audit(
                conn,
                actor=actor,
                action="policy.set",
                detail={"attestation_type": atype, "signed": signer is not None},
                policy_hash=policy_hash,
                at=at,
            )

    def reset_policy(self, attestation_type: str, *, actor: str, at: datetime) -> None:
        atype = normalize_attestation_type(attestation_type)
        actor = _text(actor, "actor")
        when = _ts(at, "at")
        with self._write("reset_policy") as conn:
            row = conn.execute(
                "SELECT policy_hash FROM policies WHERE attestation_type = ?", (atype,)
            ).fetchone()
            removed_hash: str | None = None if row is None else row[0]
            conn.execute("DELETE FROM policies WHERE attestation_type = ?", (atype,))
            conn.execute(
                "INSERT INTO policy_history (attestation_type, action, at, actor) "
                "VALUES (?, 'reset', ?, ?)",
                (atype, when, actor),
            )
            self._audit(
                conn,
                actor=actor,
                action="policy.reset",
                detail={"attestation_type": atype, "changed": row is not None},
                policy_hash=removed_hash,
                at=when,
            )

    def policy_history(self, attestation_type: str) -> list[PolicyHistoryEntry]:
        atype = normalize_attestation_type(attestation_type)
        with self._read("policy_history") as conn:
            rows = conn.execute(
                "SELECT attestation_type, action, text, jws, policy_hash, signer_pem, at, actor "
                "FROM policy_history WHERE attestation_type = ? ORDER BY id DESC",
                (atype,),
            ).fetchall()
        return [
            PolicyHistoryEntry(
                attestation_type=r[0],
                action="set" if r[1] == "set" else "reset",
                text=r[2],
                jws=r[3],
                policy_hash=r[4],
                signer_pem=None if r[5] is None else bytes(r[5]),
                at=_dt(r[6]),
                actor=r[7],
            )
            for r in rows
        ]

    # -- policy signer certificates -------------------------------------------------------------

    def list_signers(self) -> list[bytes]:
        with self._read("list_signers") as conn:
            rows = conn.execute("SELECT der FROM policy_signers ORDER BY id").fetchall()
        return [bytes(r[0]) for r in rows]

    def seed_signers(self, ders: Iterable[bytes]) -> bool:
        unique: list[bytes] = []
        for der in ders:
            d = _der(der)
            if d not in unique:
                unique.append(d)
        if not unique:
            raise ConfigurationError("seed_signers needs at least one certificate")
        at = self._now()
        with self._write("seed_signers") as conn:
            seeded = conn.execute("SELECT 1 FROM meta WHERE key = ?", (_SEEDED_FLAG,)).fetchone()
            present = conn.execute("SELECT 1 FROM policy_signers LIMIT 1").fetchone()
            if seeded is not None or present is not None:
                return False
            conn.executemany(
                "INSERT INTO policy_signers (der, thumbprint, added_at, added_by) "
                "VALUES (?, ?, ?, 'system')",
                [(d, _thumbprint(d), at) for d in unique],
            )
            conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (_SEEDED_FLAG, at))
            self._audit(
                conn,
                actor="system",
                action="signer.seed",
                detail={"thumbprints": [_thumbprint(d) for d in unique]},
                policy_hash=None,
                at=at,
            )
        return True

    def add_signer(self, der: bytes, *, actor: str, at: datetime) -> bool:
        d = _der(der)
        actor = _text(actor, "actor")
        when = _ts(at, "at")
        thumbprint = _thumbprint(d)
        with self._write("add_signer") as conn:
            cur = conn.execute(
                "INSERT INTO policy_signers (der, thumbprint, added_at, added_by) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (der) DO NOTHING",
                (d, thumbprint, when, actor),
            )
            added = cur.rowcount == 1
            self._audit(
                conn,
                actor=actor,
                action="signer.add",
                detail={"thumbprint": thumbprint, "changed": added},
                policy_hash=None,
                at=when,
            )
        return added

    def remove_signer(self, der: bytes, *, actor: str, at: datetime) -> bool:
        d = _der(der)
        actor = _text(actor, "actor")
        when = _ts(at, "at")
        thumbprint = _thumbprint(d)
        with self._write("remove_signer") as conn:
            present = conn.execute("SELECT 1 FROM policy_signers WHERE der = ?", (d,)).fetchone()
            if present is not None:
                (count,) = conn.execute("SELECT count(*) FROM policy_signers").fetchone()
                if count <= 1:
                    raise StorageError(
                        f"cannot remove policy signer {thumbprint}: it is the last one "
                        "(an isolated instance keeps at least one)"
                    )
                conn.execute("DELETE FROM policy_signers WHERE der = ?", (d,))
            self._audit(
                conn,
                actor=actor,
                action="signer.remove",
                detail={"thumbprint": thumbprint, "changed": present is not None},
                policy_hash=None,
                at=when,
            )
        return present is not None

    # -- token signing keys -----------------------------------------------------------------------

    @staticmethod
    def _key(row: tuple[Any, ...]) -> SigningKeyRecord:
        return SigningKeyRecord(
            kid=row[0],
            algorithm=row[1],
            private_key_pem=bytes(row[2]),
            certificate_pem=bytes(row[3]),
            created_at=_dt(row[4]),
            retired_at=_opt_dt(row[5]),
            active=bool(row[6]),
        )

    def add_signing_key(self, record: SigningKeyRecord, *, actor: str = "system") -> None:
        if not isinstance(record, SigningKeyRecord):
            raise ConfigurationError(
                f"add_signing_key takes a SigningKeyRecord, not {type(record).__name__}"
            )
        kid = _text(record.kid, "kid")
        algorithm = _text(record.algorithm, "algorithm")
        actor = _text(actor, "actor")
        created = _ts(record.created_at, "created_at")
        retired = _opt_ts(record.retired_at, "retired_at")
        if record.active and retired is not None:
            raise ConfigurationError(f"signing key {kid}: an active key cannot be retired")
        if not record.private_key_pem or not record.certificate_pem:
            raise ConfigurationError(f"signing key {kid}: private key and certificate are required")
        with self._write("add_signing_key") as conn:
            if conn.execute("SELECT 1 FROM signing_keys WHERE kid = ?", (kid,)).fetchone():
                raise StorageError(f"signing key {kid} is already stored")
            if (
                record.active
                and conn.execute("SELECT 1 FROM signing_keys WHERE active = 1").fetchone()
            ):
                raise StorageError(
                    f"signing key {kid} is marked active but another key is; use rotate_to"
                )
            conn.execute(
                f"INSERT INTO signing_keys ({_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    kid,
                    algorithm,
                    bytes(record.private_key_pem),
                    bytes(record.certificate_pem),
                    created,
                    retired,
                    1 if record.active else 0,
                ),
            )
            self._audit(
                conn,
                actor=actor,
                action="signing_key.add",
                detail={"kid": kid, "algorithm": algorithm, "active": bool(record.active)},
                policy_hash=None,
                at=created,
            )

    def signing_keys(self) -> list[SigningKeyRecord]:
        with self._read("signing_keys") as conn:
            rows = conn.execute(
                f"SELECT {_KEY_COLUMNS} FROM signing_keys ORDER BY created_at DESC, rowid DESC"
            ).fetchall()
        return [self._key(r) for r in rows]

    def active_signing_key(self) -> SigningKeyRecord | None:
        with self._read("active_signing_key") as conn:
            row = conn.execute(
                f"SELECT {_KEY_COLUMNS} FROM signing_keys WHERE active = 1"
            ).fetchone()
        return None if row is None else self._key(row)

    def rotate_to(self, kid: str, *, at: datetime, actor: str = "system") -> None:
        kid = _text(kid, "kid")
        actor = _text(actor, "actor")
        when = _ts(at, "at")
        with self._write("rotate_to") as conn:
            row = conn.execute(
                "SELECT active, retired_at FROM signing_keys WHERE kid = ?", (kid,)
            ).fetchone()
            if row is None:
                raise StorageError(f"no signing key {kid} to rotate to")
            active, retired_at = bool(row[0]), row[1]
            if not active and retired_at is not None:
                raise StorageError(f"signing key {kid} was retired at {retired_at}; add a new key")
            previous_row = conn.execute("SELECT kid FROM signing_keys WHERE active = 1").fetchone()
            previous: str | None = None if previous_row is None else previous_row[0]
            if not active:
                # Retire first: the partial unique index allows one active row at any moment.
                conn.execute(
                    "UPDATE signing_keys SET active = 0, retired_at = ? WHERE active = 1", (when,)
                )
                conn.execute(
                    "UPDATE signing_keys SET active = 1, retired_at = NULL WHERE kid = ?", (kid,)
                )
            self._audit(
                conn,
                actor=actor,
                action="signing_key.rotate",
                detail={
                    "kid": kid,
                    "previous": None if active else previous,
                    "changed": not active,
                },
                policy_hash=None,
                at=when,
            )

    def prune_signing_keys(self, before: datetime) -> int:
        cutoff = _ts(before, "before")
        with self._write("prune_signing_keys") as conn:
            where = "active = 0 AND retired_at IS NOT NULL AND retired_at < ?"
            rows = conn.execute(
                f"SELECT kid FROM signing_keys WHERE {where} ORDER BY kid", (cutoff,)
            ).fetchall()
            kids = [str(r[0]) for r in rows]
            conn.execute(f"DELETE FROM signing_keys WHERE {where}", (cutoff,))
            if kids:
                self._audit(
                    conn,
                    actor="system",
                    action="signing_key.prune",
                    detail={"kids": kids, "retired_before": cutoff},
                    policy_hash=None,
                    at=self._now(),
                )
        return len(kids)

    # -- certificate authorities of the instance ------------------------------------------------

    def get_ca_key(self, purpose: str) -> CaKeyRecord | None:
        purpose = _text(purpose, "purpose")
        with self._read("get_ca_key") as conn:
            row = conn.execute(
                "SELECT purpose, algorithm, private_key_pem, certificate_pem, created_at "
                "FROM ca_keys WHERE purpose = ?",
                (purpose,),
            ).fetchone()
        if row is None:
            return None
        return CaKeyRecord(
            purpose=row[0],
            algorithm=row[1],
            private_key_pem=bytes(row[2]),
            certificate_pem=bytes(row[3]),
            created_at=_dt(row[4]),
        )

    def add_ca_key(self, record: CaKeyRecord, *, actor: str = "system") -> bool:
        if not isinstance(record, CaKeyRecord):
            raise ConfigurationError(f"add_ca_key takes a CaKeyRecord, not {type(record).__name__}")
        purpose = _text(record.purpose, "purpose")
        algorithm = _text(record.algorithm, "algorithm")
        actor = _text(actor, "actor")
        created = _ts(record.created_at, "created_at")
        if not record.private_key_pem or not record.certificate_pem:
            raise ConfigurationError(f"CA {purpose}: private key and certificate are required")
        with self._write("add_ca_key") as conn:
            if conn.execute("SELECT 1 FROM ca_keys WHERE purpose = ?", (purpose,)).fetchone():
                return False
            conn.execute(
                "INSERT INTO ca_keys "
                "(purpose, algorithm, private_key_pem, certificate_pem, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    purpose,
                    algorithm,
                    bytes(record.private_key_pem),
                    bytes(record.certificate_pem),
                    created,
                ),
            )
            self._audit(
                conn,
                actor=actor,
                action="ca_key.add",
                detail={"purpose": purpose, "algorithm": algorithm},
                policy_hash=None,
                at=created,
            )
        return True

    # -- collateral cache -----------------------------------------------------------------------------

    def get_cached(self, url: str) -> CachedResponse | None:
        url = _text(url, "url")
        with self._read("get_cached") as conn:
            row = conn.execute(
                "SELECT url, body, headers, fetched_at, next_update FROM collateral_cache "
                "WHERE url = ?",
                (url,),
            ).fetchone()
        if row is None:
            return None
        headers = json.loads(row[2])
        return CachedResponse(
            url=row[0],
            body=bytes(row[1]),
            headers={str(k): str(v) for k, v in headers.items()},
            fetched_at=_dt(row[3]),
            next_update=_opt_dt(row[4]),
        )

    def use_once(self, token: str, *, expires: datetime, now: datetime) -> bool:
        token = _text(token, "token")
        until, when = _ts(expires, "expires"), _ts(now, "now")
        with self._write("use_once") as conn:
            conn.execute("DELETE FROM used_tokens WHERE expires < ?", (when,))
            cursor = conn.execute(
                "INSERT OR IGNORE INTO used_tokens (token, expires) VALUES (?, ?)", (token, until)
            )
            return cursor.rowcount == 1

    def put_cached(self, response: CachedResponse) -> None:
        if not isinstance(response, CachedResponse):
            raise ConfigurationError(
                f"put_cached takes a CachedResponse, not {type(response).__name__}"
            )
        url = _text(response.url, "url")
        headers = response.headers
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
            raise ConfigurationError("cached response headers must map str to str")
        row = (
            url,
            bytes(response.body),
            _json(headers, "headers"),
            _ts(response.fetched_at, "fetched_at"),
            _opt_ts(response.next_update, "next_update"),
        )
        with self._write("put_cached") as conn:
            conn.execute(
                "INSERT OR REPLACE INTO collateral_cache "
                "(url, body, headers, fetched_at, next_update) VALUES (?, ?, ?, ?, ?)",
                row,
            )

    # -- audit log ------------------------------------------------------------------------------------

    def record_audit(
        self,
        actor: str,
        action: str,
        detail: Mapping[str, Any],
        policy_hash: str | None,
        at: datetime,
    ) -> None:
        actor = _text(actor, "actor")
        action = _text(action, "action")
        if not isinstance(detail, Mapping):
            raise ConfigurationError("audit detail must be a mapping")
        _json(detail, "audit detail")  # fail before opening a transaction
        if policy_hash is not None and not isinstance(policy_hash, str):
            raise ConfigurationError("policy_hash must be a string or None")
        when = _ts(at, "at")
        with self._write("record_audit") as conn:
            self._audit(
                conn, actor=actor, action=action, detail=detail, policy_hash=policy_hash, at=when
            )

    def audit_log(self, limit: int = 100) -> list[AuditEntry]:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise ConfigurationError(f"audit_log limit must be an int >= 0, not {limit!r}")
        with self._read("audit_log") as conn:
            rows = conn.execute(
                "SELECT id, at, actor, action, detail, policy_hash FROM audit_log "
                "ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            AuditEntry(
                id=r[0],
                at=_dt(r[1]),
                actor=r[2],
                action=r[3],
                detail=json.loads(r[4]),
                policy_hash=r[5],
            )
            for r in rows
        ]

    # -- API keys -----------------------------------------------------------------------------------

    def create_api_key(self, name: str, *, at: datetime, actor: str = "system") -> str:
        name = _text(name, "API key name")
        actor = _text(actor, "actor")
        when = _ts(at, "at")
        secret = API_KEY_PREFIX + secrets.token_urlsafe(32)
        with self._write("create_api_key") as conn:
            if conn.execute("SELECT 1 FROM api_keys WHERE name = ?", (name,)).fetchone():
                raise StorageError(f"an API key named {name!r} already exists")
            conn.execute(
                "INSERT INTO api_keys (name, scheme, digest, created_at) VALUES (?, ?, ?, ?)",
                (name, _API_KEY_SCHEME, _api_key_digest(secret), when),
            )
            self._audit(
                conn,
                actor=actor,
                action="api_key.create",
                detail={"name": name},
                policy_hash=None,
                at=when,
            )
        return secret

    def verify_api_key(self, secret: str) -> str | None:
        if not isinstance(secret, str) or not secret.startswith(API_KEY_PREFIX):
            return None
        digest = _api_key_digest(secret)
        with self._read("verify_api_key") as conn:
            rows = conn.execute("SELECT name, scheme, digest FROM api_keys").fetchall()
        match: str | None = None
        for name, scheme, stored in rows:
            # Every row is compared (no early exit), so timing does not tell which one matched.
            equal = hmac.compare_digest(digest, bytes(stored))
            if equal and scheme == _API_KEY_SCHEME and match is None:
                match = name
        return match

    def revoke_api_key(self, name: str, *, actor: str = "system") -> bool:
        name = _text(name, "API key name")
        actor = _text(actor, "actor")
        at = self._now()
        with self._write("revoke_api_key") as conn:
            cur = conn.execute("DELETE FROM api_keys WHERE name = ?", (name,))
            revoked = cur.rowcount == 1
            if revoked:
                self._audit(
                    conn,
                    actor=actor,
                    action="api_key.revoke",
                    detail={"name": name},
                    policy_hash=None,
                    at=at,
                )
        return revoked

    def list_api_keys(self) -> list[str]:
        with self._read("list_api_keys") as conn:
            rows = conn.execute("SELECT name FROM api_keys ORDER BY id").fetchall()
        return [r[0] for r in rows]


if TYPE_CHECKING:
    from attestd.store.base import Store

    def _conforms(store: SQLiteStore) -> Store:
        """mypy checks here that SQLiteStore implements the Store Protocol."""
        return store
