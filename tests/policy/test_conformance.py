"""Conformance table for the policy engine (``attestd.policy``), written from the MAA spec.

``cases.json`` is the table: one policy (inline text or a vector file) plus incoming claims, and
either the expected outcome (authorized, issued claims, properties, failure reason) or the
expected compile error (kind, line, column). Each case says where its policy and expectation come
from; expectations the spec leaves open say "assumed".

Keys beyond the basic table format:
- ``claims_from``: ``{"file", "pointer"}`` takes the incoming claims from a JSON object inside a
  vector file (``pointer`` is a dotted path), for example the real SGX claims of an offline set.
  They come before the case's own ``claims``.
- ``error.token``: the text found at ``line:column``, so the table's positions are checked
  against the policy text itself.

``attestd.policy`` is imported inside the tests, so the table still collects while the engine is
being written (the cases then fail, they are never skipped).
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
TESTS = HERE.parent
TABLE: dict[str, Any] = json.loads((HERE / "cases.json").read_text(encoding="utf-8"))
CASES: list[dict[str, Any]] = TABLE["cases"]

# The folders whose policy files must each be exercised by at least one case.
POLICY_DIRS = ("vectors/maa/policies", "vectors/maa/maa.signing.tool.sample/policy")
# Files in those folders that hold no policy text (checked below: no AttestationPolicy claim).
NOT_POLICIES = {
    "vectors/maa/policies/docs_add_policy_signer_jws_maa-policyCertificate.txt": (
        "a JWS whose payload is a maa-policyCertificate (policy-signer certificate), not a policy"
    ),
}

DEFAULT_ISSUER = "AttestationService"
NO_PERMIT = "No Permit claim was issued"
DENY = "A Deny claim was issued"
FUNCTIONS = (
    "JmesPath",
    "JsonToClaimValue",
    "IsSubsetOf",
    "AppendString",
    "NegateBool",
    "ContainsOnlyValue",
)
CASE_KEYS = {
    "name",
    "source",
    "policy",
    "policy_file",
    "claims",
    "claims_from",
    "authorized",
    "issued",
    "issued_absent",
    "properties",
    "reason_contains",
    "error",
}
OUTCOME_KEYS = {"issued", "issued_absent", "properties", "reason_contains"}


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _jws_payload(text: str) -> dict[str, Any] | None:
    """The JSON payload if ``text`` is a compact JWS, else None."""
    parts = text.strip().split(".")
    if len(parts) != 3 or not re.fullmatch(r"[A-Za-z0-9_-]+", parts[0] + parts[1]):
        return None
    header = json.loads(_b64url(parts[0]))
    payload: dict[str, Any] = json.loads(_b64url(parts[1]))
    assert isinstance(header, dict) and isinstance(payload, dict)
    return payload


def _read_policy_file(rel: str) -> str:
    """A vector policy file's text. A JWS file (the docs' PolicyFormat=JWT examples) yields the
    policy text carried base64url-encoded in its ``AttestationPolicy`` claim."""
    text = (TESTS / rel).read_text(encoding="utf-8")
    payload = _jws_payload(text)
    if payload is None:
        return text
    return _b64url(payload["AttestationPolicy"]).decode("utf-8")


def policy_text(case: dict[str, Any]) -> str:
    if "policy" in case:
        text: str = case["policy"]
        return text
    return _read_policy_file(case["policy_file"])


def _pointer(doc: Any, pointer: str) -> Any:
    for part in pointer.split("."):
        doc = doc[part]
    return doc


def claim_specs(case: dict[str, Any]) -> list[dict[str, Any]]:
    """The case's incoming claims as ``{"type", "value", "issuer", "valueType"?}`` dicts."""
    specs: list[dict[str, Any]] = []
    source = case.get("claims_from")
    if source is not None:
        doc = json.loads((TESTS / source["file"]).read_text(encoding="utf-8"))
        obj = _pointer(doc, source["pointer"])
        specs += [{"type": k, "value": v} for k, v in obj.items()]
    specs += case["claims"]
    return [{"issuer": DEFAULT_ISSUER, **spec} for spec in specs]


def build_claims(case: dict[str, Any]) -> list[Any]:
    from attestd.policy import Claim

    claims = []
    for spec in claim_specs(case):
        kwargs: dict[str, Any] = {"type": spec["type"], "value": spec["value"]}
        kwargs["issuer"] = spec["issuer"]
        if "valueType" in spec:
            kwargs["value_type"] = spec["valueType"]
        claims.append(Claim(**kwargs))
    return claims


# ---------------------------------------------------------------------------------------------
# Comparison: claim values are typed (true is not 1), lists keep their order
# ---------------------------------------------------------------------------------------------


def same(actual: Any, expected: Any) -> bool:
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(same(a, e) for a, e in zip(actual, expected, strict=True))
        )
    return type(actual) is type(expected) and actual == expected


def _explain(result: Any) -> str:
    trace = "\n".join(f"    {line}" for line in getattr(result, "trace", []))
    return (
        f"authorized={result.authorized!r} reason={result.reason!r}\n"
        f"  issued={result.issued!r}\n  properties={result.properties!r}\n  trace:\n{trace}"
    )


# ---------------------------------------------------------------------------------------------
# The table itself (runs without the engine)
# ---------------------------------------------------------------------------------------------


def test_table_is_well_formed() -> None:
    names = [case["name"] for case in CASES]
    assert len(names) == len(set(names)), "case names must be unique"
    for case in CASES:
        name = case["name"]
        assert set(case) <= CASE_KEYS, (name, set(case) - CASE_KEYS)
        assert isinstance(case["source"], str) and case["source"], name
        assert ("policy" in case) != ("policy_file" in case), name
        assert isinstance(case["claims"], list), name
        for spec in claim_specs(case):
            assert isinstance(spec["type"], str), name
            assert isinstance(spec["value"], bool | int | str), name
        if "error" in case:
            assert "authorized" not in case and not OUTCOME_KEYS & set(case), name
            error = case["error"]
            assert error["kind"] in ("parse", "semantic"), name
            # The position must point at the token the table names.
            lines = policy_text(case).split("\n")
            line = lines[error["line"] - 1]
            assert line[error["column"] - 1 :].startswith(error["token"]), name
        else:
            assert isinstance(case["authorized"], bool), name
            if case["authorized"]:
                assert "reason_contains" not in case, name


def test_table_size() -> None:
    assert len(CASES) >= 80


def test_table_covers_every_policy_file() -> None:
    used = {case["policy_file"] for case in CASES if "policy_file" in case}
    for folder in POLICY_DIRS:
        files = sorted((TESTS / folder).glob("*.txt"))
        assert files, folder
        for path in files:
            rel = path.relative_to(TESTS).as_posix()
            if rel in NOT_POLICIES:
                payload = _jws_payload(path.read_text(encoding="utf-8"))
                assert payload is not None and "AttestationPolicy" not in payload, rel
                continue
            assert rel in used, f"no case runs {rel}"


def _evaluating(text_pred: Any, **outcome: Any) -> bool:
    """True if some non-error case's policy text satisfies ``text_pred`` and its expectations
    contain the given outcome values."""
    for case in CASES:
        if "error" in case:
            continue
        if any(case.get(key) != value for key, value in outcome.items()):
            continue
        if text_pred(policy_text(case), case):
            return True
    return False


def _erroring(kind: str, token: str | None = None, text_pred: Any = None) -> bool:
    for case in CASES:
        error = case.get("error")
        if error is None or error["kind"] != kind:
            continue
        if token is not None and error["token"] != token:
            continue
        if text_pred is not None and not text_pred(policy_text(case), case):
            continue
        return True
    return False


def _has(pattern: str) -> Any:
    regex = re.compile(pattern, re.MULTILINE)
    return lambda text, case: regex.search(text) is not None


def _version(v: str) -> str:
    return r"version\s*=\s*" + re.escape(v) + r"\s*;"


def _issued_list_with(pattern: str) -> Any:
    regex = re.compile(pattern)

    def pred(text: str, case: dict[str, Any]) -> bool:
        issued = case.get("issued", {})
        return regex.search(text) is not None and any(isinstance(v, list) for v in issued.values())

    return pred


def _deny_order(deny_first: bool) -> Any:
    def pred(text: str, case: dict[str, Any]) -> bool:
        d, p = text.find("deny()"), text.find("permit()")
        return d >= 0 and p >= 0 and (d < p) == deny_first

    return pred


def _named(fragment: str) -> Any:
    return lambda text, case: fragment in case["name"]


def _coverage() -> dict[str, bool]:
    checks: dict[str, bool] = {}
    # Operators with each value type they apply to.
    literal = {"Integer": r"-?\d", "Boolean": r"(true|false)\b", "String": '"'}
    for op in ("==", "!=", "<", "<=", ">", ">="):
        for vtype in ("Integer", "Boolean", "String"):
            if op not in ("==", "!=") and vtype != "Integer":
                continue
            pattern = r"\bvalue\s*" + re.escape(op) + r"(?![=>])\s*" + literal[vtype]
            checks[f"op {op} {vtype} (match)"] = _evaluating(_has(pattern), authorized=True)
            checks[f"op {op} {vtype} (no match)"] = _evaluating(
                _has(pattern), authorized=False, reason_contains=NO_PERMIT
            )
    checks["< on String is a semantic error"] = _erroring("semantic", "<", _has(r'value\s*<\s*"'))
    checks["absence ! (1.2)"] = _evaluating(
        lambda t, c: re.search(_version("1.2"), t) is not None and "![" in t
    )
    checks["bound c.value"] = _evaluating(_has(r"\b\w+\s*:\s*\[[^\]]*\].*\b\w+\.value\b"))
    checks["bound c.type"] = _evaluating(_has(r"\b\w+\.type\b"))
    checks["&& (all hold)"] = _evaluating(_has(r"\]\s*&&\s*\w*:?\s*\["), authorized=True)
    checks["&& (one fails)"] = _evaluating(
        _has(r"\]\s*&&\s*\w*:?\s*\["), authorized=False, reason_contains=NO_PERMIT
    )
    for issuer in ("AttestationService", "AttestationPolicy", "CustomClaim"):
        checks[f"issuer=={issuer}"] = _evaluating(_has(r'issuer\s*==\s*"' + issuer + '"'))
    for vtype in ("Integer", "Boolean", "String"):
        checks[f"valueType=={vtype}"] = _evaluating(_has(r'valueType\s*==\s*"' + vtype + '"'))
    checks["add (not issued)"] = _evaluating(
        lambda t, c: re.search(r"\badd\s*\(", t) is not None and bool(c.get("issued_absent"))
    )
    checks["issue"] = _evaluating(_has(r"\bissue\s*\("))
    checks["issueproperty"] = _evaluating(
        lambda t, c: "issueproperty(" in t and bool(c.get("properties"))
    )
    checks["deny before permit"] = _evaluating(
        _deny_order(True), authorized=False, reason_contains=DENY
    )
    checks["deny after permit"] = _evaluating(
        _deny_order(False), authorized=False, reason_contains=DENY
    )
    checks["no permit → reason"] = _evaluating(
        lambda t, c: True, authorized=False, reason_contains=NO_PERMIT
    )
    for fn in FUNCTIONS:
        checks[f"function {fn} (1.2)"] = _evaluating(
            lambda t, c, fn=fn: re.search(_version("1.2"), t) is not None and f"{fn}(" in t
        )
    checks["JsonToClaimValue array → several claims"] = _evaluating(
        _issued_list_with(r"JsonToClaimValue\(")
    )
    checks["JsonToClaimValue null → nothing"] = _evaluating(_named("jsontoclaimvalue_null"))
    checks["JsonToClaimValue fraction → error"] = _evaluating(
        _named("jsontoclaimvalue_fraction"), authorized=False
    )
    checks["JsonToClaimValue object → error"] = _evaluating(
        _named("jsontoclaimvalue_object"), authorized=False
    )
    checks["configurationrules in 1.0 → semantic"] = _erroring(
        "semantic", "configurationrules", _has(_version("1.0"))
    )
    checks["function before 1.2 → semantic"] = _erroring(
        "semantic",
        text_pred=lambda t, c: (
            c["error"]["token"] in FUNCTIONS and re.search(_version("1.2"), t) is None
        ),
    )
    checks["// comments"] = _evaluating(_has(r"^\s*//"))
    checks["tolerated single ="] = _evaluating(_has(r'\[\s*type\s*="'))
    checks["tolerated NegateBol"] = _evaluating(_has(r"\bNegateBol\("))
    checks["tolerated $-names"] = _evaluating(_has(r'type\s*==\s*"\$'))
    checks['tolerated issue("Name", …)'] = _evaluating(_has(r'\bissue\s*\(\s*"'))
    checks["permit() outside authorizationrules → semantic"] = _erroring("semantic", "permit")
    checks["unknown function → semantic"] = _erroring(
        "semantic", text_pred=_named("unknown_function")
    )
    checks["wrong arity → semantic"] = _erroring("semantic", text_pred=_named("arity"))
    for what in ("missing_semicolon", "missing_arrow", "unterminated_string", "unknown_section"):
        checks[f"parse error: {what}"] = _erroring("parse", text_pred=_named(what))
    checks["default SGX policy aliases on real SGX claims"] = any(
        case.get("policy_file", "").endswith("default_sgx_openenclave_policy_service_2021.txt")
        and "maa-offline" in case.get("claims_from", {}).get("file", "")
        and {"is-debuggable", "sgx-mrsigner", "sgx-mrenclave", "product-id", "svn", "tee"}
        <= set(case.get("issued", {}))
        for case in CASES
    )
    for prop in ("required_pcr_mask", "require_valid_aik_cert", "x-ms-sgx-tcbidentifier"):
        checks[f"configuration property {prop}"] = any(
            prop in case.get("properties", {}) and "configurationrules" in policy_text(case)
            for case in CASES
        )
    return checks


def test_table_coverage() -> None:
    missing = [what for what, covered in _coverage().items() if not covered]
    assert not missing, f"the table does not cover: {missing}"


# ---------------------------------------------------------------------------------------------
# The engine against the table
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", [pytest.param(c, id=c["name"]) for c in CASES])
def test_policy_case(case: dict[str, Any]) -> None:
    from attestd.errors import PolicyParsingError, PolicySemanticError
    from attestd.policy import compile_policy, evaluate

    text = policy_text(case)

    if "error" in case:
        expected = case["error"]
        with pytest.raises(PolicyParsingError) as info:
            compile_policy(text)
        exc = info.value
        if expected["kind"] == "semantic":
            assert isinstance(exc, PolicySemanticError), f"expected a semantic error, got {exc!r}"
        else:
            assert not isinstance(exc, PolicySemanticError), f"expected a parse error, got {exc!r}"
        assert (exc.line, exc.column) == (expected["line"], expected["column"]), (
            f"{exc!r} at {exc.line}:{exc.column}, expected {expected['line']}:{expected['column']}"
            f" (token {expected['token']!r})"
        )
        return

    policy = compile_policy(text)
    result = evaluate(policy, build_claims(case))
    why = _explain(result)

    assert isinstance(result.trace, list) and all(isinstance(t, str) for t in result.trace)
    assert result.authorized is case["authorized"], why
    if result.authorized:
        assert result.reason is None, why
    else:
        assert isinstance(result.reason, str) and result.reason, why
    if "reason_contains" in case:
        assert case["reason_contains"] in result.reason, why
    for key, value in case.get("issued", {}).items():
        assert key in result.issued, f"{key!r} not issued\n{why}"
        assert same(result.issued[key], value), f"issued {key!r}: expected {value!r}\n{why}"
    for key in case.get("issued_absent", []):
        assert key not in result.issued, f"{key!r} should not be issued\n{why}"
    for key, value in case.get("properties", {}).items():
        assert key in result.properties, f"property {key!r} missing\n{why}"
        assert same(result.properties[key], value), f"property {key!r}: expected {value!r}\n{why}"


def test_draft_policy_case_is_the_recorded_policy() -> None:
    """The custom-claim draft policy of the C++ SDK recording hashes to the x-ms-policy-hash of
    the token MAA returned for it, so the table runs the very policy MAA evaluated."""
    import base64

    from attestd.policy.document import policy_hash

    case = next(c for c in CASES if c["name"] == "draft_recording_custom_claim")
    recording = json.loads(
        (
            TESTS
            / "vectors/maa/curated/attest_sgx_draft_policy_custom_claim_and_deny_400_2022.json"
        ).read_text()
    )
    body = json.loads(recording["calls"][0]["Response"]["BODY"])
    payload = body["token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert policy_hash(case["policy"]) == claims["x-ms-policy-hash"]
    assert claims["x-ms-policy"] == {"custom-name": claims["custom-name"]}
