"""MAA's TPM protocol (maa-compat.md §1.4) end to end against a REAL swtpm: init through the app,
an attReqV2 request built here from a real tpm2-tools quote of PCRs into which a real TCG log
(go-eventlog ``cos-85-amd-sev.bin``: StartupLocality 0, Secure Boot on) was extended, and the
report JWT checked against /certs and MAA's TPM token shape (§2.2)."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from attestd.api.app import create_app
from attestd.config import Settings
from attestd.evidence.eventlog import EventType, parse_event_log
from attestd.evidence.tpm import parse_pcr_blob, parse_tpm2b_public
from attestd.policy.document import unsigned_policy
from attestd.service import AttestationService
from attestd.store.sqlite import SQLiteStore
from conftest import VECTORS
from fakes.swtpm import Swtpm, start_swtpm

pytestmark = pytest.mark.timeout(120)

URL = "https://attestd.test"
LOG = (VECTORS / "tpm/go-eventlog/tpm/cos-85-amd-sev.bin").read_bytes()
SHA1, SHA256 = 0x0004, 0x000B
EIGHT_PCRS = "sha256:0,1,2,3,4,5,6,7"
ALL_PCRS = "sha256:" + ",".join(map(str, range(24)))
POLICY = """version=1.1;
configurationrules{ %s };
authorizationrules{ => permit(); };
issuancerules{
  c:[type=="secureBootEnabled"] => issue(type="secureBootEnabled", value=c.value);
  c:[type=="aikValidated"] => issue(type="aikValidated", value=c.value);
  c:[type=="tpmVersion"] => issue(type="tpmVersion", value=c.value);
};"""


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def log_says_secure_boot(raw: bytes) -> bool:
    """Independently of attestd's claims code: the SecureBoot variable measured in PCR 7."""
    for e in parse_event_log(raw).events:
        if e.pcr != 7 or e.event_type != EventType.EV_EFI_VARIABLE_DRIVER_CONFIG:
            continue
        name_len, data_len = struct.unpack_from("<QQ", e.data, 16)
        name = e.data[32 : 32 + 2 * name_len].decode("utf-16-le")
        if name == "SecureBoot":
            return e.data[32 + 2 * name_len :][:data_len] == b"\x01"
    return False


# --- PKI for the AIK -----------------------------------------------------------------------------


def _cert(
    subject: str,
    key: Any,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None = None,
    *,
    ca: bool,
) -> x509.Certificate:
    signer_name, signer_key = issuer if issuer else (subject, key)
    now = datetime.now(UTC)
    public = key.public_key() if hasattr(key, "private_bytes") else key
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, signer_name)]))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(signer_key, hashes.SHA256())
    )


def _ca(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    return key, _cert(name, key, ca=True)


# --- the TPM -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Machine:
    tpm: Swtpm
    work: Path
    ak: rsa.RSAPublicKey
    ak_cert: x509.Certificate
    rogue_ak_cert: x509.Certificate  # the same AK, certified by a CA nobody configured
    root_pem: Path


def extend(tpm: Swtpm, log: bytes, work: Path) -> None:
    """The log into the PCRs: every measured event's SHA-1 and SHA-256 digests, in order."""
    specs = [
        f"{e.pcr}:sha1={e.digests[SHA1].hex()},sha256={e.digests[SHA256].hex()}"
        for e in parse_event_log(log).events
        if e.event_type != EventType.EV_NO_ACTION
    ]
    for i in range(0, len(specs), 16):
        tpm.run("tpm2_pcrextend", *specs[i : i + 16], cwd=work)


def provision(tpm: Swtpm, work: Path) -> Machine:
    """An EK, an AK (``ak.ctx`` in ``work``) and LOG measured; AK certificates from a fresh CA."""
    tpm.run("tpm2_createek", "-c", "ek.ctx", "-G", "rsa", "-u", "ek.pub", cwd=work)
    tpm.run(
        "tpm2_createak", "-C", "ek.ctx", "-c", "ak.ctx", "-G", "rsa", "-g", "sha256",
        "-s", "rsassa", "-u", "ak.pub", "-n", "ak.name", cwd=work,
    )  # fmt: skip
    ak = parse_tpm2b_public((work / "ak.pub").read_bytes()).public_key()
    assert isinstance(ak, rsa.RSAPublicKey)
    extend(tpm, LOG, work)
    ca_key, ca = _ca("attestd test AIK CA")
    rogue_key, _ = _ca("someone else's CA")
    root_pem = work / "aik-root.pem"
    root_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return Machine(
        tpm,
        work,
        ak,
        _cert("AIK", ak, ("attestd test AIK CA", ca_key), ca=False),
        _cert("AIK", ak, ("someone else's CA", rogue_key), ca=False),
        root_pem,
    )


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Machine]:
    with start_swtpm(tmp_path_factory.mktemp("tpm")) as tpm:
        yield provision(tpm, tmp_path_factory.mktemp("work"))


@dataclass
class Api:
    client: TestClient
    service: AttestationService
    now: list[datetime]

    def set_policy(self, config: str = "") -> None:
        self.service.set_policy("Tpm", unsigned_policy(POLICY % config), actor="test")

    def send(self, payload: dict[str, Any]) -> Any:
        data = b64u(json.dumps({"payload": payload}).encode())
        return self.client.post("/attest/Tpm?api-version=2022-08-01", json={"data": data})

    def init(self) -> tuple[str, str]:
        r = self.send({"type": "aikcert"})
        assert r.status_code == 200, r.text
        reply = json.loads(unb64u(r.json()["data"]))["payload"]
        return reply["challenge"], reply["service_context"]


@pytest.fixture
def api(tmp_path: Path, machine: Machine) -> Iterator[Api]:
    settings = Settings(
        instance_url=URL,
        database=str(tmp_path / "attestd.sqlite3"),
        tpm_aik_roots=(str(machine.root_pem),),
    )
    now = [datetime.now(UTC)]
    service = AttestationService(
        settings, store=SQLiteStore(settings.database), clock=lambda: now[0]
    )
    with TestClient(create_app(service)) as client:
        yield Api(client, service, now)
    service.store.close()


# --- the client side -----------------------------------------------------------------------------

REQUEST_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk_of(key: rsa.RSAPrivateKey) -> dict[str, str]:
    n = key.public_key().public_numbers()
    return {
        "kty": "RSA",
        "n": b64u(n.n.to_bytes(256, "big")),
        "e": b64u(n.e.to_bytes(3, "big")),
    }


def quote(
    m: Machine, qualifying: bytes, selection: str = ALL_PCRS, *, ak: str = "ak.ctx"
) -> dict[str, Any]:
    """``tpm2_quote`` with ``qualifying`` as extraData, as ``current_attestation`` fields."""
    m.tpm.run(
        "tpm2_quote", "-c", ak, "-l", selection, "-q", qualifying.hex(), "-m", "quote.msg",
        "-s", "quote.sig", "-o", "quote.pcrs", "-g", "sha256", cwd=m.work,
    )  # fmt: skip
    blob = parse_pcr_blob((m.work / "quote.pcrs").read_bytes())
    return {
        "pcrs": [
            {
                "algorithm": alg,
                "values": [
                    {"index": i, "digest": base64.b64encode(d).decode()} for i, d in bank.items()
                ],
            }
            for alg, bank in blob.values.items()
        ],
        # standard base64 here, base64url elsewhere: both are accepted
        "quote": base64.b64encode((m.work / "quote.msg").read_bytes()).decode(),
        "signature": b64u((m.work / "quote.sig").read_bytes()),
    }


def ak_jwk(m: Machine) -> dict[str, str]:
    n = m.ak.public_numbers()
    return {"kty": "RSA", "n": b64u(n.n.to_bytes(256, "big")), "e": b64u(n.e.to_bytes(3, "big"))}


def request(
    m: Machine,
    challenge: str,
    context: str,
    *,
    key: rsa.RSAPrivateKey = REQUEST_KEY,
    bind_to: bytes | None = None,
    selection: str = ALL_PCRS,
    log: bytes = LOG,
    aik_cert: x509.Certificate | None = None,
    tamper: Callable[[dict[str, Any]], None] | None = None,
    typ: str = "attReqV2",
    ak: str = "ak.ctx",
    tpm_key: TpmKey | None = None,
) -> dict[str, str]:
    """Step 2 as a client builds it. The qualifying data hashes the ``jwk`` text exactly as it
    appears in the signed payload (``json.dumps`` with its default ``", "``/``": "``). With
    ``tpm_key`` the request key is that TPM-resident key, bound by ``tpm_certify`` (the quote
    then carries the challenge itself) and signing the JWS in the TPM."""
    jwk = jwk_of(key) if tpm_key is None else tpm_key.jwk
    jwk_text = (bind_to if bind_to is not None else json.dumps(jwk).encode()) + b"\x00"
    qualifying = hashlib.sha256(jwk_text + unb64u(challenge)).digest()
    info: dict[str, Any] = {"tpm_quote": {"hash_alg": "sha-256"}}
    if tpm_key is not None:
        qualifying, info = unb64u(challenge), {"tpm_certify": tpm_key.tpm_certify}
    current = {
        "logs": [{"type": "TCG", "log": b64u(log)}],
        "aik_pub": ak_jwk(m),
        **quote(m, qualifying, selection, ak=ak),
    }
    if aik_cert is not None:
        current["aik_cert"] = base64.b64encode(aik_cert.public_bytes(serialization.Encoding.DER))
        current["aik_cert"] = current["aik_cert"].decode()
    payload = {
        "att_type": "basic",
        "att_data": {
            "rp_id": "https://relying-party.test",
            "rp_data": "UkVQTEFDRSBXSVRIIFJQIE5PTkNF",
            "challenge": challenge,
            "service_context": context,
            "request_key": {"jwk": jwk, "info": info},
            "tpm_att_data": {"current_attestation": current},
        },
    }
    if tamper is not None:
        tamper(payload)
    body = json.dumps(payload)
    if tamper is None:  # the bytes the qualifying data covers are in the signed payload
        assert json.dumps(jwk) in body
    signing_input = (
        b64u(json.dumps({"alg": "RS256", "typ": typ}).encode()) + "." + b64u(body.encode())
    )
    if tpm_key is None:
        signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    else:
        signature = tpm_key.sign(m, signing_input.encode())
    return {"request": signing_input + "." + b64u(signature)}


@dataclass(frozen=True)
class TpmKey:
    """An RSA signing key in the TPM (``{name}.ctx`` in the machine's work folder), certified by
    the AK with ``TPM2_Certify``."""

    name: str
    jwk: dict[str, str]
    tpm_certify: dict[str, str]  # {public, certification, signature}, base64

    def sign(self, m: Machine, data: bytes) -> bytes:
        (m.work / "to-sign.bin").write_bytes(data)
        m.tpm.run(
            "tpm2_sign", "-c", f"{self.name}.ctx", "-g", "sha256", "-s", "rsassa", "-f", "plain",
            "-o", "signed.bin", "to-sign.bin", cwd=m.work,
        )  # fmt: skip
        return (m.work / "signed.bin").read_bytes()


def tpm_key(
    m: Machine, name: str, *, certify_with: str = "ak.ctx", attributes: str | None = None
) -> TpmKey:
    """A fresh TPM key under an owner-hierarchy primary, certified by ``certify_with``
    (``attributes``: tpm2_create ``-a``, default tpm2-tools' fixedtpm|fixedparent|...)."""
    w = m.work
    m.tpm.run("tpm2_createprimary", "-C", "o", "-c", "owner.ctx", cwd=w)
    extra = ["-a", attributes] if attributes else []
    m.tpm.run(
        "tpm2_create", "-C", "owner.ctx", "-G", "rsa2048:rsassa-sha256", "-u", f"{name}.pub",
        "-r", f"{name}.priv", *extra, cwd=w,
    )  # fmt: skip
    m.tpm.run(
        "tpm2_load", "-C", "owner.ctx", "-u", f"{name}.pub", "-r", f"{name}.priv",
        "-c", f"{name}.ctx", cwd=w,
    )  # fmt: skip
    m.tpm.run(
        "tpm2_certify", "-c", f"{name}.ctx", "-C", certify_with, "-g", "sha256",
        "-o", f"{name}.attest", "-s", f"{name}.sig", cwd=w,
    )  # fmt: skip
    public = parse_tpm2b_public((w / f"{name}.pub").read_bytes())
    key = public.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    n = key.public_numbers()
    return TpmKey(
        name,
        {"kty": "RSA", "n": b64u(n.n.to_bytes(256, "big")), "e": b64u(n.e.to_bytes(3, "big"))},
        {
            "public": b64u((w / f"{name}.pub").read_bytes()),
            "certification": b64u((w / f"{name}.attest").read_bytes()),
            "signature": b64u((w / f"{name}.sig").read_bytes()),
        },
    )


def report_claims(api: Api, response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    message = json.loads(unb64u(response.json()["data"]))
    assert set(message) == {"payload"} and set(message["payload"]) == {"report"}
    token = message["payload"]["report"]
    header = jwt.get_unverified_header(token)
    key = jwt.PyJWKSet.from_dict(api.client.get("/certs").json())[header["kid"]]
    claims: dict[str, Any] = jwt.decode(token, key=key, algorithms=[header["alg"]], issuer=URL)
    return claims


def error_of(response: Any) -> str:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] in ("InvalidParameter", "PolicyEvaluationError", "InvalidOperation")
    return str(error["message"])


# --- the tests -----------------------------------------------------------------------------------


def test_attestation_with_a_real_tpm_gives_maa_shaped_report(api: Api, machine: Machine) -> None:
    api.set_policy()
    challenge, context = api.init()
    r = api.send(request(machine, challenge, context, aik_cert=machine.ak_cert))
    claims = report_claims(api, r)
    assert set(claims) == {
        "cnf", "exp", "iat", "iss", "jti", "nbf", "nonce", "rp_data", "ver", "pcrs",
        "x-ms-policy", "x-ms-policy-hash", "x-ms-tpm-request-key", "x-ms-ver",
    }  # fmt: skip
    # attestd's own claim: the log-verified PCRs (the quoted sha256 bank), MAA's pcrs form.
    assert [p["Index"] for p in claims["pcrs"]["PCRs"]] == list(range(10))
    assert all(set(p["Digests"]) == {"SHA256"} for p in claims["pcrs"]["PCRs"])
    assert claims["nbf"] == claims["iat"] - 300
    assert claims["exp"] - claims["iat"] == 24 * 3600  # report_validity_in_minutes default
    assert len(claims["jti"]) == 40 and int(claims["jti"], 16) >= 0
    assert claims["ver"] == claims["x-ms-ver"] == "1.0"
    assert claims["rp_data"] == claims["nonce"] == "UkVQTEFDRSBXSVRIIFJQIE5PTkNF"
    assert log_says_secure_boot(LOG) is True
    assert claims["x-ms-policy"] == {
        "aikValidated": True,
        "secureBootEnabled": log_says_secure_boot(LOG),
        "tpmVersion": "2.0",
    }
    jwk = jwk_of(REQUEST_KEY)
    assert claims["cnf"] == {"jwk": jwk}
    assert claims["x-ms-tpm-request-key"] == {
        "jwk": jwk,
        "info": {"tpm_quote": {"hash_alg": "sha-256"}},
    }
    assert claims["x-ms-policy-hash"] == api.service.active_policy("Tpm").hash
    # A service context answers one request.
    r = api.send(request(machine, challenge, context, aik_cert=machine.ak_cert))
    assert "already been used" in error_of(r)


def test_policy_properties_relax_aik_and_pcr_requirements(api: Api, machine: Machine) -> None:
    api.set_policy()
    challenge, context = api.init()
    # The default required_pcr_mask (0xFFFFFF) needs every PCR in the quote.
    r = api.send(
        request(machine, challenge, context, aik_cert=machine.ak_cert, selection=EIGHT_PCRS)
    )
    assert "does not select PCR 8, 9, 10" in error_of(r)
    api.set_policy(
        '=> issueproperty(type="require_valid_aik_cert", value=false);'
        '=> issueproperty(type="required_pcr_mask", value=255);'
        '=> issueproperty(type="report_validity_in_minutes", value=60);'
    )
    challenge, context = api.init()
    claims = report_claims(
        api, api.send(request(machine, challenge, context, selection=EIGHT_PCRS))
    )
    assert claims["x-ms-policy"]["aikValidated"] is False  # no certificate, aik_pub accepted
    assert claims["x-ms-policy"]["secureBootEnabled"] is True  # PCR 7 was quoted
    assert claims["exp"] - claims["iat"] == 3600


def _report_header(response: Any) -> tuple[dict[str, Any], str]:
    token: str = json.loads(unb64u(response.json()["data"]))["payload"]["report"]
    return dict(jwt.get_unverified_header(token)), token


def test_report_header_carries_the_signing_certificate(api: Api, machine: Machine) -> None:
    """MAA's TPM reports carry ``x5c`` (maa-compat.md §2.1); the certificate is the one
    ``/certs`` lists under the ``kid``, and verifies the report on its own."""
    api.set_policy()
    challenge, context = api.init()
    r = api.send(request(machine, challenge, context, aik_cert=machine.ak_cert))
    report_claims(api, r)
    header, token = _report_header(r)
    assert set(header) == {"alg", "jku", "kid", "typ", "x5c"}
    listed = {k["kid"]: k["x5c"] for k in api.client.get("/certs").json()["keys"]}
    assert header["x5c"] == listed[header["kid"]]
    leaf = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0]))
    jwt.decode(token, key=leaf.public_key(), algorithms=[header["alg"]], issuer=URL)


def test_report_properties_may_come_from_the_issuance_rules(api: Api, machine: Machine) -> None:
    """``omit_x5c`` swaps ``x5c`` for the SHA-1 thumbprint ``x5t``; it and
    ``report_validity_in_minutes`` are honoured in issuancerules too (maa-compat.md §3.3)."""
    policy = POLICY.replace(
        "issuancerules{",
        'issuancerules{ => issueproperty(type="omit_x5c", value=true);'
        ' => issueproperty(type="report_validity_in_minutes", value=5);',
    )
    api.service.set_policy("Tpm", unsigned_policy(policy % ""), actor="test")
    challenge, context = api.init()
    r = api.send(request(machine, challenge, context, aik_cert=machine.ak_cert))
    claims = report_claims(api, r)
    assert claims["exp"] - claims["iat"] == 300
    header, _ = _report_header(r)
    assert "x5c" not in header
    listed = {k["kid"]: k["x5c"] for k in api.client.get("/certs").json()["keys"]}
    der = base64.b64decode(listed[header["kid"]][0])
    assert header["x5t"] == b64u(hashlib.sha1(der).digest())


EVENT_COUNTS = """version=1.2;
configurationrules{ %s };
authorizationrules{ => permit(); };
issuancerules{
  c:[type=="events"] => issue(type="events",
    value=JsonToClaimValue(JmesPath(c.value, "length(Events)")));
  c:[type=="bootEvents"] => issue(type="bootEvents",
    value=JsonToClaimValue(JmesPath(c.value, "length(Events)")));
  c:[type=="vbsReportPresent"] => issue(type="vbsReportPresent", value=c.value);
};"""


def _boot_attestation(m: Machine, selection: str, *, ak: str = "ak.ctx") -> dict[str, Any]:
    """What a machine quoted at boot (any extraData: the challenge did not exist yet)."""
    return {
        "logs": [{"type": "TCG", "log": b64u(LOG)}],
        "aik_pub": ak_jwk(m),
        **quote(m, b"taken at boot", selection, ak=ak),
    }


def _measured(pcrs: range) -> int:
    return sum(
        1
        for e in parse_event_log(LOG).events
        if e.event_type != EventType.EV_NO_ACTION and e.pcr in pcrs
    )


BOOT = "att_data.tpm_att_data.boot_attestation"


def test_boot_events(api: Api, machine: Machine) -> None:
    """Without boot_attestation, bootEvents is the current log; with one (a quote of PCRs 0-7
    from the same power cycle), bootEvents is its log, verified against it."""
    api.service.set_policy("Tpm", unsigned_policy(EVENT_COUNTS % ""), actor="test")
    challenge, context = api.init()
    claims = report_claims(
        api, api.send(request(machine, challenge, context, aik_cert=machine.ak_cert))
    )
    assert claims["x-ms-policy"] == {
        "events": _measured(range(10)),
        "bootEvents": _measured(range(10)),
        "vbsReportPresent": False,
    }
    boot = _boot_attestation(machine, EIGHT_PCRS)
    challenge, context = api.init()
    body = request(machine, challenge, context, aik_cert=machine.ak_cert, tamper=_set(BOOT, boot))
    claims = report_claims(api, api.send(body))
    assert claims["x-ms-policy"] == {
        "events": _measured(range(10)),
        "bootEvents": _measured(range(8)),
        "vbsReportPresent": False,
    }
    # The boot quote must be the AIK's and its log must replay.
    for field, value, expected in (
        ("aik_pub", jwk_of(OTHER_KEY), "'tpm_att_data.boot_attestation.aik_pub' is not the AIK"),
        ("logs", [{"type": "TCG", "log": b64u(_tampered_log())}], "PCR 4 (sha256 bank)"),
        ("logs", [], "'tpm_att_data.boot_attestation.logs' must carry the boot TCG log"),
        ("signature", quote(machine, b"x")["signature"], "signature"),
    ):
        challenge, context = api.init()
        forged = {**boot, field: value}
        body = request(
            machine, challenge, context, aik_cert=machine.ak_cert, tamper=_set(BOOT, forged)
        )
        assert expected in error_of(api.send(body)), field


def test_boot_attestation_from_an_earlier_boot_is_refused(api: Api, tmp_path: Path) -> None:
    """A real reboot between the two quotes (resetCount changes; the AK is persistent)."""
    api.service.set_policy(
        "Tpm",
        unsigned_policy(
            EVENT_COUNTS % '=> issueproperty(type="require_valid_aik_cert", value=false);'
        ),
        actor="test",
    )
    with start_swtpm(tmp_path) as tpm:
        work = tmp_path / "work"
        work.mkdir()
        m = provision(tpm, work)
        tpm.run("tpm2_evictcontrol", "-C", "o", "-c", "ak.ctx", "0x81000002", cwd=work)
        boot = _boot_attestation(m, EIGHT_PCRS, ak="0x81000002")
        # Same boot: accepted.
        challenge, context = api.init()
        body = request(m, challenge, context, ak="0x81000002", tamper=_set(BOOT, boot))
        assert report_claims(api, api.send(body))["x-ms-policy"]["bootEvents"] == _measured(
            range(8)
        )
        tpm.reboot()
        extend(tpm, LOG, work)
        challenge, context = api.init()
        body = request(m, challenge, context, ak="0x81000002", tamper=_set(BOOT, boot))
        assert "'tpm_att_data.boot_attestation.quote' is from another boot" in error_of(
            api.send(body)
        )


def test_keys_certified_by_the_aik(api: Api, machine: Machine) -> None:
    """The request key bound by ``tpm_certify`` instead of a hashed quote nonce, and an
    ``other_keys`` entry: real TPM2_Certify results from swtpm, reported in the token."""
    api.set_policy()
    request_key = tpm_key(machine, "request")
    other = tpm_key(machine, "other")
    entry = {"jwk": other.jwk, "info": {"tpm_certify": other.tpm_certify}}

    def send(others: list[dict[str, Any]]) -> Any:
        challenge, context = api.init()
        tamper = _set("att_data.other_keys", others)
        kw = {"aik_cert": machine.ak_cert, "tpm_key": request_key, "tamper": tamper}
        return api.send(request(machine, challenge, context, **kw))

    claims = report_claims(api, send([entry]))
    assert claims["cnf"] == {"jwk": request_key.jwk}
    assert claims["x-ms-tpm-request-key"] == {
        "jwk": request_key.jwk,
        "info": {"tpm_certify": request_key.tpm_certify},
    }
    assert claims["x-ms-tpm-other-keys"] == [entry]

    # The AIK's genuine certification, but of the request key, sent for the other key.
    swapped = {
        **other.tpm_certify,
        "certification": request_key.tpm_certify["certification"],
        "signature": request_key.tpm_certify["signature"],
    }
    quote_as_certification = {**other.tpm_certify, **{
        k: v for k, v in quote(machine, b"x").items() if k != "pcrs"
    }}  # fmt: skip
    quote_as_certification["certification"] = quote_as_certification.pop("quote")
    for others, expected in (
        ([{"jwk": other.jwk, "info": {"tpm_certify": swapped}}], "the certification names"),
        (
            [{"jwk": other.jwk, "info": {"tpm_certify": quote_as_certification}}],
            "not TPM_ST_ATTEST_CERTIFY",
        ),
        (
            [{"jwk": request_key.jwk, "info": {"tpm_certify": other.tpm_certify}}],
            "'att_data.other_keys[0].info.tpm_certify.public' is not the key of the JWK",
        ),
        ([{"jwk": other.jwk, "info": {}}], "'att_data.other_keys[0].info.tpm_certify' is required"),
        ([entry] * 3, "'att_data.other_keys' must be a list of at most 2 keys"),
    ):
        assert expected in error_of(send(others)), expected
    # A key that may leave the TPM (fixedTPM clear) is refused, even though the AIK certified it.
    mobile = tpm_key(machine, "mobile", attributes="sensitivedataorigin|userwithauth|sign")
    mobile_entry = {"jwk": mobile.jwk, "info": {"tpm_certify": mobile.tpm_certify}}
    assert "lack fixedTPM or sensitiveDataOrigin" in error_of(send([mobile_entry]))
    # A key certified by another key than the AIK is not bound to this TPM's AIK.
    stranger = tpm_key(machine, "stranger", certify_with="request.ctx")
    challenge, context = api.init()
    body = request(machine, challenge, context, aik_cert=machine.ak_cert, tpm_key=stranger)
    assert "does not verify with the AK" in error_of(api.send(body))


def _forge(context: str) -> str:
    outer = json.loads(unb64u(context))
    sealed = bytearray(unb64u(outer["ProtectedContext"]))
    sealed[20] ^= 1
    outer["ProtectedContext"] = b64u(bytes(sealed))
    return b64u(json.dumps(outer).encode())


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def tamper(payload: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = payload
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        node[last] = value(node[last]) if callable(value) else value

    return tamper


def _flip_pcr(values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    digest = bytearray(base64.b64decode(values[7]["digest"]))
    digest[0] ^= 1
    values[7]["digest"] = base64.b64encode(bytes(digest)).decode()
    return values


def _tampered_log() -> bytes:
    """The sha256 digest of the first PCR 4 event changed (the SHA-256 replay of PCR 4 breaks)."""
    raw = bytearray(LOG)
    event = next(e for e in parse_event_log(LOG).events if e.pcr == 4)
    at = raw.index(event.digests[SHA256], event.offset)
    raw[at] ^= 1
    return bytes(raw)


CURRENT = "att_data.tpm_att_data.current_attestation"


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("wrong challenge", "not the challenge this service_context was issued with"),
        ("expired context", "service_context has expired"),
        ("forged context", "service_context is not authentic"),
        ("quote bound to another key", "the quote is not bound to this request"),
        ("jwk hashed in another serialization", "the quote is not bound to this request"),
        ("PCR value tampered", "pcrDigest does not match"),
        ("log tampered", "PCR 4 (sha256 bank): the quote has"),
        ("log tampered", "; event 12 (EV_EFI_ACTION at offset 9757) has a sha256 digest that"),
        ("AIK certificate from an unknown CA", "does not chain to a configured AIK root"),
        ("no AIK certificate", "'tpm_att_data.current_attestation.aik_cert' is required"),
        ("aik_pub is not the certified key", "is not the public key of"),
        ("signed by another key", "signature does not verify with att_data.request_key.jwk"),
        ("attReq v1", "attReq (protocol v1) requests are not supported"),
        ("bad pcr digest", "'tpm_att_data.current_attestation.pcrs[0].values[0].digest' has"),
    ],
)
def test_bad_requests_are_refused(api: Api, machine: Machine, case: str, expected: str) -> None:
    api.set_policy()
    challenge, context = api.init()
    kw: dict[str, Any] = {"aik_cert": machine.ak_cert}
    if case == "wrong challenge":
        challenge = api.init()[0]
    elif case == "expired context":
        api.now[0] += timedelta(minutes=11)
    elif case == "forged context":
        context = _forge(context)
    elif case == "quote bound to another key":
        kw["bind_to"] = json.dumps(jwk_of(OTHER_KEY)).encode()
    elif case == "jwk hashed in another serialization":
        kw["bind_to"] = json.dumps(jwk_of(REQUEST_KEY), separators=(",", ":")).encode()
    elif case == "PCR value tampered":
        kw["tamper"] = _set(f"{CURRENT}.pcrs.0.values", _flip_pcr)
    elif case == "log tampered":
        kw["log"] = _tampered_log()
    elif case == "AIK certificate from an unknown CA":
        kw["aik_cert"] = machine.rogue_ak_cert
    elif case == "no AIK certificate":
        kw["aik_cert"] = None
    elif case == "aik_pub is not the certified key":
        kw["tamper"] = _set(f"{CURRENT}.aik_pub", jwk_of(OTHER_KEY))
    elif case == "signed by another key":
        kw["tamper"] = _set("att_data.request_key.jwk", jwk_of(OTHER_KEY))
    elif case == "attReq v1":
        kw["typ"] = "attReq"
    elif case == "bad pcr digest":
        kw["tamper"] = _set(f"{CURRENT}.pcrs.0.values.0.digest", "AAAA")
    body = request(machine, challenge, context, **kw)
    assert expected in error_of(api.send(body))


def test_malformed_messages_are_400_not_500(api: Api) -> None:
    api.set_policy()
    for payload in (
        {"request": "not a jws"},
        {"request": "a.b.c"},
        {"request": b64u(b'{"alg":"none"}') + ".e30."},
        {"request": 42},
        {"something": "else"},
    ):
        r = api.send(payload)
        assert r.status_code == 400, (payload, r.text)
    header = b64u(json.dumps({"alg": "RS256", "typ": "attReqV2"}).encode())
    for body in ("[]", '{"att_data": 1}', '{"att_data": {"request_key": {"jwk": {"kty": "EC"}}}}'):
        r = api.send({"request": f"{header}.{b64u(body.encode())}.AAAA"})
        assert r.status_code == 400, (body, r.text)


def test_deeply_nested_json_is_400_not_500(api: Api) -> None:
    """Python's json stops at its nesting limit with RecursionError: the message itself, and a
    service_context or enrollment context, nested that deep, are malformed requests."""
    api.set_policy()
    deep = b"[" * 100_000 + b"]" * 100_000
    r = api.client.post("/attest/Tpm?api-version=2022-08-01", json={"data": b64u(deep)})
    assert r.status_code == 400, r.text
    r = api.send({"request": "a.b.c", "service_context": b64u(deep)})
    assert r.status_code == 400, r.text
    _, context = api.init()
    header = b64u(json.dumps({"alg": "RS256", "typ": "attReqV2"}).encode())
    for jws in (f"{b64u(deep)}.e30.AAAA", f"{header}.{b64u(deep)}.AAAA"):
        r = api.send({"request": jws, "service_context": context})
        assert r.status_code == 400, r.text
    r = api.client.post("/enroll/Tpm", json={"enrollment_context": b64u(deep), "secret": "AAAA"})
    assert r.status_code == 400, r.text


def test_request_without_a_tpm_policy_gets_maas_message(api: Api) -> None:
    r = api.send({"request": "a.b.c"})
    assert "A VBS attestation policy has not been set" in error_of(r)


# --- fuzzing the request structure ----------------------------------------------------------------

_ODD_VALUES = [None, 0, -1, 2**64, 1.5, True, "", "A" * 3000, "!!", [], {}, [None], {"a": 1}]


def _leaves(node: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    if isinstance(node, dict):
        return [path] + [p for k, v in node.items() for p in _leaves(v, (*path, k))]
    if isinstance(node, list):
        return [path] + [p for i, v in enumerate(node) for p in _leaves(v, (*path, i))]
    return [path]


@st.composite
def _mutations(draw: st.DrawFn, payload: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Up to three edits of a valid payload: a member or item replaced by an odd value or by
    random bytes in base64, deleted, or a byte flipped inside a base64 value."""
    edits = []
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_leaves(payload)[1:]))
        kind = draw(st.sampled_from(["odd", "bytes", "delete", "flip"]))
        value = (
            draw(st.sampled_from(_ODD_VALUES))
            if kind == "odd"
            else b64u(draw(st.binary(max_size=300)))
            if kind == "bytes"
            else draw(st.integers(0, 10_000))
        )
        edits.append((path, kind, value))
    return edits


def _apply(payload: dict[str, Any], edits: list[tuple[Any, ...]]) -> None:
    for path, kind, value in edits:
        node: Any = payload
        try:
            for p in path[:-1]:
                node = node[p]
            last = path[-1]
            if kind == "delete":
                del node[last]
            elif kind == "flip" and isinstance(node[last], str) and node[last]:
                text = node[last]
                i = value % len(text)
                node[last] = text[:i] + ("A" if text[i] != "A" else "B") + text[i + 1 :]
            elif kind != "flip":
                node[last] = value
        except (KeyError, IndexError, TypeError):
            pass  # an earlier edit removed or replaced the parent


def test_mutated_requests_are_refused_with_400(api: Api, machine: Machine) -> None:
    """Hypothesis edits a valid, re-signed request (every member of the JWS payload is a
    target): the service answers 200 or a 400 with an error body, never a 500 or a crash."""
    api.set_policy()
    template = request(machine, *api.init(), aik_cert=machine.ak_cert)
    head, body, _ = template["request"].split(".")
    payload = json.loads(unb64u(body))

    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
    @given(_mutations(payload))
    def run(edits: list[tuple[Any, ...]]) -> None:
        mutated = json.loads(json.dumps(payload))
        _, context = api.init()
        mutated["att_data"]["service_context"] = context
        _apply(mutated, edits)
        signing_input = f"{head}.{b64u(json.dumps(mutated).encode())}"
        signature = REQUEST_KEY.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        r = api.send({"request": f"{signing_input}.{b64u(signature)}"})
        assert r.status_code in (200, 400), r.text
        if r.status_code == 400:
            assert r.json()["error"]["code"] in ("InvalidParameter", "PolicyEvaluationError")

    run()
