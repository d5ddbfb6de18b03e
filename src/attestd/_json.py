"""JSON from outside the process, with one failure type for every malformed document."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["parse_json"]


def parse_json(data: str | bytes | bytearray, **kwargs: Any) -> Any:
    """:func:`json.loads`, except that a document nested past the decoder's recursion limit
    raises ``ValueError``, as any other malformed JSON does (``json`` raises ``RecursionError``
    there, which every caller would otherwise have to catch as well)."""
    try:
        return json.loads(data, **kwargs)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
