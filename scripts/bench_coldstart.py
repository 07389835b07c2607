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
# What each function's first event costs in AWS calls (moto answers each in a few ms of Python).
FIRST = {"ttl-expiry": "one GetItem",
         "heartbeat": "one BatchGetItem, one UpdateItem",
         "efs-sweeper": "dry-run sweep of one workspace: Scan, ListTasks, DescribeAccessPoints",
         "ecr-pruner": "dry-run prune of an empty repository: one cluster's and Lambda's inventory, DescribeRepositories",
         "storage-audit": "the whole posture audit of one table, file system, repository"}


def measure(cmd, event, env, runs):
    """Median first response, median init (to the first request for an event), median CPU time,
    max peak RSS over `runs` fresh processes."""
    starts, inits, cpus, rss = [], [], [], []
    for _ in range(runs):
        report, _ = run_function(cmd, [event], env, timeout=120)
        if not report.get("results") or report["results"][0]["status"] != "response":
            sys.exit(f"{cmd}: no good response: {report}")
        starts.append(report["first_response_ms"])
        inits.append(report["init_ms"])
        cpus.append(report["cpu_ms"])
        rss.append(report["peak_rss_kib"] / 1024)
    return {"ms": statistics.median(starts), "init_ms": statistics.median(inits),
            "cpu_ms": statistics.median(cpus), "mib": max(rss)}


def lambda_trust_store():
    """The trust store as Lambda's runtime has it: one CA bundle (Amazon Linux's
    /etc/pki/tls/certs holds the bundle and nothing else to read). The SDK reads the platform's
    trust store at start (rustls-native-certs): on Debian that is the bundle and then the same
    certificates again, one file each, from /etc/ssl/certs (about 150 files, 1-2 ms); a machine
    that sets SSL_CERT_DIR (this one does) is read that way too. So the functions are measured
    with the bundle alone: SSL_CERT_FILE the bundle, SSL_CERT_DIR empty."""
    for bundle in ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"):
        if os.path.exists(bundle):
            return {"SSL_CERT_FILE": bundle, "SSL_CERT_DIR": ""}
    return {}


def scheduled():
    t = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"version": "0", "id": "bench", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": t, "region": "us-east-1", "resources": [], "detail": {}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True, help="directory of the release function binaries")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--rows", help="append table rows here (scripts/bench_table.py)")
    ap.add_argument("--functions", default="ttl-expiry,heartbeat,efs-sweeper,ecr-pruner,storage-audit")
    a = ap.parse_args()
    fleet = Fleet("bench")
    item = fleet.workspace("acme", "ws-bench", idle_days=0, access_point=False)
    env = fleet.env(**lambda_trust_store())
    repo = f"bench-{fleet.table[-8:]}"
    client("ecr").create_repository(repositoryName=repo)
    policy = json.dumps({"default": {"keepLastTagged": 1, "protectTags": [], "keepSemverReleases": 0}})
    # Each function's cheapest real first event: one GetItem (the record exists again), one
    # touch, a dry-run sweep of a one-workspace fleet, a dry-run prune of an empty repository, the
    # audit of that (no log groups or buckets named, no report event).
    cases = {
        "ttl-expiry": ({"Records": [fleet.stream_record("REMOVE", old=item, ttl=True)]}, env),
        "heartbeat": ({"workspaceIds": ["ws-bench"]}, env),
        "efs-sweeper": (scheduled(), dict(env, DRY_RUN="true")),
        # The inventory of the fleet's own cluster (ECS_CLUSTERS): not of every cluster the moto
        # server has collected from earlier runs.
        "ecr-pruner": (scheduled(), dict(env, DRY_RUN="true", ECR_REPOSITORIES=repo, PRUNE_POLICY=policy,
                                         KEEP_TASK_DEFINITION_REVISIONS="0", ECS_CLUSTERS=fleet.cluster)),
        "storage-audit": (scheduled(), dict(env, AUDIT_EVENT_BUS="off", ECR_REPOSITORIES=repo, PRUNE_POLICY=policy,
                                            KEEP_TASK_DEFINITION_REVISIONS="0", ECS_CLUSTERS=fleet.cluster)),
    }
    wrapper = os.path.join(HERE, "..", ".work", "python-baseline.sh")
    os.makedirs(os.path.dirname(wrapper), exist_ok=True)
    with open(wrapper, "w") as f:
        f.write(f"#!/bin/sh\nexec {sys.executable} {os.path.join(HERE, '..', 'bench', 'python_ttl_baseline.py')}\n")
    os.chmod(wrapper, 0o755)

    print(f"cold start (median of {a.runs}): to the first request for an event (init), to the first "
          f"response, CPU time; peak RSS (max). Targets {TARGET_MS} ms to the first response, {TARGET_MIB} MiB:")
    py = measure(wrapper, cases["ttl-expiry"][0], cases["ttl-expiry"][1], a.runs)
    for name in a.functions.split(","):
        event, fenv = cases[name]
        m = measure(os.path.join(a.bin_dir, name), event, fenv, a.runs)
        met = "met" if m["ms"] <= TARGET_MS and m["mib"] <= TARGET_MIB else "NOT met"
        print(f"  {name:14} init {m['init_ms']:6.1f} ms  first response {m['ms']:6.1f} ms  "
              f"CPU {m['cpu_ms']:5.0f} ms  {m['mib']:5.1f} MiB  ({met}; {FIRST[name]})")
        # ttl-expiry's first call is the one the Python baseline makes; the others have no
        # Python twin, so the baseline is the same Python handler's cold start (what a Python
        # function pays before any call of its own).
        base = dict(baseline_name="Python 3.11 + boto3" + ("" if name == "ttl-expiry" else ", GetItem handler"))
        add_row(a.rows, id=f"coldstart.{name}.ms", figure=f"cold start to first response, {name} (ms)", unit="ms",
                ours=m["ms"], baseline=py["ms"], **base,
                note=f"target {TARGET_MS} ms; init {m['init_ms']} ms; CPU {m['cpu_ms']} ms; first event: {FIRST[name]}")
        add_row(a.rows, id=f"coldstart.{name}.rss", figure=f"peak RSS, {name} (MiB)", unit="MiB", ours=m["mib"],
                baseline=py["mib"], **base, note=f"target {TARGET_MIB} MiB")
    print(f"  {'Python + boto3':14} init {py['init_ms']:6.1f} ms  first response {py['ms']:6.1f} ms  "
          f"CPU {py['cpu_ms']:5.0f} ms  {py['mib']:5.1f} MiB  (ttl-expiry's first call)")

if __name__ == "__main__":
    main()
