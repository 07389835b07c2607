#!/usr/bin/env python3
"""The README's "Scale" table: a weekly sweep from 1,000 to 10,000,000 workspaces, derived from
the per-unit figures `make scale` measured (bench/scale.json) and the published service limits
and prices. Every assumption is a named constant below, printed with the table.

    python3 scripts/scale_table.py [--scale bench/scale.json] [--markdown]
"""
import argparse
import json
import math
import os

HERE = os.path.dirname(os.path.abspath(__file__))

# Service limits (AWS documentation, 2026).
ACCESS_POINTS_PER_FS = 10_000          # EFS: access points per file system (not adjustable)
WORKSPACES_PER_FS = 8_000              # the template's AccessPointAlarmThreshold: headroom below it
EFS_WRITE_IOPS_LOWEST = 25_000         # EFS General Purpose, Bursting/Provisioned (Elastic: 500,000)
LAMBDA_ACCOUNT_CONCURRENCY = 1_000     # Lambda's default concurrency per account and Region
SQS_STANDARD_TPS = "nearly unlimited"  # SQS standard queues: no per-queue API limit that binds here
# The fleet (the shape, as `make scale` seeds it).
EXPIRED_PER_WEEK = 0.10                # of the workspaces: expired into the trash, and as many purged
ORPHAN_SHARE = 0.01                    # directories without a record
WORKERS_PER_FS = 2                     # SweepWorkerConcurrency default (README, fan-out settings)
# Prices (us-east-1 list prices, arm64 Lambda, on-demand DynamoDB).
LAMBDA_GB_S = 0.0000133334
LAMBDA_REQUEST = 0.20 / 1e6
SWEEPER_GB = 1.0                       # the template's efs-sweeper MemorySize
SQS_REQUEST = 0.40 / 1e6
SQS_REQUESTS_PER_UNIT = 2.1            # SendMessageBatch (1/10), the mapping's receive, its delete
SQS_IDLE_POLLS_PER_WEEK = 5 * 3 * 60 * 24 * 7  # the mapping's 5 pollers, 20 s long polls, all week
DDB_WRU = 0.625 / 1e6
DDB_RRU = 0.125 / 1e6
LEDGER_WRU_PER_UNIT = 6                # unit put 1, claim 1, finish transaction 2 items x 2
LEDGER_RRU_PER_UNIT = 1                # the run, read consistently
RECORD_BYTES = 400                     # a workspace record, for the coordinator's Scan
# moto is one Python process: its time per call (tens of ms under load, and its one core the
# ceiling of every fan-out row) is not AWS's. A unit's work is the single run's measured time per
# action (the latency model's file system, the re-check's read included); its bookkeeping is
# these calls at AWS's latency:
AWS_CALL_S = 0.010                     # DynamoDB and SQS, one call, in-Region
UNIT_CALLS = 6                         # run read, claim, finish transaction, report claim, receive, delete
COORDINATOR_CALLS_PER_UNIT = 0.14      # BatchWriteItem of 25 units, SendMessageBatch of 10


def load(path):
    with open(path) as f:
        return json.load(f)


def derive(per_unit, files_per_entry):
    overhead = UNIT_CALLS * AWS_CALL_S
    unit_s = per_unit["single_s_per_file"] * files_per_entry + overhead
    orphan_unit_s = per_unit["orphan_move_mean_s"] + overhead
    coord_s_per_1000 = per_unit["single_planning_s_per_1000_workspaces"]
    rows = []
    for n in (1_000, 10_000, 100_000, 1_000_000, 10_000_000):
        fs = math.ceil(n / WORKSPACES_PER_FS)
        per_fs = n / fs
        purges = EXPIRED_PER_WEEK * per_fs
        # A tenant rarely has several orphans at once: one move per unit.
        orphan_units = math.ceil(ORPHAN_SHARE * per_fs)
        units = purges + orphan_units
        work_s = purges * unit_s + orphan_units * orphan_unit_s
        coord_s = coord_s_per_1000 * per_fs / 1000 + units * COORDINATOR_CALLS_PER_UNIT * AWS_CALL_S
        # Every stack's run starts at the same schedule: at most the account's concurrency at once.
        concurrent = fs * WORKERS_PER_FS
        waves = max(1.0, concurrent / LAMBDA_ACCOUNT_CONCURRENCY)
        wall_s = coord_s + work_s / WORKERS_PER_FS * waves
        invocations = fs * (1 + units)
        gb_s = fs * (coord_s + work_s) * SWEEPER_GB
        lambda_cost = gb_s * LAMBDA_GB_S + invocations * LAMBDA_REQUEST
        sqs_cost = fs * (units * SQS_REQUESTS_PER_UNIT + SQS_IDLE_POLLS_PER_WEEK) * SQS_REQUEST
        ddb_cost = fs * (units * (LEDGER_WRU_PER_UNIT * DDB_WRU + LEDGER_RRU_PER_UNIT * DDB_RRU)
                         + per_fs * RECORD_BYTES / 4096 / 2 * DDB_RRU)
        # One invocation doing all of a stack's week itself, at the single run's measured rates.
        single_s = (per_unit["single_planning_s_per_1000_workspaces"] * per_fs / 1000
                    + purges * per_unit["single_s_per_file"] * files_per_entry
                    + ORPHAN_SHARE * per_fs * per_unit["orphan_move_mean_s"])
        single_s *= max(1.0, fs / LAMBDA_ACCOUNT_CONCURRENCY)
        rows.append({"workspaces": n, "file_systems": fs, "single_s": single_s, "units": round(fs * units), "invocations": round(invocations),
                     "wall_s": wall_s, "concurrent_workers": concurrent, "lambda_usd": lambda_cost,
                     "requests_usd": sqs_cost + ddb_cost, "total_usd": lambda_cost + sqs_cost + ddb_cost})
    return unit_s, orphan_unit_s, coord_s_per_1000, rows


def by_entry_size(per_unit, n=1_000_000):
    """One file system's week at `n` workspaces for larger trash entries: fan-out against one
    invocation, with the default 2 workers and with 24 (Elastic throughput)."""
    fs = math.ceil(n / WORKSPACES_PER_FS)
    per_fs = n / fs
    purges = EXPIRED_PER_WEEK * per_fs
    out = []
    for files in (200, 2_000, 20_000):
        unit_s = per_unit["single_s_per_file"] * files + UNIT_CALLS * AWS_CALL_S
        plan_s = per_unit["single_planning_s_per_1000_workspaces"] * per_fs / 1000
        single = plan_s + purges * per_unit["single_s_per_file"] * files
        walls = {}
        for workers in (2, 24):
            waves = max(1.0, fs * workers / LAMBDA_ACCOUNT_CONCURRENCY)
            walls[workers] = plan_s + purges * unit_s / workers * waves
        out.append((files, single, walls))
    return out


def duration(s):
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", default=os.path.join(HERE, "..", "bench", "scale.json"))
    a = ap.parse_args()
    data = load(a.scale)
    files = data["size"]["files_per_entry"]
    unit_s, orphan_unit_s, coord, rows = derive(data["per_unit"], files)
    print(f"from bench/scale.json ({data['size']['workspaces']:,} workspaces): purge unit "
          f"{unit_s:.2f} s ({files} files, {UNIT_CALLS} calls of bookkeeping at {AWS_CALL_S * 1000:.0f} ms "
          f"included), orphan unit {orphan_unit_s:.2f} s, planning {coord:.2f} s per 1,000 workspaces")
    print()
    print("| workspaces | file systems (stacks) | units / week | invocations / week | wall time of a run | "
          "one invocation would need | workers at once | Lambda $ / week | SQS + DynamoDB $ / week | total $ / week |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['workspaces']:,} | {r['file_systems']:,} | {r['units']:,} | {r['invocations']:,} | "
              f"{duration(r['wall_s'])} | {duration(r['single_s'])} | {r['concurrent_workers']:,} | {r['lambda_usd']:.2f} | "
              f"{r['requests_usd']:.2f} | {r['total_usd']:.2f} |")
    print()
    print("| files per trash entry (1,000,000 workspaces) | one invocation would need | fan-out, 2 workers | fan-out, 24 workers (Elastic) |")
    print("|---:|---:|---:|---:|")
    for files, single, walls in by_entry_size(data["per_unit"]):
        print(f"| {files:,} | {duration(single)} | {duration(walls[2])} | {duration(walls[24])} |")


if __name__ == "__main__":
    main()
