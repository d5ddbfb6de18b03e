"""The attestation service use case: evidence -> verify -> claims -> policy -> token, and policy
management. The only module that imports every stage; the HTTP layer calls it and maps its
errors to status codes (:mod:`attestd.api.problems`).

Request and token shapes follow maa-compat.md §1.2-§1.3 and §2: the attest body carries the
evidence base64url-encoded, optional runtime/inittime data bound to the report data, an optional
draft policy (the token is then unsigned), and a nonce echoed as a claim.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import orjson
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from attestd._json import parse_json
from attestd.claims.dcap import dcap_claims
from attestd.collateral.source import BundleDirectory, BundleStore, CollateralSource
from attestd.config import Settings
from attestd.errors import (
    AttestdError,
    ConfigurationError,
    EvidenceError,
    PolicyDocumentError,
)
from attestd.evidence.openenclave import parse_openenclave_report
from attestd.evidence.quote import TeeType, parse_quote
from attestd.policy import Claim, CompiledPolicy, compile_policy, evaluate
from attestd.policy.defaults import default_policy
from attestd.policy.document import (
    PolicyDocument,
    certificate_thumbprint,
    parse_policy_document,
    policy_hash,
    unsigned_policy,
    verify_policy_certificate_document,
    verify_policy_document,
)
from attestd.store.base import StoredPolicy
from attestd.store.sqlite import SQLiteStore
from attestd.token.issue import (
    ATTESTATION_TOKEN_LIFETIME,
    MANAGEMENT_TOKEN_LIFETIME,
    issue_token,
    unsigned_token,
)
from attestd.token.keys import SigningKey, jwks
from attestd.verify.dcap import DcapVerifier

__all__ = [
    "ATTESTATION_TYPES",
    "AttestationService",
    "InvalidRequest",
    "NotAuthorized",
    "OperationNotAllowed",
    "PolicyEvaluationFailed",
]

ATTESTATION_TYPES = {
    "sgxenclave": "SgxEnclave",
    "openenclave": "OpenEnclave",
    "tdxvm": "TdxVm",
    "tpm": "Tpm",
}
_NO_POLICY = "eyJhbGciOiJub25lIn0.."
#: How long a TPM ``service_context`` (step 1) stays usable.
TPM_CONTEXT_LIFETIME = timedelta(minutes=10)
#: How long a TPM ``enrollment_context`` (``POST /enroll/Tpm`` step 1) stays usable.
TPM_ENROLLMENT_LIFETIME = timedelta(minutes=10)
_CONTEXT_INFO = b"attestd tpm service_context v1"
_ENROLLMENT_INFO = b"attestd tpm enrollment_context v1"
#: MAA's TPM reports are valid from 300 s before their ``iat`` (maa-compat.md §2.2).
TPM_NBF_SKEW = timedelta(seconds=300)


class InvalidRequest(AttestdError):
    """The request body is malformed (MAA: InvalidParameter)."""

    code = "InvalidParameter"


class OperationNotAllowed(AttestdError):
    """Not allowed in this instance mode (MAA: InvalidOperation)."""

    code = "InvalidOperation"


class NotAuthorized(AttestdError):
    code = "Unauthorized"


class PolicyEvaluationFailed(AttestdError):
    code = "PolicyEvaluationError"


def b64url_decode(value: object, field: str) -> bytes:
    """base64url with or without padding (the SDKs send it unpadded); standard base64 too."""
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"'{field}' must be a non-empty base64url string")
    text = value.strip().replace("+", "-").replace("/", "_").rstrip("=")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest(f"'{field}' is not base64url: {exc}") from exc


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class _ActivePolicy:
    document: PolicyDocument | None
    compiled: CompiledPolicy | None
    hash: str | None


class AttestationService:
    """One attestd instance. Thread-safe; keys and compiled policies are cached in memory."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: SQLiteStore | None = None,
        collateral: CollateralSource | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store or SQLiteStore(settings.database)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.verifier = DcapVerifier(
            collateral=collateral or _collateral_source(settings, self.store),
            allow_expired_collateral=settings.allow_expired_collateral,
        )
        self._lock = threading.Lock()
        self._policies: dict[str, _ActivePolicy] = {}
        self._tpm_roots: list[x509.Certificate] | None = None
        self._ek_roots: list[x509.Certificate] | None = None
        self._aik_ca: tuple[Any, x509.Certificate] | None = None
        self._key = self._signing_key()
        if settings.mode == "isolated" and not self.store.list_signers():
            ders = [_load_pem_cert(p).public_bytes(Encoding.DER) for p in settings.isolated_signers]
            if not ders:
                raise ConfigurationError("an isolated instance needs isolated_signers (PEM files)")
            self.store.seed_signers(ders)

    # -- keys -----------------------------------------------------------------------------

    def _signing_key(self) -> SigningKey:
        rec = self.store.active_signing_key()
        if rec is not None:
            return SigningKey.from_pem(rec.private_key_pem, rec.certificate_pem)
        return self._new_signing_key(active=True)

    def _new_signing_key(self, *, active: bool) -> SigningKey:
        """Generate a signing key for this instance and store it (active, or waiting for
        ``rotate_to``)."""
        from attestd.store.base import SigningKeyRecord

        key = SigningKey.generate(
            issuer_url=self.settings.instance_url,
            algorithm=self.settings.token_algorithm,
            now=self.clock(),
        )
        key_pem, cert_pem = key.to_pem()
        self.store.add_signing_key(
            SigningKeyRecord(
                kid=key.kid,
                algorithm=key.algorithm,
                private_key_pem=key_pem,
                certificate_pem=cert_pem,
                created_at=self.clock(),
                retired_at=None,
                active=active,
            )
        )
        return key

    def rotate_signing_key(self) -> str:
        """A new signing key becomes active; the old one stays in /certs until every token it
        signed has expired (then ``prune`` removes it). Returns the new kid."""
        key = self._new_signing_key(active=False)
        self.store.rotate_to(key.kid, at=self.clock())
        self.store.prune_signing_keys(self.clock() - ATTESTATION_TOKEN_LIFETIME)
        self._key = key
        return key.kid

    def published_keys(self) -> list[SigningKey]:
        """Keys in /certs: the active one and retired ones whose tokens may still be valid."""
        horizon = self.clock() - ATTESTATION_TOKEN_LIFETIME
        out = []
        for rec in self.store.signing_keys():
            if rec.retired_at is None or rec.retired_at > horizon:
                out.append(SigningKey.from_pem(rec.private_key_pem, rec.certificate_pem))
        return out

    def certs(self) -> dict[str, Any]:
        return jwks(self.published_keys())

    def openid_configuration(self) -> dict[str, Any]:
        base = self.settings.instance_url
        return {
            "claims_supported": [
                "cnf",
                "nonce",
                "x-ms-ver",
                "x-ms-attestation-type",
                "x-ms-policy-hash",
                "x-ms-policy-signer",
                "x-ms-sgx-is-debuggable",
                "x-ms-sgx-mrenclave",
                "x-ms-sgx-mrsigner",
                "x-ms-sgx-svn",
                "x-ms-sgx-ehd",
                "x-ms-sgx-collateral",
                "is-debuggable",
                "sgx-mrsigner",
                "sgx-mrenclave",
                "product-id",
                "svn",
                "tee",
            ],
            "id_token_signing_alg_values_supported": [self.settings.token_algorithm],
            "issuer": base,
            "jwks_uri": f"{base}/certs",
            "response_types_supported": ["token", "none"],
            "revocation_endpoint": f"{base}/revoke",
        }

    def _token(self, claims: Mapping[str, Any], lifetime: timedelta) -> str:
        """Attestation tokens carry a jti; management responses, as MAA's, do not."""
        return issue_token(
            claims,
            key=self._key,
            issuer=self.settings.instance_url,
            now=self.clock(),
            lifetime=lifetime,
            jku=f"{self.settings.instance_url}/certs",
            with_jti=lifetime == ATTESTATION_TOKEN_LIFETIME,
        )

    # -- policies -------------------------------------------------------------------------

    def _type(self, attestation_type: str) -> str:
        name = ATTESTATION_TYPES.get(attestation_type.lower())
        if name is None:
            raise InvalidRequest(f"unknown attestation type {attestation_type!r}")
        return name

    def active_policy(self, attestation_type: str) -> _ActivePolicy:
        key = self._type(attestation_type).lower()
        with self._lock:
            hit = self._policies.get(key)
        if hit is not None:
            return hit
        stored = self.store.get_policy(key)
        if stored is not None:
            doc = parse_policy_document(stored.jws)
            active = _ActivePolicy(doc, compile_policy(doc.policy_text), stored.policy_hash)
        else:
            text = default_policy(key)
            if text is None:
                active = _ActivePolicy(None, None, None)
            else:
                doc = parse_policy_document(unsigned_policy(text))
                active = _ActivePolicy(doc, compile_policy(text), policy_hash(text))
        with self._lock:
            self._policies[key] = active
        return active

    def get_policy(self, attestation_type: str) -> str:
        active = self.active_policy(attestation_type)
        jws = active.document.jws if active.document is not None else _NO_POLICY
        return self._token({"x-ms-policy": jws}, MANAGEMENT_TOKEN_LIFETIME)

    def _check_management_document(self, doc: PolicyDocument) -> None:
        if self.settings.mode == "isolated":
            signers = [x509.load_der_x509_certificate(d) for d in self.store.list_signers()]
            verify_policy_document(doc, trusted_signers=signers, require_signed=True)
        elif doc.signed:
            verify_policy_document(doc, trusted_signers=[doc.chain[-1]], require_signed=True)

    def set_policy(self, attestation_type: str, jws: str, *, actor: str) -> str:
        name = self._type(attestation_type)
        doc = parse_policy_document(jws.strip())
        self._check_management_document(doc)
        if not doc.policy_text:
            raise PolicyDocumentError("the policy JWS carries no AttestationPolicy")
        compiled = compile_policy(doc.policy_text)
        digest = policy_hash(doc.policy_text)
        signer = doc.signer.public_bytes(Encoding.PEM) if doc.signer is not None else None
        self.store.set_policy(
            StoredPolicy(
                attestation_type=name.lower(),
                text=doc.policy_text,
                jws=doc.jws,
                policy_hash=digest,
                signer_pem=signer,
                set_at=self.clock(),
                set_by=actor,
            )
        )
        with self._lock:
            self._policies[name.lower()] = _ActivePolicy(doc, compiled, digest)
        claims: dict[str, Any] = {
            "x-ms-policy-result": "Updated",
            "x-ms-policy-token-hash": doc.token_hash,
        }
        if doc.signed:
            claims["x-ms-policy-signer"] = doc.signer_jwk()
        return self._token(claims, MANAGEMENT_TOKEN_LIFETIME)

    def reset_policy(self, attestation_type: str, jws: str, *, actor: str) -> str:
        name = self._type(attestation_type)
        doc = parse_policy_document(jws.strip())
        self._check_management_document(doc)
        self.store.reset_policy(name.lower(), actor=actor, at=self.clock())
        with self._lock:
            self._policies.pop(name.lower(), None)
        return self._token({"x-ms-policy-result": "Removed"}, MANAGEMENT_TOKEN_LIFETIME)

    # -- policy signer certificates (isolated mode) -----------------------------------------

    def _isolated(self) -> None:
        if self.settings.mode != "isolated":
            raise OperationNotAllowed(
                "policy management certificates exist only on isolated instances: "
                "the operation is disallowed"
            )

    def get_signers(self) -> str:
        from attestd.policy.document import certificate_jwk

        keys = []
        if self.settings.mode == "isolated":
            keys = [
                certificate_jwk(x509.load_der_x509_certificate(d))
                for d in self.store.list_signers()
            ]
        return self._token({"x-ms-policy-certificates": {"keys": keys}}, MANAGEMENT_TOKEN_LIFETIME)

    def change_signer(self, body: str, *, add: bool, actor: str) -> str:
        self._isolated()
        signers = [x509.load_der_x509_certificate(d) for d in self.store.list_signers()]
        cert = verify_policy_certificate_document(body, trusted_signers=signers)
        der = cert.public_bytes(Encoding.DER)
        if add:
            self.store.add_signer(der, actor=actor, at=self.clock())
            result = "IsPresent"
        else:
            current = self.store.list_signers()
            if current == [der]:
                raise OperationNotAllowed(
                    "the last policy management certificate cannot be removed"
                )
            self.store.remove_signer(der, actor=actor, at=self.clock())
            result = "IsAbsent"
        return self._token(
            {
                "x-ms-certificate-thumbprint": certificate_thumbprint(cert),
                "x-ms-policycertificates-result": result,
            },
            MANAGEMENT_TOKEN_LIFETIME,
        )

    # -- attestation ----------------------------------------------------------------------

    # -- TPM protocol (maa-compat.md §1.4): messages are {"data": base64url(JSON)} -------------

    def _context_key(self, info: bytes = _CONTEXT_INFO) -> tuple[str, bytes]:
        """AES-256-GCM key protecting service contexts, derived from the active signing key, so
        any replica of this instance can open a context and a key rotation retires them.
        ``info`` separates the purposes (service contexts, enrollment contexts)."""
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        secret = self._key.private_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)
        return hashlib.sha256(key).hexdigest().upper(), key

    def attest_tpm(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /attest/Tpm`` (maa-compat.md §1.4). Step 1 (``{"type": "aikcert"}``) answers a
        fresh challenge and an authenticated, expiring ``service_context`` that any replica can
        check. Step 2 (``{"request": "<attReqV2 JWS>"}``) is verified by
        :mod:`attestd.verify.tpm_request` and answered with step 3, ``{"report": "<JWT>"}``."""
        raw = b64url_decode(body.get("data"), "data")
        try:
            message = parse_json(raw)
        except (UnicodeDecodeError, ValueError) as exc:
            raise InvalidRequest(f"'data' is not base64url JSON: {exc}") from exc
        payload = message.get("payload") if isinstance(message, dict) else None
        if not isinstance(payload, dict):
            raise InvalidRequest("the TPM message has no 'payload' object")
        if self.active_policy("Tpm").compiled is None:
            raise OperationNotAllowed(
                "A VBS attestation policy has not been set on the attestation provider."
            )
        if payload.get("type") == "aikcert":
            reply = self._tpm_challenge()
        elif "request" in payload:
            reply = {"report": self._tpm_report(payload["request"])}
        else:
            raise InvalidRequest(
                "the TPM message payload is neither {'type': 'aikcert'} (step 1) nor "
                "{'request': <attReqV2 JWS>} (step 2)"
            )
        return {"data": b64url(json.dumps({"payload": reply}, separators=(",", ":")).encode())}

    def _tpm_challenge(self) -> dict[str, Any]:
        import os

        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        challenge = os.urandom(16)
        name, key = self._context_key()
        expires = int(self.clock().timestamp()) + int(TPM_CONTEXT_LIFETIME.total_seconds())
        context = json.dumps(
            {"challenge": b64url(challenge), "expires": expires, "v": 1},
            separators=(",", ":"),
        ).encode()
        nonce = os.urandom(12)
        sealed = nonce + AESGCM(key).encrypt(nonce, context, name.encode())
        service_context = b64url(
            json.dumps(
                {"ProtectionKeyName": name, "ProtectedContext": b64url(sealed)},
                separators=(",", ":"),
            ).encode()
        )
        return {"challenge": b64url(challenge), "service_context": service_context}

    def open_service_context(self, service_context: str) -> dict[str, Any]:
        """The context sealed by :meth:`attest_tpm`, if authentic and unexpired."""
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        try:
            outer = parse_json(b64url_decode(service_context, "service_context"))
            sealed = b64url_decode(outer["ProtectedContext"], "ProtectedContext")
            name, key = self._context_key()
            if outer["ProtectionKeyName"] != name or len(sealed) < 13:
                raise InvalidRequest("the service_context was not issued by this instance")
            context = json.loads(AESGCM(key).decrypt(sealed[:12], sealed[12:], name.encode()))
        except (KeyError, TypeError, ValueError, InvalidTag) as exc:
            raise InvalidRequest("the service_context is not authentic") from exc
        if not isinstance(context, dict) or context.get("expires", 0) < self.clock().timestamp():
            raise InvalidRequest("the service_context has expired: start again with step 1")
        return context

    def _use_once(self, token: str, expires: int, what: str) -> None:
        """A context answers one request: ``token`` (unique to it) is recorded in the store
        until the context expires, so a replay fails in every worker and replica sharing it."""
        until = datetime.fromtimestamp(expires, UTC)
        if not self.store.use_once(token, expires=until, now=self.clock()):
            raise InvalidRequest(f"the {what} has already been used: start again with step 1")

    def _aik_roots(self) -> list[x509.Certificate]:
        """The configured ``tpm_aik_roots`` and, once it exists, this instance's own AIK CA
        (``POST /enroll/Tpm``)."""
        if self._tpm_roots is None:
            self._tpm_roots = _load_roots(self.settings.tpm_aik_roots, "tpm_aik_roots")
        own = self._aik_ca if self._aik_ca is not None else self._stored_aik_ca()
        return self._tpm_roots if own is None else [*self._tpm_roots, own[1]]

    # -- TPM enrollment (attestd extension): POST /enroll/Tpm, GET /enroll/ca ---------------------

    def _stored_aik_ca(self) -> tuple[Any, x509.Certificate] | None:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        from attestd.verify.tpm_enroll import AIK_CA_PURPOSE

        rec = self.store.get_ca_key(AIK_CA_PURPOSE)
        if rec is None:
            return None
        ca = (
            load_pem_private_key(rec.private_key_pem, password=None),
            x509.load_pem_x509_certificate(rec.certificate_pem),
        )
        self._aik_ca = ca
        return ca

    def aik_ca(self) -> tuple[Any, x509.Certificate]:
        """This instance's AIK CA (private key, certificate), created and stored on first use."""
        from cryptography.hazmat.primitives import serialization

        from attestd.store.base import CaKeyRecord
        from attestd.verify.tpm_enroll import AIK_CA_PURPOSE, new_aik_ca

        ca = self._aik_ca or self._stored_aik_ca()
        if ca is not None:
            return ca
        now = self.clock()
        key, cert = new_aik_ca(self.settings.instance_url, now)
        record = CaKeyRecord(
            purpose=AIK_CA_PURPOSE,
            algorithm="ES256",
            private_key_pem=key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            certificate_pem=cert.public_bytes(serialization.Encoding.PEM),
            created_at=now,
        )
        self.store.add_ca_key(record)  # False: another replica's CA came first; use that one
        ca = self._stored_aik_ca()
        if ca is None:  # pragma: no cover - the store just said it holds one
            raise ConfigurationError("the AIK CA could not be stored")
        return ca

    def aik_ca_certificate(self) -> dict[str, Any]:
        """``GET /enroll/ca``: ``{"ca_cert": "<base64 DER>"}``, the CA AIK certificates issued by
        ``POST /enroll/Tpm`` chain to."""
        return {"ca_cert": _b64(self.aik_ca()[1].public_bytes(Encoding.DER))}

    def _ek_trust(self) -> list[x509.Certificate]:
        if self._ek_roots is None:
            self._ek_roots = _load_roots(self.settings.tpm_ek_roots, "tpm_ek_roots")
        return self._ek_roots

    def enroll_tpm(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /enroll/Tpm`` (attestd extension; docs in :mod:`attestd.verify.tpm_enroll`).

        Step 1, ``{"ek_cert", "ak_public"[, "ek_public"][, "ek_chain"]}``, answers
        ``{"credential", "enrollment_context"}``; step 2, ``{"enrollment_context", "secret"}``,
        answers ``{"aik_cert", "ca_cert"}``."""
        if "enrollment_context" in body:
            return self._enroll_finish(body)
        if "ek_cert" in body:
            return self._enroll_start(body)
        raise InvalidRequest(
            "the enrollment request is neither step 1 ({'ek_cert', 'ak_public'}) nor step 2 "
            "({'enrollment_context', 'secret'})"
        )

    def _enroll_start(self, body: Mapping[str, Any]) -> dict[str, Any]:
        import os

        from attestd.evidence.tpm import HASH_DIGEST_SIZES
        from attestd.verify.tpm_credential import make_credential, write_tpm2_tools_credential
        from attestd.verify.tpm_enroll import check_ak, check_ek

        ek_cert = _der_cert(body.get("ek_cert"), "ek_cert")
        chain = body.get("ek_chain", [])
        if not isinstance(chain, list):
            raise InvalidRequest("'ek_chain' must be a list of base64 DER certificates")
        intermediates = [_der_cert(c, f"ek_chain[{i}]") for i, c in enumerate(chain)]
        ek_public = None
        if body.get("ek_public") is not None:
            ek_public = _tpm_public(body["ek_public"], "ek_public")
        at = self.settings.verification_time or self.clock()
        ek = check_ek(ek_cert, intermediates, self._ek_trust(), at, ek_public)
        field = "ak_public" if "ak_public" in body or "aik_pub" not in body else "aik_pub"
        ak = _tpm_public(body.get(field), field)
        check_ak(ak)
        secret = os.urandom(HASH_DIGEST_SIZES[ek.name_alg])
        blob, encrypted = make_credential(ek, ak.name(), secret)
        ek_der = ek_cert.public_bytes(Encoding.DER)
        context = {
            "v": 1,
            "secret_sha256": b64url(hashlib.sha256(secret).digest()),
            "ak_public": b64url(ak.raw),
            "ek_cert_sha256": hashlib.sha256(ek_der).hexdigest(),
            "ek_serial": f"{ek_cert.serial_number:x}",
            "ek_issuer_sha256": hashlib.sha256(ek_cert.issuer.public_bytes()).hexdigest(),
            "expires": int(self.clock().timestamp() + TPM_ENROLLMENT_LIFETIME.total_seconds()),
            "ek_cert": b64url(ek_der),
        }
        return {
            "credential": _b64(write_tpm2_tools_credential(blob, encrypted)),
            "enrollment_context": self._seal(context, _ENROLLMENT_INFO),
        }

    def _enroll_finish(self, body: Mapping[str, Any]) -> dict[str, Any]:
        import hmac

        from attestd.evidence.tpm import parse_public
        from attestd.verify.tpm_enroll import EnrollmentRejected, issue_aik_certificate

        context = self._unseal(body.get("enrollment_context"), _ENROLLMENT_INFO, "enrollment")
        secret = b64url_decode(body.get("secret"), "secret")
        try:
            expected = b64url_decode(context["secret_sha256"], "secret_sha256")
            ak = parse_public(b64url_decode(context["ak_public"], "ak_public"))
            ek_cert = x509.load_der_x509_certificate(b64url_decode(context["ek_cert"], "ek_cert"))
        except (KeyError, ValueError, EvidenceError) as exc:  # pragma: no cover - sealed by us
            raise InvalidRequest("the enrollment_context is not authentic") from exc
        # One answer per credential, right or wrong.
        self._use_once(
            f"tpm-enrollment:{context['secret_sha256']}",
            int(context["expires"]),
            "enrollment_context",
        )
        if not hmac.compare_digest(hashlib.sha256(secret).digest(), expected):
            raise EnrollmentRejected(
                "the secret is not the one the credential protects: it was not recovered by "
                "TPM2_ActivateCredential on the TPM holding this EK and AK"
            )
        ca_key, ca_cert = self.aik_ca()
        cert = issue_aik_certificate(ca_key, ca_cert, ak, ek_cert, self.clock())
        self.store.record_audit(
            "anonymous",
            "tpm.enroll",
            {
                "ek_cert_sha256": context.get("ek_cert_sha256"),
                "aik_cert_serial": f"{cert.serial_number:x}",
            },
            None,
            self.clock(),
        )
        return {
            "aik_cert": _b64(cert.public_bytes(Encoding.DER)),
            "ca_cert": _b64(ca_cert.public_bytes(Encoding.DER)),
        }

    def _seal(self, context: Mapping[str, Any], info: bytes) -> str:
        """``context`` sealed like a TPM service context (AES-256-GCM under a key derived with
        ``info``): base64url JSON ``{"ProtectionKeyName", "ProtectedContext"}``."""
        import os

        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        name, key = self._context_key(info)
        nonce = os.urandom(12)
        plain = json.dumps(context, separators=(",", ":")).encode()
        sealed = nonce + AESGCM(key).encrypt(nonce, plain, name.encode())
        return b64url(
            json.dumps(
                {"ProtectionKeyName": name, "ProtectedContext": b64url(sealed)},
                separators=(",", ":"),
            ).encode()
        )

    def _unseal(self, token: object, info: bytes, what: str) -> dict[str, Any]:
        """The context :meth:`_seal` sealed with ``info``, if authentic and unexpired."""
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        field = f"{what}_context"
        try:
            outer = parse_json(b64url_decode(token, field))
            sealed = b64url_decode(outer["ProtectedContext"], "ProtectedContext")
            name, key = self._context_key(info)
            if outer["ProtectionKeyName"] != name or len(sealed) < 13:
                raise InvalidRequest(f"the {field} was not issued by this instance")
            context = json.loads(AESGCM(key).decrypt(sealed[:12], sealed[12:], name.encode()))
        except (KeyError, TypeError, ValueError, InvalidTag) as exc:
            raise InvalidRequest(f"the {field} is not authentic") from exc
        if not isinstance(context, dict) or context.get("expires", 0) < self.clock().timestamp():
            raise InvalidRequest(f"the {field} has expired: start again with step 1")
        return context

    def _tpm_report(self, jws: object) -> str:
        """Step 2: verify the attReqV2 request, evaluate the Tpm policy, issue the report.

        Besides MAA's report claims the token carries a top-level ``pcrs`` claim, which MAA's
        TPM reports lack (MAA treats ``pcrs`` as read-only, so no policy can issue it, and a
        relying party could not see the measured PCRs): MAA's ``{"PCRs": [{"Digests": {"SHA1":
        hex, "SHA256": hex}, "Index": n}]}`` form (:func:`attestd.claims.tpm.pcrs_json`)
        restricted to the verified values, i.e. the PCRs in ``x-attestd-verified-pcrs`` and the
        banks whose replay of the event log equalled the signed quote. A PCR or bank the log does
        not vouch for (e.g. the SHA-256 bank under a legacy SHA-1 log) is left out; without an
        event log the claim is absent. Policy-issued claims go only under ``x-ms-policy``, as in
        MAA's TPM tokens."""
        import secrets
        from dataclasses import replace

        from attestd.policy import claims_from_json
        from attestd.verify.tpm_attestation import DEFAULT_REQUIRED_PCR_MASK, verify_attestation
        from attestd.verify.tpm_request import parse_request

        request = parse_request(jws)
        context = self.open_service_context(request.service_context)
        if context.get("challenge") != b64url(request.challenge):
            raise InvalidRequest(
                "att_data.challenge is not the challenge this service_context was issued with"
            )
        self._use_once(
            f"tpm-challenge:{context['challenge']}", int(context["expires"]), "service_context"
        )

        active = self.active_policy("Tpm")
        assert active.compiled is not None  # attest_tpm checked
        config_only = replace(
            active.compiled,
            rules=tuple(r for r in active.compiled.rules if r.section == "configurationrules"),
        )
        properties = evaluate(config_only, []).properties
        require = _property(properties, "require_valid_aik_cert", bool, True)
        mask = _property(properties, "required_pcr_mask", int, DEFAULT_REQUIRED_PCR_MASK)
        if not 0 <= mask <= 0xFFFFFF:
            raise PolicyEvaluationFailed(f"required_pcr_mask 0x{mask:X} is not a 24-bit mask")

        at = self.settings.verification_time or self.clock()
        verified = verify_attestation(
            request,
            roots=self._aik_roots(),
            require_valid_aik_cert=require,
            required_pcr_mask=mask,
            at=at,
        )
        evaluation = evaluate(active.compiled, claims_from_json(verified.claims))
        if not evaluation.authorized:
            why = "; ".join(t for t in evaluation.trace if t.startswith("not authorized"))
            raise PolicyEvaluationFailed(
                f"Policy Engine Exception: {evaluation.reason} Explanation: {why}"
            )
        # The report's own properties may be set in either section (maa-compat.md §3.3).
        minutes = _property(evaluation.properties, "report_validity_in_minutes", int, 24 * 60)
        omit_x5c = _property(evaluation.properties, "omit_x5c", bool, False)
        if not 1 <= minutes <= 365 * 24 * 60:
            raise PolicyEvaluationFailed(
                f"report_validity_in_minutes {minutes} is not between 1 and 525600 (one year)"
            )
        claims: dict[str, Any] = {
            "cnf": {"jwk": request.request_jwk},
            "ver": "1.0",
            "x-ms-policy": dict(evaluation.issued),
            "x-ms-policy-hash": active.hash,
            "x-ms-tpm-request-key": verified.claims["x-ms-tpm-request-key"],
            "x-ms-ver": "1.0",
        }
        if "x-ms-tpm-other-keys" in verified.claims:
            claims["x-ms-tpm-other-keys"] = verified.claims["x-ms-tpm-other-keys"]
        if verified.verified_pcrs is not None:
            claims["pcrs"] = verified.verified_pcrs
        if request.rp_data is not None:
            claims["rp_data"] = request.rp_data
        nonce = request.nonce if request.nonce is not None else request.rp_data
        if nonce is not None:
            claims["nonce"] = nonce
        if active.document is not None and active.document.signed:
            claims["x-ms-policy-signer"] = active.document.signer_jwk(form="attestation")
        return self._tpm_token(
            claims, timedelta(minutes=minutes), jti=secrets.token_hex(20), omit_x5c=omit_x5c
        )

    def _tpm_token(
        self, claims: Mapping[str, Any], lifetime: timedelta, *, jti: str, omit_x5c: bool = False
    ) -> str:
        """MAA's TPM report (maa-compat.md §2.1-§2.2): ``nbf = iat - 300``, a 40-hex ``jti``,
        the signing certificate in the header's ``x5c`` (or only its SHA-1 thumbprint, ``x5t``,
        when the policy sets the ``omit_x5c`` property), otherwise signed like every attestation
        token: :func:`issue_token`'s ``alg``/``jku``/``kid`` (the ``kid`` is the one ``/certs``
        lists, so relying parties find the key the usual way), sorted compact payload."""
        from attestd.token.issue import canonical_json

        now = self.clock()
        if not self._key.not_before <= now <= self._key.not_after:
            raise ConfigurationError(f"signing key {self._key.kid} is not valid now")
        iat = int(now.timestamp())
        body = {
            **claims,
            "exp": iat + int(lifetime.total_seconds()),
            "iat": iat,
            "iss": self.settings.instance_url,
            "jti": jti,
            "nbf": iat - int(TPM_NBF_SKEW.total_seconds()),
        }
        header: dict[str, Any] = {
            "alg": self._key.algorithm,
            "jku": f"{self.settings.instance_url}/certs",
            "kid": self._key.kid,
            "typ": "JWT",
        }
        der = self._key.certificate.public_bytes(Encoding.DER)
        if omit_x5c:
            header["x5t"] = b64url(hashlib.sha1(der).digest())
        else:
            header["x5c"] = [base64.b64encode(der).decode()]
        signing_input = (
            b64url(canonical_json(header)).encode() + b"." + b64url(canonical_json(body)).encode()
        )
        signature = b64url(_sign_with(self._key, signing_input)).encode()
        return (signing_input + b"." + signature).decode()

    def attest(self, attestation_type: str, body: Mapping[str, Any]) -> str:
        """``POST /attest/{SgxEnclave,OpenEnclave,TdxVm}``: returns the token (a JWS)."""
        name = self._type(attestation_type)
        if name == "Tpm":
            raise OperationNotAllowed("TPM messages go to attest_tpm: {'data': ...}")
        field = "report" if name == "OpenEnclave" else "quote"
        evidence = b64url_decode(body.get(field), field)
        if name == "OpenEnclave":
            quote = parse_openenclave_report(evidence).quote
        else:
            quote = parse_quote(evidence)
        want = TeeType.TDX if name == "TdxVm" else TeeType.SGX
        if quote.tee != want:
            raise InvalidRequest(f"'{field}' holds a {quote.tee.name} quote, not {name} evidence")
        at = self.settings.verification_time or self.clock()
        result = self.verifier.verify(quote, at=at)
        claims: dict[str, Any] = dcap_claims(result, evidence=evidence)
        if name != "TdxVm":
            claims["maa-attestationcollateral"] = claims["x-ms-sgx-collateral"]
        report_data = quote.body.report_data
        self._bind(claims, body, "runtimeData", report_data, tdx=name == "TdxVm")
        self._bind(claims, body, "initTimeData", None, tdx=name == "TdxVm")
        if self.settings.verification_time is not None:
            claims["x-attestd-verification-time"] = int(at.timestamp())
        nonce = body.get("nonce")
        if nonce is not None:
            if not isinstance(nonce, str):
                raise InvalidRequest("'nonce' must be a string")
            claims["nonce"] = nonce
        draft = body.get("draftPolicyForAttestation")
        doc: PolicyDocument | None
        digest: str | None
        if draft is not None:
            if not isinstance(draft, str):
                raise InvalidRequest("'draftPolicyForAttestation' must be policy text")
            compiled, digest, doc = compile_policy(draft), policy_hash(draft), None
        else:
            active = self.active_policy(name)
            if active.compiled is None:
                raise PolicyEvaluationFailed(
                    f"no attestation policy is set for {name}: set one before attesting"
                )
            compiled, digest, doc = active.compiled, active.hash, active.document
        incoming = [Claim(k, v) for k, v in claims.items() if isinstance(v, bool | int | str)]
        evaluation = evaluate(compiled, incoming)
        if not evaluation.authorized:
            why = "; ".join(t for t in evaluation.trace if t.startswith("not authorized"))
            raise PolicyEvaluationFailed(
                f"Policy Engine Exception: {evaluation.reason} Explanation: {why}"
            )
        claims.update(evaluation.issued)
        if evaluation.issued:
            claims["x-ms-policy"] = dict(evaluation.issued)
        claims["x-ms-policy-hash"] = digest
        claims["x-ms-ver"] = "1.0"
        if doc is not None and doc.signed and draft is None:
            claims["x-ms-policy-signer"] = doc.signer_jwk(form="attestation")
        if draft is not None:
            return unsigned_token(
                claims,
                issuer=self.settings.instance_url,
                now=self.clock(),
                lifetime=ATTESTATION_TOKEN_LIFETIME,
                jku=f"{self.settings.instance_url}/certs",
                kid=self._key.kid,
            )
        return self._token(claims, ATTESTATION_TOKEN_LIFETIME)

    def _bind(
        self,
        claims: dict[str, Any],
        body: Mapping[str, Any],
        field: str,
        report_data: bytes | None,
        *,
        tdx: bool,
    ) -> None:
        """Runtime data: SHA-256(data) must equal report_data[0:32] (maa-compat §0.7). Binary
        data becomes x-ms-sgx-ehd (and the 2021 aliases); JSON data becomes x-ms-runtime."""
        item = body.get(field)
        if item is None:
            return
        if not isinstance(item, Mapping):
            raise InvalidRequest(f"'{field}' must be an object with 'data' and 'dataType'")
        data = b64url_decode(item.get("data"), f"{field}.data")
        kind = item.get("dataType", "Binary")
        if kind not in ("Binary", "JSON"):
            raise InvalidRequest(f"'{field}.dataType' must be 'Binary' or 'JSON'")
        if report_data is None:
            raise InvalidRequest(f"'{field}' cannot be bound to this evidence (no CONFIGID)")
        if hashlib.sha256(data).digest() != report_data[:32]:
            raise EvidenceError(
                f"'{field}' does not match the evidence: SHA-256(data) "
                f"{hashlib.sha256(data).hexdigest()} != report_data[0:32] {report_data[:32].hex()}"
            )
        name = "x-ms-runtime" if field == "runtimeData" else "x-ms-inittime"
        if kind == "JSON":
            try:
                claims[name] = parse_json(data.rstrip(b"\x00").decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                raise InvalidRequest(f"'{field}' is dataType JSON but not JSON: {exc}") from exc
            return
        if field == "runtimeData" and not tdx:
            ehd = b64url(data)
            claims["x-ms-sgx-ehd"] = ehd
            claims["maa-ehd"] = ehd
            claims["aas-ehd"] = ehd


_T = TypeVar("_T", bool, int)


def _property(properties: Mapping[str, Any], name: str, kind: type[_T], default: _T) -> _T:
    """A configuration-rule property of the Tpm policy (maa-compat.md §3.4), typed."""
    value = properties.get(name, default)
    if type(value) is not kind:
        raise PolicyEvaluationFailed(
            f"the policy property {name} must be {'a Boolean' if kind is bool else 'an integer'},"
            f" not {value!r}"
        )
    return value


def _sign_with(key: SigningKey, data: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    private_key = key.private_key
    if isinstance(private_key, rsa.RSAPrivateKey):
        return private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    assert isinstance(private_key, ec.EllipticCurvePrivateKey)
    r, s = decode_dss_signature(private_key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _der_cert(value: object, field: str) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(b64url_decode(value, field))
    except ValueError as exc:
        raise InvalidRequest(f"'{field}' is not a DER X.509 certificate: {exc}") from exc


def _tpm_public(value: object, field: str) -> Any:
    """A ``TPM2B_PUBLIC`` (or a bare ``TPMT_PUBLIC``) sent in base64."""
    from attestd.errors import MalformedEvidence
    from attestd.evidence.tpm import parse_public, parse_tpm2b_public

    raw = b64url_decode(value, field)
    try:
        return parse_tpm2b_public(raw)
    except MalformedEvidence as first:
        try:
            return parse_public(raw)
        except MalformedEvidence:
            raise InvalidRequest(f"'{field}' is not a TPM2B_PUBLIC: {first}") from first


def _load_roots(paths: tuple[str, ...], setting: str) -> list[x509.Certificate]:
    roots: list[x509.Certificate] = []
    for path in paths:
        try:
            with open(path, "rb") as f:
                roots.extend(x509.load_pem_x509_certificates(f.read()))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"{setting} {path}: {exc}") from exc
    return roots


def _load_pem_cert(path: str) -> x509.Certificate:
    try:
        with open(path, "rb") as f:
            return x509.load_pem_x509_certificate(f.read())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"isolated signer {path}: {exc}") from exc


def _collateral_source(settings: Settings, store: SQLiteStore) -> CollateralSource:
    """Bundle folders when configured; otherwise Intel PCS (or a PCCS), its responses kept in
    the store so that a restarted or offline instance serves what it fetched until nextUpdate."""
    if settings.collateral_bundle:
        from pathlib import Path

        p = Path(settings.collateral_bundle)
        if (p / "tcb_info.json").is_file():
            return BundleDirectory(p)
        return BundleStore(p)
    from attestd.collateral.pcs import DEFAULT_BASE_URL, PcsClient

    return PcsClient(base_url=settings.pcs_url or DEFAULT_BASE_URL, persistent_cache=store)


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)
