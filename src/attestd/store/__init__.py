"""Persistence behind a Protocol: policies, policy signers, token signing keys, the instance's
CAs, the collateral cache, the audit log and API keys (:mod:`attestd.store.base`). The embedded
default backend is SQLite (:class:`SQLiteStore`)."""

from __future__ import annotations

from attestd.store.base import (
    API_KEY_PREFIX,
    AuditEntry,
    CachedResponse,
    CaKeyRecord,
    PolicyAction,
    PolicyHistoryEntry,
    SigningKeyRecord,
    StorageError,
    Store,
    StoredPolicy,
    normalize_attestation_type,
)
from attestd.store.sqlite import SQLiteStore

__all__ = [
    "API_KEY_PREFIX",
    "AuditEntry",
    "CaKeyRecord",
    "CachedResponse",
    "PolicyAction",
    "PolicyHistoryEntry",
    "SQLiteStore",
    "SigningKeyRecord",
    "StorageError",
    "Store",
    "StoredPolicy",
    "normalize_attestation_type",
]
