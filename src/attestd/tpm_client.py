"""Client side of MAA's TPM protocol (maa-compat.md §1.4; the request format is documented in
:mod:`attestd.verify.tpm_request`): ``attestd attest tpm``.

:func:`attest_tpm` runs the three exchanges against ``POST /attest/Tpm``:

1. init ``{"type": "aikcert"}`` → challenge and service_context;
2. a fresh RSA-2048 request key; the quote of the sha1 and sha256 banks over the PCR selection
   with qualifyingData = SHA-256(exact ``jwk`` text of the signed payload || 0x00 || challenge);
   the TCG event log; all in an ``attReqV2`` JWS (RS256) signed with the request key;
3. the report JWT, returned.

The TPM is behind the small :class:`TpmDevice` protocol. :class:`PytssTpm` implements it with
tpm2-tss's ESAPI through tpm2-pytss (the optional extra ``attestd[tpm]``): it reads the EK
certificate from NV, creates the TCG-template EK, and creates (under the EK) and persists a
restricted RSA-2048/RSASSA-SHA256 AK at ``ak_handle`` on first use, or loads it from there.

When no AIK certificate is given, :func:`enroll_aik` gets one from the service's AIK CA
(``POST /enroll/Tpm``, an attestd extension documented in :mod:`attestd.verify.tpm_enroll`):

1. it sends the EK certificate (NV 0x1c00002, with any ``ek_chain`` intermediates), the EK public
   area and the AK's TPM2B_PUBLIC, and gets a tpm2-tools credential file
   (:func:`attestd.verify.tpm_credential.parse_tpm2_tools_credential`) and an
   ``enrollment_context``;
2. the TPM releases the credential's secret with ``TPM2_ActivateCredential`` (activateHandle the
   AK, keyHandle the EK, authorized by a PolicySecret(TPM_RH_ENDORSEMENT) policy session) and
   the client sends it back for ``{"aik_cert", "ca_cert"}``: the chain to attest with.

A service without the endpoint (404/405) gets :class:`EnrollmentRequired`: pass ``--aik-cert``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from attestd._json import parse_json
from attestd.client import AttestdClient, ServiceError
from attestd.errors import AttestdError, EvidenceError

__all__ = [
    "DEFAULT_AK_HANDLE",
    "DEFAULT_EVENTLOG",
    "EnrollmentRequired",
    "PytssTpm",
    "Quote",
    "TpmClientError",
    "TpmDevice",
    "attest_tpm",
    "build_request",
    "enroll_aik",
    "parse_pcr_list",
]

DEFAULT_EVENTLOG = "/sys/kernel/security/tpm0/binary_bios_measurements"
DEFAULT_AK_HANDLE = 0x81010002
EK_CERT_INDEX = 0x01C00002  # RSA-2048 EK certificate (TCG EK Credential Profile)
BANKS = ("sha1", "sha256")
_ALG_IDS = {"sha1": 0x0004, "sha256": 0x000B}


class TpmClientError(AttestdError):
    code = "TpmClientError"


class EnrollmentRequired(TpmClientError):
    code = "EnrollmentRequired"


@dataclass(frozen=True)
class Quote:
    """A TPM2_Quote: ``attest`` is the TPMS_ATTEST, ``signature`` the TPMT_SIGNATURE, ``pcrs``
    the values of the quoted PCRs ({bank name: {index: digest}}) read right after it."""

    attest: bytes
    signature: bytes
    pcrs: dict[str, dict[int, bytes]]


class TpmDevice(Protocol):
    """What the client needs from a TPM (a tpm2-pytss or a tpm2-tools implementation)."""

    def ek_certificate(self) -> bytes | None:
        """The DER EK certificate from NV, or None when the TPM has none."""
        ...

    def ek_public(self) -> bytes:
        """The TPM2B_PUBLIC of the (TCG default template) EK the certificate is for."""
        ...

    def ak_public(self) -> bytes:
        """The AK's TPM2B_PUBLIC (creating and persisting the AK when there is none)."""
        ...

    def activate_credential(self, credential_blob: bytes, encrypted_secret: bytes) -> bytes:
        """TPM2_ActivateCredential for the AK under the EK: ``credential_blob`` the
        TPM2B_ID_OBJECT, ``encrypted_secret`` the TPM2B_ENCRYPTED_SECRET (each with its size
        field); returns the recovered secret."""
        ...

    def quote(self, pcrs: Sequence[int], qualifying_data: bytes) -> Quote:
        """Quote the sha1 and sha256 banks over ``pcrs`` with ``qualifying_data``."""
        ...

    def close(self) -> None: ...


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parse_pcr_list(text: str) -> list[int]:
    """``0-23`` or ``0,1,2,7`` or ``0-7,14``."""
    out: set[int] = set()
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            out.update(range(int(lo), int(hi or lo) + 1))
    except ValueError as exc:
        raise TpmClientError(f"--pcrs {text!r}: expected e.g. 0-23 or 0,1,7") from exc
    if not out or min(out) < 0 or max(out) > 23:
        raise TpmClientError(f"--pcrs {text!r}: PCR indexes are 0 to 23")
    return sorted(out)


# --- tpm2-pytss ----------------------------------------------------------------------------------


class PytssTpm:
    """A :class:`TpmDevice` over tpm2-pytss. ``tcti``: a tpm2-tools style TCTI string
    (``device:/dev/tpmrm0``, ``swtpm:host=127.0.0.1,port=2321``); None: the tss2 default."""

    def __init__(self, tcti: str | None = None, *, ak_handle: int = DEFAULT_AK_HANDLE) -> None:
        try:
            from tpm2_pytss import ESAPI
        except ImportError as exc:
            raise TpmClientError(
                "tpm2-pytss is not installed: pip install 'attestd[tpm]' "
                "(it needs the tpm2-tss libraries, e.g. apt-get install libtss2-dev)"
            ) from exc
        try:
            self._esys: Any = ESAPI(tcti)
        except Exception as exc:
            raise TpmClientError(f"cannot open the TPM (tcti {tcti!r}): {exc}") from exc
        self._ak_handle = ak_handle
        self._ak: Any = None

    def close(self) -> None:
        self._esys.close()

    def __enter__(self) -> PytssTpm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ek_certificate(self) -> bytes | None:
        from tpm2_pytss.TSS2_Exception import TSS2_Exception
        from tpm2_pytss.utils import NVReadEK

        try:
            cert: bytes = NVReadEK(self._esys)(EK_CERT_INDEX)
        except TSS2_Exception:
            return None
        return cert

    def _policy_session(self) -> Any:
        from tpm2_pytss.constants import ESYS_TR, TPM2_ALG, TPM2_SE
        from tpm2_pytss.types import TPMT_SYM_DEF

        session = self._esys.start_auth_session(
            tpm_key=ESYS_TR.NONE,
            bind=ESYS_TR.NONE,
            session_type=TPM2_SE.POLICY,
            symmetric=TPMT_SYM_DEF(algorithm=TPM2_ALG.NULL),
            auth_hash=TPM2_ALG.SHA256,
        )
        self._esys.policy_secret(ESYS_TR.ENDORSEMENT, session, b"", b"", b"", 0)
        return session

    def _create_ek(self) -> tuple[Any, Any]:
        """The TCG-template RSA-2048 EK as a transient object: (handle, TPM2B_PUBLIC)."""
        from tpm2_pytss.constants import ESYS_TR
        from tpm2_pytss.utils import NVReadEK, create_ek_template

        _, ek_template = create_ek_template("EK-RSA2048", NVReadEK(self._esys))
        handle, public = self._esys.create_primary(None, ek_template, ESYS_TR.ENDORSEMENT)[:2]
        return handle, public

    def ek_public(self) -> bytes:
        ek, public = self._create_ek()
        self._esys.flush_context(ek)
        return bytes(public.marshal())

    def activate_credential(self, credential_blob: bytes, encrypted_secret: bytes) -> bytes:
        from tpm2_pytss.constants import ESYS_TR
        from tpm2_pytss.TSS2_Exception import TSS2_Exception
        from tpm2_pytss.types import TPM2B_ENCRYPTED_SECRET, TPM2B_ID_OBJECT

        blob = TPM2B_ID_OBJECT.unmarshal(credential_blob)[0]
        secret = TPM2B_ENCRYPTED_SECRET.unmarshal(encrypted_secret)[0]
        ak = self._load_ak()
        ek = self._create_ek()[0]
        try:
            session = self._policy_session()
            try:
                digest = self._esys.activate_credential(
                    ak, ek, blob, secret, session1=ESYS_TR.PASSWORD, session2=session
                )
            finally:
                self._esys.flush_context(session)
        except TSS2_Exception as exc:
            raise TpmClientError(f"TPM2_ActivateCredential failed: {exc}") from exc
        finally:
            self._esys.flush_context(ek)
        return bytes(digest)

    def _load_ak(self) -> Any:
        if self._ak is not None:
            return self._ak
        from tpm2_pytss.constants import ESYS_TR
        from tpm2_pytss.TSS2_Exception import TSS2_Exception
        from tpm2_pytss.types import TPM2B_PUBLIC

        try:
            self._ak = self._esys.tr_from_tpmpublic(self._ak_handle)
            return self._ak
        except TSS2_Exception:
            pass  # no AK yet: create one under the EK and persist it
        ek = self._create_ek()[0]
        try:
            template = TPM2B_PUBLIC.parse(
                "rsa2048:rsassa-sha256:null",
                objectAttributes="fixedtpm|fixedparent|sensitivedataorigin|userwithauth"
                "|restricted|sign",
            )
            session = self._policy_session()
            private, public = self._esys.create(ek, None, template, session1=session)[:2]
            self._esys.flush_context(session)
            session = self._policy_session()
            transient = self._esys.load(ek, private, public, session1=session)
            self._esys.flush_context(session)
            self._ak = self._esys.evict_control(ESYS_TR.OWNER, transient, self._ak_handle)
            self._esys.flush_context(transient)
        finally:
            self._esys.flush_context(ek)
        return self._ak

    def ak_public(self) -> bytes:
        public = self._esys.read_public(self._load_ak())[0]
        return bytes(public.marshal())

    def quote(self, pcrs: Sequence[int], qualifying_data: bytes) -> Quote:
        from tpm2_pytss.constants import TPM2_ALG
        from tpm2_pytss.types import TPMT_SIG_SCHEME

        ak = self._load_ak()
        selection = "+".join(f"{bank}:{','.join(map(str, pcrs))}" for bank in BANKS)
        scheme = TPMT_SIG_SCHEME(scheme=TPM2_ALG.RSASSA)
        scheme.details.any.hashAlg = TPM2_ALG.SHA256
        attest, signature = self._esys.quote(ak, selection, qualifying_data, scheme)
        values: dict[str, dict[int, bytes]] = {bank: {} for bank in BANKS}
        for bank in BANKS:
            for index in pcrs:
                digests = self._esys.pcr_read(f"{bank}:{index}")[2]
                values[bank][index] = bytes(digests[0])
        return Quote(bytes(attest), bytes(signature.marshal()), values)


# --- the protocol --------------------------------------------------------------------------------


def _jwk(key: rsa.RSAPrivateKey) -> dict[str, str]:
    n = key.public_key().public_numbers()
    return {
        "kty": "RSA",
        "n": b64u(n.n.to_bytes((n.n.bit_length() + 7) // 8, "big")),
        "e": b64u(n.e.to_bytes((n.e.bit_length() + 7) // 8, "big")),
    }


def build_request(
    tpm: TpmDevice,
    challenge: str,
    service_context: str,
    *,
    log: bytes | None,
    aik_chain: Sequence[x509.Certificate],
    pcrs: Sequence[int],
    key: rsa.RSAPrivateKey | None = None,
    rp_data: str | None = None,
) -> str:
    """The compact ``attReqV2`` JWS of step 2. The quote's qualifying data hashes the ``jwk``
    text exactly as it appears in the signed payload (serialized once, embedded verbatim)."""
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk_text = json.dumps(_jwk(key), separators=(",", ":"))
    qualifying = hashlib.sha256(jwk_text.encode() + b"\x00" + _unb64u(challenge)).digest()
    q = tpm.quote(pcrs, qualifying)
    current: dict[str, Any] = {
        "aik_pub": b64u(tpm.ak_public()),
        "pcrs": [
            {
                "algorithm": _ALG_IDS[bank],
                "values": [{"index": i, "digest": b64u(d)} for i, d in sorted(values.items())],
            }
            for bank, values in q.pcrs.items()
        ],
        "quote": b64u(q.attest),
        "signature": b64u(q.signature),
    }
    if log is not None:
        current["logs"] = [{"type": "TCG", "log": b64u(log)}]
    if aik_chain:
        current["aik_cert"] = [b64u(c.public_bytes(serialization.Encoding.DER)) for c in aik_chain]
    att_data: dict[str, Any] = {
        "challenge": challenge,
        "service_context": service_context,
        "request_key": {"jwk": "@JWK@", "info": {"tpm_quote": {"hash_alg": "sha-256"}}},
        "tpm_att_data": {"current_attestation": current},
    }
    if rp_data is not None:
        att_data["rp_data"] = rp_data
    body = json.dumps({"att_type": "basic", "att_data": att_data}, separators=(",", ":"))
    body = body.replace('"@JWK@"', jwk_text, 1)
    header = json.dumps({"alg": "RS256", "typ": "attReqV2"}, separators=(",", ":"))
    signing_input = b64u(header.encode()) + "." + b64u(body.encode())
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + b64u(signature)


def _exchange(client: AttestdClient, payload: dict[str, Any]) -> dict[str, Any]:
    data = b64u(json.dumps({"payload": payload}).encode())
    reply = client._call("POST", "/attest/Tpm", json={"data": data})
    try:
        message = parse_json(_unb64u(reply["data"]))
        result: dict[str, Any] = message["payload"]
    except (KeyError, TypeError, ValueError) as exc:
        raise TpmClientError(f"unexpected reply from /attest/Tpm: {reply!r:.200}") from exc
    return result


def _unb64(value: object, field: str) -> bytes:
    """A binary value of an /enroll/Tpm answer (standard base64; base64url accepted)."""
    if not isinstance(value, str):
        raise TpmClientError(f"the /enroll/Tpm answer has no {field!r}")
    try:
        return base64.b64decode(
            value.replace("-", "+").replace("_", "/") + "=" * (-len(value) % 4), validate=True
        )
    except ValueError as exc:
        raise TpmClientError(f"the /enroll/Tpm answer's {field!r} is not base64") from exc


def _enroll_call(client: AttestdClient, body: dict[str, Any]) -> dict[str, Any]:
    try:
        reply = client._call("POST", "/enroll/Tpm", json=body)
    except ServiceError as exc:
        if exc.status in (404, 405):
            raise EnrollmentRequired(
                "no AIK certificate: pass --aik-cert PEM (this service has no /enroll/Tpm)"
            ) from exc
        if exc.status is not None:
            raise TpmClientError(f"AIK enrollment refused by the service: {exc.message}") from exc
        raise
    if not isinstance(reply, dict):
        raise TpmClientError(f"unexpected reply from /enroll/Tpm: {reply!r:.200}")
    return reply


def enroll_aik(
    client: AttestdClient,
    tpm: TpmDevice,
    *,
    ek_chain: Sequence[x509.Certificate] = (),
) -> list[x509.Certificate]:
    """Get an AIK certificate for the TPM's AK from the service (``POST /enroll/Tpm``, the two
    steps in the module docstring); ``ek_chain``: intermediates between the EK certificate and
    the service's EK roots, the leaf's issuer first. Returns ``[AIK certificate, AIK CA]``.

    Raises:
        EnrollmentRequired: no EK certificate in NV, or the service has no /enroll/Tpm.
        TpmClientError: the service refused a step (e.g. the EK does not chain to its roots),
            an answer that does not parse, or the TPM refused the credential.
        ServiceError: the service cannot be reached.
    """
    from attestd.evidence.tpm import parse_tpm2b_public
    from attestd.verify.tpm_credential import parse_tpm2_tools_credential

    ek = tpm.ek_certificate()
    if ek is None:
        raise EnrollmentRequired("the TPM has no EK certificate in NV 0x1c00002: cannot enroll")
    ak_public = tpm.ak_public()
    step1: dict[str, Any] = {
        "ek_cert": b64u(ek),
        "ak_public": b64u(ak_public),
        "ek_public": b64u(tpm.ek_public()),
    }
    if ek_chain:
        step1["ek_chain"] = [b64u(c.public_bytes(serialization.Encoding.DER)) for c in ek_chain]
    first = _enroll_call(client, step1)
    credential = _unb64(first.get("credential"), "credential")
    context = first.get("enrollment_context")
    if not isinstance(context, str):
        raise TpmClientError("the /enroll/Tpm answer has no 'enrollment_context'")
    try:
        blob, encrypted_secret = parse_tpm2_tools_credential(credential)
    except EvidenceError as exc:
        raise TpmClientError(f"the /enroll/Tpm credential does not parse: {exc}") from exc
    secret = tpm.activate_credential(blob, encrypted_secret)
    second = _enroll_call(client, {"enrollment_context": context, "secret": b64u(secret)})
    try:
        aik = x509.load_der_x509_certificate(_unb64(second.get("aik_cert"), "aik_cert"))
        ca = x509.load_der_x509_certificate(_unb64(second.get("ca_cert"), "ca_cert"))
    except ValueError as exc:
        raise TpmClientError(f"the /enroll/Tpm answer has a bad certificate: {exc}") from exc
    der = serialization.Encoding.DER
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    ak_key = parse_tpm2b_public(ak_public).public_key()
    if aik.public_key().public_bytes(der, spki) != ak_key.public_bytes(der, spki):
        raise TpmClientError("the AIK certificate from /enroll/Tpm is not for this TPM's AK")
    return [aik, ca]


def attest_tpm(
    client: AttestdClient,
    tpm: TpmDevice,
    *,
    log: bytes | None,
    aik_chain: Sequence[x509.Certificate] = (),
    ek_chain: Sequence[x509.Certificate] = (),
    pcrs: Sequence[int] = tuple(range(24)),
    rp_data: str | None = None,
) -> str:
    """Run the protocol; return the report JWT. Without ``aik_chain`` the AK is enrolled first
    (:func:`enroll_aik`, with ``ek_chain``)."""
    if not aik_chain:
        aik_chain = enroll_aik(client, tpm, ek_chain=ek_chain)
    init = _exchange(client, {"type": "aikcert"})
    try:
        challenge, context = str(init["challenge"]), str(init["service_context"])
    except KeyError as exc:
        raise TpmClientError(f"the init reply has no {exc}") from exc
    request = build_request(
        tpm, challenge, context, log=log, aik_chain=aik_chain, pcrs=pcrs, rp_data=rp_data
    )
    report = _exchange(client, {"request": request})
    if "report" not in report:
        raise TpmClientError("the reply to the request has no report")
    return str(report["report"])
