#!/usr/bin/env python3
"""make bench (batch throughput): the release functions through the Runtime API, with the fault
proxy (tools/fault-proxy) in front of moto delaying every AWS call by --latency-ms (its `slow`
rule), so the wall time is the calls on the critical path, not moto's speed.

- ttl-expiry: one 100-record batch of TTL REMOVE records over 50 workspaces (two records per
  workspace: each deletion delivered twice, as a stream redelivery does), each workspace with its
  directory and access point. Records of one workspace run in order, workspaces concurrently.
- heartbeat: one dispatch naming 1,000 workspaces (one batch read, then a conditional write each).

Each is measured with the configured concurrency (RECORD_CONCURRENCY, default 8 as deployed) and,
in the same run, with RECORD_CONCURRENCY=1 (the same code one workspace at a time) as the
baseline. The bound is the least time the calls allow at that concurrency: the proxy's per-call
latency (measured here, moto included) times the calls that must follow one another, counted by
the proxy: the shared reads once, then each workspace's own calls in order, ceil(workspaces /
concurrency) workspaces one after the other per slot.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time
import urllib.request

from bench_table import add_row
from fleet import DAY, ENDPOINT, Fleet, client, run_function

HERE = os.path.dirname(os.path.abspath(__file__))
PROXY = os.path.join(HERE, "..", "tools", "fault-proxy", "fault_proxy.py")


class Proxy:
    """The fault proxy with one rule per operation kind, so its counters count every call."""

    OPS = ["DynamoDB_20120810.GetItem", "DynamoDB_20120810.BatchGetItem", "DynamoDB_20120810.UpdateItem",
           "DynamoDB_20120810.PutItem", "ListTasks", "DescribeTasks", "access-points", "PutEvents", "*"]

    def __init__(self, latency_ms):
        rules = [f"{op}=slow{latency_ms}:1.0" for op in self.OPS]
        args = [sys.executable, PROXY, "--upstream", ENDPOINT, "--port", "0"]
        for r in rules:
            args += ["--rule", r]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        self.url = next(w for w in self.proc.stdout.readline().split() if w.startswith("http://"))

    def reset(self):
        rules = [r["rule"] for r in self.counts_raw()]
        req = urllib.request.Request(self.url + "/__faults", data=json.dumps({"rules": rules}).encode(), method="POST")
        urllib.request.urlopen(req).read()

    def counts_raw(self):
        return json.load(urllib.request.urlopen(self.url + "/__faults"))["rules"]

    def counts(self):
        return {r["rule"].split("=")[0]: r["matched"] for r in self.counts_raw() if r["matched"]}

    def close(self):
        self.proc.terminate()
        self.proc.wait()


def per_call_latency(proxy, table, n=15):
    """What one call really takes through the proxy (the delay, the proxy and moto), one at a
    time, right after a run: the median of n GetItems. On a busy machine moto's share grows, and
    the bound with it."""
    import statistics
    import boto3
    ddb = boto3.client("dynamodb", endpoint_url=proxy.url, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    ddb.get_item(TableName=table, Key={"workspaceId": {"S": "nobody"}})  # connection made
    times = []
    for _ in range(n):
        t0 = time.monotonic()
        ddb.get_item(TableName=table, Key={"workspaceId": {"S": "nobody"}})
        times.append(time.monotonic() - t0)
    return statistics.median(times)


def ttl_fleet(workspaces):
    fleet = Fleet("bench-tp")
    for i in range(workspaces):
        fleet.workspace(f"tenant-{i % 5}", f"ws-{i:04d}", idle_days=40, files=2)
    records = fleet.expire_due(now=int(time.time()))
    assert len(records) == workspaces, f"{len(records)} records expired, {workspaces} expected"
    # Each deletion delivered twice (a redelivery): two records per workspace, in stream order.
    batch = []
    for rec in records:
        batch.append(rec)
    for rec in records:
        again = json.loads(json.dumps(rec))
        fleet.sequence += 1
        again["dynamodb"]["SequenceNumber"] = f"{fleet.sequence:021d}"
        again["eventID"] = again["eventID"][:-4] + "dup0"
        batch.append(again)
    return fleet, {"Records": batch}


def heartbeat_fleet(workspaces):
    fleet = Fleet("bench-hb")
    now = int(time.time())
    ddb = client("dynamodb")
    ids = [f"ws-{i:05d}" for i in range(workspaces)]
    for start in range(0, len(ids), 25):
        ddb.batch_write_item(RequestItems={fleet.table: [{"PutRequest": {"Item": {
            "workspaceId": {"S": ws}, "tenantId": {"S": "acme"}, "userId": {"S": "acme-user"},
            "tier": {"S": "pro"}, "subscriptionStatus": {"S": "active"},
            "lastActivityAt": {"N": str(now - 2 * DAY)}, "expiresAt": {"N": str(now + 28 * DAY)}}}}
            for ws in ids[start:start + 25]]})
    return fleet, {"workspaceIds": ids}


def run(binary, event, env, proxy):
    """One invocation through the proxy: (seconds from process start to the answer, the
    answer, calls per operation)."""
    proxy.reset()
    report, lines = run_function(binary, [event], dict(env, AWS_ENDPOINT_URL=proxy.url), timeout=600)
    res = report["results"][0] if report.get("results") else None
    if not res or res["status"] != "response":
        sys.exit(f"{binary}: no good response: {report} {lines[-5:]}")
    return res["ms"] / 1000, res["body"], proxy.counts()


def bound(latency, shared_calls, per_key_calls, keys, concurrency):
    """The least time: the shared reads one after the other, then each slot's workspaces one
    after the other, each workspace's calls in order."""
    return latency * (shared_calls + math.ceil(keys / concurrency) * per_key_calls)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--latency-ms", type=int, default=20)
    ap.add_argument("--workspaces", type=int, default=50, help="ttl-expiry: two records each")
    ap.add_argument("--touches", type=int, default=1000)
    ap.add_argument("--baseline-touches", type=int, default=200,
                    help="heartbeat's one-at-a-time baseline runs on fewer workspaces (its rate does not depend on how many)")
    ap.add_argument("--concurrency", type=int, default=8, help="RECORD_CONCURRENCY (the deployed value)")
    ap.add_argument("--rows", help="append table rows here (scripts/bench_table.py)")
    a = ap.parse_args()
    records = 2 * a.workspaces
    proxy = Proxy(a.latency_ms)
    try:
        # ttl-expiry: a fresh fleet per run (a run trashes what it handles).
        runs = {}
        for conc in (a.concurrency, 1):
            fleet, event = ttl_fleet(a.workspaces)
            env = fleet.env(RECORD_CONCURRENCY=conc, RUST_LOG="warn")
            wall, body, calls = run(os.path.join(a.bin_dir, "ttl-expiry"), event, env, proxy)
            if body.get("batchItemFailures") or len(fleet.trash()) != a.workspaces:
                sys.exit(f"ttl-expiry did not trash every workspace: {body}, trash {len(fleet.trash())}")
            runs[conc] = (wall, calls, per_call_latency(proxy, fleet.table))
        (wall, calls, latency), (base_wall, _, _) = runs[a.concurrency], runs[1]
        shared = calls.get("ListTasks", 0) + calls.get("DescribeTasks", 0)
        per_ws = (sum(calls.values()) - shared) / a.workspaces
        b = bound(latency, 1, per_ws, a.workspaces, a.concurrency)
        rate, base_rate = records / wall, records / base_wall
        print(f"ttl-expiry, {records} records over {a.workspaces} workspaces, {a.latency_ms} ms per call "
              f"({latency * 1000:.1f} ms measured, proxy and moto included):")
        print(f"  RECORD_CONCURRENCY={a.concurrency}: {wall:.2f} s, {rate:.0f} records/s; bound {b:.2f} s "
              f"({records / b:.0f} records/s); calls {calls}")
        print(f"  RECORD_CONCURRENCY=1: {base_wall:.2f} s, {base_rate:.0f} records/s")
        add_row(a.rows, id="throughput.ttl-expiry", figure=f"ttl-expiry records/s, {records} records over "
                f"{a.workspaces} workspaces, {a.latency_ms} ms per call", unit="/s", ours=rate, baseline=base_rate,
                baseline_name="one workspace at a time", ratio=rate / base_rate, bound=records / b,
                note=f"RECORD_CONCURRENCY={a.concurrency}; {per_ws:.0f} calls per workspace in order, "
                     f"{shared} listings; {latency * 1000:.0f} ms per call measured; the bound is the most "
                     "records/s (ours/bound under 1)")

        runs = {}
        for conc, n in ((a.concurrency, a.touches), (1, a.baseline_touches)):
            fleet, event = heartbeat_fleet(n)
            env = fleet.env(RECORD_CONCURRENCY=conc, RUST_LOG="warn", NOTICE_EVENT_BUS="off")
            wall, body, calls = run(os.path.join(a.bin_dir, "heartbeat"), event, env, proxy)
            extended = len(body.get("extended") or [])
            if body.get("failed") or extended != n:
                sys.exit(f"heartbeat extended {extended} of {n}: {str(body)[:500]}")
            runs[conc] = (wall, calls, per_call_latency(proxy, fleet.table))
        (wall, calls, latency), (base_wall, _, _) = runs[a.concurrency], runs[1]
        reads = calls.get("DynamoDB_20120810.BatchGetItem", 0)
        writes = sum(calls.values()) - reads
        # The batch read's pages do not depend on each other: one call's time at best.
        b = bound(latency, 1, writes / a.touches, a.touches, a.concurrency)
        rate, base_rate = a.touches / wall, a.baseline_touches / base_wall
        print(f"heartbeat, dispatch of {a.touches} workspaces, {a.latency_ms} ms per call "
              f"({latency * 1000:.1f} ms measured):")
        print(f"  RECORD_CONCURRENCY={a.concurrency}: {wall:.2f} s, {rate:.0f} touches/s; bound {b:.2f} s "
              f"({a.touches / b:.0f}/s); calls {calls}")
        print(f"  RECORD_CONCURRENCY=1 ({a.baseline_touches} workspaces): {base_wall:.2f} s, {base_rate:.0f} touches/s")
        add_row(a.rows, id="throughput.heartbeat", figure=f"heartbeat touches/s, dispatch of {a.touches:,} "
                f"workspaces, {a.latency_ms} ms per call", unit="/s", ours=rate, baseline=base_rate,
                baseline_name=f"one workspace at a time ({a.baseline_touches})", ratio=rate / base_rate,
                bound=a.touches / b,
                note=f"RECORD_CONCURRENCY={a.concurrency}; {reads} BatchGetItem, {writes} conditional writes; "
                     f"{latency * 1000:.0f} ms per call measured")
    finally:
        proxy.close()


if __name__ == "__main__":
    main()
