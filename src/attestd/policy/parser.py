"""Lexer and recursive-descent parser for MAA's claim-rule policy language (grammar in
:mod:`attestd.policy.ast`). Every error is a :class:`PolicyParsingError` with the line and column
of the offending token and a caret excerpt; nothing else escapes, whatever the input.

Tolerated, because MAA's own documentation contains them (maa-compat.md §3.2): ``=`` for ``==``
in property conditions, ``issue("name", value=...)`` with a positional type, and ``NegateBol``
(resolved to ``NegateBool`` by the checker).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NoReturn, cast

from attestd.errors import PolicyParsingError
from attestd.policy.ast import (
    Action,
    ActionKind,
    Call,
    ClaimAction,
    Condition,
    Const,
    Expr,
    Permit,
    Policy,
    Predicate,
    Property,
    Ref,
    Rule,
    Span,
)

__all__ = ["MAX_POLICY_SIZE", "format_policy", "parse_policy"]

MAX_POLICY_SIZE = 1 << 20  # 1 MiB of policy text is far beyond any real policy

_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r\n\f\v\ufeff]+)
  | (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<version>\d+\.\d+)
  | (?P<int>0[xX][0-9a-fA-F]+|\d+)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<op>=>|==|!=|<=|>=|&&|[<>=!;:,.{}\[\]()-])
    """,
    re.VERBOSE | re.DOTALL,
)
_PROPERTIES = ("type", "value", "issuer", "valueType")
_SECTIONS = ("configurationrules", "authorizationrules", "issuancerules")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "n": "\n", "t": "\t", "r": "\r"}


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # ident, string, int, version, op, eof
    text: str
    span: Span
    value: object = None


def _lex(source: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos, line, line_start = 0, 1, 0
    n = len(source)
    while pos < n:
        m = _TOKEN.match(source, pos)
        span = Span(line, pos - line_start + 1)
        if m is None:
            ch = source[pos]
            what = "unterminated string" if ch == '"' else f"unexpected character {ch!r}"
            if source.startswith("/*", pos):
                what = "unterminated comment"
            raise PolicyParsingError(what, line=span.line, column=span.column, source=source)
        kind = cast(str, m.lastgroup)
        text = m.group()
        if kind == "string":
            value: object = _unescape(text, span, source)
        elif kind == "int":
            value = int(text, 16) if text[:2] in ("0x", "0X") else int(text)
        else:
            value = None
        if kind not in ("ws", "comment"):
            toks.append(_Tok(kind, text, span, value))
        newlines = text.count("\n")
        if newlines:
            line += newlines
            line_start = pos + text.rindex("\n") + 1
        pos = m.end()
    toks.append(_Tok("eof", "", Span(line, pos - line_start + 1)))
    return toks


def _unescape(text: str, span: Span, source: str) -> str:
    body = text[1:-1]
    if "\\" not in body:
        return body
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            esc = body[i + 1]
            if esc not in _ESCAPES:
                raise PolicyParsingError(
                    f"unknown escape \\{esc} in string",
                    line=span.line,
                    column=span.column + i + 1,
                    source=source,
                )
            out.append(_ESCAPES[esc])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.toks = _lex(source)
        self.i = 0

    # -- token helpers ------------------------------------------------------------------------

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def peek(self, k: int = 1) -> _Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def fail(self, expected: str, tok: _Tok | None = None) -> NoReturn:
        tok = tok or self.tok
        found = "end of policy" if tok.kind == "eof" else repr(tok.text)
        raise PolicyParsingError(
            f"expected {expected}, found {found}",
            line=tok.span.line,
            column=tok.span.column,
            source=self.source,
        )

    def at(self, text: str) -> bool:
        t = self.tok
        return t.kind in ("op", "ident") and t.text == text

    def eat(self, text: str, expected: str | None = None) -> _Tok:
        if not self.at(text):
            self.fail(expected or repr(text))
        tok = self.tok
        self.i += 1
        return tok

    def eat_kind(self, kind: str, expected: str) -> _Tok:
        tok = self.tok
        if tok.kind != kind:
            self.fail(expected)
        self.i += 1
        return tok

    # -- grammar ------------------------------------------------------------------------------

    def policy(self) -> Policy:
        start = self.tok.span
        self.eat("version", "'version=' at the start of the policy")
        self.eat("=")
        version_tok = self.tok
        if version_tok.kind != "version" or version_tok.text not in ("1.0", "1.1", "1.2"):
            self.fail("a policy version (1.0, 1.1 or 1.2)")
        self.i += 1
        self.eat(";")
        first = self.tok  # where a missing authorizationrules section is reported
        found: dict[str, tuple[Rule, ...]] = {}
        spans: dict[str, Span] = {}
        order = 0
        while self.tok.kind != "eof":
            tok = self.tok
            if tok.kind != "ident" or tok.text.lower() not in _SECTIONS:
                self.fail("a section (configurationrules, authorizationrules, issuancerules)")
            name = tok.text.lower()
            rank = _SECTIONS.index(name)
            if name in found or rank < order:
                self.fail(f"sections in the order {', '.join(_SECTIONS)}, each once")
            order = rank
            self.i += 1
            self.eat("{")
            rules = []
            while not self.at("}"):
                if self.tok.kind == "eof":
                    self.fail("'}' closing the section")
                rules.append(self.rule())
            self.eat("}")
            self.eat(";", "';' after '}' ending the section")
            found[name] = tuple(rules)
            spans[name] = tok.span
        if "authorizationrules" not in found:
            tok = first
            raise PolicyParsingError(
                "the authorizationrules section is missing",
                line=tok.span.line,
                column=tok.span.column,
                source=self.source,
            )
        return Policy(
            version_tok.text,
            found.get("configurationrules"),
            found["authorizationrules"],
            found.get("issuancerules"),
            start,
            spans.get("configurationrules", start),
        )

    def rule(self) -> Rule:
        start = self.tok.span
        conditions: list[Condition] = []
        if not self.at("=>"):
            conditions.append(self.condition())
            while self.at("&&"):
                self.i += 1
                conditions.append(self.condition())
        self.eat("=>", "'=>' or '&&'" if conditions else "a condition or '=>'")
        action = self.action()
        self.eat(";", "';' ending the rule")
        return Rule(tuple(conditions), action, start)

    def condition(self) -> Condition:
        start = self.tok.span
        negated = False
        if self.at("!"):
            negated = True
            self.i += 1
        binding = None
        if self.tok.kind == "ident" and self.peek().text == ":":
            binding = self.tok.text
            self.i += 2
        self.eat("[", "'[' starting a condition")
        preds = [self.predicate()]
        while self.at(","):
            self.i += 1
            preds.append(self.predicate())
        self.eat("]", "',' or ']'")
        return Condition(negated, binding, tuple(preds), start)

    def predicate(self) -> Predicate:
        tok = self.tok
        if tok.kind != "ident" or tok.text not in _PROPERTIES:
            self.fail("a claim property (type, value, issuer, valueType)")
        self.i += 1
        op_tok = self.tok
        if op_tok.kind != "op" or op_tok.text not in ("==", "!=", "<", "<=", ">", ">=", "="):
            self.fail("a comparison (==, !=, <, <=, >, >=)")
        self.i += 1
        op = "==" if op_tok.text == "=" else op_tok.text
        return Predicate(cast(Property, tok.text), op, self.expr(), tok.span, op_tok.span)

    def action(self) -> Action:
        tok = self.tok
        name = tok.text if tok.kind == "ident" else ""
        if name in ("permit", "deny"):
            self.i += 1
            self.eat("(")
            self.eat(")", "')': permit() and deny() take no arguments")
            return Permit(name == "permit", tok.span)
        if name not in ("add", "issue", "issueproperty"):
            self.fail("an action (permit, deny, add, issue, issueproperty)")
        self.i += 1
        self.eat("(")
        kind = cast(ActionKind, name)
        if self.at("claim") and self.peek().text == "=":
            self.i += 2
            ident = self.eat_kind("ident", "a bound identifier after 'claim='")
            self.eat(")", "')'")
            return ClaimAction(kind, ident.text, None, None, tok.span)
        if self.tok.kind == "string":  # tolerated: issue("name", value=...)
            type_expr: Expr = self.expr()
        else:
            self.eat("type", "'type=' or 'claim='")
            self.eat("=")
            type_expr = self.expr()
        self.eat(",", "',' then 'value='")
        self.eat("value", "'value='")
        self.eat("=")
        value_expr = self.expr()
        self.eat(")", "')'")
        return ClaimAction(kind, None, type_expr, value_expr, tok.span)

    def expr(self) -> Expr:
        tok = self.tok
        if tok.kind == "string":
            self.i += 1
            return Const(cast(str, tok.value), tok.span)
        if tok.kind == "int":
            self.i += 1
            return Const(cast(int, tok.value), tok.span)
        if tok.kind == "op" and tok.text == "-" and self.peek().kind == "int":
            self.i += 2
            return Const(-cast(int, self.toks[self.i - 1].value), tok.span)
        if tok.kind == "ident":
            if tok.text in ("true", "false"):
                self.i += 1
                return Const(tok.text == "true", tok.span)
            if self.peek().text == ".":
                self.i += 2
                prop = self.tok
                if prop.kind != "ident" or prop.text not in _PROPERTIES:
                    self.fail("a claim property (value, type, issuer, valueType) after '.'")
                self.i += 1
                return Ref(tok.text, cast(Property, prop.text), tok.span)
            if self.peek().text == "(":
                self.i += 2
                args: list[Expr] = []
                if not self.at(")"):
                    args.append(self.expr())
                    while self.at(","):
                        self.i += 1
                        args.append(self.expr())
                self.eat(")", "',' or ')'")
                return Call(tok.text, tuple(args), tok.span)
        self.fail("a value (string, integer, true, false, c.value or a function call)")


def parse_policy(source: str) -> Policy:
    """Parse policy text into its AST; raises :class:`PolicyParsingError` (never anything else)."""
    if len(source) > MAX_POLICY_SIZE:
        raise PolicyParsingError(
            f"policy is {len(source)} characters, more than {MAX_POLICY_SIZE}", line=1, column=1
        )
    try:
        return _Parser(source).policy()
    except RecursionError as exc:  # deeply nested function calls
        raise PolicyParsingError("expression nested too deeply", line=1, column=1) from exc


# -- printing (canonical text; parses back to an equal AST) ------------------------------------


def _q(s: str) -> str:
    return (
        '"'
        + s.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\t", "\\t")
        .replace("\r", "\\r")
        + '"'
    )


def format_expr(e: Expr) -> str:
    if isinstance(e, Const):
        if isinstance(e.value, bool):
            return "true" if e.value else "false"
        if isinstance(e.value, int):
            return str(e.value)
        return _q(e.value)
    if isinstance(e, Ref):
        return f"{e.binding}.{e.prop}"
    return f"{e.function}({', '.join(format_expr(a) for a in e.args)})"


def format_rule(r: Rule) -> str:
    conds = " && ".join(
        ("!" if c.negated else "")
        + (f"{c.binding}:" if c.binding else "")
        + "["
        + ", ".join(f"{p.prop}{p.op}{format_expr(p.expr)}" for p in c.predicates)
        + "]"
        for c in r.conditions
    )
    a = r.action
    if isinstance(a, Permit):
        action = "permit()" if a.allow else "deny()"
    elif a.claim is not None:
        action = f"{a.kind}(claim={a.claim})"
    else:
        assert a.type is not None and a.value is not None
        action = f"{a.kind}(type={format_expr(a.type)}, value={format_expr(a.value)})"
    return f"{conds + ' ' if conds else ''}=> {action};"


def format_policy(p: Policy) -> str:
    out = [f"version={p.version};"]
    for name, rules in p.sections():
        out.append(f"{name}")
        out.append("{")
        out.extend(f"    {format_rule(r)}" for r in rules)
        out.append("};")
    return "\n".join(out) + "\n"
