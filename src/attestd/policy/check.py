"""Static checks run when a policy is compiled, so that evaluation never meets a policy error:
version features, which actions each section allows, bound identifiers, functions and their
arity, and the literal types of comparisons and function arguments.

Every failure is a :class:`PolicySemanticError` pointing at the offending construct.
"""

from __future__ import annotations

from attestd.errors import PolicySemanticError
from attestd.policy.ast import (
    Call,
    ClaimAction,
    Condition,
    Const,
    Expr,
    Permit,
    Policy,
    Ref,
    Rule,
    Section,
    Span,
)
from attestd.policy.builtins import FUNCTIONS

__all__ = ["PROPERTY_TYPES", "check_policy"]

_ALLOWED: dict[Section, frozenset[str]] = {
    "configurationrules": frozenset({"issueproperty"}),
    "authorizationrules": frozenset({"permit", "deny", "add"}),
    "issuancerules": frozenset({"add", "issue", "issueproperty"}),
}
# Properties MAA documents (§3.4 and §2.2), with the literal type each takes.
PROPERTY_TYPES: dict[str, type] = {
    "required_pcr_mask": int,
    "require_valid_aik_cert": bool,
    "x-ms-sgx-tcbidentifier": str,
    "report_validity_in_minutes": int,
    "omit_x5c": bool,
}
_ORDERING = frozenset({"<", "<=", ">", ">="})


class _Checker:
    def __init__(self, policy: Policy, source: str) -> None:
        self.policy = policy
        self.source = source
        self.v12 = policy.version == "1.2"

    def fail(self, message: str, span: Span) -> PolicySemanticError:
        return PolicySemanticError(message, line=span.line, column=span.column, source=self.source)

    def run(self) -> None:
        p = self.policy
        if p.configuration is not None and p.version == "1.0":
            raise self.fail(
                "configurationrules need policy version 1.1 or later", p.configuration_span
            )
        for section, rules in p.sections():
            for rule in rules:
                self.rule(section, rule)

    def rule(self, section: Section, rule: Rule) -> None:
        a = rule.action
        name = ("permit" if a.allow else "deny") if isinstance(a, Permit) else a.kind
        if name not in _ALLOWED[section]:
            where = {
                "permit": "authorizationrules",
                "deny": "authorizationrules",
                "issue": "issuancerules",
            }.get(name, "configurationrules or issuancerules")
            raise self.fail(f"{name}() belongs in {where}, not in {section}", a.span)
        bound: set[str] = set()
        for cond in rule.conditions:
            self.condition(cond, bound)
            if cond.binding is not None:
                if cond.binding in bound:
                    raise self.fail(f"identifier {cond.binding!r} is bound twice", cond.span)
                if cond.negated:
                    raise self.fail(
                        f"identifier {cond.binding!r} cannot be bound by an absence test",
                        cond.span,
                    )
                bound.add(cond.binding)
        if isinstance(a, ClaimAction):
            if a.claim is not None:
                if a.claim not in bound:
                    raise self.fail(f"claim={a.claim}: {a.claim!r} is not bound", a.span)
                if a.kind == "issueproperty":
                    raise self.fail("issueproperty takes type= and value=", a.span)
            else:
                assert a.type is not None and a.value is not None
                self.expr(a.type, bound)
                self.expr(a.value, bound)
                if isinstance(a.type, Const) and not isinstance(a.type.value, str):
                    raise self.fail("a claim type must be a string", a.type.span)
                if a.kind == "issueproperty" and isinstance(a.type, Const):
                    want = PROPERTY_TYPES.get(str(a.type.value))
                    if want is not None and isinstance(a.value, Const):
                        if type(a.value.value) is not want:
                            raise self.fail(
                                f"property {a.type.value!r} takes a {want.__name__} value",
                                a.value.span,
                            )

    def condition(self, cond: Condition, bound: set[str]) -> None:
        if cond.negated and not self.v12:
            raise self.fail("absence tests ('!') need policy version 1.2", cond.span)
        for pred in cond.predicates:
            self.expr(pred.expr, bound)
            lit = pred.expr if isinstance(pred.expr, Const) else None
            if pred.op in _ORDERING:
                if pred.prop != "value":
                    raise self.fail(f"{pred.op} compares only claim values", pred.op_span)
                if lit is not None and (type(lit.value) is not int):
                    raise self.fail(f"{pred.op} compares only Integer values", pred.op_span)
            if pred.prop != "value" and lit is not None and not isinstance(lit.value, str):
                raise self.fail(f"claim {pred.prop} is compared with a string", lit.span)

    def expr(self, e: Expr, bound: set[str]) -> None:
        if isinstance(e, Ref):
            if e.binding not in bound:
                raise self.fail(f"{e.binding}.{e.prop}: {e.binding!r} is not bound", e.span)
        elif isinstance(e, Call):
            if not self.v12:
                raise self.fail(f"function {e.function}() needs policy version 1.2", e.span)
            fn = FUNCTIONS.get(e.function)
            if fn is None:
                known = ", ".join(sorted(k for k in FUNCTIONS if k != "NegateBol"))
                raise self.fail(f"unknown function {e.function!r} (known: {known})", e.span)
            if len(e.args) != fn.arity:
                raise self.fail(
                    f"{fn.name}() takes {fn.arity} argument{'s' if fn.arity > 1 else ''}, "
                    f"got {len(e.args)}",
                    e.span,
                )
            for arg, want in zip(e.args, fn.param_types, strict=True):
                self.expr(arg, bound)
                if want is not None and isinstance(arg, Const) and type(arg.value) is not want:
                    raise self.fail(f"{fn.name}() expects a {want.__name__} here", arg.span)


def check_policy(policy: Policy, source: str = "") -> None:
    """Raise :class:`PolicySemanticError` for the first semantic error, if any."""
    _Checker(policy, source).run()
