"""End to end for every real log in ``go-eventlog/tpm/``: the log is replayed into a fresh swtpm,
``attestd attest tpm`` (AK enrollment through ``--ek-chain``, quote of PCR 0-23 in the sha1 and
sha256 banks) runs against one live attestd, and the report token carries

* ``pcrs`` equal to the known-good PCRs read from the real TPMs
  (``expected_pcrs.json``, every PCR and bank listed there), and
* ``secureBootEnabled`` and the boot-component claims (``x-attestd-kernel-cmdline``,
  ``x-attestd-efi-boot-applications``, issued by the policy into ``x-ms-policy``) as the log
  says, derived here independently of attestd's claims code.

None of the 8 logs has a ``StartupLocality`` EV_NO_ACTION event or an H-CRTM event, so every
swtpm starts at locality 0 (PCR0 reset value 00..00) and each log reproduces; the test asserts
that, so a log added later with locality 3 fails here instead of replaying at the wrong
locality. Keylime's ``binary_bios_measurements`` does start at locality 3: it runs the same
way on a swtpm rebooted at locality 3 (:meth:`fakes.swtpm.Swtpm.reboot`), and its token's
``pcrs`` equal the PCRs computed beside it (``keylime/computed_pcrs.json``; no TPM's values
were recorded), PCR 0 included.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from api.test_tpm_client import _claims
from api.test_tpm_protocol import SHA1, SHA256, log_says_secure_boot
from attestd.api.app import create_app
from attestd.cli.main import main
from attestd.config import Settings
from attestd.evidence.eventlog import EventLog, EventType, parse_event_log
from attestd.policy.document import unsigned_policy
from attestd.service import AttestationService
from attestd.store.sqlite import SQLiteStore
from conftest import VECTORS
from fakes.live import listen, serving
from fakes.swtpm import start_swtpm

pytestmark = pytest.mark.timeout(120)

LOGS = VECTORS / "tpm/go-eventlog/tpm"
EXPECTED: dict[str, Any] = json.loads((LOGS / "expected_pcrs.json").read_text())
NAMES = sorted(p.name for p in LOGS.glob("*.bin"))
BANK_NAMES = {"sha1": "SHA1", "sha256": "SHA256"}
POLICY = """version=1.1;
authorizationrules{ => permit(); };
issuancerules{
  c:[type=="secureBootEnabled"] => issue(type="secureBootEnabled", value=c.value);
  c:[type=="aikValidated"] => issue(type="aikValidated", value=c.value);
  c:[type=="x-attestd-kernel-cmdline"] => issue(type="x-attestd-kernel-cmdline", value=c.value);
  c:[type=="x-attestd-efi-boot-applications"]
    => issue(type="x-attestd-efi-boot-applications", value=c.value);
};"""


@dataclass(frozen=True)
class Service:
    url: str
    ca: Path  # the local CA every swtpm here shares: the service's EK root


@contextmanager
def _serve(work: Path, ek_root: Path) -> Iterator[str]:
    """A live attestd (uvicorn, in a thread) with POLICY for Tpm; yields its URL."""
    sock, url = listen()
    settings = Settings(
        instance_url=url, database=str(work / "e2e.sqlite3"), tpm_ek_roots=(str(ek_root),)
    )
    service = AttestationService(settings, store=SQLiteStore(settings.database))
    service.set_policy("Tpm", unsigned_policy(POLICY), actor="test")
    try:
        with serving(create_app(service), sock):
            yield url
    finally:
        service.store.close()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    work = tmp_path_factory.mktemp("tpm-e2e")
    ca = work / "localca"
    # One local CA for all the swtpms, so one EK root serves them all. The service reads its
    # EK roots on the first enrollment, after the first swtpm_setup has created the CA.
    root = ca / "swtpm-localca-rootca-cert.pem"
    with _serve(work, root) as url:
        yield Service(url, ca)


def _startup_locality(log: EventLog) -> int:
    for e in log.events:
        if e.event_type == EventType.EV_NO_ACTION and e.data.startswith(b"StartupLocality\0"):
            return e.data[len(b"StartupLocality\0")]
    return 0


def _kernel_cmdline(log: EventLog, banks: tuple[int, ...]) -> str | None:
    """GRUB's last measured command line whose digests cover the text (prefix and NUL off)."""
    found = None
    for e in log.events:
        if e.pcr != 8 or e.event_type != EventType.EV_IPL:
            continue
        for prefix in (b"kernel_cmdline: ", b"grub_kernel_cmdline "):
            text = e.data.removeprefix(prefix).rstrip(b"\0")
            if e.data.startswith(prefix) and all(
                hashlib.new({SHA1: "sha1", SHA256: "sha256"}[a], text).digest() == e.digests[a]
                for a in banks
            ):
                found = text.decode()
    return found


def _attest_replayed(
    raw: bytes,
    banks: tuple[int, ...],
    service: Service,
    work: Path,
    capsys: pytest.CaptureFixture[str],
    *,
    locality: int = 0,
) -> dict[str, Any]:
    """Replay ``raw`` into a fresh swtpm started at ``locality``, run ``attestd attest tpm``
    against ``service`` (PCRs 0-23, AK enrollment with the EK chain) and return the report's
    claims."""
    measured = [e for e in parse_event_log(raw).events if e.event_type != EventType.EV_NO_ACTION]
    with start_swtpm(work, ca=service.ca) as tpm:
        if locality:
            tpm.reboot(locality=locality)
        specs = [
            f"{e.pcr}:"
            + ",".join(f"{'sha1' if a == SHA1 else 'sha256'}={e.digests[a].hex()}" for a in banks)
            for e in measured
        ]
        for i in range(0, len(specs), 16):
            tpm.run("tpm2_pcrextend", *specs[i : i + 16], cwd=work)
        (work / "log.bin").write_bytes(raw)
        argv = ["attest", "tpm", "--endpoint", service.url, "--tcti", tpm.tcti]
        argv += ["--eventlog", str(work / "log.bin"), "--pcrs", "0-23"]
        argv += ["--ek-chain", str(tpm.ca_certificates[1])]
        assert main(argv) == 0, capsys.readouterr().err
    return _claims(capsys.readouterr().out.strip())


def _pcrs_claim(claims: dict[str, Any]) -> dict[tuple[str, int], str]:
    """The token's ``pcrs`` (MAA's form: ``{"PCRs": [{"Index": n, "Digests": {"SHA1": hex,
    "SHA256": hex}}]}``) as ``{(bank name, index): hex}``."""
    return {
        (bank, entry["Index"]): digest
        for entry in claims["pcrs"]["PCRs"]
        for bank, digest in entry["Digests"].items()
    }


def _want(pcrs: dict[str, dict[str, str]]) -> dict[tuple[str, int], str]:
    """``expected_pcrs.json``/``computed_pcrs.json`` hex per bank name, in the same form."""
    return {
        (BANK_NAMES[bank], int(index)): value
        for bank, values in pcrs.items()
        for index, value in values.items()
    }


def test_locality_3_log_end_to_end(
    service: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = (VECTORS / "tpm/keylime/binary_bios_measurements").read_bytes()
    computed = json.loads((VECTORS / "tpm/keylime/computed_pcrs.json").read_text())
    entry = computed["binary_bios_measurements"]
    assert entry["startup_locality"] == 3 == _startup_locality(parse_event_log(raw))
    claims = _attest_replayed(raw, (SHA1, SHA256), service, tmp_path, capsys, locality=3)
    got = _pcrs_claim(claims)
    want = _want(entry["pcrs"])
    assert got == want  # every PCR the log extends, both banks, nothing else
    # PCR 0 is the locality-3 replay, not the locality-0 one.
    assert got[("SHA256", 0)] == "0ee9a7feba8f4172f1a7451594aa5731665a4d353ac61814042ce107a00742f2"


@pytest.mark.parametrize("name", NAMES)
def test_real_log_end_to_end(
    name: str, service: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = (LOGS / name).read_bytes()
    log = parse_event_log(raw)
    assert _startup_locality(log) == 0  # see the module docstring
    assert not any(e.event_type == EventType.EV_EFI_HCRTM_EVENT for e in log.events)
    measured = [e for e in log.events if e.event_type != EventType.EV_NO_ACTION]
    # debian-10 is a legacy SHA-1 log: only its sha1 bank can be reproduced and verified.
    banks = (SHA1, SHA256) if all(SHA256 in e.digests for e in measured) else (SHA1,)
    claims = _attest_replayed(raw, banks, service, tmp_path, capsys)
    got = _pcrs_claim(claims)
    want = _want(EXPECTED[name]["pcrs"])
    assert {k: got.get(k) for k in want} == want
    # Only the verified banks appear (debian-10: no SHA256 although the quote has that bank).
    assert {bank for bank, _ in got} == {"SHA1" if a == SHA1 else "SHA256" for a in banks}

    policy = claims["x-ms-policy"]
    assert policy["aikValidated"] is True
    # The measured SecureBoot variable decides. ubuntu-1804-amd-sev measures SecureBoot=00
    # although expected_pcrs.json's description calls the instance "Secure Boot enabled".
    assert policy["secureBootEnabled"] is log_says_secure_boot(raw)
    if name == "ubuntu-1804-amd-sev.bin":
        assert policy["secureBootEnabled"] is False
    assert policy.get("x-attestd-kernel-cmdline") == _kernel_cmdline(log, banks)
    apps = [
        e
        for e in measured
        if e.pcr == 4 and e.event_type == EventType.EV_EFI_BOOT_SERVICES_APPLICATION
    ]
    # The policy engine issues each object of a JSON-array claim as its JSON text.
    issued = policy.get("x-attestd-efi-boot-applications", [])
    got_apps = [json.loads(a) if isinstance(a, str) else a for a in issued]
    assert [a["digests"] for a in got_apps] == [
        {("sha1" if a == SHA1 else "sha256"): e.digests[a].hex() for a in banks} for e in apps
    ]


def test_every_log_is_covered() -> None:
    assert len(NAMES) == 8
    assert set(NAMES) == set(EXPECTED)
