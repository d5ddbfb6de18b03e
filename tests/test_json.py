"""attestd._json.parse_json: json.loads with one failure type for malformed documents."""

from __future__ import annotations

import pytest

from attestd._json import parse_json


def test_reads_json_and_passes_options() -> None:
    assert parse_json(b'{"a": [1, 2]}') == {"a": [1, 2]}
    assert parse_json('{"a": 1, "a": 2}', object_pairs_hook=list) == [("a", 1), ("a", 2)]


@pytest.mark.parametrize(
    "text", ["[" * 100_000 + "]" * 100_000, '{"a":' * 50_000 + "1" + "}" * 50_000]
)
def test_nesting_past_the_limit_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="nested too deeply"):
        parse_json(text)


def test_other_malformed_json_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_json(b"{not json")
