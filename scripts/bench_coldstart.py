#!/usr/bin/env python3
"""make bench (cold start): every function's release binary, started fresh through the local
Runtime API against moto, answering its cheapest real first event; ttl-expiry also beside a
Python + boto3 handler making the same first call, measured in the same run.
Cold start = process start to its first response; memory = peak RSS (VmHWM).
Targets (issue 17): at most 7 ms and 8 MiB for every function."""
import argparse
import json
import os
import statistics
import sys
import time

from bench_table import add_row
from fleet import Fleet, client, run_function

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET_MS, TARGET_MIB = 7.0, 8.0


def measure(cmd, event, env, runs):
    starts, rss = [], []
    for _ in range(runs):
        report, _ = run_function(cmd, [event], env, timeout=120)
        if not report.get("results") or report["results"][0]["status"] != "response":
            sys.exit(f"{cmd}: no good response: {report}")
        starts.append(report["first_response_ms"])
        rss.append(report["peak_rss_kib"] / 1024)
    return statistics.median(starts), max(rss)


def scheduled():
    t = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"version": "0", "id": "bench", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": t, "region": "us-east-1", "resources": [], "detail": {}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True, help="directory of the release function binaries")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--rows", help="append table rows here (scripts/bench_table.py)")
    ap.add_argument("--functions", default="ttl-expiry,heartbeat,efs-sweeper,ecr-pruner")
    a = ap.parse_args()
    fleet = Fleet("bench")
    item = fleet.workspace("acme", "ws-bench", idle_days=0, access_point=False)
    env = fleet.env()
    repo = f"bench-{fleet.table[-8:]}"
    client("ecr").create_repository(repositoryName=repo)
    policy = json.dumps({"default": {"keepLastTagged": 1, "protectTags": [], "keepSemverReleases": 0}})
    # Each function's cheapest real first event: one GetItem (the record exists again), one
    # touch, a dry-run sweep of a one-workspace fleet, a dry-run prune of an empty repository.
    cases = {
        "ttl-expiry": ({"Records": [fleet.stream_record("REMOVE", old=item, ttl=True)]}, env),
        "heartbeat": ({"workspaceIds": ["ws-bench"]}, env),
        "efs-sweeper": (scheduled(), dict(env, DRY_RUN="true")),
        "ecr-pruner": (scheduled(), dict(env, DRY_RUN="true", ECR_REPOSITORIES=repo, PRUNE_POLICY=policy,
                                         KEEP_TASK_DEFINITION_REVISIONS="0")),
    }
    wrapper = os.path.join(HERE, "..", ".work", "python-baseline.sh")
    os.makedirs(os.path.dirname(wrapper), exist_ok=True)
    with open(wrapper, "w") as f:
        f.write(f"#!/bin/sh\nexec {sys.executable} {os.path.join(HERE, '..', 'bench', 'python_ttl_baseline.py')}\n")
    os.chmod(wrapper, 0o755)

    print(f"cold start to first response (median of {a.runs}), peak RSS (max); targets {TARGET_MS} ms, {TARGET_MIB} MiB:")
    py_ms, py_mb = measure(wrapper, cases["ttl-expiry"][0], cases["ttl-expiry"][1], a.runs)
    for name in a.functions.split(","):
        event, fenv = cases[name]
        ms, mb = measure(os.path.join(a.bin_dir, name), event, fenv, a.runs)
        met = "met" if ms <= TARGET_MS and mb <= TARGET_MIB else "NOT met"
        print(f"  {name:12} {ms:8.1f} ms  {mb:6.1f} MiB  ({met})")
        if name == "ttl-expiry":
            add_row(a.rows, id="coldstart.ttl-expiry.ms", figure="cold start, ttl-expiry (ms)", unit="ms",
                    ours=ms, baseline=py_ms, baseline_name="Python 3.11 + boto3", note=f"target {TARGET_MS} ms")
            add_row(a.rows, id="coldstart.ttl-expiry.rss", figure="peak RSS, ttl-expiry (MiB)", unit="MiB",
                    ours=mb, baseline=py_mb, baseline_name="Python 3.11 + boto3", note=f"target {TARGET_MIB} MiB")
        else:
            add_row(a.rows, id=f"coldstart.{name}.ms", figure=f"cold start, {name} (ms)", unit="ms", ours=ms,
                    note=f"target {TARGET_MS} ms")
            add_row(a.rows, id=f"coldstart.{name}.rss", figure=f"peak RSS, {name} (MiB)", unit="MiB", ours=mb,
                    note=f"target {TARGET_MIB} MiB")
    print(f"  Python 3.11 + boto3 (ttl-expiry's first call) {py_ms:8.1f} ms  {py_mb:6.1f} MiB")


if __name__ == "__main__":
    main()
