"""What attestd persists, as frozen records, and the :class:`Store` Protocol every backend implements.

A store holds the mutable state of one attestation instance (maa-compat.md §1.5):

- the **attestation policy** per attestation type (none stored = the built-in default), with a
  history of every set and reset;
- the **policy signer certificates** of an isolated-mode instance (DER, seeded at creation, then
  changed only by signed add/remove requests; the last one cannot be removed);
- the **token signing keys** (one active, retired ones kept until no token they signed can still be
  valid);
- a **collateral cache** of HTTP responses (Intel PCS and the like), keyed by URL;
- an **audit log** of administrative actions;
- the **API keys** of the administrators of the embedded default deployment.

Semantics are documented per method, in the manner of veraison's ``kvstore``: what each call does
when the item is missing or already present. The conventions common to every method:

- **Time.** Every ``datetime`` argument must be timezone-aware (naive ones raise
  :class:`~attestd.errors.ConfigurationError`); every ``datetime`` returned is aware, in UTC, with
  microsecond precision. Stores never read the clock for a time the caller passes.
- **Attestation types** (``SgxEnclave``, ``OpenEnclave``, ``Tpm``, ``SevSnpVm``, ...) are compared
  case-insensitively: stores keep and return them lower-case (:func:`normalize_attestation_type`).
- **Errors.** Wrong arguments (naive time, empty name, bad limit) raise
  :class:`~attestd.errors.ConfigurationError`. Everything the backend itself reports (I/O, a locked
  or corrupt database, a schema newer than the code) and every refused state change (duplicate key
  id, removing the last signer) raises :class:`StorageError`. Nothing else escapes a store.
- **Atomicity.** Each mutating method is one transaction: its change and the audit entry it writes
  are committed together or not at all.
- **Secrets.** Private keys are kept as given and never logged; :class:`SigningKeyRecord` leaves
  them out of its ``repr``. API key secrets are never stored, only a digest of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from attestd.errors import AttestdError, ConfigurationError

__all__ = [
    "API_KEY_PREFIX",
    "AuditEntry",
    "CaKeyRecord",
    "CachedResponse",
    "PolicyAction",
    "PolicyHistoryEntry",
    "SigningKeyRecord",
    "StorageError",
    "Store",
    "StoredPolicy",
    "normalize_attestation_type",
]

#: Every API key secret :meth:`Store.create_api_key` returns starts with this.
API_KEY_PREFIX = "attestd_"

PolicyAction = Literal["set", "reset"]


class StorageError(AttestdError):
    """The store could not do what was asked: the backend failed (I/O, locked, corrupt, a schema
    from a newer attestd) or the change would break an invariant (the last policy signer, a
    duplicate signing key id). The backend's own exception, if any, is the ``__cause__``."""

    code = "StorageError"


def normalize_attestation_type(attestation_type: str) -> str:
    """The stored form of an attestation type: lower-case, so ``SgxEnclave`` and ``sgxenclave``
    name the same policy. Raises :class:`ConfigurationError` for an empty or blank name."""
    if not isinstance(attestation_type, str) or not attestation_type.strip():
        raise ConfigurationError(
            f"attestation type must be a non-empty string, not {attestation_type!r}"
        )
    return attestation_type.strip().lower()


@dataclass(frozen=True, slots=True)
class StoredPolicy:
    """The policy in force for one attestation type.

    :param attestation_type: lower-case when read back from a store.
    :param text: the policy text (the decoded ``AttestationPolicy``).
    :param jws: the exact JWS that was uploaded, byte for byte; Get Policy returns it (§1.5).
    :param policy_hash: ``x-ms-policy-hash`` of ``text``.
    :param signer_pem: the certificate that signed ``jws`` (PEM), or None for an unsigned policy.
    :param set_at: when it was set.
    :param set_by: who set it (API key name, AAD principal, certificate thumbprint, ...).
    """

    attestation_type: str
    text: str
    jws: str
    policy_hash: str
    signer_pem: bytes | None
    set_at: datetime
    set_by: str


@dataclass(frozen=True, slots=True)
class PolicyHistoryEntry:
    """One change of the policy of one attestation type.

    For ``action == "set"`` the policy fields hold the policy that was set; for ``"reset"`` (back
    to the default) they are None. ``at`` and ``actor`` say when and by whom.
    """

    attestation_type: str
    action: PolicyAction
    text: str | None
    jws: str | None
    policy_hash: str | None
    signer_pem: bytes | None
    at: datetime
    actor: str

    @property
    def policy(self) -> StoredPolicy | None:
        """The policy this entry set, or None for a reset."""
        if (
            self.action != "set"
            or self.text is None
            or self.jws is None
            or self.policy_hash is None
        ):
            return None
        return StoredPolicy(
            attestation_type=self.attestation_type,
            text=self.text,
            jws=self.jws,
            policy_hash=self.policy_hash,
            signer_pem=self.signer_pem,
            set_at=self.at,
            set_by=self.actor,
        )


@dataclass(frozen=True, slots=True)
class SigningKeyRecord:
    """A token signing key.

    :param kid: the key id published in the JWKS and the token header; unique in a store.
    :param algorithm: the JOSE algorithm it signs with (``RS256``, ``ES256``, ...).
    :param private_key_pem: the private key, PEM, stored as given (encrypt it first if the
        deployment wants it encrypted at rest). Left out of ``repr``.
    :param certificate_pem: its certificate (chain), PEM, published as ``x5c``.
    :param created_at: when it was created.
    :param retired_at: when it stopped being the active key; None while active or not yet used.
    :param active: whether tokens are signed with it now; at most one key is active.
    """

    kid: str
    algorithm: str
    private_key_pem: bytes = field(repr=False)
    certificate_pem: bytes
    created_at: datetime
    retired_at: datetime | None
    active: bool


@dataclass(frozen=True, slots=True)
class CaKeyRecord:
    """A certificate authority of this instance (not a token signing key: never in the JWKS).

    :param purpose: what it signs, e.g. ``tpm-aik`` (AIK certificates issued by TPM enrollment);
        at most one CA per purpose.
    :param algorithm: its signature algorithm (``ES256``, ``RS256``, ...).
    :param private_key_pem: the private key, PEM, stored as given. Left out of ``repr``.
    :param certificate_pem: its (self-signed) certificate, PEM.
    :param created_at: when it was created.
    """

    purpose: str
    algorithm: str
    private_key_pem: bytes = field(repr=False)
    certificate_pem: bytes
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CachedResponse:
    """One cached HTTP response: the body exactly as received, its headers (names as the caller
    gives them; lower-case is recommended), when it was fetched and when its content says it stops
    being current (None if it does not say)."""

    url: str
    body: bytes
    headers: dict[str, str]
    fetched_at: datetime
    next_update: datetime | None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit log entry. ``id`` increases with every entry a store records; ``detail`` is a
    JSON object (never a secret); ``policy_hash`` is the hash of the policy concerned, if any.

    Actions the store writes itself: ``policy.set``, ``policy.reset``, ``signer.seed``,
    ``signer.add``, ``signer.remove``, ``signing_key.add``, ``signing_key.rotate``,
    ``signing_key.prune``, ``ca_key.add``, ``api_key.create``, ``api_key.revoke``. Callers add
    their own with :meth:`Store.record_audit`.
    """

    id: int
    at: datetime
    actor: str
    action: str
    detail: dict[str, Any]
    policy_hash: str | None


@runtime_checkable
class Store(Protocol):
    """Persistence for one attestd instance. Implementations are safe to share between threads.

    See the module docstring for the conventions on time, attestation types, errors and
    atomicity that every method follows.
    """

    # -- policies ------------------------------------------------------------------------------

    def get_policy(self, attestation_type: str) -> StoredPolicy | None:
        """The policy set for this attestation type (case-insensitive), or None if none is
        stored (the type runs its default policy). Never raises for an unknown type."""
        ...

    def set_policy(self, policy: StoredPolicy) -> None:
        """Make ``policy`` the policy of ``policy.attestation_type`` (stored lower-case),
        replacing any previous one (set is an upsert: no error whether or not one existed).
        Appends a ``set`` entry to :meth:`policy_history` and writes a ``policy.set`` audit entry
        (actor ``policy.set_by``, time ``policy.set_at``, the policy hash), in one transaction."""
        ...

    def reset_policy(self, attestation_type: str, *, actor: str, at: datetime) -> None:
        """Go back to the default policy: the stored policy of this type, if any, is removed, so
        :meth:`get_policy` returns None. Idempotent: resetting a type that has no stored policy
        is not an error. Either way it appends a ``reset`` entry to :meth:`policy_history` and
        writes a ``policy.reset`` audit entry (``detail["changed"]`` says whether a policy was
        removed, ``policy_hash`` is the removed one's)."""
        ...

    def policy_history(self, attestation_type: str) -> list[PolicyHistoryEntry]:
        """Every set and reset of this type, newest first (in the order they were stored).
        Empty for a type never set or reset. History is never pruned by the store."""
        ...

    # -- policy signer certificates (isolated mode) ----------------------------------------------

    def list_signers(self) -> list[bytes]:
        """The trusted policy signer certificates (DER), in the order they were added. Empty for
        an instance without any (AAD mode)."""
        ...

    def seed_signers(self, ders: Iterable[bytes]) -> bool:
        """Install the initial signer certificates of an isolated instance, at its creation.

        Only the first seeding counts: if the store was seeded before, or already holds any
        signer, nothing changes and the result is False (restarting with the creation-time
        configuration must not undo later add/remove requests). Otherwise the certificates are
        added in order (duplicates once), one ``signer.seed`` audit entry (actor ``system``) is
        written, and the result is True. An empty ``ders`` raises ``ConfigurationError``.
        """
        ...

    def add_signer(self, der: bytes, *, actor: str, at: datetime) -> bool:
        """Trust one more signer certificate (DER, compared byte for byte). True if it was added
        (at the end of :meth:`list_signers`); False if it was already present, which is not an
        error (MAA's add is idempotent, §1.5). Writes a ``signer.add`` audit entry either way,
        with the certificate's SHA-1 thumbprint and ``changed``."""
        ...

    def remove_signer(self, der: bytes, *, actor: str, at: datetime) -> bool:
        """Stop trusting a signer certificate. True if it was removed; False if it was not
        present (idempotent, not an error). Raises :class:`StorageError`, changing nothing, if it
        is the only signer left: an isolated instance always keeps one. Writes a
        ``signer.remove`` audit entry unless it raises."""
        ...

    # -- token signing keys -----------------------------------------------------------------------

    def add_signing_key(self, record: SigningKeyRecord, *, actor: str = "system") -> None:
        """Store a new signing key as given. Raises :class:`StorageError` if its ``kid`` is
        already stored, or if it is ``active`` while another key is (use :meth:`rotate_to` to
        switch keys). Writes a ``signing_key.add`` audit entry (kid and algorithm only)."""
        ...

    def signing_keys(self) -> list[SigningKeyRecord]:
        """Every stored key (active, not yet used, and retired-but-not-pruned), newest
        ``created_at`` first: the set a JWKS publishes. Empty if none."""
        ...

    def active_signing_key(self) -> SigningKeyRecord | None:
        """The key tokens are signed with now, or None if no key is active."""
        ...

    def rotate_to(self, kid: str, *, at: datetime, actor: str = "system") -> None:
        """Make ``kid`` the active key: it becomes active (``retired_at`` None) and the key that
        was active, if any, becomes inactive with ``retired_at = at``. A no-op if ``kid`` is
        already active. Raises :class:`StorageError` if ``kid`` is not stored or was retired
        before (a retired key only verifies old tokens; add a new key instead). Writes a
        ``signing_key.rotate`` audit entry with ``kid``, ``previous`` and ``changed``."""
        ...

    def prune_signing_keys(self, before: datetime) -> int:
        """Delete the keys retired strictly before ``before`` (callers pass now minus the longest
        token lifetime, so no valid token needs them) and return how many. The active key and
        keys never used are kept. Writes a ``signing_key.prune`` audit entry if any was deleted."""
        ...

    # -- certificate authorities of the instance ------------------------------------------------

    def get_ca_key(self, purpose: str) -> CaKeyRecord | None:
        """The CA stored for ``purpose`` (compared exactly), or None if there is none yet."""
        ...

    def add_ca_key(self, record: CaKeyRecord, *, actor: str = "system") -> bool:
        """Store the CA of ``record.purpose`` unless one is stored already: True if it was added
        (with a ``ca_key.add`` audit entry: purpose and algorithm), False if another was there
        first, which is left unchanged (callers then use :meth:`get_ca_key`, so concurrent
        first uses agree on one CA)."""
        ...

    # -- single-use tokens ----------------------------------------------------------------------------

    def use_once(self, token: str, *, expires: datetime, now: datetime) -> bool:
        """Record that ``token`` (e.g. a TPM service context's challenge) has been used: True the
        first time, False on every later call until ``expires`` has passed, in this process or
        any other sharing the store. Records that expired before ``now`` are forgotten (a
        token must itself be refused once expired, so forgetting it is safe)."""
        ...

    # -- collateral cache -----------------------------------------------------------------------------

    def get_cached(self, url: str) -> CachedResponse | None:
        """The response last stored for exactly this URL, or None. Stale entries are returned as
        they are: whether one is still current (``next_update``) is the caller's decision."""
        ...

    def put_cached(self, response: CachedResponse) -> None:
        """Store a response, replacing any earlier one for the same URL (upsert)."""
        ...

    # -- audit log ------------------------------------------------------------------------------------

    def record_audit(
        self,
        actor: str,
        action: str,
        detail: Mapping[str, Any],
        policy_hash: str | None,
        at: datetime,
    ) -> None:
        """Append an audit entry. ``detail`` must be JSON-serializable (else
        ``ConfigurationError``) and must not hold secrets. Entries are never updated or deleted."""
        ...

    def audit_log(self, limit: int = 100) -> list[AuditEntry]:
        """The ``limit`` most recent entries, newest (highest ``id``, i.e. last recorded) first.
        ``limit`` 0 gives an empty list; a negative one raises ``ConfigurationError``."""
        ...

    # -- API keys -----------------------------------------------------------------------------------

    def create_api_key(self, name: str, *, at: datetime, actor: str = "system") -> str:
        """Create an API key called ``name`` and return its secret, ``attestd_`` followed by 32
        random bytes in URL-safe base64. The secret is returned once and never stored (only a
        digest of it). Raises :class:`StorageError` if a key of that name exists. Writes an
        ``api_key.create`` audit entry (the name, never the secret)."""
        ...

    def verify_api_key(self, secret: str) -> str | None:
        """The name of the key whose secret this is, or None for anything else (wrong, revoked,
        malformed). Compares in constant time; never raises for a bad secret."""
        ...

    def revoke_api_key(self, name: str, *, actor: str = "system") -> bool:
        """Delete the key called ``name``: True if it existed, False if not (idempotent). Its
        secret stops verifying at once. Writes an ``api_key.revoke`` audit entry if it existed."""
        ...

    def list_api_keys(self) -> list[str]:
        """The names of the existing keys, oldest first."""
        ...

    # -- lifecycle ------------------------------------------------------------------------------------

    def close(self) -> None:
        """Release the backend's resources. Idempotent; any other call afterwards raises
        :class:`StorageError`."""
        ...
