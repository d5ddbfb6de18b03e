"""Shared test helpers: where the vectors are and how to list the sample folders."""

from __future__ import annotations

from pathlib import Path

VECTORS = Path(__file__).parent / "vectors"
DCAP = VECTORS / "dcap"
MAA_OFFLINE = VECTORS / "maa-offline" / "sets"


def dcap_samples() -> list[Path]:
    """Every canonical sample folder (quote + full bundle + meta.json)."""
    return sorted(p.parent for p in DCAP.glob("*/*/meta.json"))


def maa_offline_sets() -> list[Path]:
    return sorted(p.parent for p in MAA_OFFLINE.glob("*/meta.json"))
