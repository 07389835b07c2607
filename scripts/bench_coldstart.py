#!/usr/bin/env python3
"""make bench (cold start): the release ttl-expiry binary vs a Python + boto3 handler making the
same first call, both through the local Runtime API against moto, measured in the same run.
Cold start = process start to its first response; memory = peak RSS (VmHWM)."""
import argparse
import os
import statistics
import sys

from fleet import Fleet, run_function

HERE = os.path.dirname(os.path.abspath(__file__))


def measure(cmd, event, env, runs):
    starts, rss = [], []
    for _ in range(runs):
        report, _ = run_function(cmd, [event], env)
        if not report.get("results") or report["results"][0]["status"] != "response":
            sys.exit(f"{cmd}: no good response: {report}")
        starts.append(report["first_response_ms"])
        rss.append(report["peak_rss_kib"] / 1024)
    return statistics.median(starts), max(rss)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--runs", type=int, default=7)
    a = ap.parse_args()
    fleet = Fleet("bench")
    item = fleet.workspace("acme", "ws-bench", idle_days=0, access_point=False)
    # The record exists again, so both do exactly one GetItem and touch nothing.
    event = {"Records": [fleet.stream_record("REMOVE", old=item, ttl=True)]}
    env = fleet.env()
    wrapper = os.path.join(HERE, "..", ".work", "python-baseline.sh")
    os.makedirs(os.path.dirname(wrapper), exist_ok=True)
    with open(wrapper, "w") as f:
        f.write(f"#!/bin/sh\nexec {sys.executable} {os.path.join(HERE, '..', 'bench', 'python_ttl_baseline.py')}\n")
    os.chmod(wrapper, 0o755)

    rust_ms, rust_mb = measure(a.binary, event, env, a.runs)
    py_ms, py_mb = measure(wrapper, event, env, a.runs)
    print(f"cold start to first response (median of {a.runs}), peak RSS (max):")
    print(f"  ttl-expiry (Rust, release)  {rust_ms:8.1f} ms  {rust_mb:6.1f} MiB")
    print(f"  Python 3.11 + boto3         {py_ms:8.1f} ms  {py_mb:6.1f} MiB")
    print(f"  ratio: start {py_ms / rust_ms:.1f}x faster, memory {py_mb / rust_mb:.1f}x smaller"
          f"  (aim: >= 10x faster, <= 32 MiB: {'met' if py_ms / rust_ms >= 10 and rust_mb <= 32 else 'NOT met'})")


if __name__ == "__main__":
    main()
