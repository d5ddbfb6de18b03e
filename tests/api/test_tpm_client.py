"""``attestd attest tpm`` (attestd.tpm_client over tpm2-pytss) against a REAL swtpm into which a
real TCG log was extended, and a live attestd (uvicorn) with a TPM policy, an AIK CA minted here
and the swtpm local CA root as its EK root: the printed token's ``x-ms-policy`` claims match the
log; a log that does not replay is refused with the service's replay error; without
``--aik-cert`` the client enrolls its AK (``POST /enroll/Tpm``, TPM2_ActivateCredential through
tpm2-pytss) and attests with the service's own AIK certificate; a service with no EK roots
refuses the enrollment; and the whole flow runs through the device TCTI (``device:PATH``, as for
``/dev/tpmrm0``) with the swtpm behind a character device."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from api.test_tpm_protocol import (
    LOG,
    POLICY,
    _ca,
    _cert,
    _tampered_log,
    extend,
    log_says_secure_boot,
)
from attestd.api.app import create_app
from attestd.cli.main import main
from attestd.config import Settings
from attestd.evidence.tpm import parse_tpm2b_public
from attestd.policy.document import unsigned_policy
from attestd.service import AttestationService
from attestd.store.sqlite import SQLiteStore
from attestd.tpm_client import PytssTpm, parse_pcr_list
from fakes.live import listen, serving
from fakes.swtpm import as_device, start_swtpm

pytestmark = pytest.mark.timeout(120)


@dataclass(frozen=True)
class Setup:
    tcti: str
    url: str
    aik_pem: Path
    log: Path
    bad_log: Path
    ek_issuer: Path
    ak: rsa.RSAPublicKey
    bare_url: str  # a service without tpm_ek_roots


@contextmanager
def _serve(work: Path, name: str, **settings_kw: Any) -> Iterator[str]:
    """A live attestd (uvicorn, in a thread) with the TPM policy; yields its URL."""
    sock, url = listen()
    settings = Settings(instance_url=url, database=str(work / f"{name}.sqlite3"), **settings_kw)
    service = AttestationService(settings, store=SQLiteStore(settings.database))
    service.set_policy("Tpm", unsigned_policy(POLICY % ""), actor="test")
    try:
        with serving(create_app(service), sock):
            yield url
    finally:
        service.store.close()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    work = tmp_path_factory.mktemp("tpm-client")
    with start_swtpm(work) as tpm:
        extend(tpm, LOG, work)
        # The client creates and persists its AK on first use; certify that AK here.
        with PytssTpm(tpm.tcti) as device:
            ak = parse_tpm2b_public(device.ak_public()).public_key()
            assert device.ek_certificate() is not None  # swtpm_setup --create-ek-cert
        assert isinstance(ak, rsa.RSAPublicKey)
        ca_key, ca = _ca("attestd test AIK CA")
        root = work / "aik-root.pem"
        root.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        aik_pem = work / "aik.pem"
        aik = _cert("AIK", ak, ("attestd test AIK CA", ca_key), ca=False)
        aik_pem.write_bytes(aik.public_bytes(serialization.Encoding.PEM))
        (work / "log.bin").write_bytes(LOG)
        (work / "bad.bin").write_bytes(_tampered_log())

        ek_root, ek_issuer = tpm.ca_certificates
        with (
            _serve(work, "main", tpm_aik_roots=(str(root),), tpm_ek_roots=(str(ek_root),)) as url,
            _serve(work, "bare") as bare_url,
        ):
            yield Setup(
                tpm.tcti, url, aik_pem, work / "log.bin", work / "bad.bin", ek_issuer, ak, bare_url
            )


def _run(s: Setup, log: Path, *extra: str) -> int:
    argv = ["attest", "tpm", "--endpoint", s.url, "--tcti", s.tcti, "--eventlog", str(log)]
    return main([*argv, *extra])


def _claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return data


def test_cli_attests_a_real_tpm(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(setup, setup.log, "--aik-cert", str(setup.aik_pem)) == 0
    token = capsys.readouterr().out.strip()
    claims = _claims(token)
    assert claims["iss"] == setup.url
    assert claims["x-ms-policy"] == {
        "aikValidated": True,
        "secureBootEnabled": log_says_secure_boot(LOG),
        "tpmVersion": "2.0",
    }
    assert claims["cnf"]["jwk"]["kty"] == "RSA"
    # The token verifies against the service's /certs.
    assert main(["token", "verify", token, "--endpoint", setup.url]) == 0
    assert json.loads(capsys.readouterr().out)["x-ms-policy"] == claims["x-ms-policy"]


def test_cli_shows_the_replay_error(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(setup, setup.bad_log, "--aik-cert", str(setup.aik_pem)) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "PCR 4 (sha256 bank): the quote has" in captured.err


def test_cli_enrolls_the_ak_and_attests(
    setup: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # No --aik-cert: POST /enroll/Tpm (EK certificate + its issuer, checked against the swtpm
    # local CA root), TPM2_ActivateCredential in the swtpm, then the protocol with the AIK
    # certificate the service's own AIK CA issued.
    saved = tmp_path / "aik-chain.pem"
    argv = ["--ek-chain", str(setup.ek_issuer), "--save-aik-cert", str(saved)]
    assert _run(setup, setup.log, *argv) == 0, capsys.readouterr().err
    token = capsys.readouterr().out.strip()
    claims = _claims(token)
    assert claims["x-ms-policy"]["aikValidated"] is True
    assert claims["x-ms-policy"]["tpmVersion"] == "2.0"
    aik, ca = x509.load_pem_x509_certificates(saved.read_bytes())
    aik.verify_directly_issued_by(ca)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    assert aik.public_key().public_bytes(der, spki) == setup.ak.public_bytes(der, spki)
    minted = x509.load_pem_x509_certificate(setup.aik_pem.read_bytes())
    assert aik.issuer != minted.issuer  # the instance's AIK CA, not the test's
    # The saved chain is what --aik-cert takes.
    assert _run(setup, setup.log, "--aik-cert", str(saved)) == 0
    assert _claims(capsys.readouterr().out.strip())["x-ms-policy"]["aikValidated"] is True


def test_cli_attests_through_the_device_tcti(
    setup: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--tcti device:PATH`` (what ``/dev/tpmrm0`` takes): the same swtpm behind a character
    device (a raw pseudo-terminal forwarding whole commands, as the kernel driver does), with
    enrollment and attestation end to end."""
    with start_swtpm(tmp_path) as tpm:
        extend(tpm, LOG, tmp_path)
        ek_issuer = tpm.ca_certificates[1]
        with (
            _serve(tmp_path, "device", tpm_ek_roots=(str(tpm.ca_certificates[0]),)) as url,
            as_device(tpm) as path,
        ):
            argv = ["attest", "tpm", "--endpoint", url, "--tcti", f"device:{path}"]
            argv += ["--eventlog", str(setup.log), "--ek-chain", str(ek_issuer)]
            assert main(argv) == 0, capsys.readouterr().err
    claims = _claims(capsys.readouterr().out.strip())
    assert claims["x-ms-policy"] == {
        "aikValidated": True,
        "secureBootEnabled": log_says_secure_boot(LOG),
        "tpmVersion": "2.0",
    }


def test_cli_enrollment_refused_without_ek_roots(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = replace(setup, url=setup.bare_url)
    assert _run(bare, setup.log, "--ek-chain", str(setup.ek_issuer)) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "AIK enrollment refused by the service" in captured.err
    assert "no EK roots are configured (tpm_ek_roots)" in captured.err


def test_pcr_list() -> None:
    assert parse_pcr_list("0-23") == list(range(24))
    assert parse_pcr_list("0-2,7") == [0, 1, 2, 7]
