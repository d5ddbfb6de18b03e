"""Every single-byte flip of the signed parts of a real quote is rejected.

The region covered runs from the first byte of the quote to the start of the PCK certificate
chain: header and body (signed by the attestation key), the auth-data framing, the quote
signature, the attestation key and QE auth data (bound by the QE report) and the QE report and
its signature (signed by the PCK key). The PEM chain itself is covered by the chain tests: PEM
tolerates some whitespace changes by design.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from attestd.collateral.source import BundleDirectory
from attestd.errors import AttestdError
from attestd.evidence.quote import parse_quote
from attestd.verify.dcap import DcapVerifier
from conftest import DCAP, MAA_OFFLINE

SAMPLES = [
    DCAP / "phala-dcap-qvl/sgx_v3",
    DCAP / "phala-dcap-qvl/tdx_v4",
    MAA_OFFLINE / "samples_intel_release_d37d__2023-05",
]


@pytest.mark.parametrize("folder", SAMPLES, ids=lambda p: p.name)
def test_every_byte_flip_is_rejected(folder: object) -> None:
    from pathlib import Path

    assert isinstance(folder, Path)
    meta = json.loads((folder / "meta.json").read_text())
    at = datetime.fromtimestamp(meta["verification_time_unix"], UTC)
    raw = (folder / "quote.bin").read_bytes()
    verifier = DcapVerifier(collateral=BundleDirectory(folder))
    verifier.verify(raw, at=at)  # the untouched quote verifies (and warms the caches)
    end = parse_quote(raw).qe.certification.offset
    assert end > 1000
    survivors = []
    for i in range(end):
        for mask in (0x01, 0x80):
            mutated = bytearray(raw)
            mutated[i] ^= mask
            try:
                verifier.verify(bytes(mutated), at=at)
            except AttestdError:
                continue
            survivors.append((i, mask))
    assert survivors == []
