"""SQLiteStore against real SQLite files in ``tmp_path``: every Store method, the history and audit
entries each change writes, the isolated-mode signer rules, key rotation and pruning, API keys
(the secret never reaches the file), persistence across reopen, schema migrations, threads, and
``:memory:``."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from attestd.errors import AttestdError, ConfigurationError
from attestd.policy.document import certificate_thumbprint, policy_hash
from attestd.store import (
    API_KEY_PREFIX,
    CachedResponse,
    CaKeyRecord,
    SigningKeyRecord,
    SQLiteStore,
    StorageError,
    Store,
    StoredPolicy,
    migrations,
)
from attestd.store.migrations import SCHEMA_VERSION, Migration

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
ADMIN = "admin@example"


# -- helpers -------------------------------------------------------------------------------------


@cache
def _key(label: str) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(int.from_bytes(label.encode(), "big") % 2**200 + 1, ec.SECP256R1())


@cache
def cert(label: str) -> x509.Certificate:
    """A self-signed P-256 CA certificate, deterministic per label."""
    key = _key(label)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"policy signer {label}")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(label.encode(), "big") % 2**64 + 1)
        .not_valid_before(T0 - timedelta(days=1))
        .not_valid_after(T0 + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def der(label: str) -> bytes:
    return cert(label).public_bytes(serialization.Encoding.DER)


def pem(label: str) -> bytes:
    return cert(label).public_bytes(serialization.Encoding.PEM)


def private_pem(label: str) -> bytes:
    return _key(label).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def policy(atype: str, text: str, *, at: datetime = T0, signer: str | None = None) -> StoredPolicy:
    return StoredPolicy(
        attestation_type=atype,
        text=text,
        jws=f"eyJhbGciOiJub25lIn0.{text.encode().hex()}.",
        policy_hash=policy_hash(text),
        signer_pem=None if signer is None else pem(signer),
        set_at=at,
        set_by=ADMIN,
    )


def key_record(
    kid: str, *, created: datetime, active: bool = False, retired: datetime | None = None
) -> SigningKeyRecord:
    return SigningKeyRecord(
        kid=kid,
        algorithm="ES256",
        private_key_pem=private_pem(kid),
        certificate_pem=pem(kid),
        created_at=created,
        retired_at=retired,
        active=active,
    )


def actions(store: SQLiteStore) -> list[str]:
    """Audit actions, oldest first."""
    return [e.action for e in reversed(store.audit_log(limit=10_000))]


def raw(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "attestd.db"


@pytest.fixture
def store(db: Path) -> Iterator[SQLiteStore]:
    with SQLiteStore(db, now_fn=lambda: T0) as s:
        yield s


# -- opening, schema, lifecycle ---------------------------------------------------------------


def test_new_file_gets_the_schema_wal_and_foreign_keys(store: SQLiteStore, db: Path) -> None:
    assert isinstance(store, Store)
    assert raw(db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert raw(db, "PRAGMA journal_mode") == [("wal",)]
    with store._read("test") as conn:
        assert conn.execute("PRAGMA foreign_keys").fetchone() == (1,)
    tables = {r[0] for r in raw(db, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {
        "meta",
        "policies",
        "policy_history",
        "policy_signers",
        "signing_keys",
        "collateral_cache",
        "audit_log",
        "api_keys",
        "ca_keys",
    } <= tables
    assert raw(db, "SELECT value FROM meta WHERE key = 'migration.1.applied_at'") == [
        (T0.isoformat(timespec="microseconds"),)
    ]


def test_migrations_run_once(db: Path) -> None:
    SQLiteStore(db, now_fn=lambda: T0).close()
    later = T0 + timedelta(days=3)
    with SQLiteStore(db, now_fn=lambda: later):
        pass
    assert raw(db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    # No migration was re-applied: every recorded time is the first open's.
    assert (
        raw(db, "SELECT value FROM meta WHERE key LIKE 'migration.%'")
        == [(T0.isoformat(timespec="microseconds"),)] * SCHEMA_VERSION
    )


def test_migration_versions_are_contiguous() -> None:
    assert [m.version for m in migrations.MIGRATIONS] == list(range(1, SCHEMA_VERSION + 1))


def test_adding_a_migration_applies_only_it(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with SQLiteStore(db, now_fn=lambda: T0) as s:
        s.record_audit(ADMIN, "before", {}, None, T0)
    nxt = SCHEMA_VERSION + 1
    new = Migration(nxt, "add a column", ("ALTER TABLE audit_log ADD COLUMN source TEXT",))
    monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS, new))
    monkeypatch.setattr(migrations, "SCHEMA_VERSION", nxt)
    with SQLiteStore(db, now_fn=lambda: T0 + timedelta(days=1)) as s:
        assert [e.action for e in s.audit_log()] == ["before"]  # data kept
    assert raw(db, "PRAGMA user_version") == [(nxt,)]
    assert "source" in {r[1] for r in raw(db, "PRAGMA table_info(audit_log)")}
    assert len(raw(db, "SELECT value FROM meta WHERE key LIKE 'migration.%'")) == nxt


def test_failing_migration_rolls_back_whole(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    SQLiteStore(db).close()
    bad = Migration(SCHEMA_VERSION + 1, "broken", ("CREATE TABLE half_done (x)", "THIS IS NOT SQL"))
    monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS, bad))
    monkeypatch.setattr(migrations, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(StorageError) as info:
        SQLiteStore(db)
    assert isinstance(info.value.__cause__, sqlite3.Error)
    assert raw(db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert raw(db, "SELECT name FROM sqlite_master WHERE name = 'half_done'") == []


def test_database_from_a_newer_attestd_is_refused(db: Path) -> None:
    SQLiteStore(db).close()
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StorageError, match="newer") as info:
        SQLiteStore(db)
    assert info.value.code == "StorageError"
    assert isinstance(info.value, AttestdError)
    assert raw(db, "PRAGMA user_version") == [(SCHEMA_VERSION + 1,)]  # left untouched


def test_unopenable_and_corrupt_files_raise_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError) as info:
        SQLiteStore(tmp_path / "no-such-dir" / "x.db")
    assert isinstance(info.value.__cause__, sqlite3.Error)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError) as info:
        SQLiteStore(junk)
    assert isinstance(info.value.__cause__, sqlite3.Error)


def test_bad_path_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        SQLiteStore("")


def test_close_is_idempotent_and_a_closed_store_raises(db: Path) -> None:
    s = SQLiteStore(db)
    with s:
        assert "open" in repr(s)
    assert "closed" in repr(s)
    s.close()
    with pytest.raises(StorageError, match="closed"):
        s.get_policy("SgxEnclave")
    with pytest.raises(StorageError, match="closed"):
        s.record_audit(ADMIN, "x", {}, None, T0)


def test_path_object_and_str_both_work(db: Path) -> None:
    with SQLiteStore(str(db)) as s:
        assert s.path == str(db)


# -- policies --------------------------------------------------------------------------------------


def test_policy_set_get_replace_reset_and_history(store: SQLiteStore) -> None:
    assert store.get_policy("SgxEnclave") is None
    assert store.policy_history("SgxEnclave") == []

    first = policy("SgxEnclave", "version=1.0; authorizationrules{=> permit();};")
    store.set_policy(first)
    got = store.get_policy("sgxenclave")
    assert got is not None
    assert got.attestation_type == "sgxenclave"
    assert (got.text, got.jws, got.policy_hash, got.signer_pem) == (
        first.text,
        first.jws,
        first.policy_hash,
        None,
    )
    assert got.set_at == T0 and got.set_at.tzinfo is not None
    assert got.set_by == ADMIN
    assert store.get_policy("SGXENCLAVE") == got

    t1 = T0 + timedelta(minutes=5)
    second = policy("SGXENCLAVE", "version=1.0; authorizationrules{=> deny();};", at=t1, signer="a")
    store.set_policy(second)
    got = store.get_policy("SgxEnclave")
    assert got is not None
    assert got.text == second.text and got.signer_pem == pem("a") and got.set_at == t1

    t2 = T0 + timedelta(minutes=10)
    store.reset_policy("SgxEnclave", actor="root", at=t2)
    assert store.get_policy("SgxEnclave") is None
    store.reset_policy("SgxEnclave", actor="root", at=t2)  # idempotent

    history = store.policy_history("sgxENCLAVE")
    assert [h.action for h in history] == ["reset", "reset", "set", "set"]
    assert [h.at for h in history] == [t2, t2, t1, T0]
    assert history[0].policy is None and history[0].text is None and history[0].actor == "root"
    assert history[2].policy is not None and history[2].policy.text == second.text
    assert history[2].signer_pem == pem("a")
    assert history[3].policy is not None and history[3].policy.policy_hash == first.policy_hash

    log = store.audit_log()
    assert [e.action for e in log] == ["policy.reset", "policy.reset", "policy.set", "policy.set"]
    assert log[0].detail == {"attestation_type": "sgxenclave", "changed": False}
    assert log[0].policy_hash is None
    assert log[1].detail == {"attestation_type": "sgxenclave", "changed": True}
    assert log[1].policy_hash == second.policy_hash  # the policy that was removed
    assert log[2].detail == {"attestation_type": "sgxenclave", "signed": True}
    assert log[2].policy_hash == second.policy_hash and log[2].actor == ADMIN and log[2].at == t1
    assert log[3].detail == {"attestation_type": "sgxenclave", "signed": False}


def test_policies_are_per_type(store: SQLiteStore) -> None:
    store.set_policy(policy("Tpm", "tpm policy"))
    store.set_policy(policy("SevSnpVm", "snp policy"))
    store.reset_policy("Tpm", actor=ADMIN, at=T0)
    assert store.get_policy("tpm") is None
    snp = store.get_policy("sevsnpvm")
    assert snp is not None and snp.text == "snp policy"
    assert [h.action for h in store.policy_history("SevSnpVm")] == ["set"]
    assert store.policy_history("OpenEnclave") == []


def test_policy_times_are_stored_as_utc(store: SQLiteStore, db: Path) -> None:
    plus2 = timezone(timedelta(hours=2))
    local = datetime(2024, 5, 1, 14, 0, 0, tzinfo=plus2)
    store.set_policy(policy("Tpm", "x", at=local))
    got = store.get_policy("Tpm")
    assert got is not None and got.set_at == local and got.set_at.utcoffset() == timedelta(0)
    assert raw(db, "SELECT set_at FROM policies") == [("2024-05-01T12:00:00.000000+00:00",)]


def test_policy_argument_errors(store: SQLiteStore) -> None:
    naive = datetime(2024, 5, 1, 12, 0)
    with pytest.raises(ConfigurationError):
        store.set_policy(policy("Tpm", "x", at=naive))
    with pytest.raises(ConfigurationError):
        store.get_policy("  ")
    with pytest.raises(ConfigurationError):
        store.reset_policy("Tpm", actor=ADMIN, at=naive)
    with pytest.raises(ConfigurationError):
        store.reset_policy("Tpm", actor="", at=T0)
    assert store.audit_log() == [] and store.policy_history("Tpm") == []


# -- policy signers -------------------------------------------------------------------------------


def test_seed_signers_only_once(store: SQLiteStore) -> None:
    assert store.list_signers() == []
    assert store.seed_signers([der("a"), der("b"), der("a")]) is True
    assert store.list_signers() == [der("a"), der("b")]
    assert store.seed_signers([der("c")]) is False  # restart with creation-time config
    assert store.list_signers() == [der("a"), der("b")]
    (entry,) = store.audit_log()
    assert entry.action == "signer.seed" and entry.actor == "system" and entry.at == T0
    assert entry.detail == {
        "thumbprints": [certificate_thumbprint(cert("a")), certificate_thumbprint(cert("b"))]
    }
    with pytest.raises(ConfigurationError):
        store.seed_signers([])


def test_seed_after_removals_does_not_restore(store: SQLiteStore) -> None:
    store.seed_signers([der("a"), der("b")])
    store.remove_signer(der("a"), actor=ADMIN, at=T0)
    assert store.seed_signers([der("a"), der("b")]) is False
    assert store.list_signers() == [der("b")]


def test_add_and_remove_signers_idempotent(store: SQLiteStore) -> None:
    store.seed_signers([der("a")])
    assert store.add_signer(der("b"), actor=ADMIN, at=T0) is True
    assert store.add_signer(der("b"), actor=ADMIN, at=T0) is False
    assert store.add_signer(der("c"), actor=ADMIN, at=T0) is True
    assert store.list_signers() == [der("a"), der("b"), der("c")]  # insertion order

    assert store.remove_signer(der("b"), actor=ADMIN, at=T0) is True
    assert store.remove_signer(der("b"), actor=ADMIN, at=T0) is False
    assert store.remove_signer(der("never"), actor=ADMIN, at=T0) is False
    assert store.list_signers() == [der("a"), der("c")]
    assert store.add_signer(der("b"), actor=ADMIN, at=T0) is True  # re-added goes last
    assert store.list_signers() == [der("a"), der("c"), der("b")]

    log = list(reversed(store.audit_log()))
    assert [e.action for e in log] == [
        "signer.seed",
        "signer.add",
        "signer.add",
        "signer.add",
        "signer.remove",
        "signer.remove",
        "signer.remove",
        "signer.add",
    ]
    assert [e.detail["changed"] for e in log[1:]] == [True, False, True, True, False, False, True]
    assert log[1].detail["thumbprint"] == certificate_thumbprint(cert("b"))
    assert log[1].actor == ADMIN


def test_last_signer_cannot_be_removed(store: SQLiteStore) -> None:
    store.seed_signers([der("a"), der("b")])
    assert store.remove_signer(der("a"), actor=ADMIN, at=T0) is True
    before = store.audit_log()
    with pytest.raises(StorageError, match="last"):
        store.remove_signer(der("b"), actor=ADMIN, at=T0)
    assert store.list_signers() == [der("b")]
    assert store.audit_log() == before  # the failed request wrote nothing
    # Removing an absent one is still fine with a single signer left.
    assert store.remove_signer(der("a"), actor=ADMIN, at=T0) is False


def test_signer_argument_errors(store: SQLiteStore) -> None:
    with pytest.raises(ConfigurationError):
        store.add_signer(b"", actor=ADMIN, at=T0)
    with pytest.raises(ConfigurationError):
        store.add_signer("not bytes", actor=ADMIN, at=T0)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        store.remove_signer(der("a"), actor=ADMIN, at=datetime(2024, 1, 1))


# -- signing keys --------------------------------------------------------------------------------


def test_signing_key_rotation_and_pruning(store: SQLiteStore) -> None:
    assert store.signing_keys() == [] and store.active_signing_key() is None
    k1 = key_record("k1", created=T0, active=True)
    k2 = key_record("k2", created=T0 + timedelta(days=1))
    store.add_signing_key(k1)
    store.add_signing_key(k2, actor=ADMIN)
    assert store.active_signing_key() == k1
    assert [k.kid for k in store.signing_keys()] == ["k2", "k1"]  # newest first
    assert store.signing_keys()[1] == k1  # round trip, PEMs byte for byte

    t_rot = T0 + timedelta(days=2)
    store.rotate_to("k2", at=t_rot, actor=ADMIN)
    active = store.active_signing_key()
    assert active is not None and active.kid == "k2" and active.retired_at is None
    old = {k.kid: k for k in store.signing_keys()}["k1"]
    assert old.active is False and old.retired_at == t_rot

    store.rotate_to("k2", at=t_rot + timedelta(hours=1))  # already active: no-op
    assert {k.kid: k for k in store.signing_keys()}["k1"].retired_at == t_rot

    with pytest.raises(StorageError, match="no signing key"):
        store.rotate_to("nope", at=t_rot)
    with pytest.raises(StorageError, match="retired"):
        store.rotate_to("k1", at=t_rot)

    assert store.prune_signing_keys(t_rot) == 0  # retired exactly then: kept
    k3 = key_record("k3", created=t_rot)  # staged, never used: never pruned
    store.add_signing_key(k3)
    assert store.prune_signing_keys(t_rot + timedelta(microseconds=1)) == 1
    assert [k.kid for k in store.signing_keys()] == ["k3", "k2"]
    assert store.prune_signing_keys(t_rot + timedelta(days=365)) == 0
    active = store.active_signing_key()
    assert active is not None and active.kid == "k2"

    log = list(reversed(store.audit_log()))
    assert [e.action for e in log] == [
        "signing_key.add",
        "signing_key.add",
        "signing_key.rotate",
        "signing_key.rotate",
        "signing_key.add",
        "signing_key.prune",
    ]
    assert log[2].detail == {"kid": "k2", "previous": "k1", "changed": True}
    assert log[2].actor == ADMIN and log[2].at == t_rot
    assert log[3].detail == {"kid": "k2", "previous": None, "changed": False}
    assert log[5].detail["kids"] == ["k1"]
    for entry in log:  # no key material in the audit log
        assert "PRIVATE" not in str(entry.detail)


def test_rotate_with_no_previous_active_key(store: SQLiteStore) -> None:
    store.add_signing_key(key_record("k1", created=T0))
    store.rotate_to("k1", at=T0)
    active = store.active_signing_key()
    assert active is not None and active.kid == "k1"
    assert store.audit_log()[0].detail == {"kid": "k1", "previous": None, "changed": True}


def test_signing_key_conflicts(store: SQLiteStore) -> None:
    store.add_signing_key(key_record("k1", created=T0, active=True))
    with pytest.raises(StorageError, match="already stored"):
        store.add_signing_key(key_record("k1", created=T0))
    with pytest.raises(StorageError, match="rotate_to"):
        store.add_signing_key(key_record("k2", created=T0, active=True))
    with pytest.raises(ConfigurationError):
        store.add_signing_key(key_record("k3", created=T0, active=True, retired=T0))
    with pytest.raises(ConfigurationError):
        store.add_signing_key(key_record("k4", created=datetime(2024, 1, 1)))
    assert [k.kid for k in store.signing_keys()] == ["k1"]


def test_signing_key_repr_hides_the_private_key() -> None:
    rec = key_record("k1", created=T0, active=True)
    text = repr(rec)
    assert "k1" in text and "ES256" in text
    assert "PRIVATE KEY" not in text and "private_key_pem" not in text
    assert private_pem("k1").decode() not in str(rec)


# -- certificate authorities of the instance ----------------------------------------------------


def test_ca_keys_first_one_wins_and_persists(store: SQLiteStore, db: Path) -> None:
    assert store.get_ca_key("tpm-aik") is None
    first = CaKeyRecord("tpm-aik", "ES256", b"KEY-1", b"CERT-1", T0)
    assert store.add_ca_key(first) is True
    assert store.add_ca_key(CaKeyRecord("tpm-aik", "ES256", b"KEY-2", b"CERT-2", T0)) is False
    assert store.get_ca_key("tpm-aik") == first
    assert store.get_ca_key("other") is None
    assert "KEY-1" not in repr(first)
    audit = [e for e in store.audit_log() if e.action == "ca_key.add"]
    assert [e.detail for e in audit] == [{"purpose": "tpm-aik", "algorithm": "ES256"}]
    store.close()
    with SQLiteStore(db) as again:
        assert again.get_ca_key("tpm-aik") == first
    with pytest.raises(ConfigurationError):
        SQLiteStore(":memory:").add_ca_key(CaKeyRecord("x", "ES256", b"", b"c", T0))


# -- collateral cache ---------------------------------------------------------------------------


def test_use_once_across_processes_sharing_the_file(store: SQLiteStore, db: Path) -> None:
    later = T0 + timedelta(minutes=10)
    assert store.use_once("tpm-challenge:abc", expires=later, now=T0) is True
    assert store.use_once("tpm-challenge:abc", expires=later, now=T0) is False
    with SQLiteStore(db, now_fn=lambda: T0) as other:  # another worker, the same database
        assert other.use_once("tpm-challenge:abc", expires=later, now=T0) is False
        assert other.use_once("tpm-challenge:def", expires=later, now=T0) is True
    # Expired records are pruned (the contexts they protect are refused as expired anyway).
    after = later + timedelta(seconds=1)
    assert store.use_once("tpm-challenge:ghi", expires=after + timedelta(minutes=10), now=after)
    assert raw(db, "SELECT token FROM used_tokens") == [("tpm-challenge:ghi",)]
    with pytest.raises(ConfigurationError):
        store.use_once("", expires=later, now=T0)


def test_collateral_cache(store: SQLiteStore) -> None:
    url = "https://api.trustedservices.intel.com/sgx/certification/v4/tcb?fmspc=00906ED50000"
    assert store.get_cached(url) is None
    first = CachedResponse(
        url=url,
        body=b'{"tcbInfo":{}}\x00\xff',
        headers={"tcb-info-issuer-chain": "-----BEGIN%20CERTIFICATE-----", "content-type": "x"},
        fetched_at=T0,
        next_update=T0 + timedelta(days=30),
    )
    store.put_cached(first)
    assert store.get_cached(url) == first
    assert store.get_cached(url + "&update=early") is None

    stale = T0 - timedelta(days=1)
    second = CachedResponse(url=url, body=b"new", headers={}, fetched_at=T0, next_update=stale)
    store.put_cached(second)
    assert store.get_cached(url) == second  # replaced; stale entries are returned as they are

    crl = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"
    third = CachedResponse(url=crl, body=b"\x30\x82", headers={}, fetched_at=T0, next_update=None)
    store.put_cached(third)
    assert store.get_cached(crl) == third
    with pytest.raises(ConfigurationError):
        store.put_cached(
            CachedResponse(url=crl, body=b"", headers={"a": 1}, fetched_at=T0, next_update=None)  # type: ignore[dict-item]
        )


# -- audit log ------------------------------------------------------------------------------------


def test_audit_log_order_limit_and_detail(store: SQLiteStore) -> None:
    for i in range(5):
        store.record_audit(
            f"user{i}", "attest.denied", {"i": i, "why": ["a", None]}, f"hash{i}", T0
        )
    store.record_audit("u", "custom", {}, None, T0 - timedelta(days=1))
    log = store.audit_log(limit=3)
    assert [e.action for e in log] == ["custom", "attest.denied", "attest.denied"]
    assert log[1].detail == {"i": 4, "why": ["a", None]} and log[1].policy_hash == "hash4"
    assert log[1].actor == "user4" and log[1].at == T0
    assert log[0].id > log[1].id > log[2].id
    assert len(store.audit_log()) == 6
    assert store.audit_log(limit=0) == []
    with pytest.raises(ConfigurationError):
        store.audit_log(limit=-1)
    with pytest.raises(ConfigurationError):
        store.record_audit("u", "x", {"bad": object()}, None, T0)
    with pytest.raises(ConfigurationError):
        store.record_audit("u", "x", {"nan": float("nan")}, None, T0)
    with pytest.raises(ConfigurationError):
        store.record_audit("u", "", {}, None, T0)
    assert len(store.audit_log()) == 6


# -- API keys -------------------------------------------------------------------------------------


def test_api_keys_create_verify_revoke(store: SQLiteStore, db: Path) -> None:
    alice = store.create_api_key("alice", at=T0, actor=ADMIN)
    bob = store.create_api_key("bob", at=T0)
    assert alice.startswith(API_KEY_PREFIX) and len(alice) == len(API_KEY_PREFIX) + 43
    assert alice != bob
    assert store.list_api_keys() == ["alice", "bob"]
    assert store.verify_api_key(alice) == "alice"
    assert store.verify_api_key(bob) == "bob"

    assert store.verify_api_key(alice[:-1] + ("A" if alice[-1] != "A" else "B")) is None
    assert store.verify_api_key(alice[len(API_KEY_PREFIX) :]) is None  # without the prefix
    assert store.verify_api_key("") is None
    assert store.verify_api_key(API_KEY_PREFIX) is None
    assert store.verify_api_key(None) is None  # type: ignore[arg-type]

    with pytest.raises(StorageError, match="already exists"):
        store.create_api_key("alice", at=T0)
    with pytest.raises(ConfigurationError):
        store.create_api_key("", at=T0)

    assert store.revoke_api_key("alice", actor=ADMIN) is True
    assert store.revoke_api_key("alice") is False
    assert store.verify_api_key(alice) is None
    assert store.verify_api_key(bob) == "bob"
    assert store.list_api_keys() == ["bob"]

    log = list(reversed(store.audit_log()))
    assert [e.action for e in log] == ["api_key.create", "api_key.create", "api_key.revoke"]
    assert log[0].detail == {"name": "alice"} and log[0].actor == ADMIN

    # A new key under a revoked name gets a new secret; the old one stays dead.
    alice2 = store.create_api_key("alice", at=T0)
    assert store.verify_api_key(alice2) == "alice" and store.verify_api_key(alice) is None


def test_api_key_secret_never_reaches_the_file(db: Path) -> None:
    with SQLiteStore(db) as s:
        secret = s.create_api_key("ops", at=T0)
        # Read the files while open (WAL may hold the row) and after close (checkpointed).
        while_open = b"".join(p.read_bytes() for p in db.parent.iterdir() if p.is_file())
    after = b"".join(p.read_bytes() for p in db.parent.iterdir() if p.is_file())
    random_part = secret[len(API_KEY_PREFIX) :].encode()
    for blob in (while_open, after):
        assert b"ops" in blob  # the row is there...
        assert secret.encode() not in blob  # ...but not the secret
        assert random_part not in blob
    with SQLiteStore(db) as s:
        assert s.verify_api_key(secret) == "ops"


# -- persistence ------------------------------------------------------------------------------------


def test_everything_persists_across_reopen(db: Path) -> None:
    cached = CachedResponse(
        url="https://pcs/x", body=b"body", headers={"h": "v"}, fetched_at=T0, next_update=None
    )
    with SQLiteStore(db) as s:
        s.set_policy(policy("SgxEnclave", "p1", signer="a"))
        s.seed_signers([der("a")])
        s.add_signer(der("b"), actor=ADMIN, at=T0)
        s.add_signing_key(key_record("k1", created=T0, active=True))
        s.put_cached(cached)
        secret = s.create_api_key("ops", at=T0)
        log = s.audit_log()
        history = s.policy_history("SgxEnclave")
    with SQLiteStore(db) as s:
        assert s.get_policy("SgxEnclave") == policy("sgxenclave", "p1", signer="a")
        assert s.policy_history("SgxEnclave") == history
        assert s.list_signers() == [der("a"), der("b")]
        assert s.active_signing_key() == key_record("k1", created=T0, active=True)
        assert s.get_cached("https://pcs/x") == cached
        assert s.verify_api_key(secret) == "ops"
        assert s.audit_log() == log
        assert s.seed_signers([der("c")]) is False


# -- threads --------------------------------------------------------------------------------------


def test_concurrent_threads_keep_every_write(store: SQLiteStore) -> None:
    threads, per_thread = 8, 50
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def work(n: int) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                store.record_audit(f"t{n}", "attest", {"n": n, "i": i}, None, T0)
                if i % 10 == 0:
                    store.set_policy(policy("Tpm", f"t{n}-{i}"))
                    assert store.get_policy("tpm") is not None
                    store.audit_log(limit=5)
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert errors == []
    log = [e for e in store.audit_log(limit=10_000) if e.action == "attest"]
    assert len(log) == threads * per_thread
    assert {(e.detail["n"], e.detail["i"]) for e in log} == {
        (n, i) for n in range(threads) for i in range(per_thread)
    }
    assert len({e.id for e in store.audit_log(limit=10_000)}) == threads * per_thread + 40
    assert len(store.policy_history("Tpm")) == threads * (per_thread // 10)


def test_two_stores_on_one_file(db: Path) -> None:
    """Two connections (as a server and a CLI process would have) writing at once."""
    with SQLiteStore(db) as a, SQLiteStore(db) as b:

        def work(s: SQLiteStore, who: str) -> None:
            for i in range(50):
                s.record_audit(who, "x", {"i": i}, None, T0)

        pool = [threading.Thread(target=work, args=(s, w)) for s, w in ((a, "a"), (b, "b"))]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        assert len(a.audit_log(limit=1000)) == 100
        assert len(b.audit_log(limit=1000)) == 100


# -- :memory: -------------------------------------------------------------------------------------


def test_memory_store_works_and_is_private() -> None:
    with SQLiteStore(":memory:", now_fn=lambda: T0) as s, SQLiteStore(":memory:") as other:
        assert isinstance(s, Store)
        s.set_policy(policy("SgxEnclave", "p"))
        s.seed_signers([der("a")])
        s.add_signing_key(key_record("k1", created=T0, active=True))
        secret = s.create_api_key("ops", at=T0)
        errors: list[BaseException] = []

        def work(n: int) -> None:
            try:
                for i in range(20):
                    s.record_audit("t", "x", {"n": n, "i": i}, None, T0)
            except BaseException as exc:
                errors.append(exc)

        pool = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        assert errors == []
        p = s.get_policy("sgxenclave")
        assert p is not None and p.text == "p"
        assert s.verify_api_key(secret) == "ops"
        assert len([e for e in s.audit_log(limit=1000) if e.action == "x"]) == 80
        assert other.get_policy("sgxenclave") is None and other.audit_log() == []
        with s._read("test") as conn:
            assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
