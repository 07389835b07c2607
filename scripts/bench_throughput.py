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


def per_call_latency(proxy, fleet, n=20):
    """The latency one call really has through the proxy (delay + proxy + moto), sequential."""
    import boto3
    ddb = boto3.client("dynamodb", endpoint_url=proxy.url, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    ddb.get_item(TableName=fleet.table, Key={"workspaceId": {"S": "nobody"}})  # connection made
    t0 = time.monotonic()
    for _ in range(n):
        ddb.get_item(TableName=fleet.table, Key={"workspaceId": {"S": "nobody"}})
    return (time.monotonic() - t0) / n


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
    proxy.reset()
    report, lines = run_function(binary, [event], dict(env, AWS_ENDPOINT_URL=proxy.url), timeout=600)
    res = report["results"][0] if report.get("results") else None
    if not res or res["status"] != "response":
        sys.exit(f"{binary}: no good response: {report} {lines[-5:]}")
    # The handler's own wall time: from the first response's timestamp we subtract nothing; the
    # Runtime API reports process start to answer, so the process start (a few ms) is included.
    return res["ms"] / 1000, res["body"], proxy.counts()


def bound(latency, shared_calls, per_key_calls, keys, concurrency):
    return latency * (shared_calls + math.ceil(keys / concurrency) * per_key_calls)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--latency-ms", type=int, default=20)
    ap.add_argument("--records", type=int, default=100)
    ap.add_argument("--workspaces", type=int, default=50)
    ap.add_argument("--touches", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=8, help="RECORD_CONCURRENCY (the deployed default)")
    ap.add_argument("--rows", help="append table rows here (scripts/bench_table.py)")
    a = ap.parse_args()
    assert a.records == 2 * a.workspaces, "two records per workspace"
    proxy = Proxy(a.latency_ms)
    try:
        # ttl-expiry: a fresh fleet per run (a run trashes what it handles).
        results = {}
        for conc in (a.concurrency, 1):
            fleet, event = ttl_fleet(a.workspaces)
            env = fleet.env(RECORD_CONCURRENCY=conc, RUST_LOG="warn")
            wall, body, calls = run(os.path.join(a.bin_dir, "ttl-expiry"), event, env, proxy)
            failures = body.get("batchItemFailures") or []
            if failures or len(fleet.trash()) != a.workspaces:
                sys.exit(f"ttl-expiry did not trash every workspace: {failures}, trash {len(fleet.trash())}")
            results[conc] = (wall, calls)
        latency = per_call_latency(proxy, fleet)
        wall, calls = results[a.concurrency]
        base_wall, _ = results[1]
        shared = calls.get("ListTasks", 0) + calls.get("DescribeTasks", 0)
        own = sum(calls.values()) - shared
        per_ws = own / a.workspaces
        b = bound(latency, 1, per_ws, a.workspaces, a.concurrency)
        rate, base_rate = a.records / wall, a.records / base_wall
        print(f"ttl-expiry, {a.records} records over {a.workspaces} workspaces, {a.latency_ms} ms per call "
              f"(measured {latency * 1000:.1f} ms with proxy and moto):")
        print(f"  RECORD_CONCURRENCY={a.concurrency}: {wall:.2f} s, {rate:.0f} records/s; bound {b:.2f} s "
              f"({a.records / b:.0f} records/s); calls {calls}")
        print(f"  RECORD_CONCURRENCY=1: {base_wall:.2f} s, {base_rate:.0f} records/s")
        add_row(a.rows, id="throughput.ttl-expiry", figure=f"ttl-expiry records/s, {a.records} records, "
                f"{a.workspaces} workspaces, {a.latency_ms} ms per call", unit="/s", ours=rate, baseline=base_rate,
                baseline_name="same, one workspace at a time", ratio=rate / base_rate, bound=a.records / b,
                note=f"RECORD_CONCURRENCY={a.concurrency}; {per_ws:.1f} calls per workspace in order, "
                     f"{shared} shared listing calls; {latency * 1000:.1f} ms per call measured; "
                     "ours/bound below 1 is short of the bound")

        results = {}
        for conc in (a.concurrency, 1):
            fleet, event = heartbeat_fleet(a.touches)
            env = fleet.env(RECORD_CONCURRENCY=conc, RUST_LOG="warn", NOTICE_EVENT_BUS="off")
            wall, body, calls = run(os.path.join(a.bin_dir, "heartbeat"), event, env, proxy)
            extended = len(body.get("extended") or [])
            if body.get("failed") or extended != a.touches:
                sys.exit(f"heartbeat extended {extended} of {a.touches}: {str(body)[:500]}")
            results[conc] = (wall, calls, extended)
        wall, calls, extended = results[a.concurrency]
        base_wall, _, _ = results[1]
        reads = calls.get("DynamoDB_20120810.BatchGetItem", 0)
        writes = sum(calls.values()) - reads
        # The batch read's pages are independent of each other: one latency at best.
        b = bound(latency, 1, writes / a.touches, a.touches, a.concurrency)
        rate, base_rate = a.touches / wall, a.touches / base_wall
        print(f"heartbeat, dispatch of {a.touches} workspaces, {a.latency_ms} ms per call:")
        print(f"  RECORD_CONCURRENCY={a.concurrency}: {wall:.2f} s, {rate:.0f} touches/s; bound {b:.2f} s "
              f"({a.touches / b:.0f}/s); calls {calls}")
        print(f"  RECORD_CONCURRENCY=1: {base_wall:.2f} s, {base_rate:.0f} touches/s")
        add_row(a.rows, id="throughput.heartbeat", figure=f"heartbeat touches/s, dispatch of {a.touches} "
                f"workspaces, {a.latency_ms} ms per call", unit="/s", ours=rate, baseline=base_rate,
                baseline_name="same, one workspace at a time", ratio=rate / base_rate, bound=a.touches / b,
                note=f"RECORD_CONCURRENCY={a.concurrency}; {reads} BatchGetItem, {writes} writes; "
                     f"{latency * 1000:.1f} ms per call measured")
    finally:
        proxy.close()


if __name__ == "__main__":
    main()
