"""The policy language's abstract syntax: frozen dataclasses, each with the source position it
came from (positions do not take part in equality, so a printed and re-parsed policy is equal).

Grammar (maa-compat.md §3.1-3.2; MAA publishes none, this is reconstructed from its docs)::

    policy      := "version" "=" VERSION ";" section*
    section     := ("configurationrules" | "authorizationrules" | "issuancerules") "{" rule* "}" ";"
    rule        := [ condition ( "&&" condition )* ] "=>" action ";"
    condition   := [ "!" ] [ IDENT ":" ] "[" predicate ( "," predicate )* "]"
    predicate   := ("type" | "value" | "issuer" | "valueType") op expr
    op          := "==" | "!=" | "<" | "<=" | ">" | ">="          ("=" is read as "==")
    action      := "permit" "(" ")" | "deny" "(" ")"
                 | ("add" | "issue" | "issueproperty") "(" ( "claim" "=" IDENT
                                                           | "type" "=" expr "," "value" "=" expr ) ")"
    expr        := STRING | INTEGER | "true" | "false" | IDENT "." property | FUNC "(" [expr ("," expr)*] ")"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "Action",
    "ActionKind",
    "Call",
    "ClaimAction",
    "Condition",
    "Const",
    "Expr",
    "Permit",
    "Policy",
    "Predicate",
    "Property",
    "Ref",
    "Rule",
    "Section",
    "Span",
]

Section = Literal["configurationrules", "authorizationrules", "issuancerules"]
ActionKind = Literal["add", "issue", "issueproperty"]
Property = Literal["type", "value", "issuer", "valueType"]


@dataclass(frozen=True, slots=True)
class Span:
    """1-based line and column of the first character of a construct."""

    line: int
    column: int


_NOWHERE = Span(0, 0)


@dataclass(frozen=True, slots=True)
class Const:
    value: int | bool | str
    span: Span = field(default=_NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Ref:
    """``c.value`` / ``c.type`` / ``c.issuer`` / ``c.valueType`` of a bound identifier."""

    binding: str
    prop: Property
    span: Span = field(default=_NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Call:
    function: str
    args: tuple[Expr, ...]
    span: Span = field(default=_NOWHERE, compare=False)


Expr = Const | Ref | Call


@dataclass(frozen=True, slots=True)
class Predicate:
    prop: Property
    op: str
    expr: Expr
    span: Span = field(default=_NOWHERE, compare=False)
    op_span: Span = field(default=_NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Condition:
    negated: bool
    binding: str | None
    predicates: tuple[Predicate, ...]
    span: Span = field(default=_NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Permit:
    allow: bool  # True: permit(), False: deny()
    span: Span = field(default=_NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class ClaimAction:
    kind: ActionKind
    claim: str | None  # issue(claim=c)
    type: Expr | None
    value: Expr | None
    span: Span = field(default=_NOWHERE, compare=False)


Action = Permit | ClaimAction


@dataclass(frozen=True, slots=True)
class Rule:
    conditions: tuple[Condition, ...]
    action: Action
    span: Span = field(default=_NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Policy:
    version: str
    configuration: tuple[Rule, ...] | None
    authorization: tuple[Rule, ...]
    issuance: tuple[Rule, ...] | None
    span: Span = field(default=_NOWHERE, compare=False)
    configuration_span: Span = field(default=_NOWHERE, compare=False)

    def sections(self) -> list[tuple[Section, tuple[Rule, ...]]]:
        out: list[tuple[Section, tuple[Rule, ...]]] = []
        if self.configuration is not None:
            out.append(("configurationrules", self.configuration))
        out.append(("authorizationrules", self.authorization))
        if self.issuance is not None:
            out.append(("issuancerules", self.issuance))
        return out
