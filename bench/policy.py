"""Policy engine speed on one core: evaluation of MAA's default SGX policy over a real quote's
claims, evaluation of a 50-rule v1.2 policy querying a real TCG event log with JmesPath, and
compilation of that 50-rule policy.

Run:  .venv/bin/python bench/policy.py [--rounds 7]
Targets (issue): default SGX policy <= 25 us per evaluation; 50-rule compile <= 20 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from attestd.policy import Claim, compile_policy, evaluate
from attestd.policy.defaults import SGX_DEFAULT

ROOT = Path(__file__).resolve().parent.parent
SGX_SET = ROOT / "tests/vectors/maa-offline/sets/pysdk_b779_nondebug__2023-05/meta.json"
TPM_CLAIMS = ROOT / "tests/vectors/maa/attestation-client-samples/report_boot.claims.json"


def per_call(fn: Callable[[], object], seconds: float = 0.5) -> float:
    """Microseconds per call over at least ``seconds``."""
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(10):
            fn()
        n += 10
    return (time.perf_counter() - start) / n * 1e6


def sgx_claims() -> list[Claim]:
    meta = json.loads(SGX_SET.read_text())
    quote = meta["maa"]["derived_expected_claims"]["from_quote"]
    return [Claim(k, v) for k, v in quote.items()]


def fifty_rules() -> str:
    rules = []
    for i in range(50):
        pcr = i % 8
        rules.append(
            f'c{i}:[type=="events", issuer=="AttestationService"] => issue(type="pcr{pcr}_events_{i}", '
            f'value=JsonToClaimValue(JmesPath(c{i}.value, "length(Events[?PcrIndex==`{pcr}`])")));'
        )
    return (
        "version=1.2; authorizationrules{ => permit(); }; issuancerules{ " + " ".join(rules) + " };"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    sgx = compile_policy(SGX_DEFAULT)
    claims = sgx_claims()
    assert evaluate(sgx, claims).authorized
    big_text = fifty_rules()
    big = compile_policy(big_text)
    events = json.loads(TPM_CLAIMS.read_text())["x-ms-policy"]["outputEvents"]
    tpm = [Claim("events", events if isinstance(events, str) else json.dumps(events))]
    result = evaluate(big, tpm)
    assert result.authorized and len(result.issued) == 50, result.trace[:3]
    rows = {
        "default SGX policy, evaluate (a real quote's claims)": lambda: evaluate(sgx, claims),
        "50-rule v1.2 JmesPath policy, evaluate (real 50-event TCG log)": lambda: evaluate(
            big, tpm
        ),
        "50-rule v1.2 JmesPath policy, compile": lambda: compile_policy(big_text),
    }
    print("| measurement | µs per call (median) | per second |")
    print("|---|---:|---:|")
    for name, fn in rows.items():
        med = statistics.median(per_call(fn) for _ in range(args.rounds))
        print(f"| {name} | {med:,.1f} | {1e6 / med:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
