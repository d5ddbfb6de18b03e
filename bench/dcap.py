"""DCAP quote verification throughput on one core: attestd (warm and cold caches) against
dcap-qvl 0.7.0 (Phala's Rust verifier), measured side by side in the same process.

Run:  .venv/bin/python bench/dcap.py [--rounds 7] [--seconds 0.5]

- "warm": one DcapVerifier reused; PCK chains, collateral signatures and QE report signatures
  are cached by the exact bytes verified, so each call parses the quote, checks every validity
  window at the verification time, verifies the quote signature and selects the TCB level.
- "cold": a new DcapVerifier per call, so every certificate, CRL, TCB Info and QE Identity is
  parsed and verified again (collateral bytes already in memory, as dcap-qvl gets them). Only the
  configured trust anchor is read once: a chain root byte-identical to it is the anchor.
- dcap-qvl: ``dcap_qvl.verify(quote, collateral, now)`` with its collateral object pre-built.

Each round runs every contender for ``--seconds``; the table reports the median rate over the
rounds and the ratio to dcap-qvl measured in the same rounds. The process pins itself to one CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dcap_qvl

from attestd.collateral.intel import signed_span
from attestd.collateral.source import BundleDirectory, DcapCollateral
from attestd.verify.dcap import DcapVerifier

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = {
    "SGX v3": ROOT / "tests/vectors/dcap/phala-dcap-qvl/sgx_v3",
    "TDX v4": ROOT / "tests/vectors/dcap/phala-dcap-qvl/tdx_v4",
}


def dcap_qvl_collateral(folder: Path) -> Any:
    """dcap-qvl's collateral object from a bundle folder (exact signed JSON bytes)."""
    tcb, tcb_sig = signed_span((folder / "tcb_info.json").read_bytes(), "tcbInfo", "tcb")
    qe, qe_sig = signed_span((folder / "qe_identity.json").read_bytes(), "enclaveIdentity", "qe")
    return dcap_qvl.QuoteCollateralV3(
        pck_crl_issuer_chain=(folder / "pck_crl_issuer_chain.pem").read_text(),
        root_ca_crl=(folder / "root_ca_crl.der").read_bytes(),
        pck_crl=(folder / "pck_crl.der").read_bytes(),
        tcb_info_issuer_chain=(folder / "tcb_info_issuer_chain.pem").read_text(),
        tcb_info=tcb.decode(),
        tcb_info_signature=tcb_sig,
        qe_identity_issuer_chain=(folder / "qe_identity_issuer_chain.pem").read_text(),
        qe_identity=qe.decode(),
        qe_identity_signature=qe_sig,
    )


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second over at least ``seconds`` (batches of 20 calls)."""
    n, start = 0, time.perf_counter()
    while True:
        for _ in range(20):
            fn()
        n += 20
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed


def contenders(folder: Path) -> dict[str, Callable[[], object]]:
    meta = json.loads((folder / "meta.json").read_text())
    at = datetime.fromtimestamp(meta["verification_time_unix"], UTC)
    quote = (folder / "quote.bin").read_bytes()
    collateral = DcapCollateral.from_directory(folder)
    source = BundleDirectory(folder)
    warm = DcapVerifier(collateral=source)
    theirs = dcap_qvl_collateral(folder)
    now = int(at.timestamp())

    # Both must accept the quote with the same status before anything is timed.
    ours = warm.verify(quote, at=at, collateral=collateral)
    reference = dcap_qvl.verify(quote, theirs, now)
    assert ours.tcb_status == reference.status, (ours.tcb_status, reference.status)

    return {
        "attestd warm": lambda: warm.verify(quote, at=at, collateral=collateral),
        "attestd cold": lambda: DcapVerifier(collateral=source).verify(
            quote, at=at, collateral=collateral
        ),
        "dcap-qvl 0.7.0": lambda: dcap_qvl.verify(quote, theirs, now),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.5)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    rows = []
    for name, folder in SAMPLES.items():
        fns = contenders(folder)
        rates: dict[str, list[float]] = {k: [] for k in fns}
        ratios: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(args.rounds):
            got = {k: rate(fn, args.seconds) for k, fn in fns.items()}
            for k, v in got.items():
                rates[k].append(v)
                ratios[k].append(v / got["dcap-qvl 0.7.0"])
        for k in fns:
            med = statistics.median(rates[k])
            rows.append((name, k, med, 1e6 / med, statistics.median(ratios[k])))

    print(
        f"Python {platform.python_version()}, {platform.machine()}, one core, "
        f"{args.rounds} rounds x {args.seconds} s, medians"
    )
    print()
    print("| quote | verifier | verifications/s | µs each | vs dcap-qvl |")
    print("|---|---|---:|---:|---:|")
    for name, k, med, us, ratio in rows:
        print(f"| {name} | {k} | {med:,.0f} | {us:,.0f} | {ratio:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
