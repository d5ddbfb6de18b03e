"""attestd's TPM enrollment (``POST /enroll/Tpm``, an attestd extension) end to end against a
REAL swtpm and tpm2-tools: the EK certificate swtpm_localca wrote into NV 0x1c00002 is checked
against the local CA root (``tpm_ek_roots``), the credential the service makes for the AK is
activated by the TPM (``tpm2_activatecredential`` with the endorsement policy session), the
recovered secret buys an AIK certificate from the instance's own AIK CA, and that certificate
then passes MAA's TPM protocol with ``require_valid_aik_cert`` (the default) and no configured
``tpm_aik_roots``: ``aikValidated`` is true."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier
from starlette.testclient import TestClient

from api.test_tpm_protocol import (
    URL,
    Api,
    Machine,
    error_of,
    machine,  # noqa: F401 - the module-scoped swtpm fixture (EK, AK, PCRs with the log)
    report_claims,
    request,
    unb64u,
)
from attestd.api.app import create_app
from attestd.config import Settings, load_settings
from attestd.evidence.tpm import parse_tpm2b_public
from attestd.service import AttestationService
from attestd.store.sqlite import SQLiteStore

pytestmark = pytest.mark.timeout(120)

TCG_KP_AIK_CERTIFICATE = ObjectIdentifier("2.23.133.8.3")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def spki(key: Any) -> bytes:
    return bytes(
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


@pytest.fixture(scope="module")
def ek(machine: Machine) -> dict[str, bytes]:  # noqa: F811
    """The EK certificate from NV, the local CA's issuer certificate and the EK public area
    (``machine`` already ran ``tpm2_createek -G rsa -u ek.pub``)."""
    machine.tpm.run("tpm2_nvread", "0x1c00002", "-o", "ekcert.der", cwd=machine.work)
    _, issuer = machine.tpm.ca_certificates
    return {
        "cert": (machine.work / "ekcert.der").read_bytes(),
        "issuer": x509.load_pem_x509_certificate(issuer.read_bytes()).public_bytes(
            serialization.Encoding.DER
        ),
        "public": (machine.work / "ek.pub").read_bytes(),
        "ak_public": (machine.work / "ak.pub").read_bytes(),
    }


@pytest.fixture
def api(tmp_path: Path, machine: Machine) -> Iterator[Api]:  # noqa: F811
    root, _ = machine.tpm.ca_certificates
    settings = Settings(
        instance_url=URL,
        database=str(tmp_path / "attestd.sqlite3"),
        tpm_ek_roots=(str(root),),  # the issuer comes in the request's ek_chain
    )
    now = [datetime.now(UTC)]
    service = AttestationService(
        settings, store=SQLiteStore(settings.database), clock=lambda: now[0]
    )
    with TestClient(create_app(service)) as client:
        yield Api(client, service, now)
    service.store.close()


def step1(api: Api, ek: dict[str, bytes], **changes: Any) -> Any:
    body = {
        "ek_cert": b64(ek["cert"]),
        "ek_chain": [b64(ek["issuer"])],
        "ak_public": b64(ek["ak_public"]),
    }
    body.update(changes)
    return api.client.post("/enroll/Tpm", json={k: v for k, v in body.items() if v is not None})


def activate(m: Machine, credential: bytes) -> bytes:
    """``tpm2_activatecredential`` through the EK's PolicySecret(TPM_RH_ENDORSEMENT) session."""
    (m.work / "cred.in").write_bytes(credential)
    (m.work / "secret.out").unlink(missing_ok=True)
    m.tpm.run("tpm2_startauthsession", "--policy-session", "-S", "session.ctx", cwd=m.work)
    m.tpm.run("tpm2_policysecret", "-S", "session.ctx", "-c", "e", cwd=m.work)
    m.tpm.run(
        "tpm2_activatecredential", "-c", "ak.ctx", "-C", "ek.ctx", "-i", "cred.in",
        "-o", "secret.out", "-P", "session:session.ctx", cwd=m.work,
    )  # fmt: skip
    m.tpm.run("tpm2_flushcontext", "session.ctx", cwd=m.work, check=False)
    return (m.work / "secret.out").read_bytes()


def enroll(api: Api, m: Machine, ek: dict[str, bytes], **changes: Any) -> dict[str, Any]:
    r = step1(api, ek, **changes)
    assert r.status_code == 200, r.text
    first = r.json()
    assert set(first) == {"credential", "enrollment_context"}
    credential = base64.b64decode(first["credential"])
    assert credential[:8] == bytes.fromhex("badcc0de00000001")  # tpm2-tools credential file
    secret = activate(m, credential)
    assert len(secret) == 32
    r = api.client.post(
        "/ENROLL/tpm",  # paths are case-insensitive
        json={"enrollment_context": first["enrollment_context"], "secret": b64(secret)},
    )
    assert r.status_code == 200, r.text
    second: dict[str, Any] = r.json()
    assert set(second) == {"aik_cert", "ca_cert"}
    again = api.client.post(
        "/enroll/Tpm",
        json={"enrollment_context": first["enrollment_context"], "secret": b64(secret)},
    )
    assert again.status_code == 400, again.text
    assert "the enrollment_context has already been used" in again.json()["error"]["message"]
    return second


def test_enrolled_aik_certificate_passes_the_tpm_protocol(
    api: Api,
    machine: Machine,  # noqa: F811
    ek: dict[str, bytes],
) -> None:
    out = enroll(api, machine, ek)
    aik = x509.load_der_x509_certificate(base64.b64decode(out["aik_cert"]))
    ca = x509.load_der_x509_certificate(base64.b64decode(out["ca_cert"]))
    # Published, stable CA; the AIK certificate chains to it and certifies the AK.
    published = api.client.get("/enroll/ca").json()["ca_cert"]
    assert base64.b64decode(published) == ca.public_bytes(serialization.Encoding.DER)
    aik.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert spki(aik.public_key()) == spki(machine.ak)
    ak_pub = parse_tpm2b_public(ek["ak_public"]).public_key()
    assert spki(aik.public_key()) == spki(ak_pub)
    # The subject names the EK certificate it was enrolled with.
    ek_cert = x509.load_der_x509_certificate(ek["cert"])
    serial = aik.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value
    assert serial == f"{ek_cert.serial_number:x}"
    qualifier = aik.subject.get_attributes_for_oid(NameOID.DN_QUALIFIER)[0].value
    assert qualifier == hashlib.sha256(ek_cert.issuer.public_bytes()).hexdigest()
    eku = aik.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [TCG_KP_AIK_CERTIFICATE] and ExtendedKeyUsageOID.SERVER_AUTH not in eku
    assert aik.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    lifetime = aik.not_valid_after_utc - aik.not_valid_before_utc
    assert timedelta(days=364) < lifetime <= timedelta(days=366)
    assert any(e.action == "tpm.enroll" for e in api.service.store.audit_log())

    # MAA's TPM protocol with that certificate: no tpm_aik_roots configured, the instance's own
    # AIK CA is an implicit root, require_valid_aik_cert is the default (true).
    assert api.service.settings.tpm_aik_roots == ()
    api.set_policy()
    challenge, context = api.init()
    claims = report_claims(api, api.send(request(machine, challenge, context, aik_cert=aik)))
    assert claims["x-ms-policy"]["aikValidated"] is True
    assert claims["x-ms-policy"]["tpmVersion"] == "2.0"

    # A certificate for the same AK from a CA nobody configured is still refused.
    challenge, context = api.init()
    r = api.send(request(machine, challenge, context, aik_cert=machine.rogue_ak_cert))
    assert "does not chain to a configured AIK root" in error_of(r)


def test_enrollment_with_the_ek_public_area_and_a_persistent_ca(
    api: Api,
    machine: Machine,  # noqa: F811
    ek: dict[str, bytes],
) -> None:
    # The EK public area sent along, and the AK under its alias "aik_pub".
    first = enroll(
        api, machine, ek, ek_public=b64(ek["public"]), ak_public=None, aik_pub=b64(ek["ak_public"])
    )
    # A second instance on the same database uses the same CA (kept in the store).
    again = AttestationService(api.service.settings, store=api.service.store)
    assert again.aik_ca_certificate()["ca_cert"] == first["ca_cert"]
    second = enroll(api, machine, ek)
    assert second["ca_cert"] == first["ca_cert"] and second["aik_cert"] != first["aik_cert"]


def _foreign_ek_cert(ek: dict[str, bytes]) -> bytes:
    """The same EK key, certified by a CA that is not a configured EK root."""
    genuine = x509.load_der_x509_certificate(ek["cert"])
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "someone else's TPM CA")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(genuine.subject)
        .issuer_name(name)
        .public_key(genuine.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def _flip(text: str, at: int) -> str:
    outer = json.loads(unb64u(text))
    sealed = bytearray(unb64u(outer["ProtectedContext"]))
    sealed[at] ^= 1
    outer["ProtectedContext"] = base64.urlsafe_b64encode(bytes(sealed)).decode()
    return base64.urlsafe_b64encode(json.dumps(outer).encode()).decode()


@pytest.fixture(scope="module")
def loose_key(machine: Machine) -> bytes:  # noqa: F811
    """A real TPM signing key that is not restricted (it could sign a forged quote)."""
    w = machine.work
    machine.tpm.run("tpm2_createprimary", "-C", "o", "-G", "ecc", "-c", "prim.ctx", cwd=w)
    machine.tpm.run(
        "tpm2_create", "-C", "prim.ctx", "-G", "ecc", "-u", "loose.pub", "-r", "loose.priv",
        "-a", "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign", cwd=w,
    )  # fmt: skip
    return (w / "loose.pub").read_bytes()


def test_bad_enrollments_are_refused(
    api: Api,
    machine: Machine,  # noqa: F811
    ek: dict[str, bytes],
    loose_key: bytes,
) -> None:
    def refused(r: Any, expected: str) -> None:
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "InvalidParameter"
        assert expected in r.json()["error"]["message"], r.json()["error"]["message"]

    refused(
        step1(api, ek, ek_cert=b64(_foreign_ek_cert(ek)), ek_chain=None),
        "EK certificate rejected: the EK certificate does not chain to a configured EK root "
        "(issuer CN=someone else's TPM CA is not trusted)",
    )
    # The genuine certificate without its issuer: the root alone does not reach it.
    refused(step1(api, ek, ek_chain=None), "does not chain to a configured EK root")
    refused(
        step1(api, ek, ak_public=b64(loose_key)),
        "the AK is not a restricted signing key bound to its TPM (objectAttributes 0x00040072 "
        "lacks restricted)",
    )
    refused(
        step1(api, ek, ek_public=b64(ek["ak_public"])),
        "'ek_public' is not the key the EK certificate certifies",
    )
    refused(step1(api, ek, ak_public=b64(b"\x00\x04abcd")), "'ak_public' is not a TPM2B_PUBLIC")
    refused(step1(api, ek, ek_cert=b64(b"not DER")), "'ek_cert' is not a DER X.509 certificate")

    r = step1(api, ek)
    assert r.status_code == 200, r.text
    context = r.json()["enrollment_context"]
    finish = "/enroll/Tpm"
    refused(
        api.client.post(
            finish, json={"enrollment_context": context, "secret": b64(os.urandom(32))}
        ),
        "the secret is not the one the credential protects",
    )
    # A context takes one answer, right or wrong: no guessing.
    refused(
        api.client.post(
            finish, json={"enrollment_context": context, "secret": b64(os.urandom(32))}
        ),
        "the enrollment_context has already been used",
    )
    context = step1(api, ek).json()["enrollment_context"]
    refused(
        api.client.post(
            finish, json={"enrollment_context": _flip(context, 20), "secret": b64(b"x")}
        ),
        "the enrollment_context is not authentic",
    )
    api.now[0] += timedelta(minutes=11)
    refused(
        api.client.post(finish, json={"enrollment_context": context, "secret": b64(b"x")}),
        "the enrollment_context has expired: start again with step 1",
    )
    refused(api.client.post(finish, json={"hello": 1}), "neither step 1")
    refused(api.client.post("/enroll/SgxEnclave", json={}), "only Tpm")


def test_no_ek_roots_refuses_every_enrollment(
    tmp_path: Path,
    ek: dict[str, bytes],
) -> None:
    service = AttestationService(Settings(instance_url=URL, database=":memory:"))
    with TestClient(create_app(service)) as client:
        r = client.post(
            "/enroll/tpm", json={"ek_cert": b64(ek["cert"]), "ak_public": b64(ek["ak_public"])}
        )
    assert r.status_code == 400
    assert r.json()["error"]["message"] == (
        "EK certificate rejected: no EK roots are configured (tpm_ek_roots), so this instance "
        "enrolls no TPM (POST /enroll/Tpm)"
    )


def test_ek_roots_setting(tmp_path: Path) -> None:
    toml = tmp_path / "attestd.toml"
    toml.write_text('tpm_ek_roots = ["/a.pem", "/b.pem"]\n')
    assert load_settings(toml, env={}).tpm_ek_roots == ("/a.pem", "/b.pem")
    env = {"ATTESTD_TPM_EK_ROOTS": "/c.pem, /d.pem"}
    assert load_settings(toml, env=env).tpm_ek_roots == ("/c.pem", "/d.pem")
