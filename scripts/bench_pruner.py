#!/usr/bin/env python3
"""make bench (pruner API calls): 1,000 images to delete in one repository on moto; the release
ecr-pruner runs through the Runtime API with tools/fault-proxy in front of moto, whose
per-rule counters (zero-latency rules, one per operation) count every API call it makes."""
import argparse
import json
import os
import subprocess
import sys
import urllib.request

from fleet import ENDPOINT, Fleet, client, run_function

HERE = os.path.dirname(os.path.abspath(__file__))
PROXY = os.path.join(HERE, "..", "tools", "fault-proxy", "fault_proxy.py")
OPS = ["DescribeRepositories", "DescribeImages", "BatchGetImage", "BatchDeleteImage", "ListClusters", "ListTasks",
       "DescribeTasks", "ListServices", "DescribeServices", "ListTaskDefinitionFamilies", "ListTaskDefinitions",
       "DescribeTaskDefinition"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--images", type=int, default=1000)
    a = ap.parse_args()
    fleet = Fleet("bench-prune")
    repo = f"bench-{fleet.table[-8:]}"
    client("ecr").create_repository(repositoryName=repo)
    for i in range(a.images):
        fleet.push_image(repo, f"img-{i}", tag=f"build-{i}", size=1000)
    rules = [f"{op}=slow0:1.0" for op in OPS]
    proxy = subprocess.Popen([sys.executable, PROXY, "--upstream", ENDPOINT, "--port", "0"] + sum((["--rule", r] for r in rules), []),
                             stdout=subprocess.PIPE, text=True)
    try:
        url = proxy.stdout.readline().split()[-3]
        env = {"AWS_ENDPOINT_URL": url, "ECR_REPOSITORIES": repo, "KEEP_TASK_DEFINITION_REVISIONS": "0",
               "PRUNE_POLICY": json.dumps({"default": {"keepLastTagged": 0, "protectTags": [], "keepSemverReleases": 0}})}
        report, _ = run_function(a.binary, [{}], env, timeout=300)
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
    print(f"  per 1,000 deletions: {per_k(calls.get('BatchDeleteImage', 0)):.0f} BatchDeleteImage calls "
          f"(aim: 10), {per_k(calls.get('DescribeImages', 0)):.0f} DescribeImages pages, "
          f"{per_k(sum(calls.values())):.0f} calls in all")


if __name__ == "__main__":
    main()
