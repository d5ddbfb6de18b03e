"""A bounds-checked little-endian cursor over bytes.

Every read names its field; running past the end raises :class:`MalformedEvidence` with the
structure, the field and the offset, never ``IndexError`` or a silently short slice.
"""

from __future__ import annotations

from attestd.errors import MalformedEvidence

__all__ = ["Reader"]


class Reader:
    """Reads fields in order from ``data[start:end]``; offsets reported are absolute."""

    __slots__ = ("_data", "_end", "offset", "structure")

    def __init__(self, data: bytes, structure: str, *, start: int = 0, end: int | None = None):
        self._data = data
        self.structure = structure
        self.offset = start
        self._end = len(data) if end is None else end

    @property
    def remaining(self) -> int:
        return self._end - self.offset

    def fail(self, field: str, reason: str, *, offset: int | None = None) -> MalformedEvidence:
        return MalformedEvidence(
            self.structure, field, self.offset if offset is None else offset, reason
        )

    def take(self, n: int, field: str) -> bytes:
        if n < 0 or self.offset + n > self._end:
            raise self.fail(field, f"needs {n} bytes, {self.remaining} left")
        out = self._data[self.offset : self.offset + n]
        self.offset += n
        return out

    def u16(self, field: str) -> int:
        return int.from_bytes(self.take(2, field), "little")

    def u32(self, field: str) -> int:
        return int.from_bytes(self.take(4, field), "little")

    def sub(self, n: int, structure: str, field: str) -> Reader:
        """A reader over the next ``n`` bytes (which this reader skips)."""
        if n < 0 or self.offset + n > self._end:
            raise self.fail(field, f"declares {n} bytes, {self.remaining} left")
        r = Reader(self._data, structure, start=self.offset, end=self.offset + n)
        self.offset += n
        return r

    def rest(self, field: str) -> bytes:
        return self.take(self.remaining, field)

    def expect_end(self, field: str) -> None:
        if self.remaining:
            raise self.fail(field, f"{self.remaining} unexpected trailing bytes")
