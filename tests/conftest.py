"""Shared test helpers: where the vectors are and how to list the sample folders."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import settings

VECTORS = Path(__file__).parent / "vectors"
DCAP = VECTORS / "dcap"
MAA_OFFLINE = VECTORS / "maa-offline" / "sets"


def dcap_samples() -> list[Path]:
    """Every canonical sample folder (quote + full bundle + meta.json)."""
    return sorted(p.parent for p in DCAP.glob("*/*/meta.json"))


def maa_offline_sets() -> list[Path]:
    return sorted(p.parent for p in MAA_OFFLINE.glob("*/meta.json"))


# CI runs the property tests with a fixed seed, so a landing is never decided by luck; local
# runs stay random (and keep Hypothesis's example database) to keep finding new cases.
if os.environ.get("CI"):
    settings.register_profile("ci", derandomize=True, database=None)
    settings.load_profile("ci")
