"""The SQLite schema, as numbered migrations tracked by ``PRAGMA user_version``.

A database at ``user_version`` N has had migrations 1..N applied; a new file is at 0.
:func:`migrate` applies the missing ones in order, each in its own ``BEGIN IMMEDIATE``
transaction together with its ``user_version`` bump (so a crash leaves the file at a whole
version, and two processes opening it at once do not both apply a migration). A database whose
version is higher than :data:`SCHEMA_VERSION` was written by a newer attestd and is refused.

**Adding a migration.** Append ``Migration(2, "what it does", ("ALTER TABLE ...", ...))`` to
:data:`MIGRATIONS`. Never edit or reorder a released migration: files in the field are already at
its version. One statement per string (no ``executescript``: it would commit on its own). Keep
every statement valid on the schema the previous migrations leave.

Conventions of the schema: timestamps are ISO-8601 UTC text with microseconds
(``2024-05-01T12:00:00.000000+00:00``, so text order is time order); byte strings are BLOBs;
JSON is TEXT; booleans are INTEGER 0/1.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from attestd.store.base import StorageError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Migration", "migrate", "schema_version"]


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: ``version`` (1, 2, ...), what it does, and its SQL statements."""

    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "initial schema",
        (
            # Key/value facts about this database (migration times, one-off flags).
            """CREATE TABLE meta (
                key   TEXT PRIMARY KEY,
                value TEXT NOT NULL
            )""",
            # The policy in force per attestation type (lower-case). No row = the default policy.
            """CREATE TABLE policies (
                attestation_type TEXT PRIMARY KEY,
                text             TEXT NOT NULL,
                jws              TEXT NOT NULL,
                policy_hash      TEXT NOT NULL,
                signer_pem       BLOB,
                set_at           TEXT NOT NULL,
                set_by           TEXT NOT NULL
            )""",
            """CREATE TABLE policy_history (
                id               INTEGER PRIMARY KEY AUTOINCREMENT,
                attestation_type TEXT NOT NULL,
                action           TEXT NOT NULL CHECK (action IN ('set', 'reset')),
                text             TEXT,
                jws              TEXT,
                policy_hash      TEXT,
                signer_pem       BLOB,
                at               TEXT NOT NULL,
                actor            TEXT NOT NULL
            )""",
            "CREATE INDEX policy_history_by_type ON policy_history (attestation_type, id)",
            # Isolated-mode policy signer certificates; id gives insertion order.
            """CREATE TABLE policy_signers (
                id         INTEGER PRIMARY KEY AUTOINCREMENT,
                der        BLOB NOT NULL UNIQUE,
                thumbprint TEXT NOT NULL,
                added_at   TEXT NOT NULL,
                added_by   TEXT NOT NULL
            )""",
            """CREATE TABLE signing_keys (
                kid             TEXT PRIMARY KEY,
                algorithm       TEXT NOT NULL,
                private_key_pem BLOB NOT NULL,
                certificate_pem BLOB NOT NULL,
                created_at      TEXT NOT NULL,
                retired_at      TEXT,
                active          INTEGER NOT NULL CHECK (active IN (0, 1))
            )""",
            # At most one active key, enforced by the database as well as by the code.
            "CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (active) WHERE active = 1",
            """CREATE TABLE collateral_cache (
                url         TEXT PRIMARY KEY,
                body        BLOB NOT NULL,
                headers     TEXT NOT NULL,
                fetched_at  TEXT NOT NULL,
                next_update TEXT
            )""",
            """CREATE TABLE audit_log (
                id          INTEGER PRIMARY KEY AUTOINCREMENT,
                at          TEXT NOT NULL,
                actor       TEXT NOT NULL,
                action      TEXT NOT NULL,
                detail      TEXT NOT NULL,
                policy_hash TEXT
            )""",
            # API keys: only a digest of the secret; `scheme` names how it was computed.
            """CREATE TABLE api_keys (
                id         INTEGER PRIMARY KEY AUTOINCREMENT,
                name       TEXT NOT NULL UNIQUE,
                scheme     TEXT NOT NULL,
                digest     BLOB NOT NULL,
                created_at TEXT NOT NULL
            )""",
        ),
    ),
    Migration(
        2,
        "certificate authorities of the instance (the TPM AIK CA)",
        (
            # One CA key per purpose (``tpm-aik``: the CA that signs AIK certificates issued by
            # TPM enrollment). Created on first use, never replaced by the store.
            """CREATE TABLE ca_keys (
                purpose         TEXT PRIMARY KEY,
                algorithm       TEXT NOT NULL,
                private_key_pem BLOB NOT NULL,
                certificate_pem BLOB NOT NULL,
                created_at      TEXT NOT NULL
            )""",
        ),
    ),
    Migration(
        3,
        "single-use tokens (TPM service and enrollment contexts)",
        (
            # A token is inserted when it is used; the primary key refuses a second use, by any
            # process sharing the database. Rows past `expires` are pruned on later inserts.
            """CREATE TABLE used_tokens (
                token   TEXT PRIMARY KEY,
                expires TEXT NOT NULL
            )""",
            "CREATE INDEX used_tokens_by_expiry ON used_tokens (expires)",
        ),
    ),
)

#: The version a database has once every migration here is applied.
SCHEMA_VERSION = MIGRATIONS[-1].version

if [m.version for m in MIGRATIONS] != list(range(1, len(MIGRATIONS) + 1)):  # pragma: no cover
    raise RuntimeError("attestd.store.migrations: versions must be 1, 2, ... in order")


def schema_version(conn: sqlite3.Connection) -> int:
    """The ``user_version`` of the open database."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    return int(version)


def _refuse_newer(current: int) -> None:
    if current > SCHEMA_VERSION:
        raise StorageError(
            f"database schema version {current} is newer than this attestd supports "
            f"({SCHEMA_VERSION}); upgrade attestd"
        )


def migrate(conn: sqlite3.Connection, *, now: str) -> list[int]:
    """Bring the database up to :data:`SCHEMA_VERSION` and return the versions applied (empty if
    it was current). ``conn`` must be in autocommit mode (``isolation_level=None``) and outside a
    transaction; ``now`` (ISO-8601 UTC) is recorded as ``meta['migration.N.applied_at']``.

    Raises :class:`StorageError` for a database newer than this code; lets ``sqlite3.Error``
    through (the caller translates it), after rolling back the migration that failed.
    """
    current = schema_version(conn)
    _refuse_newer(current)
    applied: list[int] = []
    for migration in MIGRATIONS:
        if current >= migration.version:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-read under the write lock: another process may have migrated meanwhile.
            current = schema_version(conn)
            _refuse_newer(current)
            if current >= migration.version:
                conn.execute("ROLLBACK")
                continue
            for statement in migration.statements:
                conn.execute(statement)
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                (f"migration.{migration.version}.applied_at", now),
            )
            # PRAGMA takes no parameters; the version is an int from this module.
            conn.execute(f"PRAGMA user_version = {int(migration.version)}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        current = migration.version
        applied.append(migration.version)
    return applied
