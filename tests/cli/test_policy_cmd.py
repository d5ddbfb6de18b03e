"""``attestd policy check|hash|eval``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from attestd.cli.main import main
from conftest import VECTORS

POLICIES = VECTORS / "maa/policies"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_check_ok_and_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "policy", "check", str(POLICIES / "minimal_permit_all.txt"))
    assert code == 0 and "OK" in out
    bad = tmp_path / "bad.txt"
    bad.write_text('version=1.0;\nauthorizationrules {\n  [type=="x" => permit();\n};\n')
    code, _, err = run(capsys, "policy", "check", str(bad))
    assert code == 2
    assert "line 3, column 14" in err
    assert err.rstrip().endswith("^")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("minimal_permit_all.txt", "z0FRjKS0ssQTNur1V6BV8WIrh9M3fzgTo0EfHRvapWU"),
        (
            "default_sgx_openenclave_policy_service_2021.txt",
            "bROrN897ZfWmWY2V0FLUlu3uwk5xatGnKYHn3zBbSlw",
        ),
    ],
)
def test_hash(capsys: pytest.CaptureFixture[str], name: str, expected: str) -> None:
    code, out, _ = run(capsys, "policy", "hash", str(POLICIES / name))
    assert code == 0 and out.strip() == expected


def test_hash_of_a_jws_file_is_the_hash_of_its_policy(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "policy", "hash", str(POLICIES / "docs_unsigned_policy_jws.txt"))
    assert code == 0 and len(out.strip()) == 43


def test_eval_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    claims = tmp_path / "claims.json"
    claims.write_text(json.dumps({"x-ms-sgx-is-debuggable": False, "x-ms-sgx-svn": [1, 2]}))
    policy = tmp_path / "p.txt"
    policy.write_text(
        'version=1.0; authorizationrules{[type=="x-ms-sgx-is-debuggable", value==false] => permit();};'
        ' issuancerules{c:[type=="x-ms-sgx-svn"] => issue(type="svn", value=c.value);};'
    )
    code, out, _ = run(capsys, "policy", "eval", str(policy), "--claims", str(claims), "--json")
    report = json.loads(out)
    assert code == 0
    assert report["authorized"] is True and report["error"] is None
    assert report["issued"] == {"svn": [1, 2]}
    assert len(report["trace"]) == 2


def test_eval_not_authorized_text(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    claims = tmp_path / "claims.json"
    claims.write_text(json.dumps([{"type": "secureBootEnabled", "value": False}]))
    code, out, _ = run(
        capsys,
        "policy",
        "eval",
        str(VECTORS / "maa/maa.signing.tool.sample/policy/permit.secure.boot.txt"),
        "--claims",
        str(claims),
    )
    assert code == 1
    assert out.startswith("NOT AUTHORIZED: No Permit claim was issued")
    assert "secureBootEnabled is false" in out


def test_eval_policy_error_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    claims = tmp_path / "claims.json"
    claims.write_text("{}")
    policy = tmp_path / "p.txt"
    policy.write_text("version=1.0; authorizationrules{=> permit()}")
    code, out, _ = run(capsys, "policy", "eval", str(policy), "--claims", str(claims), "--json")
    assert code == 2
    report = json.loads(out)
    assert report["error"]["code"] == "PolicyParsingError"
    assert (report["error"]["line"], report["error"]["column"]) == (1, 44)


@pytest.mark.parametrize(
    "argv",
    [
        ["policy"],
        ["policy", "check"],
        ["policy", "check", "/nonexistent"],
        ["policy", "eval", str(POLICIES / "minimal_permit_all.txt")],
        ["policy", "eval", str(POLICIES / "minimal_permit_all.txt"), "--claims", "/nonexistent"],
    ],
)
def test_usage_errors(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert "Traceback" not in err


def test_claims_nested_past_the_json_limit_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    claims = tmp_path / "deep.json"
    claims.write_text("[" * 100_000 + "]" * 100_000)
    policy = str(POLICIES / "minimal_permit_all.txt")
    code, _, err = run(capsys, "policy", "eval", policy, "--claims", str(claims))
    assert code == 2
    assert "Traceback" not in err and "--claims" in err
