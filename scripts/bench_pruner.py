#!/usr/bin/env python3
"""make bench (pruner API calls): 1,000 images to delete in one repository on moto; the release
ecr-pruner runs through the Runtime API with tools/fault-proxy in front of moto, whose per-rule
counters (one `slow` rule per operation, and one for anything else) count every API call it makes
and delay each by --latency-ms.

The least the ECR API allows per 1,000 deletions is 11 calls: one DescribeImages page of 1,000
and 10 BatchDeleteImage of 100 ids. The pruner's own safety adds one: the repository is listed
again right before its deletes (the fresh re-check). Moto's DescribeImages does not report an
image's manifest media type, which ECR does, so on moto the pruner also reads every manifest
(BatchGetImage, 100 a call): counted, and shown apart. The ECS inventory is the fleet's own
cluster (ECS_CLUSTERS), so the figure does not depend on what else the moto server holds."""
import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request

from bench_table import add_row
from fleet import ENDPOINT, Fleet, client, run_function

HERE = os.path.dirname(os.path.abspath(__file__))
PROXY = os.path.join(HERE, "..", "tools", "fault-proxy", "fault_proxy.py")
OPS = ["DescribeRepositories", "DescribeImages", "BatchGetImage", "BatchDeleteImage", "ListClusters", "ListTasks",
       "DescribeTasks", "ListServices", "DescribeServices", "ListTaskDefinitionFamilies", "ListTaskDefinitions",
       "DescribeTaskDefinition", "/2015-03-31/functions", "*"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--latency-ms", type=int, default=20, help="delay of every AWS call (the fault proxy)")
    ap.add_argument("--rows", help="append table rows here (scripts/bench_table.py)")
    a = ap.parse_args()
    fleet = Fleet("bench-prune")
    repo = f"bench-{fleet.table[-8:]}"
    client("ecr").create_repository(repositoryName=repo)
    for i in range(a.images):
        fleet.push_image(repo, f"img-{i}", tag=f"build-{i}", size=1000)
    rules = [f"{op}=slow{a.latency_ms}:1.0" for op in OPS]
    proxy = subprocess.Popen([sys.executable, PROXY, "--upstream", ENDPOINT, "--port", "0"] + sum((["--rule", r] for r in rules), []),
                             stdout=subprocess.PIPE, text=True)
    try:
        url = proxy.stdout.readline().split()[-3]
        env = {"AWS_ENDPOINT_URL": url, "ECR_REPOSITORIES": repo, "KEEP_TASK_DEFINITION_REVISIONS": "0",
               "ECS_CLUSTERS": fleet.cluster,
               "PRUNE_POLICY": json.dumps({"default": {"keepLastTagged": 0, "protectTags": [], "keepSemverReleases": 0}})}
        t0 = time.monotonic()
        report, _ = run_function(a.binary, [{}], env, timeout=300)
        wall = time.monotonic() - t0
        body = report["results"][0]["body"]
        deleted = body["deleted"]
        counts = json.load(urllib.request.urlopen(url + "/__faults"))["rules"]
    finally:
        proxy.terminate()
    calls = {r["rule"].split("=")[0]: r["matched"] for r in counts if r["matched"]}
    per_k = lambda n: n * 1000 / max(deleted, 1)
    print(f"ecr-pruner deleted {deleted} of {a.images} images; API calls made:")
    for op, n in calls.items():
        print(f"  {op:28} {n:4}")
    # The least the ECR API allows per 1,000 deletions: 10 BatchDeleteImage (100 ids each) and one
    # DescribeImages page of 1,000.
    minimum = 11
    # ECR's own calls, less the manifest reads moto makes necessary (see above).
    ecr = sum(n for op, n in calls.items() if op in ("DescribeImages", "BatchDeleteImage", "DescribeRepositories"))
    add_row(a.rows, id="pruner.ecr_calls_per_1000", figure="pruner ECR calls per 1,000 deletions", unit="",
            ours=per_k(ecr), bound=minimum,
            note="the list again before deleting (the re-check) is the one call above the minimum; "
                 f"on moto also {calls.get('BatchGetImage', 0)} BatchGetImage (moto reports no media type); "
                 + ", ".join(f"{op} {n}" for op, n in calls.items()))
    # Every call it made, one after the other, would take this long: the wall's own bound.
    add_row(a.rows, id="pruner.wall_per_1000", figure=f"pruner wall per 1,000 deletions, {a.latency_ms} ms per call (s)",
            unit="s", ours=wall * 1000 / max(deleted, 1), bound=minimum * a.latency_ms / 1000,
            note=f"{sum(calls.values())} calls in all (ECS and Lambda inventory twice, manifests on moto), "
                 f"{sum(calls.values()) * a.latency_ms / 1000:.2f} s if one after the other; process start included")
    print(f"  wall time {wall:.2f} s with {a.latency_ms} ms per call")
    print(f"  per 1,000 deletions: {per_k(calls.get('BatchDeleteImage', 0)):.0f} BatchDeleteImage calls "
          f"(aim: 10), {per_k(calls.get('DescribeImages', 0)):.0f} DescribeImages pages, "
          f"{per_k(sum(calls.values())):.0f} calls in all")


if __name__ == "__main__":
    main()
