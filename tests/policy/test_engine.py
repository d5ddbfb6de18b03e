"""The policy engine on MAA's real policies and on the behaviours the conformance table does not
spell out: error positions and carets, explanations, legacy names, read-only claims."""

from __future__ import annotations

import json

import pytest

from attestd.errors import PolicyParsingError, PolicySemanticError
from attestd.policy import Claim, compile_policy, evaluate
from attestd.policy.defaults import DEFAULT_POLICIES, PERMIT_ALL, SGX_DEFAULT, default_policy
from conftest import MAA_OFFLINE, VECTORS

POLICIES = VECTORS / "maa/policies"


def sgx_claims() -> list[Claim]:
    meta = json.loads((MAA_OFFLINE / "pysdk_b779_nondebug__2023-05/meta.json").read_text())
    return [Claim(k, v) for k, v in meta["maa"]["derived_expected_claims"]["from_quote"].items()]


def test_default_sgx_policy_issues_maa_aliases() -> None:
    result = evaluate(compile_policy(SGX_DEFAULT), sgx_claims())
    assert result.authorized and result.reason is None
    assert result.issued == {
        "is-debuggable": False,
        "sgx-mrsigner": "2c1a44952ae8207135c6c29b75b8c029372ee94b677e15c20bd42340f10d41aa",
        "sgx-mrenclave": "b779202618becb636768e5d902f28d524222735fafb539ea9ba07c3fc171a1c2",
        "product-id": 1,
        "svn": 1,
        "tee": "sgx",
    }


def test_default_policies_are_the_recorded_texts() -> None:
    assert SGX_DEFAULT == (POLICIES / "default_sgx_openenclave_policy_service_2021.txt").read_text()
    assert default_policy("SgxEnclave") == default_policy("openenclave") == SGX_DEFAULT
    assert default_policy("TPM") is None
    assert DEFAULT_POLICIES["tdxvm"] == PERMIT_ALL
    compile_policy(PERMIT_ALL)
    with pytest.raises(KeyError):
        default_policy("nitro")


def test_legacy_claim_names_select_current_claims() -> None:
    text = (POLICIES / "docs_unsigned_policy_jws.txt").read_text()
    assert text  # the JWS form; its policy text uses $is-debuggable etc.
    legacy = (
        'version= 1.0;authorizationrules{c:[type=="$is-debuggable"] => permit();};'
        'issuancerules{c:[type=="$sgx-mrsigner"] => issue(type="sgx-mrsigner", value=c.value);'
        'c:[type=="$tee"] => issue(type="tee", value=c.value);};'
    )
    result = evaluate(compile_policy(legacy), sgx_claims())
    assert result.authorized
    assert result.issued["tee"] == "sgx"
    assert result.issued["sgx-mrsigner"].startswith("2c1a")


def test_parse_error_position_and_caret() -> None:
    text = 'version=1.0;\nauthorizationrules {\n    [type=="x", value=>1] => permit();\n};'
    with pytest.raises(PolicyParsingError) as err:
        compile_policy(text)
    assert (err.value.line, err.value.column) == (3, 22)
    assert err.value.excerpt.splitlines()[1] == " " * 21 + "^"
    assert "expected" in err.value.message


@pytest.mark.parametrize(
    ("text", "line", "column", "fragment"),
    [
        ("version=1.0; issuancerules{=> permit();};", 1, 14, "authorizationrules"),
        ('version=1.0; authorizationrules{=> issue(type="a", value=1);};', 1, 36, "issuancerules"),
        (
            "version=1.0; authorizationrules{=> permit();}; issuancerules{=> permit();};",
            1,
            65,
            "authorizationrules",
        ),
        (
            'version=1.2; authorizationrules{=> permit();}; issuancerules{=> issue(type="a", value=Nope(1));};',
            1,
            87,
            "unknown function",
        ),
        (
            'version=1.2; authorizationrules{=> permit();}; issuancerules{=> issue(type="a", value=NegateBool(true, false));};',
            1,
            87,
            "takes 1 argument",
        ),
        (
            'version=1.0; configurationrules{=> issueproperty(type="a", value=1);}; authorizationrules{=> permit();};',
            1,
            14,
            "1.1",
        ),
        ('version=1.0; authorizationrules{[type=="a", value<"b"] => permit();};', 1, 50, "Integer"),
        (
            'version=1.0; authorizationrules{=> permit();}; issuancerules{=> issue(type="a", value=c.value);};',
            1,
            87,
            "not bound",
        ),
    ],
)
def test_semantic_errors(text: str, line: int, column: int, fragment: str) -> None:
    with pytest.raises(PolicyParsingError) as err:
        compile_policy(text)
    assert (err.value.line, err.value.column) == (line, column), err.value.message
    assert fragment in err.value.message


def test_semantic_error_class() -> None:
    with pytest.raises(PolicySemanticError):
        compile_policy('version=1.0; authorizationrules{=> issue(type="a", value=1);};')


def test_no_permit_explanation_names_each_permit_rule_and_the_values_seen() -> None:
    text = """version=1.0;
authorizationrules {
    [type=="x-ms-sgx-is-debuggable", value==true] => permit();
    [type=="x-ms-sgx-svn", value>=5] && [type=="x-ms-sgx-product-id", value==1] => permit();
};"""
    result = evaluate(compile_policy(text), sgx_claims())
    assert not result.authorized
    assert result.reason is not None and "No Permit claim was issued" in result.reason
    explanation = [t for t in result.trace if t.startswith("not authorized")]
    assert len(explanation) == 2
    assert "line 3" in explanation[0] and "x-ms-sgx-is-debuggable is false" in explanation[0]
    assert "line 4" in explanation[1] and "condition 1" in explanation[1]
    assert "x-ms-sgx-svn is 1" in explanation[1]


def test_deny_overrides_permit_in_any_order() -> None:
    for rules in ("=> deny(); => permit();", "=> permit(); => deny();"):
        result = evaluate(compile_policy(f"version=1.0; authorizationrules{{{rules}}};"), [])
        assert not result.authorized
        assert result.reason is not None and "A Deny claim was issued" in result.reason
        assert any("deny() at line 1 fired" in t for t in result.trace)


def test_add_feeds_later_rules_but_is_not_issued() -> None:
    text = """version=1.0;
authorizationrules { => permit(); };
issuancerules {
    [type=="x-ms-sgx-svn", value>=1] => add(type="good-svn", value=true);
    c:[type=="good-svn"] => issue(type="verdict", value=c.value);
};"""
    result = evaluate(compile_policy(text), sgx_claims())
    assert result.issued == {"verdict": True}
    assert any(c.type == "good-svn" and c.issuer == "AttestationPolicy" for c in result.claims)


def test_read_only_claims_cannot_be_issued() -> None:
    text = """version=1.2;
authorizationrules { => permit(); };
issuancerules {
    c:[type=="pcrs"] => issue(type="copy", value=c.value);
    c:[type=="pcrs"] => issue(type="query", value=JmesPath(c.value, "PCRs[0].Index"));
    c:[type=="pcrs"] => add(type="kept", value=c.value);
};"""
    pcrs = json.dumps({"PCRs": [{"Index": 0, "Digests": {"SHA256": "AA"}}]})
    result = evaluate(compile_policy(text), [Claim("pcrs", pcrs)])
    assert result.issued == {}
    assert sum("read-only" in t for t in result.trace) == 2
    assert any(c.type == "kept" for c in result.claims)


def test_functions() -> None:
    text = """version=1.2;
authorizationrules { => permit(); };
issuancerules {
    c:[type=="doc"] => issue(type="ids", value=JsonToClaimValue(JmesPath(c.value, "ids")));
    c:[type=="doc"] => issue(type="ok", value=JsonToClaimValue(JmesPath(c.value, "equals_ignore_case(name, 'ABC')")));
    c:[type=="doc"] => issue(type="nothing", value=JsonToClaimValue(JmesPath(c.value, "missing")));
    c1:[type=="a"] && c2:[type=="b"] => issue(type="subset", value=IsSubsetOf(c1.value, c2.value));
    c:[type=="a"] => issue(type="only1", value=ContainsOnlyValue(c.value, 1));
    => issue(type="s", value=AppendString("x-", "y"));
    => issue(type="n", value=NegateBol(false));
};"""
    claims = [
        Claim("doc", '{"ids": [3, 4], "name": "abc", "f": 1.5}'),
        Claim("a", 1),
        Claim("b", 1),
        Claim("b", 2),
    ]
    result = evaluate(compile_policy(text), claims)
    assert result.issued["ids"] == [3, 4]
    assert result.issued["ok"] is True
    assert "nothing" not in result.issued
    assert result.issued["subset"] is True
    assert result.issued["only1"] is True
    assert result.issued["s"] == "x-y" and result.issued["n"] is True
    frac = text.replace('"nothing"', '"frac"').replace('"missing"', '"f"')
    failed = evaluate(compile_policy(frac), claims)
    assert not failed.authorized  # an evaluation error fails closed
    assert failed.reason is not None and "not an integer" in failed.reason
    assert "ids" in failed.issued and "frac" not in failed.issued


def test_configuration_rules_set_properties() -> None:
    text = """version=1.1;
configurationrules {
    => issueproperty(type="required_pcr_mask", value=0xFFFF);
    => issueproperty(type="require_valid_aik_cert", value=false);
};
authorizationrules { => permit(); };"""
    result = evaluate(compile_policy(text), [])
    assert result.properties == {"required_pcr_mask": 0xFFFF, "require_valid_aik_cert": False}
    with pytest.raises(PolicySemanticError):
        compile_policy(text.replace("value=false", 'value="no"'))


def test_tolerated_documentation_forms() -> None:
    text = 'version=1.2; authorizationrules{[type="a", value=1] => permit();}; issuancerules{=> issue("n", value=1);};'
    result = evaluate(compile_policy(text), [Claim("a", 1)])
    assert result.authorized and result.issued == {"n": 1}


def test_each_real_policy_file_compiles() -> None:
    files = list(POLICIES.glob("*.txt")) + list(
        (VECTORS / "maa/maa.signing.tool.sample/policy").glob("*.txt")
    )
    texts = [p.read_text() for p in files if not p.read_text().startswith("ey")]
    assert len(texts) >= 5
    for text in texts:
        compile_policy(text)
