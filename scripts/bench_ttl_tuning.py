#!/usr/bin/env python3
"""make scale (ttl-expiry's stream settings, by measurement): the release ttl-expiry through the
Runtime API, every AWS call delayed by --latency-ms through the fault proxy (as bench_throughput),
over a grid of RECORD_CONCURRENCY (records / workspaces at once in one invocation) and batch
sizes (records per invocation, BatchSize). Each batch is its own fresh fleet; half the records
are a redelivery of the other half, as in bench_throughput.

Prints records/s per invocation, seconds per batch, and what one shard then carries with
ParallelizationFactor batches in flight (Lambda keeps one workspace's records in order across
them: the stream's partition key is the workspace id). Writes bench/ttl_tuning.json.
"""
import argparse
import json
import os
import sys
import time

from bench_throughput import Proxy, run, ttl_fleet

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--latency-ms", type=int, default=20)
    ap.add_argument("--concurrency", default="1,2,4,8,16,32")
    ap.add_argument("--batch-sizes", default="10,25,100")
    ap.add_argument("--out", default=os.path.join(HERE, "..", "bench", "ttl_tuning.json"))
    a = ap.parse_args()
    binary = os.path.join(a.bin_dir, "ttl-expiry")
    proxy = Proxy(a.latency_ms)
    rows = []
    try:
        grid = [(int(c), 100) for c in a.concurrency.split(",")]
        grid += [(8, int(b)) for b in a.batch_sizes.split(",") if int(b) != 100]
        for conc, records in grid:
            fleet, event = ttl_fleet(records // 2)
            env = fleet.env(RECORD_CONCURRENCY=conc, RUST_LOG="warn")
            wall, body, calls = run(binary, event, env, proxy)
            if body.get("batchItemFailures") or len(fleet.trash()) != records // 2:
                sys.exit(f"ttl-expiry did not trash every workspace: {body}")
            rows.append({"recordConcurrency": conc, "batchSize": records, "seconds": round(wall, 3),
                         "recordsPerSecond": round(records / wall, 1), "calls": sum(calls.values())})
            print(f"  RECORD_CONCURRENCY={conc:>2} BatchSize={records:>3}: {wall:6.2f} s per batch, "
                  f"{records / wall:6.1f} records/s", flush=True)
    finally:
        proxy.close()
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump({"latencyMs": a.latency_ms, "generated": int(time.time()), "rows": rows}, f, indent=2)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
