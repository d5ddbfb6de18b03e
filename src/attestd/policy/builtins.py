"""The version 1.2 policy functions (maa-compat.md §3.3, MAA "claim rule functions"), with
declared signatures so the checker can reject bad calls when a policy is compiled.

Runtime values are ``int``, ``bool``, ``str``, or a ``tuple`` of those: a *set*, which becomes
several claims when added or issued. Functions raise :class:`PolicyRuntimeError` on bad input;
the evaluator turns that into a rule that did not fire, with the reason in the trace.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jmespath
import jmespath.exceptions
import jmespath.functions

from attestd._json import parse_json

__all__ = ["FUNCTIONS", "Function", "PolicyRuntimeError", "Value"]

Scalar = int | bool | str
Value = Scalar | tuple[Scalar, ...]


class PolicyRuntimeError(Exception):
    """A function or comparison that cannot be computed for these claims."""


class _Functions(jmespath.functions.Functions):  # type: ignore[misc]
    """JMESPath extensions used in MAA's sample policies."""

    @jmespath.functions.signature({"types": ["string"]}, {"types": ["string"]})  # type: ignore[untyped-decorator]
    def _func_equals_ignore_case(self, a: str, b: str) -> bool:
        return a.lower() == b.lower()


_JMES_OPTIONS = jmespath.Options(custom_functions=_Functions())
_QUERIES: dict[str, Any] = {}
_DOCUMENTS: dict[str, Any] = {}  # parsed JSON claim values (a 50-rule TPM policy reads one log)


def _json(document: str) -> Any:
    """json.loads, remembered for the few large documents (event logs) policies query."""
    data = _DOCUMENTS.get(document)
    if data is None:
        data = parse_json(document)
        if len(document) > 4096:
            if len(_DOCUMENTS) >= 16:
                _DOCUMENTS.clear()
            _DOCUMENTS[document] = data
    return data


def _jmespath(document: Value, query: Value) -> Value:
    if not isinstance(document, str) or not isinstance(query, str):
        raise PolicyRuntimeError("JmesPath(json, query) takes two strings")
    try:
        compiled = _QUERIES.get(query)
        if compiled is None:
            compiled = jmespath.compile(query)
            if len(_QUERIES) < 1024:
                _QUERIES[query] = compiled
        result = compiled.search(_json(document), options=_JMES_OPTIONS)
    except (ValueError, jmespath.exceptions.JMESPathError, RecursionError) as exc:
        raise PolicyRuntimeError(f"JmesPath: {exc}") from exc
    return json.dumps(result, separators=(",", ":"), sort_keys=False)


def _json_to_claim_value(document: Value) -> Value:
    """A number becomes an int (a fraction is an error); bool and string map directly; an array
    of primitives becomes a set; null becomes the empty set (adding it does nothing); an object
    is an error."""
    if not isinstance(document, str):
        raise PolicyRuntimeError("JsonToClaimValue(json) takes a string")
    try:
        data = parse_json(document)
    except ValueError as exc:
        raise PolicyRuntimeError(f"JsonToClaimValue: not JSON ({exc})") from exc
    return _to_value(data)


def _to_value(data: Any, *, nested: bool = False) -> Value:
    if data is None:
        return ()
    if isinstance(data, bool | str):
        return data
    if isinstance(data, int):
        return data
    if isinstance(data, float):
        if data.is_integer():
            return int(data)
        raise PolicyRuntimeError(f"JsonToClaimValue: {data} is not an integer")
    if isinstance(data, list) and not nested:
        out: list[Scalar] = []
        for item in data:
            v = _to_value(item, nested=True)
            if isinstance(v, tuple):
                raise PolicyRuntimeError("JsonToClaimValue: an array may hold only primitives")
            out.append(v)
        return tuple(out)
    raise PolicyRuntimeError("JsonToClaimValue: objects and nested arrays have no claim value")


def _as_set(v: Value) -> tuple[Scalar, ...]:
    return v if isinstance(v, tuple) else (v,)


def _same(a: Scalar, b: Scalar) -> bool:
    return type(a) is type(b) and a == b


def _is_subset_of(a: Value, b: Value) -> Value:
    sb = _as_set(b)
    return all(any(_same(x, y) for y in sb) for x in _as_set(a))


def _append_string(a: Value, b: Value) -> Value:
    if not isinstance(a, str) or not isinstance(b, str):
        raise PolicyRuntimeError("AppendString(a, b) takes two strings")
    return a + b


def _negate_bool(a: Value) -> Value:
    if not isinstance(a, bool):
        raise PolicyRuntimeError("NegateBool(b) takes a Boolean")
    return not a


def _contains_only_value(a: Value, v: Value) -> Value:
    if isinstance(v, tuple):
        raise PolicyRuntimeError("ContainsOnlyValue(set, value): the value must be a single value")
    members = _as_set(a)
    return bool(members) and all(_same(m, v) for m in members)


@dataclass(frozen=True, slots=True)
class Function:
    name: str
    arity: int
    param_types: tuple[type | None, ...]  # expected literal types (None: any); checked statically
    set_params: frozenset[int]  # arguments that take a whole set (all values of a binding)
    impl: Callable[..., Value]


FUNCTIONS: dict[str, Function] = {
    f.name: f
    for f in (
        Function("JmesPath", 2, (str, str), frozenset(), _jmespath),
        Function("JsonToClaimValue", 1, (str,), frozenset(), _json_to_claim_value),
        Function("IsSubsetOf", 2, (None, None), frozenset({0, 1}), _is_subset_of),
        Function("AppendString", 2, (str, str), frozenset(), _append_string),
        Function("NegateBool", 1, (bool,), frozenset(), _negate_bool),
        Function("ContainsOnlyValue", 2, (None, None), frozenset({0}), _contains_only_value),
    )
}
# MAA's own documentation spells it so in an example (maa-compat.md §3.2): accepted as an alias.
FUNCTIONS["NegateBol"] = FUNCTIONS["NegateBool"]
