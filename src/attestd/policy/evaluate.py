"""Policy evaluation: a pure function of a compiled policy and the incoming claims.

Semantics (maa-compat.md §3.2): sections run in order (configuration, authorization, issuance);
rules run in order and see the claims added before them. A rule's conditions are matched like
ADFS claim rules: an unbound condition needs at least one claim satisfying all its property
conditions, a bound one (``c:[...]``) runs the action once per matching claim (several bound
conditions: once per combination), and an absence test (``![...]``) needs none to match.
Authorization succeeds only if a permit was issued and no deny was, whatever the order.
``add`` feeds the incoming claims, ``issue`` the incoming claims and the token, ``issueproperty``
the property set. Values derived from read-only claims (``pcrs``) cannot be issued.

Nothing here raises on any claim set: an expression that cannot be computed ends the
evaluation, unauthorized, and the trace says why. When authorization fails, the trace names the
deny rule that fired, or each permit rule and the first condition it did not meet, with the
claim values it looked at.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from attestd.policy.ast import Call, ClaimAction, Const, Expr, Permit, Predicate, Ref, Rule
from attestd.policy.builtins import FUNCTIONS, PolicyRuntimeError, Scalar, Value
from attestd.policy.compile import CompiledPolicy, CompiledRule

__all__ = [
    "DENY_MESSAGE",
    "NO_PERMIT_MESSAGE",
    "READ_ONLY_CLAIMS",
    "Claim",
    "Evaluation",
    "claims_from_json",
    "evaluate",
]

DENY_MESSAGE = "A Deny claim was issued, authorization failed."
# An expression that cannot be computed (a fraction for JsonToClaimValue, JmesPath over text that
# is not JSON) fails the evaluation, as MAA answers such policies with PolicyEvaluationError.
NO_PERMIT_MESSAGE = (
    "No Permit claim was issued in the authorizationrules section, authorization failed."
)
READ_ONLY_CLAIMS = frozenset({"pcrs"})
SERVICE, POLICY = "AttestationService", "AttestationPolicy"
_TRACE_VALUES = 4  # claim values shown per claim type in an explanation


def value_type(value: Value) -> str:
    """MAA's valueType names: Integer, Boolean, String."""
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        return "Integer"
    return "String"


@dataclass(frozen=True, slots=True)
class Claim:
    """One claim: a type, a value, who issued it, and its value type (derived when None)."""

    type: str
    value: Scalar
    issuer: str = SERVICE
    value_type: str | None = None

    @property
    def vtype(self) -> str:
        return self.value_type or value_type(self.value)


@dataclass(frozen=True)
class Evaluation:
    authorized: bool
    issued: dict[str, Any]  # type -> value, or a list when several were issued
    properties: dict[str, Any]
    trace: list[str]
    reason: str | None  # MAA's message when not authorized
    claims: tuple[Claim, ...] = field(default=(), repr=False)  # the incoming set at the end


def _show(v: Value) -> str:
    """A value as the trace shows it (JSON-like, long strings shortened)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, tuple):
        return "{" + ", ".join(_show(x) for x in v) + "}"
    if len(v) > 80:
        v = v[:77] + "..."
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _same(a: Scalar, b: Scalar) -> bool:
    return type(a) is type(b) and a == b


@dataclass(slots=True)
class _Env:
    claim: Claim
    matches: list[Claim]


class _Run:
    def __init__(self, policy: CompiledPolicy, claims: list[Claim]) -> None:
        self.policy = policy
        self.claims: list[Claim] = list(claims)
        self.by_type: dict[str, list[Claim]] = {}
        for c in self.claims:
            self.by_type.setdefault(c.type, []).append(c)
        self.issued: list[Claim] = []
        self.properties: dict[str, Any] = {}
        self.trace: list[str] = []
        self.permits: list[CompiledRule] = []
        self.denies: list[CompiledRule] = []
        self.misses: list[tuple[CompiledRule, str]] = []  # authorization rules that did not fire
        self.error: str | None = None  # the first evaluation error; evaluation stops there

    def add(self, claim: Claim) -> None:
        self.claims.append(claim)
        self.by_type.setdefault(claim.type, []).append(claim)

    # -- expressions --------------------------------------------------------------------------

    def eval(self, e: Expr, env: dict[str, _Env], *, whole: bool = False) -> tuple[Value, bool]:
        """(value, read-only). ``whole``: a binding yields the set of all its matching claims."""
        if isinstance(e, Const):
            return e.value, False
        if isinstance(e, Ref):
            bound = env[e.binding]
            if whole and e.prop == "value":
                return tuple(c.value for c in bound.matches), any(
                    c.type in READ_ONLY_CLAIMS for c in bound.matches
                )
            c = bound.claim
            return _prop(c, e.prop), c.type in READ_ONLY_CLAIMS
        return self.call(e, env)

    def call(self, e: Call, env: dict[str, _Env]) -> tuple[Value, bool]:
        fn = FUNCTIONS[e.function]
        args, readonly = [], False
        for i, a in enumerate(e.args):
            v, ro = self.eval(a, env, whole=i in fn.set_params)
            args.append(v)
            readonly |= ro
        return fn.impl(*args), readonly

    # -- conditions ---------------------------------------------------------------------------

    def matches(
        self, preds: tuple[Predicate, ...], env: dict[str, _Env], type_key: str | None
    ) -> list[Claim]:
        pool = self.by_type.get(type_key, ()) if type_key is not None else self.claims
        if not preds:
            return list(pool)
        wants = [
            p.expr.value if isinstance(p.expr, Const) else self.eval(p.expr, env)[0] for p in preds
        ]
        out = []
        for c in pool:
            for p, want in zip(preds, wants, strict=True):
                if not _compare(_prop(c, p.prop), p.op, want):
                    break
            else:
                out.append(c)
        return out

    def copy_rule(self, cr: CompiledRule, key: str, ctype: str, prop: str) -> None:
        """``c:[type=="X"] => issue(type="Y", value=c.value)``: the shape of MAA's default
        policies, run directly (same result as the general path)."""
        found = self.by_type.get(key)
        if not found:
            self.not_fired(cr, self.why(cr, 0))
            return
        a = cr.rule.action
        issue = isinstance(a, ClaimAction) and a.kind == "issue"
        out = []
        seen: set[tuple[str, Scalar]] = set()
        for c in list(found):
            if issue and c.type in READ_ONLY_CLAIMS:
                out.append(f"not issued: {ctype} is derived from a read-only claim")
                continue
            v = _prop(c, prop)
            if len(found) > 1:
                k = (type(v).__name__, v)
                if k in seen:
                    continue
                seen.add(k)
            claim = Claim(ctype, v, POLICY)
            self.claims.append(claim)
            self.by_type.setdefault(ctype, []).append(claim)
            if issue:
                self.issued.append(claim)
            out.append(f"{'issued' if issue else 'added'} {ctype} = {_show(v)}")
        self.trace.append(f"{cr.prefix} fired: {'; '.join(out) if out else 'produced nothing'}")

    def rule(self, cr: CompiledRule) -> None:
        if cr.copy is not None:
            self.copy_rule(cr, *cr.copy)
            return
        rule = cr.rule
        envs: list[dict[str, _Env]] = [{}]
        try:
            for k, cond in enumerate(rule.conditions):
                nxt: list[dict[str, _Env]] = []
                for env in envs:
                    found = self.matches(cr.residual[k], env, cr.type_keys[k])
                    if cond.negated:
                        if not found:
                            nxt.append(env)
                    elif not found:
                        continue
                    elif cond.binding is None:
                        nxt.append(env)
                    else:
                        nxt.extend({**env, cond.binding: _Env(c, found)} for c in found)
                envs = nxt
                if not envs:
                    self.not_fired(cr, self.why(cr, k))
                    return
            self.act(cr, envs)
        except PolicyRuntimeError as exc:
            self.error = f"line {cr.rule.span.line}: {exc}"
            self.trace.append(f"{cr.prefix} failed: {exc}")

    def why(self, cr: CompiledRule, k: int) -> str:
        cond = cr.rule.conditions[k]
        text = cr.condition_texts[k]
        key = cr.type_keys[k]
        if cond.negated:
            return f"condition {k + 1} {text} failed: a matching claim exists"
        if key is not None:
            seen = self.by_type.get(key, [])
            if not seen:
                return f"condition {k + 1} {text} failed: there is no {key!r} claim"
            shown = ", ".join(_show(c.value) for c in seen[:_TRACE_VALUES])
            more = f" and {len(seen) - _TRACE_VALUES} more" if len(seen) > _TRACE_VALUES else ""
            return f"condition {k + 1} {text} failed: {key} is {shown}{more}"
        return f"condition {k + 1} {text} matched no claim"

    def not_fired(self, cr: CompiledRule, why: str) -> None:
        self.trace.append(f"{cr.prefix} did not fire: {why}")
        if cr.section == "authorizationrules":
            self.misses.append((cr, why))

    # -- actions ------------------------------------------------------------------------------

    def act(self, cr: CompiledRule, envs: list[dict[str, _Env]]) -> None:
        a = cr.rule.action
        if isinstance(a, Permit):
            (self.permits if a.allow else self.denies).append(cr)
            self.trace.append(f"{cr.prefix} fired: {'permit' if a.allow else 'deny'}")
            return
        produced: list[tuple[str, Value]] = []
        refused: list[str] = []
        for env in envs:
            if a.claim is not None:
                c = env[a.claim].claim
                if a.kind == "issue" and c.type in READ_ONLY_CLAIMS:
                    refused.append(c.type)
                    continue
                produced.append((c.type, c.value))
                continue
            assert a.type is not None and a.value is not None
            ctype, _ = self.eval(a.type, env)
            value, readonly = self.eval(a.value, env)
            if not isinstance(ctype, str):
                raise PolicyRuntimeError(f"claim type {_show(ctype)} is not a string")
            if readonly and a.kind == "issue":
                refused.append(ctype)
                continue
            produced.append((ctype, value))
        out: list[str] = []
        # The same claim produced by several combinations of bound claims is produced once;
        # a set value (JsonToClaimValue of an array) gives one claim per member, duplicates too.
        seen: set[tuple[str, str, Value]] = set()
        issue = a.kind == "issue"
        verb = "issued" if issue else "added"
        for ctype, value in produced:
            if len(produced) > 1:
                key = (ctype, type(value).__name__, value)
                if key in seen:
                    continue
                seen.add(key)
            if a.kind == "issueproperty":
                if isinstance(value, tuple):
                    raise PolicyRuntimeError(f"property {ctype} needs a single value")
                self.properties[ctype] = value
                # MAA: issueproperty adds the claim to the incoming and the property sets.
                prop_claim = Claim(ctype, value, POLICY)
                self.claims.append(prop_claim)
                self.by_type.setdefault(ctype, []).append(prop_claim)
                out.append(f"property {ctype} = {_show(value)}")
                continue
            for v in value if isinstance(value, tuple) else (value,):
                claim = Claim(ctype, v, POLICY)
                self.claims.append(claim)
                self.by_type.setdefault(ctype, []).append(claim)
                if issue:
                    self.issued.append(claim)
                out.append(f"{verb} {ctype} = {_show(v)}")
        for ctype in refused:
            out.append(f"not issued: {ctype} is derived from a read-only claim")
        self.trace.append(f"{cr.prefix} fired: {'; '.join(out) if out else 'produced nothing'}")


def _prop(c: Claim, prop: str) -> Scalar:
    if prop == "value":
        return c.value
    if prop == "type":
        return c.type
    if prop == "issuer":
        return c.issuer
    return c.vtype


def _compare(have: Scalar, op: str, want: Value) -> bool:
    if isinstance(want, tuple):  # a set on the right: membership
        inside = any(_same(have, w) for w in want)
        return inside if op == "==" else not inside if op == "!=" else False
    if op == "==":
        return _same(have, want)
    if op == "!=":
        return not _same(have, want)
    if type(have) is not int or type(want) is not int:
        return False
    if op == "<":
        return have < want
    if op == "<=":
        return have <= want
    if op == ">":
        return have > want
    return have >= want


def _collect(claims: list[Claim]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for c in claims:
        if c.type in out:
            prev = out[c.type]
            out[c.type] = [*prev, c.value] if isinstance(prev, list) else [prev, c.value]
        else:
            out[c.type] = c.value
    return out


def evaluate(policy: CompiledPolicy, claims: list[Claim] | tuple[Claim, ...]) -> Evaluation:
    """Run ``policy`` over ``claims``. Never raises; an unauthorized result is a result."""
    run = _Run(policy, list(claims))
    for cr in policy.rules:
        if cr.section == "issuancerules" and (run.denies or not run.permits):
            break
        run.rule(cr)
        if run.error is not None:
            break
    authorized = bool(run.permits) and not run.denies and run.error is None
    reason = None
    if run.error is not None:
        reason = f"Policy evaluation failed: {run.error}"
        run.trace.append(f"not authorized: evaluation failed at {run.error}")
    elif run.denies:
        reason = DENY_MESSAGE
        for cr in run.denies:
            run.trace.append(f"not authorized: deny() at line {cr.rule.span.line} fired: {cr.text}")
    elif not run.permits:
        reason = NO_PERMIT_MESSAGE
        candidates = [(cr, why) for cr, why in run.misses if _is_permit(cr.rule)]
        if not candidates:
            run.trace.append("not authorized: the policy has no permit() rule")
        for cr, why in candidates:
            run.trace.append(
                f"not authorized: permit() at line {cr.rule.span.line} did not fire: {why}"
            )
    return Evaluation(
        authorized=authorized,
        issued=_collect(run.issued),
        properties=run.properties,
        trace=run.trace,
        reason=reason,
        claims=tuple(run.claims),
    )


def _is_permit(rule: Rule) -> bool:
    return isinstance(rule.action, Permit) and rule.action.allow


def claims_from_json(data: Any) -> list[Claim]:
    """``{"type": value or [values]}`` (issuer AttestationService) or a list of
    ``{"type", "value", "issuer"?, "valueType"?}`` objects. Raises ``ValueError``."""
    out: list[Claim] = []
    if isinstance(data, dict):
        for ctype, value in data.items():
            for v in value if isinstance(value, list) else [value]:
                out.append(Claim(str(ctype), _scalar(v, ctype)))
        return out
    if isinstance(data, list):
        for i, item in enumerate(data):
            if not isinstance(item, dict) or "type" not in item or "value" not in item:
                raise ValueError(f"claim {i}: expected an object with 'type' and 'value'")
            out.append(
                Claim(
                    str(item["type"]),
                    _scalar(item["value"], item["type"]),
                    str(item.get("issuer", SERVICE)),
                    item.get("valueType"),
                )
            )
        return out
    raise ValueError("claims must be an object or a list of claim objects")


def _scalar(v: Any, ctype: object) -> Scalar:
    if isinstance(v, bool | int | str):
        return v
    if isinstance(v, dict | list):  # JSON claims (events, pcrs) travel as JSON text
        return json.dumps(v, separators=(",", ":"))
    raise ValueError(f"claim {ctype!r}: value {v!r} is not an integer, Boolean or string")
