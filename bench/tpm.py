"""TPM event log parse+replay and quote verification: attestd against Keylime 7.14.3, same run.

Run:  .venv/bin/python bench/tpm.py [--rounds 9] [--keylime-python /tmp/kl/bin/python]

- attestd (in process): ``parse_event_log`` + ``replay_all`` per log; ``verify_quote`` per quote.
- Keylime (a subprocess using its own venv, timed inside that subprocess):
  ``keylime.mba.elparsing.tpm2_tools_elparser.parse_binary_bootlog`` (runs ``tpm2_eventlog``,
  loads its YAML, enriches it; the YAML carries tpm2_eventlog's replayed PCRs) and
  ``keylime.tpm.tpm_util.checkquote``.

Each log is parsed ``--rounds`` times per contender and the median time is reported. Correctness:
every expected PCR (sha1/sha256 banks of expected_pcrs.json / computed_pcrs.json) must be
reproduced. Keylime 7.14.3 is installed in a separate venv so the project venv stays clean:
``python3 -m venv /tmp/kl && /tmp/kl/bin/pip install keylime==7.14.3 packaging pyyaml
cryptography`` (its tpm_bootlog_enrich also needs libefivar.so.1). Without it, only attestd runs.
"""

from __future__ import annotations

import argparse
import base64
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_public_key

from attestd.evidence.eventlog import parse_event_log, replay_all
from attestd.evidence.tpm import parse_pcr_blob
from attestd.verify.tpm import verify_quote

ROOT = Path(__file__).resolve().parent.parent
TPM = ROOT / "tests/vectors/tpm"
ALGS = {"sha1": 0x0004, "sha256": 0x000B}
SIZES = {"sha1": 20, "sha256": 32}


def logs() -> list[tuple[str, Path, dict[str, dict[str, str]]]]:
    """(name, path, {bank: {pcr: hex}}) for every benchmarked log."""
    out = []
    go = TPM / "go-eventlog/tpm"
    expected = json.loads((go / "expected_pcrs.json").read_text())
    for name in sorted(expected):
        out.append((f"go-eventlog/{name}", go / name, expected[name]["pcrs"]))
    kl = json.loads((TPM / "keylime/computed_pcrs.json").read_text())["binary_bios_measurements"]
    out.append(
        ("keylime/binary_bios_measurements", TPM / "keylime/binary_bios_measurements", kl["pcrs"])
    )
    return out


def matches(got: dict[str, dict[str, str]], expected: dict[str, dict[str, str]]) -> bool:
    for bank, pcrs in expected.items():
        if bank not in ALGS:
            continue
        for pcr, value in pcrs.items():
            if got.get(bank, {}).get(str(pcr), "").lower() != value.lower():
                return False
    return True


def median_ms(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def rate(fn: Callable[[], object], seconds: float) -> float:
    n, start = 0, time.perf_counter()
    while True:
        for _ in range(10):
            fn()
        n += 10
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed


def ours_replay(data: bytes) -> dict[str, dict[str, str]]:
    banks = replay_all(parse_event_log(data))
    return {
        name: {str(i): v.hex() for i, v in banks[alg].items()}
        for name, alg in ALGS.items()
        if alg in banks
    }


def quotes() -> list[dict[str, Any]]:
    """Quote inputs: the swtpm-replayed quotes and Keylime's checkquote test vector."""
    out = []
    for d in sorted(p for p in (TPM / "swtpm-replayed").iterdir() if p.is_dir()):
        out.append(
            {
                "name": f"swtpm-replayed/{d.name}",
                "ak_pem": (d / "ak.pem").read_text(),
                "nonce": bytes.fromhex((d / "nonce.hex").read_text().strip()),
                "quote": (d / "quote.msg").read_bytes(),
                "sig": (d / "quote.sig").read_bytes(),
                "pcrs": (d / "quote.pcrs").read_bytes(),
            }
        )
    v = json.loads((TPM / "keylime/checkquote_vector.json").read_text())
    out.append(
        {
            "name": "keylime/checkquote_vector",
            "ak_pem": v["ak_pem"],
            "nonce": v["nonce"].encode(),
            "quote": base64.b64decode(v["quoteblob_b64"]),
            "sig": base64.b64decode(v["sigblob_b64"]),
            "pcrs": base64.b64decode(v["pcrblob_b64"]),
        }
    )
    return out


def ours_quote(q: dict[str, Any]) -> Callable[[], object]:
    ak = load_pem_public_key(q["ak_pem"].encode())

    def run() -> object:
        values = parse_pcr_blob(q["pcrs"]).values
        return verify_quote(q["quote"], q["sig"], ak, pcr_values=values, qualifying_data=q["nonce"])

    return run


KEYLIME_SCRIPT = r"""
import json, logging, statistics, sys, time
logging.disable(logging.CRITICAL)
from keylime.mba.elparsing import tpm2_tools_elparser as p
from keylime.tpm import tpm_util
job = json.load(sys.stdin)
SIZES = {"sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}
res = {"logs": {}, "quotes": {}}
for name, path in job["logs"]:
    data = open(path, "rb").read()
    times, out = [], None
    for _ in range(job["rounds"]):
        t = time.perf_counter()
        try:
            fail, parsed = p.parse_binary_bootlog(data)
            out = parsed if parsed is not None else "parse failure: " + repr(
                [e.__dict__ for e in fail.events])[:200]
        except Exception as e:
            out = "exception: %s: %s" % (type(e).__name__, e)
        times.append(time.perf_counter() - t)
    entry = {"ms": statistics.median(times) * 1000}
    if isinstance(out, dict):
        entry["pcrs"] = {b: {str(i): format(v, "0%dx" % (2 * SIZES[b])) for i, v in pcrs.items()}
                         for b, pcrs in out.get("pcrs", {}).items() if b in SIZES}
    else:
        entry["error"] = out
    res["logs"][name] = entry
for q in job["quotes"]:
    if not bytes.fromhex(q["nonce"]).isascii():
        res["quotes"][q["name"]] = {"na": "binary nonce: checkquote takes a str"}
        continue
    args = (q["ak_pem"].encode(), bytes.fromhex(q["nonce"]).decode("latin-1"),
            bytes.fromhex(q["sig"]), bytes.fromhex(q["quote"]), bytes.fromhex(q["pcrs"]), "sha256")
    try:
        tpm_util.checkquote(*args)
    except Exception as e:
        res["quotes"][q["name"]] = {"error": "%s: %s" % (type(e).__name__, e)}
        continue
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < job["seconds"]:
        for _ in range(10):
            tpm_util.checkquote(*args)
        n += 10
    res["quotes"][q["name"]] = {"rate": n / (time.perf_counter() - start)}
print(json.dumps(res))
"""


def run_keylime(python: str, job: dict[str, Any]) -> dict[str, Any] | None:
    try:
        proc = subprocess.run(
            [python, "-c", KEYLIME_SCRIPT],
            input=json.dumps(job),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        print(f"Keylime unavailable: {e}", file=sys.stderr)
        return None
    if proc.returncode != 0:
        print(f"Keylime unavailable: {proc.stderr.strip()[-500:]}", file=sys.stderr)
        return None
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--seconds", type=float, default=0.5, help="per quote rate measurement")
    ap.add_argument("--keylime-python", default="/tmp/kl/bin/python")
    args = ap.parse_args()

    items = logs()
    qs = quotes()
    job = {
        "rounds": args.rounds,
        "seconds": args.seconds,
        "logs": [(name, str(path)) for name, path, _ in items],
        "quotes": [{k: (v.hex() if isinstance(v, bytes) else v) for k, v in q.items()} for q in qs],
    }
    theirs = run_keylime(args.keylime_python, job) if Path(args.keylime_python).exists() else None
    if theirs is None:
        print("Keylime 7.14.3 was unavailable: measuring attestd only.\n")

    print(
        f"Python {platform.python_version()}, {platform.machine()}, "
        f"{args.rounds} rounds per log, medians\n"
    )
    print(
        "| log | attestd parse+replay ms | Keylime parse ms | ratio | attestd PCRs | Keylime PCRs |"
    )
    print("|---|---:|---:|---:|---|---|")
    ratios = []
    for name, path, expected in items:
        data = path.read_bytes()
        ok = matches(ours_replay(data), expected)
        ms = median_ms(lambda data=data: ours_replay(data), args.rounds * 20)
        k_ms, ratio, k_ok = "-", "-", "n/a"
        if theirs is not None:
            entry = theirs["logs"][name]
            k_ms = f"{entry['ms']:.1f}"
            ratio = f"{entry['ms'] / ms:.0f}x"
            ratios.append(entry["ms"] / ms)
            if "error" in entry:
                k_ok = f"fails ({entry['error'][:60]})"
            else:
                k_ok = "correct" if matches(entry["pcrs"], expected) else "**wrong**"
        print(
            f"| {name} | {ms:.2f} | {k_ms} | {ratio} | "
            f"{'correct' if ok else '**wrong**'} | {k_ok} |"
        )
    if ratios:
        print(
            f"\nparse+replay ratio (Keylime ms / attestd ms): {min(ratios):.0f}x-{max(ratios):.0f}x"
        )

    print(
        "\n| quote | attestd verifications/s | µs each | Keylime checkquote/s | µs each | ratio |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for q in qs:
        fn = ours_quote(q)
        fn()
        r = rate(fn, args.seconds)
        k_rate, k_us, ratio = "-", "-", "-"
        if theirs is not None:
            entry = theirs["quotes"][q["name"]]
            if "na" in entry:
                k_rate = f"n/a ({entry['na']})"
            elif "error" in entry:
                k_rate = f"fails ({entry['error'][:60]})"
            else:
                k_rate = f"{entry['rate']:,.0f}"
                k_us = f"{1e6 / entry['rate']:,.0f}"
                ratio = f"{r / entry['rate']:.2f}x"
        print(f"| {q['name']} | {r:,.0f} | {1e6 / r:,.0f} | {k_rate} | {k_us} | {ratio} |")


if __name__ == "__main__":
    main()
