"""Hypothesis: printed policies parse back to the same AST; arbitrary text only ever raises
PolicyParsingError; evaluation never raises, whatever the claims."""

from __future__ import annotations

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attestd.errors import PolicyParsingError
from attestd.policy import Claim, compile_policy, evaluate
from attestd.policy.ast import (
    Call,
    ClaimAction,
    Condition,
    Const,
    Permit,
    Policy,
    Predicate,
    Ref,
    Rule,
)
from attestd.policy.builtins import FUNCTIONS
from attestd.policy.parser import format_policy, parse_policy

FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

names = st.sampled_from(["c", "c1", "c2", "x", "claim_a"])
texts = st.text(alphabet=string.printable + "éü漢", max_size=20)
consts = st.one_of(
    st.integers(-(2**40), 2**40).map(Const),
    st.booleans().map(Const),
    texts.map(Const),
)


def exprs(bound: list[str]) -> st.SearchStrategy[object]:
    leaves = (
        consts
        if not bound
        else st.one_of(
            consts, st.builds(Ref, st.sampled_from(bound), st.sampled_from(["value", "type"]))
        )
    )
    return st.recursive(
        leaves,
        lambda inner: st.builds(
            lambda name, args: Call(name, tuple(args[: FUNCTIONS[name].arity])),
            st.sampled_from(sorted(k for k in FUNCTIONS if k != "NegateBol")),
            st.lists(inner, min_size=2, max_size=2),
        ),
        max_leaves=4,
    )


def valid_exprs(bound: list[str]) -> st.SearchStrategy[object]:
    """Expressions that pass the checker (typed literal arguments)."""
    strs = texts.map(Const)
    refs = (
        [st.builds(Ref, st.sampled_from(bound), st.sampled_from(["value", "type"]))]
        if bound
        else []
    )
    return st.one_of(
        consts,
        *refs,
        st.builds(lambda a, b: Call("AppendString", (a, b)), strs, strs),
        st.builds(lambda a, b: Call("IsSubsetOf", (a, b)), consts, consts),
        st.builds(lambda a: Call("NegateBool", (a,)), st.booleans().map(Const)),
        st.builds(
            lambda q: Call("JmesPath", (Const('{"a":[1,2],"b":"x"}'), Const(q))),
            st.sampled_from(["a", "b", "a[0]", "length(a)", "c"]),
        ),
        st.builds(
            lambda d: Call("JsonToClaimValue", (Const(d),)),
            st.sampled_from(["1", "true", '"s"', "[1,2]", "null", "1.5", "{}", "[[1]]"]),
        ),
    )


@st.composite
def valid_policies(draw: st.DrawFn) -> Policy:
    """Version 1.2 policies that compile, to exercise evaluation."""

    def rule(section: str) -> Rule:
        bound: list[str] = []
        conds = []
        for _ in range(draw(st.integers(0, 3))):
            binding = draw(st.one_of(st.none(), names.filter(lambda n: n not in bound)))
            preds = []
            for _ in range(draw(st.integers(1, 2))):
                prop = draw(st.sampled_from(["type", "value", "issuer", "valueType"]))
                if prop == "value":
                    op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">="]))
                    if op in ("==", "!="):
                        expr = draw(valid_exprs(list(bound)))
                    else:
                        expr = draw(st.integers(-5, 5).map(Const))
                else:
                    op = draw(st.sampled_from(["==", "!="]))
                    expr = draw(
                        st.sampled_from(["x", "y", "events", "AttestationService", "Integer"]).map(
                            Const
                        )
                    )
                preds.append(Predicate(prop, op, expr))  # type: ignore[arg-type]
            negated = binding is None and draw(st.booleans())
            conds.append(Condition(negated, binding, tuple(preds)))
            if binding:
                bound.append(binding)
        if section == "authorizationrules":
            return Rule(tuple(conds), Permit(draw(st.booleans())))
        kind = draw(st.sampled_from(["add", "issue"]))
        value = draw(valid_exprs(bound))
        ctype = draw(st.sampled_from(["x", "y", "out"]).map(Const))
        return Rule(tuple(conds), ClaimAction(kind, None, ctype, value))  # type: ignore[arg-type]

    return Policy(
        "1.2",
        None,
        tuple(rule("authorizationrules") for _ in range(draw(st.integers(0, 3)))),
        tuple(rule("issuancerules") for _ in range(draw(st.integers(0, 4)))),
    )


@st.composite
def rules(draw: st.DrawFn, section: str) -> Rule:
    bound: list[str] = []
    conds = []
    for _ in range(draw(st.integers(0, 3))):
        binding = draw(st.one_of(st.none(), names.filter(lambda n: n not in bound)))
        preds = tuple(
            Predicate(
                draw(st.sampled_from(["type", "value", "issuer", "valueType"])),
                draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">="])),
                draw(exprs(list(bound))),  # type: ignore[arg-type]
            )
            for _ in range(draw(st.integers(1, 3)))
        )
        negated = binding is None and draw(st.booleans())
        conds.append(Condition(negated, binding, preds))
        if binding:
            bound.append(binding)
    if section == "authorizationrules":
        action: object = Permit(draw(st.booleans()))
    else:
        kind = draw(st.sampled_from(["add", "issue", "issueproperty"]))
        if bound and draw(st.booleans()) and kind != "issueproperty":
            action = ClaimAction(kind, draw(st.sampled_from(bound)), None, None)
        else:
            action = ClaimAction(kind, None, draw(texts.map(Const)), draw(exprs(bound)))
    return Rule(tuple(conds), action)  # type: ignore[arg-type]


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    version = draw(st.sampled_from(["1.0", "1.1", "1.2"]))
    conf = draw(st.one_of(st.none(), st.lists(rules("issuancerules"), max_size=2)))
    return Policy(
        version,
        tuple(conf) if conf is not None else None,
        tuple(draw(st.lists(rules("authorizationrules"), max_size=3))),
        tuple(r)
        if (r := draw(st.one_of(st.none(), st.lists(rules("issuancerules"), max_size=3))))
        is not None
        else None,
    )


@FAST
@given(policies())
def test_print_and_reparse(policy: Policy) -> None:
    assert parse_policy(format_policy(policy)) == policy


@FAST
@given(st.text(max_size=300))
def test_arbitrary_text_raises_only_parsing_errors(text: str) -> None:
    try:
        compile_policy(text)
    except PolicyParsingError as exc:
        assert exc.line >= 1 and exc.column >= 1


TOKENS = [
    "version=1.2;",
    "version=1.0;",
    "authorizationrules",
    "issuancerules",
    "configurationrules",
    "{",
    "}",
    "};",
    "[",
    "]",
    "=>",
    "permit()",
    "deny()",
    ";",
    "&&",
    "!",
    "c:",
    "type",
    "value",
    "issuer",
    "==",
    "!=",
    "<",
    "=",
    '"x"',
    "1",
    "true",
    ",",
    "issue(",
    "add(",
    "type=",
    "value=",
    "c.value",
    ")",
    "JmesPath(",
    "NegateBool(",
    "//c\n",
    "\n",
    " ",
]


@FAST
@given(st.lists(st.sampled_from(TOKENS), max_size=60))
def test_token_soup_raises_only_parsing_errors(tokens: list[str]) -> None:
    try:
        compile_policy("".join(tokens))
    except PolicyParsingError:
        pass


claim_values = st.one_of(
    st.integers(-5, 5),
    st.booleans(),
    st.sampled_from(["", "x", "[1,2]", '{"a":1}', "null", "1.5", '"s"']),
)
claims = st.lists(
    st.builds(
        Claim,
        st.sampled_from(["x", "y", "events", "pcrs", "x-ms-sgx-svn"]),
        claim_values,
        st.sampled_from(["AttestationService", "AttestationPolicy", "CustomClaim"]),
    ),
    max_size=8,
)


@FAST
@given(valid_policies(), claims)
def test_evaluation_never_raises(policy: Policy, incoming: list[Claim]) -> None:
    compiled = compile_policy(format_policy(policy))  # every generated policy compiles
    result = evaluate(compiled, incoming)
    assert result.authorized == (result.reason is None)
    assert len(result.trace) >= len(compiled.rules) or not result.authorized


@st.composite
def copy_policies(draw: st.DrawFn) -> str:
    """Policies made of rules of the shape the evaluator runs directly."""
    rules = []
    for i in range(draw(st.integers(1, 5))):
        src = draw(st.sampled_from(["x", "y", "pcrs", "out0"]))
        kind = draw(st.sampled_from(["add", "issue"]))
        prop = draw(st.sampled_from(["value", "type", "issuer", "valueType"]))
        rules.append(f'c:[type=="{src}"] => {kind}(type="out{i % 2}", value=c.{prop});')
    return "version=1.0; authorizationrules{=> permit();}; issuancerules{" + "".join(rules) + "};"


@FAST
@given(copy_policies(), claims)
def test_direct_rules_match_the_general_path(text: str, incoming: list[Claim]) -> None:
    from dataclasses import replace

    fast = compile_policy(text)
    assert any(r.copy is not None for r in fast.rules)
    slow = replace(fast, rules=tuple(replace(r, copy=None) for r in fast.rules))
    a, b = evaluate(fast, incoming), evaluate(slow, incoming)
    assert (a.authorized, a.issued, a.properties, a.trace) == (
        b.authorized,
        b.issued,
        b.properties,
        b.trace,
    )
    assert a.claims == b.claims
