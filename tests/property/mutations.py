"""The byte-level mutations the parser fuzzers apply to real samples."""

from __future__ import annotations

from hypothesis import strategies as st

HOSTILE = [0, 1, 0x10, 0x7F, 0x80, 0xFFFF, 0xFFFFFFFF]


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """One of ``seeds`` with up to four edits: bit flips, byte sets, truncation, insertion,
    deletion, and hostile 2- or 4-byte size / count / algorithm fields in either byte order."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete", "size"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[i] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[i:]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[i : i + draw(st.integers(1, 64))]
        else:
            value = draw(st.sampled_from(HOSTILE))
            size = draw(st.sampled_from([2, 4]))
            value &= (1 << 8 * size) - 1
            big = draw(st.booleans())
            data[i : i + size] = value.to_bytes(size, "big" if big else "little")
    return bytes(data)
