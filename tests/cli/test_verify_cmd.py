"""``attestd verify``: output shapes and exit codes, in process and through the installed script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from attestd.cli.main import main, parse_time, read_evidence
from conftest import DCAP, MAA_OFFLINE

SGX = DCAP / "phala-dcap-qvl/sgx_v3"
SGX_AT = "2025-07-04T10:28:44Z"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_verified(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "verify",
        "sgx",
        str(SGX / "quote.bin"),
        "--collateral",
        str(SGX),
        "--at",
        SGX_AT,
        "--json",
    )
    assert code == 0
    report = json.loads(out)
    assert report["ok"] is True and report["error"] is None
    assert report["tcb_status"] == "ConfigurationAndSWHardeningNeeded"
    assert report["advisory_ids"] == ["INTEL-SA-00289", "INTEL-SA-00615"]
    assert report["claims"]["x-ms-attestation-type"] == "sgx"
    assert len(report["claims"]["x-ms-sgx-mrenclave"]) == 64


def test_json_rejected_expired(capsys: pytest.CaptureFixture[str]) -> None:
    # Wall-clock time: every real sample's collateral has expired.
    code, out, _ = run(
        capsys, "verify", "sgx", str(SGX / "quote.bin"), "--collateral", str(SGX), "--json"
    )
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False
    assert report["error"]["code"] == "CollateralExpired"
    assert "expired at" in report["error"]["message"]


def test_audit_mode(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "verify",
        "sgx",
        str(SGX / "quote.bin"),
        "--collateral",
        str(SGX),
        "--allow-expired-collateral",
        "--at",
        "1900000000",
        "--json",
    )
    assert code == 0
    report = json.loads(out)
    assert report["collateral_expired"] is True
    assert "pck_crl" in report["expired_items"]


def test_text_output_and_openenclave(capsys: pytest.CaptureFixture[str]) -> None:
    folder = MAA_OFFLINE / "pysdk_b779_nondebug__2023-05"
    code, out, _ = run(
        capsys,
        "verify",
        "openenclave",
        str(folder / "openenclave_report.bin"),
        "--collateral",
        str(folder),
        "--at",
        "1684975517",
    )
    assert code == 0
    assert "VERIFIED" in out and "OutOfDate" in out
    # quotehash is over the OE report as submitted
    assert "949b189c928f25c0a8090ae57d9f481b3435f26fb9a4d7e86e2619770d29c13f" in out


def test_tdx_with_a_store_of_bundles(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "verify",
        "tdx",
        str(DCAP / "teepot/tdx_1/quote.bin"),
        "--collateral",
        str(DCAP),
        "--at",
        "1734396600",
        "--json",
    )
    assert code == 0, out
    assert json.loads(out)["claims"]["attester_tcb_status"] == "UpToDate"


def test_rejected_tcb_not_supported(capsys: pytest.CaptureFixture[str]) -> None:
    folder = DCAP / "go-tdx-guest/tdx_v4_spr_e4"
    code, out, _ = run(
        capsys,
        "verify",
        "tdx",
        str(folder / "quote.bin"),
        "--collateral",
        str(folder),
        "--at",
        "1687939438",
    )
    assert code == 1
    assert out.startswith("REJECTED [TcbNotSupported]")


def test_trust_anchor_option(capsys: pytest.CaptureFixture[str]) -> None:
    other = DCAP / "intel-qvl-sampledata/trustedRootCaCert.pem"
    code, out, _ = run(
        capsys,
        "verify",
        "sgx",
        str(SGX / "quote.bin"),
        "--collateral",
        str(SGX),
        "--at",
        SGX_AT,
        "--trust-anchor",
        str(other),
        "--json",
    )
    assert code == 1
    assert json.loads(out)["error"]["code"] == "UntrustedCertificateChain"


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["verify"],
        ["verify", "sgx"],
        ["verify", "sev", "x", "--collateral", "y"],
        ["verify", "sgx", "/nonexistent", "--collateral", str(SGX)],
        ["verify", "sgx", str(SGX / "quote.bin"), "--collateral", "/nonexistent"],
        ["verify", "sgx", str(SGX / "quote.bin"), "--collateral", str(SGX), "--at", "yesterday"],
        ["verify", "tdx", str(SGX / "quote.bin"), "--collateral", str(SGX)],
        ["verify", "sgx", str(SGX / "quote.bin"), "--collateral", str(SGX), "--trust-anchor", "/x"],
        [
            "verify",
            "sgx",
            str(SGX / "quote.bin"),
            "--collateral",
            str(SGX),
            "--trust-anchor",
            str(SGX / "tcb_info.json"),
        ],
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert "Traceback" not in err


def test_malformed_evidence_is_rejected_not_a_crash(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "q.bin"
    bad.write_bytes((SGX / "quote.bin").read_bytes()[:500])
    code, out, _ = run(capsys, "verify", "sgx", str(bad), "--collateral", str(SGX), "--json")
    assert code == 1
    assert json.loads(out)["error"]["code"] == "MalformedEvidence"


def test_hex_and_base64_evidence(tmp_path: Path) -> None:
    raw = (SGX / "quote.bin").read_bytes()
    (tmp_path / "q.hex").write_text("0x" + raw.hex() + "\n")
    import base64

    (tmp_path / "q.b64").write_text(base64.b64encode(raw).decode())
    (tmp_path / "q.b64u").write_text(base64.urlsafe_b64encode(raw).decode().rstrip("="))
    for name in ("q.hex", "q.b64", "q.b64u"):
        assert read_evidence(str(tmp_path / name)) == raw


def test_parse_time() -> None:
    assert parse_time("0").timestamp() == 0
    assert parse_time("2025-07-04T10:28:44Z").timestamp() == 1751624924
    assert parse_time("2025-07-04T10:28:44").timestamp() == 1751624924


def test_installed_entry_point() -> None:
    exe = shutil.which("attestd", path=str(Path(sys.executable).parent))
    assert exe is not None
    proc = subprocess.run(
        [
            exe,
            "verify",
            "sgx",
            str(SGX / "quote.bin"),
            "--collateral",
            str(SGX),
            "--at",
            SGX_AT,
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["ok"] is True
