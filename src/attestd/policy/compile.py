"""Compile once, evaluate per request: parse, check, and precompute what evaluation needs (the
claim type each condition selects on, and the rule texts the trace quotes)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from attestd.policy.ast import ClaimAction, Condition, Const, Policy, Predicate, Ref, Rule, Section
from attestd.policy.check import check_policy
from attestd.policy.parser import format_rule, parse_policy

__all__ = ["LEGACY_CLAIM_NAMES", "CompiledPolicy", "CompiledRule", "compile_policy"]


@dataclass(frozen=True, slots=True)
class CompiledRule:
    section: Section
    rule: Rule
    text: str  # canonical text of the rule, for the trace
    type_keys: tuple[str | None, ...]  # per condition: the claim type it selects on, if literal
    condition_texts: tuple[str, ...]
    # per condition: the property conditions left once candidates are selected by type_keys
    residual: tuple[tuple[Predicate, ...], ...]
    prefix: str  # "line N: <rule text>" for the trace
    # c:[type=="X"] => add|issue(type="Y", value=c.<prop>): (X, Y, prop), run without envs
    copy: tuple[str, str, str] | None = None


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    text: str
    ast: Policy
    rules: tuple[CompiledRule, ...]

    @property
    def version(self) -> str:
        return self.ast.version


# Legacy SGX claim names, still accepted in conditions (maa-compat.md §3.2): they select the
# claims MAA now names x-ms-sgx-*.
LEGACY_CLAIM_NAMES = {
    "$is-debuggable": "x-ms-sgx-is-debuggable",
    "$sgx-mrsigner": "x-ms-sgx-mrsigner",
    "$sgx-mrenclave": "x-ms-sgx-mrenclave",
    "$product-id": "x-ms-sgx-product-id",
    "$svn": "x-ms-sgx-svn",
    "$tee": "x-ms-attestation-type",
}


def _modern(rule: Rule) -> Rule:
    """The rule with legacy claim names in ``type==`` conditions replaced by current ones."""
    conds = []
    for c in rule.conditions:
        preds = tuple(
            replace(p, expr=replace(p.expr, value=LEGACY_CLAIM_NAMES[p.expr.value]))
            if p.prop == "type"
            and isinstance(p.expr, Const)
            and isinstance(p.expr.value, str)
            and p.expr.value in LEGACY_CLAIM_NAMES
            else p
            for p in c.predicates
        )
        conds.append(replace(c, predicates=preds))
    return replace(rule, conditions=tuple(conds))


def _copy_shape(rule: Rule, keys: tuple[str | None, ...]) -> tuple[str, str, str] | None:
    a = rule.action
    if (
        len(rule.conditions) != 1
        or keys[0] is None
        or rule.conditions[0].negated
        or len(rule.conditions[0].predicates) != 1
        or not isinstance(a, ClaimAction)
        or a.kind == "issueproperty"
        or a.claim is not None
        or not isinstance(a.type, Const)
        or not isinstance(a.type.value, str)
        or not isinstance(a.value, Ref)
        or a.value.binding != rule.conditions[0].binding
    ):
        return None
    return keys[0], a.type.value, a.value.prop


def _type_key(cond: Condition) -> str | None:
    for p in cond.predicates:
        if p.prop == "type" and p.op == "==" and isinstance(p.expr, Const):
            if isinstance(p.expr.value, str):
                return p.expr.value
    return None


def _residual(cond: Condition, key: str | None) -> tuple[Predicate, ...]:
    out = list(cond.predicates)
    for i, p in enumerate(out):
        if key is not None and p.prop == "type" and p.op == "==" and isinstance(p.expr, Const):
            if p.expr.value == key:
                del out[i]
                break
    return tuple(out)


def _condition_text(rule_text: str, rule: Rule, k: int) -> str:
    """The text of condition ``k`` as printed in the canonical rule text."""
    head = rule_text.split(" => ", 1)[0] if rule.conditions else ""
    parts = head.split(" && ")
    return parts[k] if k < len(parts) and len(parts) == len(rule.conditions) else f"#{k + 1}"


def compile_policy(text: str) -> CompiledPolicy:
    """Parse and check ``text``; raises :class:`~attestd.errors.PolicyParsingError` or
    :class:`~attestd.errors.PolicySemanticError` with line and column."""
    ast = parse_policy(text)
    check_policy(ast, text)
    rules = []
    for section, section_rules in ast.sections():
        for rule in section_rules:
            rt = format_rule(rule)
            rule = _modern(rule)
            keys = tuple(_type_key(c) for c in rule.conditions)
            rules.append(
                CompiledRule(
                    section,
                    rule,
                    rt,
                    keys,
                    tuple(_condition_text(rt, rule, k) for k in range(len(rule.conditions))),
                    tuple(_residual(c, k) for c, k in zip(rule.conditions, keys, strict=True)),
                    f"line {rule.span.line}: {rt}",
                    _copy_shape(rule, keys),
                )
            )
    return CompiledPolicy(text, ast, tuple(rules))
