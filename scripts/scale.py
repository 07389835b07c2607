#!/usr/bin/env python3
"""make scale (issue 14): the weekly sweep at fleet size, one invocation against the fan-out (a
coordinator and N concurrent workers fed by SQS), on moto and the FUSE latency model.

    python3 scripts/scale.py --bin-dir target/release --efs-latency target/release/efs-latency \
        [--tenants 1000 --workspaces-per-tenant 100 --expired-percent 10 --files-per-entry 200] \
        [--workers 1,4,16] [--quick] [--seed-only] [--stand-in] [--out bench/scale.json]

The fleet: `--tenants` x `--workspaces-per-tenant` workspaces with real directories
`<root>/<tenant>/<workspace>` (a few files each). `--expired-percent` of them have expired: no
record, their data in `<root>/.trash/<deletedAt>+<tenant>+<workspace>+<nonce>/` (`data/` with
`--files-per-entry` files, `--files-per-dir` to a directory, and `record.json` as ttl-expiry writes
it), deleted 30 days ago, so past TRASH_GRACE_DAYS (7): every entry is due. The others have a
record (the table seeded with BatchWriteItem). `--orphan-percent` more directories have no record
(orphans the sweep moves into the trash, UNIT_MAX_ACTIONS to a unit). Everything is written on the
latency model's backing directory (tmpfs), not through the model; the function sees it through the
model (crates/efs-latency, the delays of `make bench`), mounted afresh for every row.

A ctime cannot be set back, so directories made now are too young to be orphans (the least
ORPHAN_MIN_AGE_HOURS is 1): with orphans, the function processes run with their clock two hours
ahead (libfaketime, monotonic clock and stat untouched), and the Runtime API gives them their
deadlines in that clock. Without libfaketime no orphans are seeded.

Caps are set so that every action is allowed (MAX_ACTIONS 1000000, MAX_PURGE_PERCENT and
MAX_ACTION_PERCENT 100): the run measures throughput, not the caps.

Rows (the trash and the orphans seeded again before each):
- "single": one scheduled invocation without WORK_QUEUE_URL (today's sweep: it plans and acts),
  with Lambda's longest timeout (`--single-timeout`, 900 s); a run that stops at the deadline says so;
- "fan-out" for each of `--workers`: an SQS queue (with a dead-letter queue, maxReceiveCount 5) and
  a runs table made in moto; the coordinator (a scheduled invocation with WORK_QUEUE_URL and
  RUNS_TABLE) plans and enqueues; then scripts/esm.py plays the SQS event source mapping, BatchSize
  1, with N warm worker processes (Lambda's MaximumConcurrency N), until the queue is empty; the
  run header's `unitsLeft == 0` is noted as the run's own end.

Before the rows, two references for reading the planning time: one Scan of the table as the sweep
reads it (moto's share: real DynamoDB pages far faster), and the model's cost of listing the
workspace directories one after another as the sweep does (on 50 tenants, per 1,000 directories).

Each row: wall time (the coordinator's included), units, actions done (the audit lines), files freed
(counted on the backing: the seeded files gone), files/s, speed-up against 1 worker, the unit time's
p50/p95 (single: per action, from the audit lines' timestamps), and where the CPU went (moto, the
latency model, the function processes, this harness; the machine's busy share). Written to `--out`
and printed, with the per-unit figures the README's Scale table is derived from.

The fan-out rows need a binary that has the fan-out (it reads WORK_QUEUE_URL); without it they are
skipped, or played with `--stand-in` (scripts/scale_standin.py, a Python stand-in that speaks the
interface: to check this harness, not to measure)."""
import argparse
import datetime
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor

import boto3
from botocore.config import Config

from bench_deleter import READ_US, WRITE_US, fuse_mount
from esm import SqsEventSource
from fleet import DAY, ENDPOINT, HERE, Fleet
from runtime_api import WarmFunction, process_cpu_s
from soak import batch_put, item, make_dir

ROOT = os.path.dirname(HERE)
REGION = "us-east-1"
FAKETIME_LIBS = ["/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
                 "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
                 "/usr/lib/faketime/libfaketime.so.1", "/usr/local/lib/faketime/libfaketime.so.1"]
GRACE_DAYS = 7
ORPHAN_MIN_AGE_HOURS = 1
CLOCK_AHEAD_H = 2
QUICK = {"tenants": 20, "workspaces_per_tenant": 10, "files_per_entry": 50, "orphan_percent": 5}
DONE_ACTIONS = {"purge_trash_entry", "archive_trash_entry", "move_to_trash", "delete_access_point",
                "mark_orphan_access_point", "unmark_access_point"}


# ------------------------------------------------------------------------------------ the fleet

class Layout:
    """Who is where: ids, which workspaces expired, the orphans, the trash entries' names."""

    def __init__(self, a, now):
        self.tenants = [f"t{t:04d}" for t in range(a.tenants)]
        per = a.workspaces_per_tenant
        expired_per_tenant = round(per * a.expired_percent / 100)
        self.live, self.expired = [], []
        for t, tenant in enumerate(self.tenants):
            for w in range(per):
                ws = f"ws-{t:04d}-{w:04d}"
                (self.expired if w < expired_per_tenant else self.live).append((tenant, ws))
        n_orphans = round(a.tenants * per * a.orphan_percent / 100)
        self.orphans = [(self.tenants[k % a.tenants], f"or-{k:06d}") for k in range(n_orphans)]
        # Deleted 30 days ago (a second apart): past the grace, each name distinct.
        self.entries = [(f"{now - 30 * DAY - i}+{tenant}+{ws}+{i:016x}", tenant, ws)
                        for i, (tenant, ws) in enumerate(self.expired)]
        self.workspaces = a.tenants * per


def seed_entries(job):
    """Writes trash entries (a process-pool job): data/src/dNNN/fNNNN.txt and record.json."""
    trash, entries, files, per_dir, size, now = job
    content = b"x" * size
    for name, tenant, ws in entries:
        src = os.path.join(trash, name, "data", "src")
        os.makedirs(src)
        for d in range(math.ceil(files / per_dir)):
            sub = os.path.join(src, f"d{d:03d}")
            os.mkdir(sub)
            for i in range(d * per_dir, min(files, (d + 1) * per_dir)):
                fd = os.open(os.path.join(sub, f"f{i:04d}.txt"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                if content:
                    os.write(fd, content)
                os.close(fd)
        deleted_at = int(name.split("+", 1)[0])
        record = {"deletedAt": deleted_at, "reason": "ttl_expired",
                  "item": item(ws, tenant, now, tier="pro", expires=deleted_at)}
        with open(os.path.join(trash, name, "record.json"), "w") as f:
            json.dump(record, f, indent=2)
    return len(entries)


def seed_dirs(job):
    """Workspace directories (a process-pool job), as the soak makes them."""
    root, dirs, files = job
    for tenant, ws in dirs:
        make_dir(root, tenant, ws, files=files)
    return len(dirs)


def chunks(seq, n):
    return [seq[i:i + n] for i in range(0, len(seq), n)]


def in_pool(fn, jobs):
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
        return sum(ex.map(fn, jobs))


def seed_records(fleet, layout, now):
    items = [item(ws, tenant, now, tier="pro", expires=now + 30 * DAY) for tenant, ws in layout.live]
    batch_put(fleet.ddb, fleet.table, items)
    return len(items)


def seed_live(backing, layout, a):
    return in_pool(seed_dirs, [(backing, c, a.live_files) for c in chunks(layout.live, 2000)])


def reseed(backing, layout, a, now):
    """The trash and the orphans as before any sweep: what a row changes, put back."""
    t0 = time.monotonic()
    trash = os.path.join(backing, ".trash")
    if os.path.exists(trash):
        subprocess.run(["rm", "-rf", trash], check=True)
    for tenant, ws in layout.orphans:
        shutil.rmtree(os.path.join(backing, tenant, ws), ignore_errors=True)
    os.mkdir(trash)
    in_pool(seed_entries, [(trash, c, a.files_per_entry, a.files_per_dir, a.file_bytes, now)
                           for c in chunks(layout.entries, 100)])
    in_pool(seed_dirs, [(backing, c, a.live_files) for c in chunks(layout.orphans, 500)])
    return time.monotonic() - t0


def trash_files_left(backing, layout):
    """Files still in the seeded entries (under their own or their `.purging+` name)."""
    trash = os.path.join(backing, ".trash")
    left = 0
    for name, _, _ in layout.entries:
        for n in (name, ".purging+" + name):
            p = os.path.join(trash, n)
            if os.path.isdir(p):
                left += sum(len(fs) for _, _, fs in os.walk(p))
    return left


def live_intact(backing, layout):
    """Every live workspace's directory is where it was (the sweep must never touch one)."""
    return all(os.path.isdir(os.path.join(backing, t, ws)) for t, ws in layout.live)


def orphans_moved(backing, layout):
    return sum(not os.path.exists(os.path.join(backing, t, ws)) for t, ws in layout.orphans)


# ------------------------------------------------------------------------------------ measuring

def reference_scan_s(fleet):
    """One full Scan of the workspace table as the sweep reads it (consistent, projected): moto's
    share of the planning time (real DynamoDB pages far faster than moto)."""
    t0 = time.monotonic()
    for _ in fleet.ddb.get_paginator("scan").paginate(TableName=fleet.table, ConsistentRead=True,
                                                      ProjectionExpression="workspaceId, tenantId"):
        pass
    return time.monotonic() - t0


def reference_listing_s(efs_latency, backing, mnt, a, layout, tenants=50):
    """Seconds per 1,000 workspace directories to list them as the sweep does (each tenant's
    directory read, each workspace's entry stat'ed, one after another) through a fresh mount of
    the model, on a sample of tenants: the model's share of the planning time."""
    served, n = {}, 0
    with fuse_mount(efs_latency, backing, mnt, a.read_us, a.write_us, served):
        t0 = time.monotonic()
        for t in layout.tenants[:tenants]:
            for e in os.scandir(os.path.join(mnt, t)):
                os.lstat(e.path)
                n += 1
        s = time.monotonic() - t0
    return s * 1000 / max(1, n)


def machine_cpu():
    """(busy, total) jiffies of the whole machine (/proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return sum(v) - idle, sum(v)


def child_pid(exe):
    """The pid of our child process running `exe` (the latency model's daemon)."""
    me, want = os.getpid(), os.path.realpath(exe)
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if ppid == me and os.path.realpath(os.readlink(f"/proc/{p}/exe")) == want:
                return int(p)
        except (OSError, ValueError, IndexError):
            continue
    return None


def moto_pid():
    port = ENDPOINT.rsplit(":", 1)[-1].strip("/")
    try:
        with open(os.path.join(ROOT, ".work", f"moto-{port}.pid")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


class CpuMeter:
    """CPU seconds used between start() and stop() by moto, the model, this harness, the machine."""

    def __init__(self, fuse_pid):
        self.pids = {"moto": moto_pid(), "latency_model": fuse_pid, "harness": os.getpid()}

    def start(self):
        self.t0 = time.monotonic()
        self.m0 = machine_cpu()
        self.c0 = {k: process_cpu_s(p) if p else None for k, p in self.pids.items()}

    def stop(self, functions_cpu_s):
        wall = time.monotonic() - self.t0
        busy, total = machine_cpu()
        out = {}
        for k, p in self.pids.items():
            c1 = process_cpu_s(p) if p else None
            out[k] = round(c1 - self.c0[k], 1) if c1 is not None and self.c0[k] is not None else None
        out["functions"] = round(functions_cpu_s, 1)
        ours = sum(v for v in out.values() if v is not None)
        out["machine_busy_percent"] = round(100 * (busy - self.m0[0]) / max(1, total - self.m0[1]), 1)
        out["machine_cpu_s"] = round((busy - self.m0[0]) / os.sysconf("SC_CLK_TCK"), 1)
        out["capacity_cpu_s"] = round(wall * (os.cpu_count() or 1), 1)
        # The machine is shared: what other processes took is capacity this run did not have.
        out["others"] = round(max(0.0, out["machine_cpu_s"] - ours), 1)
        return out


def log_lines(paths):
    out = []
    for path in paths:
        if not os.path.exists(path):
            continue
        with open(path, errors="replace") as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    return out


def audits_done(lines):
    """The audit lines of actions taken (not skips, not failures)."""
    return [l for l in lines if l.get("target") == "audit" and l.get("action") in DONE_ACTIONS
            and not l.get("error") and not l.get("dryRun")]


def stamp(line):
    t = line.get("timestamp")
    if not t:
        return None
    t = re.sub(r"(\.\d{6})\d+", r"\1", t.replace("Z", "+00:00"))
    try:
        return datetime.datetime.fromisoformat(t).timestamp()
    except ValueError:
        return None


def pct(values, p):
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def unit_actions(body):
    """The planned actions a unit's message carries: `{"kind", "entry", ...}` each, whether the
    unit holds them bare, as `{"action": planned, "listed"}` (efs-sweeper's UnitAction) or under
    `target`."""
    try:
        unit = json.loads(body)
    except ValueError:
        return []
    out = []
    for act in unit.get("actions", []) if isinstance(unit, dict) else []:
        if not isinstance(act, dict):
            continue
        inner = act if "kind" in act else (act.get("action") or act.get("target") or {})
        out.append(inner if isinstance(inner, dict) else {})
    return out


def action_kinds(body):
    return [a.get("kind", "?") for a in unit_actions(body)]


def unit_entries(body):
    return [a.get("entry") for a in unit_actions(body)]


# ------------------------------------------------------------------------------------ the rows

def faketime_cleanup(functions):
    """libfaketime keeps a semaphore and a shared memory segment per process and removes them at
    exit, which a process stopped by a signal never reaches: removed here, by pid, for the
    processes this run started (a stale one makes a later process of that pid fail to start)."""
    for fn in functions:
        for pid in fn.pids:
            for name in (f"faketime_shm_{pid}", f"sem.faketime_sem_{pid}"):
                try:
                    os.remove(os.path.join("/dev/shm", name))
                except OSError:
                    pass


def run_single(a, ctx):
    log = os.path.join(ctx["logs"], "single.log")
    fn = WarmFunction([ctx["binary"]], env=ctx["env"], timeout_s=a.single_timeout, logs=log,
                      clock_offset_s=ctx["offset"], name="efs-sweeper")
    fn.wait_ready()
    meter = ctx["meter"]
    meter.start()
    t0, started_at = time.monotonic(), time.time()
    ans = fn.invoke(ctx["scheduled"])
    wall = time.monotonic() - t0
    cpu_fn = fn.cpu_s()
    stats = fn.close()
    faketime_cleanup([fn])
    cpu = meter.stop(cpu_fn)
    body = ans["body"] if isinstance(ans["body"], dict) else {}
    lines = log_lines([log])
    done = audits_done(lines)
    times = [s for s in (stamp(l) for l in done) if s is not None]
    per_action = [b - a_ for a_, b in zip(times, times[1:])]
    # Until its first action is done it lists and plans (the function's clock may run ahead: see
    # above); the first action itself is taken as long as the median one.
    planning = min(times) - ctx["offset"] - started_at - (pct(per_action, 50) or 0) if times else None
    return {"mode": "single", "workers": 1, "wall_s": wall, "coordinator_s": None, "planning_s": planning,
            "status": ans["status"], "units": None, "invocations": 1,
            "actions": len(done), "actions_reported": len(body.get("actions", [])),
            "not_done": len(body.get("notDone", [])), "stopped_at_deadline": body.get("stoppedAtDeadline"),
            "cap_exceeded": body.get("capExceeded"), "files_freed_reported": body.get("filesFreed"),
            "p50_unit_s": pct(per_action, 50), "p95_unit_s": pct(per_action, 95), "unit_note": "per action",
            "function": stats, "cpu": cpu,
            "error": None if ans["status"] == "response" else ans["body"]}


def run_fanout(a, ctx, workers):
    sqs, ddb = ctx["sqs"], ctx["ddb"]
    suffix = f"{workers}w-{uuid.uuid4().hex[:6]}"
    dlq = sqs.create_queue(QueueName=f"scale-dlq-{suffix}")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(QueueName=f"scale-work-{suffix}", Attributes={
        "VisibilityTimeout": str(6 * int(a.function_timeout)), "MessageRetentionPeriod": str(4 * DAY),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5})})["QueueUrl"]
    runs = f"scale-runs-{suffix}"
    ddb.create_table(TableName=runs, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
    env = dict(ctx["env"], WORK_QUEUE_URL=queue_url, RUNS_TABLE=runs)
    if a.unit_max_actions:
        env["UNIT_MAX_ACTIONS"] = str(a.unit_max_actions)
    logs = [os.path.join(ctx["logs"], f"fanout-{workers}-worker{i}.log") for i in range(workers)]
    coord_log = os.path.join(ctx["logs"], f"fanout-{workers}-coordinator.log")
    cmd = ctx["fanout_cmd"]
    pool = [WarmFunction(cmd, env=env, timeout_s=a.function_timeout, logs=logs[i], clock_offset_s=ctx["offset"],
                         name="efs-sweeper") for i in range(workers)]
    coordinator = WarmFunction(cmd, env=env, timeout_s=a.function_timeout, logs=coord_log,
                               clock_offset_s=ctx["offset"], name="efs-sweeper")
    # Warm before the clock starts: Lambda's scaling up is not what is measured.
    for fn in pool + [coordinator]:
        fn.wait_ready()
    meter = ctx["meter"]
    meter.start()
    t0 = time.monotonic()
    coord = coordinator.invoke(ctx["scheduled"])
    coord_s = time.monotonic() - t0
    body = coord["body"] if isinstance(coord["body"], dict) else {}
    run_id = body.get("runId")
    row = {"mode": "fan-out", "workers": workers, "coordinator_s": coord_s, "status": coord["status"],
           "coordinator": {k: v for k, v in body.items() if k not in ("skipped",)} if body else coord["body"]}
    if coord["status"] != "response" or not run_id:
        for fn in pool + [coordinator]:
            fn.close()
        faketime_cleanup(pool + [coordinator])
        meter.stop(0.0)
        row.update({"wall_s": coord_s, "error": f"the coordinator did not start a run: {coord['body']}"})
        return row

    def units_left():
        got = ddb.get_item(TableName=runs, Key={"id": {"S": run_id}}, ConsistentRead=True).get("Item", {})
        return int(got["unitsLeft"]["N"]) if "unitsLeft" in got else None

    source = SqsEventSource(sqs, queue_url, pool, batch_size=1, region=REGION)
    res = source.run(finished=lambda: units_left() == 0, timeout_s=a.run_timeout)
    wall = coord_s + res["wall_s"]
    cpu_fn = sum(fn.cpu_s() for fn in pool) + coordinator.cpu_s()
    stats = [fn.close() for fn in pool]
    coord_stats = coordinator.close()
    faketime_cleanup(pool + [coordinator])
    cpu = meter.stop(cpu_fn)
    header = ddb.get_item(TableName=runs, Key={"id": {"S": run_id}}, ConsistentRead=True).get("Item", {})
    dead = int(sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])
               ["Attributes"]["ApproximateNumberOfMessages"])
    lines = log_lines(logs)
    done = audits_done(lines)
    freed_by_entry = {}
    for l in done:
        # The purge's line: the entry is its resource (`.trash/<entry>`), the workspace its subject.
        what = str(l.get("resource") or l.get("workspaceId") or "")
        if l.get("action") == "purge_trash_entry" and what.startswith(".trash/"):
            freed_by_entry[what[len(".trash/"):]] = l.get("files") or 0
    invs = res["invocations"]
    unit_s = [i["ms"] / 1000 for i in invs]
    purge_units, orphan_units = [], []
    for inv in invs:
        if inv["status"] != "response" or inv["failed"]:
            continue
        kinds = [k for m in inv["messages"] for k in action_kinds(m["body"])]
        if kinds and all(k in ("purge_trash", "archive_trash") for k in kinds):
            entries = [e for m in inv["messages"] for e in unit_entries(m["body"])]
            files = sum(freed_by_entry.get(e, ctx["files_per_entry"]) for e in entries)
            purge_units.append({"s": inv["ms"] / 1000, "files": files})
        elif kinds and all(k == "trash_orphan" for k in kinds):
            orphan_units.append({"s": inv["ms"] / 1000, "moves": len(kinds)})
    row.update({
        "wall_s": wall, "fanout_s": res["wall_s"], "units_done_at_s": (coord_s + res["finished_s"])
        if res["finished_s"] is not None else None,
        "units": body.get("units"), "enqueued": body.get("enqueued"), "not_enqueued": body.get("notEnqueued"),
        "invocations": len(invs), "retried": sum(bool(i["failed"]) for i in invs),
        "errors": sum(i["status"] != "response" for i in invs), "dead_lettered": dead,
        "units_left": int(header["unitsLeft"]["N"]) if "unitsLeft" in header else None,
        "header": {k: list(v.values())[0] for k, v in header.items()},
        "actions": len(done), "actions_planned": body.get("actions"),
        "p50_unit_s": pct(unit_s, 50), "p95_unit_s": pct(unit_s, 95), "unit_note": "per unit",
        "purge_units": len(purge_units),
        "purge_unit_s_per_file": (sum(u["s"] for u in purge_units) / sum(u["files"] for u in purge_units))
        if purge_units and sum(u["files"] for u in purge_units) else None,
        "purge_unit_mean_s": statistics.mean(u["s"] for u in purge_units) if purge_units else None,
        "orphan_units": len(orphan_units),
        "orphan_unit_mean_s": statistics.mean(u["s"] for u in orphan_units) if orphan_units else None,
        "orphan_move_mean_s": (sum(u["s"] for u in orphan_units) / sum(u["moves"] for u in orphan_units))
        if orphan_units else None,
        "esm_errors": res["errors"][:20], "timed_out": res["timed_out"],
        "function": {"workers": stats, "coordinator": coord_stats}, "cpu": cpu,
        "error": None})
    return row


# ------------------------------------------------------------------------------------ main

def fmt(v, spec):
    """`v` formatted by `spec`, or a dash as wide as the spec says."""
    if v is not None:
        return format(v, spec)
    width = re.match(r"\D*(\d*)", spec).group(1)
    return format("-", ">" + width)


def print_table(rows):
    print()
    print(f"{'mode':8} {'workers':>7} {'wall s':>8} {'coord s':>8} {'units':>6} {'actions':>7} {'files freed':>11} "
          f"{'files/s':>8} {'speed-up':>8} {'p50 s':>7} {'p95 s':>7}")
    for r in rows:
        print(f"{r['mode']:8} {r['workers']:>7} {fmt(r.get('wall_s'), '8.1f')} {fmt(r.get('coordinator_s'), '8.1f')} "
              f"{fmt(r.get('units'), '6')} {fmt(r.get('actions'), '7')} {fmt(r.get('files_freed'), '11,')} "
              f"{fmt(r.get('files_per_s'), '8,.0f')} {fmt(r.get('speedup'), '7.2f') + ('x' if r.get('speedup') else ' ')} "
              f"{fmt(r.get('p50_unit_s'), '7.3f')} {fmt(r.get('p95_unit_s'), '7.3f')}")
    print("  (p50/p95: per unit for fan-out, per action for single; speed-up: the 1-worker row's wall time over this row's)")
    print()
    print(f"{'mode':8} {'workers':>7}  CPU seconds: {'moto':>6} {'model':>6} {'functions':>9} {'harness':>7} "
          f"{'others':>6} {'machine':>7} of {'capacity':>8}  busy  model ops  ideal s  notes")
    for r in rows:
        c = r.get("cpu") or {}
        notes = []
        if r.get("stopped_at_deadline"):
            notes.append("stopped at the deadline")
        if r.get("error"):
            notes.append(f"error: {str(r['error'])[:80]}")
        if r.get("retried"):
            notes.append(f"{r['retried']} retried")
        if r.get("dead_lettered"):
            notes.append(f"{r['dead_lettered']} dead-lettered")
        if r.get("units_left"):
            notes.append(f"unitsLeft {r['units_left']}")
        if r.get("live_intact") is False:
            notes.append("A LIVE WORKSPACE WAS TOUCHED")
        notes += r.get("bounds", [])
        print(f"{r['mode']:8} {r['workers']:>7}  {'':13}{fmt(c.get('moto'), '6.1f')} {fmt(c.get('latency_model'), '6.1f')} "
              f"{fmt(c.get('functions'), '9.1f')} {fmt(c.get('harness'), '7.1f')} {fmt(c.get('others'), '6.1f')} "
              f"{fmt(c.get('machine_cpu_s'), '7.1f')} of {fmt(c.get('capacity_cpu_s'), '8.1f')} "
              f"{fmt(c.get('machine_busy_percent'), '4.0f')}% {fmt((r.get('model') or {}).get('total_ops'), '10,')} "
              f"{fmt(r.get('ideal_s'), '8.1f')}  {'; '.join(notes)}")
    print("  (others: CPU the machine's other processes took meanwhile; ideal: this row's coordinator time plus the "
          "1-worker row's fan-out time divided by the workers, the wall time of perfect scaling)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", default=os.path.join(ROOT, "target", "release"))
    ap.add_argument("--efs-latency", default=None, help="the FUSE latency model (default: BIN_DIR/efs-latency)")
    ap.add_argument("--tenants", type=int, default=1000)
    ap.add_argument("--workspaces-per-tenant", type=int, default=100)
    ap.add_argument("--expired-percent", type=float, default=10)
    ap.add_argument("--files-per-entry", type=int, default=200)
    ap.add_argument("--files-per-dir", type=int, default=25, help="a trash entry's files to a directory")
    ap.add_argument("--file-bytes", type=int, default=0,
                    help="bytes in each trash file (tmpfs gives a non-empty file a page of its own: 0 keeps "
                         "the full size in memory)")
    ap.add_argument("--live-files", type=int, default=3, help="files in each live (and orphan) directory")
    ap.add_argument("--orphan-percent", type=float, default=1,
                    help="directories without a record, as a percentage of the workspaces (needs libfaketime)")
    ap.add_argument("--workers", default="1,4,16", help="worker concurrencies of the fan-out rows")
    ap.add_argument("--no-single", action="store_true", help="leave out the single-invocation row")
    ap.add_argument("--single-timeout", type=float, default=900, help="the single invocation's timeout (s)")
    ap.add_argument("--function-timeout", type=float, default=900, help="each fan-out invocation's timeout (s)")
    ap.add_argument("--run-timeout", type=float, default=7200, help="give up on a fan-out row after this (s)")
    ap.add_argument("--unit-max-actions", type=int, default=None, help="UNIT_MAX_ACTIONS (default: the function's)")
    ap.add_argument("--delete-concurrency", type=int, default=None, help="DELETE_CONCURRENCY (default: the function's)")
    ap.add_argument("--read-us", type=int, default=READ_US)
    ap.add_argument("--write-us", type=int, default=WRITE_US)
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run: " + ", ".join(f"{k.replace('_', '-')} {v}" for k, v in QUICK.items()))
    ap.add_argument("--seed-only", action="store_true", help="seed the fleet, report how long it took, stop")
    ap.add_argument("--stand-in", action="store_true",
                    help="fan-out rows with scripts/scale_standin.py (checks the harness; measures nothing)")
    ap.add_argument("--no-fuse", action="store_true", help="no latency model: the function sees the tmpfs directly")
    ap.add_argument("--out", default=None, help="the JSON report (default bench/scale.json; --quick: .work/scale-quick.json)")
    a = ap.parse_args()
    if a.quick:
        for k, v in QUICK.items():
            if getattr(a, k) == ap.get_default(k):
                setattr(a, k, v)
    a.out = a.out or os.path.join(ROOT, ".work/scale-quick.json" if a.quick else "bench/scale.json")
    worker_counts = [int(x) for x in a.workers.split(",") if x.strip()]
    binary = os.path.join(a.bin_dir, "efs-sweeper")
    efs_latency = a.efs_latency or os.path.join(a.bin_dir, "efs-latency")
    if not os.access(binary, os.X_OK) and not a.seed_only:
        sys.exit(f"{binary} not found: build it first (make scale does)")
    if not a.no_fuse and not a.seed_only:
        if not (os.path.exists("/dev/fuse") and shutil.which("fusermount3") and os.access(efs_latency, os.X_OK)):
            sys.exit("the FUSE latency model needs /dev/fuse, fusermount3 (Debian: fuse3), root and "
                     f"{efs_latency}; --no-fuse runs without it (no EFS delays: not comparable)")
    faketime = next((p for p in FAKETIME_LIBS if os.path.exists(p)), None)
    if a.orphan_percent and not faketime:
        print("libfaketime not found (Debian: libfaketime): no orphans seeded (a directory made now is too young)")
        a.orphan_percent = 0
    has_fanout = False
    if os.path.exists(binary):
        with open(binary, "rb") as f:
            has_fanout = b"WORK_QUEUE_URL" in f.read()
    fanout_cmd = [sys.executable, os.path.join(HERE, "scale_standin.py")] if a.stand_in else \
        ([binary] if has_fanout else None)
    if worker_counts and fanout_cmd is None and not a.seed_only:
        print(f"{binary} has no fan-out (it never reads WORK_QUEUE_URL): the fan-out rows are skipped "
              "(--stand-in plays them with scripts/scale_standin.py, to check the harness)")
    if os.geteuid() == 0:
        os.nice(-5)

    now = int(time.time())
    layout = Layout(a, now)
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    base = tempfile.mkdtemp(prefix="scale-", dir=shm)
    backing, mnt = os.path.join(base, "backing"), os.path.join(base, "mnt")
    os.mkdir(backing)
    os.mkdir(mnt)
    logs_dir = os.path.join(ROOT, ".work", "scale")
    shutil.rmtree(logs_dir, ignore_errors=True)
    os.makedirs(logs_dir)
    report = {"generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "size": {"tenants": a.tenants, "workspaces_per_tenant": a.workspaces_per_tenant,
                       "workspaces": layout.workspaces, "live": len(layout.live), "expired": len(layout.entries),
                       "files_per_entry": a.files_per_entry, "files_per_dir": a.files_per_dir,
                       "orphans": len(layout.orphans), "trash_files": len(layout.entries) * a.files_per_entry},
              "machine": {"cpus": os.cpu_count(), "latency_model": not a.no_fuse, "read_us": a.read_us,
                          "write_us": a.write_us, "backing": "tmpfs" if shm else "disk"},
              "binary": binary, "fanout": "stand-in" if a.stand_in else ("binary" if has_fanout else "absent"),
              "clock_ahead_h": CLOCK_AHEAD_H if layout.orphans else 0, "seed": {}, "rows": []}
    print(f"fleet: {a.tenants} tenants x {a.workspaces_per_tenant} workspaces = {layout.workspaces:,}; "
          f"{len(layout.live):,} live with a record, {len(layout.entries):,} expired into the trash "
          f"({a.files_per_entry} files each, {report['size']['trash_files']:,} in all), {len(layout.orphans):,} orphans")
    try:
        fleet = Fleet("scale")
        os.rmdir(fleet.root)
        fleet.root = backing
        t0 = time.monotonic()
        seed_records(fleet, layout, now)
        report["seed"]["records_s"] = round(time.monotonic() - t0, 1)
        t0 = time.monotonic()
        seed_live(backing, layout, a)
        report["seed"]["live_dirs_s"] = round(time.monotonic() - t0, 1)
        report["seed"]["trash_and_orphans_s"] = round(reseed(backing, layout, a, now), 1)
        seed_total = sum(report["seed"].values())
        report["reference"] = {"moto_scan_s": round(reference_scan_s(fleet), 2)}
        if not a.no_fuse and not a.seed_only:
            report["reference"]["listing_s_per_1000_dirs"] = round(
                reference_listing_s(efs_latency, backing, mnt, a, layout), 3)
        print(f"seeded in {seed_total:.0f} s: {len(layout.live):,} records {report['seed']['records_s']} s, "
              f"{len(layout.live):,} live directories {report['seed']['live_dirs_s']} s, "
              f"trash and orphans {report['seed']['trash_and_orphans_s']} s")
        if a.seed_only:
            return
        env = fleet.env(RUST_LOG="info")
        # Loopback and dummy credentials, as the Makefile exports them, whoever runs this.
        for k, v in (("AWS_ENDPOINT_URL", ENDPOINT), ("AWS_REGION", REGION), ("AWS_ACCESS_KEY_ID", "testing"),
                     ("AWS_SECRET_ACCESS_KEY", "testing"), ("AWS_EC2_METADATA_DISABLED", "true")):
            env.setdefault(k, os.environ.get(k, v))
        env.update({"EFS_ROOT": mnt if not a.no_fuse else backing, "TRASH_GRACE_DAYS": str(GRACE_DAYS),
                    "ORPHAN_MIN_AGE_HOURS": str(ORPHAN_MIN_AGE_HOURS), "MAX_ACTIONS": "1000000",
                    "MAX_PURGE_PERCENT": "100", "MAX_ACTION_PERCENT": "100",
                    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024"})
        if a.delete_concurrency:
            env["DELETE_CONCURRENCY"] = str(a.delete_concurrency)
        offset = 0
        if layout.orphans:
            offset = CLOCK_AHEAD_H * 3600
            env.update({"LD_PRELOAD": faketime, "FAKETIME": f"+{CLOCK_AHEAD_H}h",
                        "FAKETIME_DONT_FAKE_MONOTONIC": "1", "NO_FAKE_STAT": "1"})
        cfg = Config(max_pool_connections=64, retries={"mode": "standard", "max_attempts": 5})
        mk = lambda s: boto3.client(s, endpoint_url=ENDPOINT, region_name=REGION, aws_access_key_id="testing",
                                    aws_secret_access_key="testing", config=cfg)
        with open(os.path.join(ROOT, "events", "efs-sweeper", "scheduled.json"), "rb") as f:
            scheduled = f.read()
        ctx = {"binary": binary, "env": env, "offset": offset, "logs": logs_dir, "scheduled": scheduled,
               "sqs": mk("sqs"), "ddb": mk("dynamodb"), "fanout_cmd": fanout_cmd,
               "files_per_entry": a.files_per_entry + 1}
        plan = ([("single", None)] if not a.no_single else []) + \
               ([("fan-out", w) for w in worker_counts] if fanout_cmd else [])
        seeded_files = len(layout.entries) * (a.files_per_entry + 1)  # data/ and record.json
        for i, (mode, workers) in enumerate(plan):
            if i > 0:
                s = reseed(backing, layout, a, now)
                report["seed"].setdefault("reseed_s", []).append(round(s, 1))
            label = "single invocation" if mode == "single" else f"fan-out, {workers} workers"
            print(f"== {label}", flush=True)
            served = {}
            mount = fuse_mount(efs_latency, backing, mnt, a.read_us, a.write_us, served) if not a.no_fuse else None
            if mount:
                mount.__enter__()
            try:
                ctx["meter"] = CpuMeter(child_pid(efs_latency) if mount else None)
                load = os.getloadavg()[0]
                row = run_single(a, ctx) if mode == "single" else run_fanout(a, ctx, workers)
            finally:
                if mount:
                    mount.__exit__(None, None, None)
            row["loadavg_before"] = round(load, 2)
            row["model"] = {k: served.get(k) for k in ("total_ops", "delayed_us")} if served else None
            row["files_freed"] = seeded_files - trash_files_left(backing, layout)
            row["orphans_moved"] = orphans_moved(backing, layout)
            row["live_intact"] = live_intact(backing, layout)
            row["files_per_s"] = row["files_freed"] / row["wall_s"] if row.get("wall_s") else None
            row["bounds"] = bounds(row)
            report["rows"].append(row)
            print(f"   {row['wall_s']:.1f} s, {row.get('actions')} actions, {row['files_freed']:,} files freed, "
                  f"{row['orphans_moved']} orphans moved" + (f"; {row['error']}" if row.get("error") else ""),
                  flush=True)
        one = next((r for r in report["rows"] if r["mode"] == "fan-out" and r["workers"] == 1 and not r.get("error")),
                   None)
        for r in report["rows"]:
            r["speedup"] = one["wall_s"] / r["wall_s"] if one and r.get("wall_s") else None
            if one and r["mode"] == "fan-out" and r.get("fanout_s") is not None:
                r["ideal_s"] = r["coordinator_s"] + one["fanout_s"] / r["workers"]
        print_table(report["rows"])
        report["per_unit"] = per_unit_figures(report, layout)
        report["per_unit"]["moto_scan_s_per_1000_records"] = report["reference"]["moto_scan_s"] * 1000 / max(
            1, len(layout.live))
        report["per_unit"]["listing_s_per_1000_dirs"] = report["reference"].get("listing_s_per_1000_dirs")
        print_per_unit(report["per_unit"])
    finally:
        if os.path.ismount(mnt):
            subprocess.run(["fusermount3", "-u", mnt], stderr=subprocess.DEVNULL)
        subprocess.run(["rm", "-rf", base])
        if not a.seed_only:
            os.makedirs(os.path.dirname(a.out), exist_ok=True)
            with open(a.out, "w") as f:
                json.dump(report, f, indent=1, default=str)
            print(f"\nwritten to {os.path.relpath(a.out, ROOT)}; function logs in .work/scale/")


def bounds(row):
    """What was saturated during a row: moto is one Python process (one core at most, whatever
    the machine has), the model's daemon has two session threads, the machine its cores."""
    c, wall = row.get("cpu") or {}, row.get("wall_s")
    out = []
    if not c or not wall:
        return out
    if c.get("moto") is not None:
        row["moto_core_share"] = c["moto"] / wall
        if row["moto_core_share"] > 0.75:
            out.append(f"moto {100 * row['moto_core_share']:.0f}% of its one core")
        if row.get("invocations"):
            row["moto_cpu_ms_per_unit"] = 1000 * c["moto"] / row["invocations"]
    if c.get("latency_model") is not None and c["latency_model"] / wall > 1.5:
        out.append(f"model daemon {100 * c['latency_model'] / wall:.0f}% of its two threads' cores")
    if c.get("machine_busy_percent", 0) > 90:
        out.append(f"machine {c['machine_busy_percent']:.0f}% busy" +
                   (f" ({c['others']:.0f} CPU-s by other processes)" if c.get("others", 0) > 0.2 * c["machine_cpu_s"] else ""))
    return out


def per_unit_figures(report, layout):
    """What the README's Scale table is derived from: the least contended fan-out row's units."""
    fan = [r for r in report["rows"] if r["mode"] == "fan-out" and not r.get("error")]
    base = min(fan, key=lambda r: r["workers"]) if fan else None
    single = next((r for r in report["rows"] if r["mode"] == "single"), None)
    out = {"from_row": f"fan-out, {base['workers']} workers" if base else None}
    if base:
        out.update({
            "purge_unit_s_per_file": base.get("purge_unit_s_per_file"),
            "purge_unit_mean_s": base.get("purge_unit_mean_s"),
            "orphan_unit_mean_s": base.get("orphan_unit_mean_s"),
            "orphan_move_mean_s": base.get("orphan_move_mean_s"),
            "coordinator_s_per_1000_workspaces": base["coordinator_s"] * 1000 / layout.workspaces,
            "moto_cpu_ms_per_unit": base.get("moto_cpu_ms_per_unit"),
            "coordinator_s_per_1000_workspaces_by_row": {str(r["workers"]): r["coordinator_s"] * 1000 / layout.workspaces
                                                         for r in fan},
        })
    if single and single.get("planning_s") is not None:
        out["single_planning_s_per_1000_workspaces"] = single["planning_s"] * 1000 / layout.workspaces
    if single and single.get("actions"):
        out["single_s_per_action"] = single["wall_s"] / single["actions"]
        out["single_s_per_file"] = single["wall_s"] / single["files_freed"] if single["files_freed"] else None
    return out


def print_per_unit(p):
    print("\nper-unit figures (README, \"Scale\")" + (f", from {p['from_row']}" if p.get("from_row") else ""))
    rows = [("purge unit: seconds per file", "purge_unit_s_per_file", ".5f"),
            ("purge unit: mean seconds", "purge_unit_mean_s", ".3f"),
            ("orphan-move unit: mean seconds", "orphan_unit_mean_s", ".3f"),
            ("orphan move: mean seconds (within a unit)", "orphan_move_mean_s", ".4f"),
            ("moto CPU ms per unit (ceiling: 1000/this units/s)", "moto_cpu_ms_per_unit", ".1f"),
            ("coordinator: seconds per 1,000 workspaces", "coordinator_s_per_1000_workspaces", ".3f"),
            ("  of which moto's Scan: s per 1,000 records", "moto_scan_s_per_1000_records", ".3f"),
            ("  of which listing through the model: s per 1,000", "listing_s_per_1000_dirs", ".3f"),
            ("single invocation: planning s per 1,000 workspaces", "single_planning_s_per_1000_workspaces", ".3f"),
            ("single invocation: seconds per action", "single_s_per_action", ".4f"),
            ("single invocation: seconds per file freed", "single_s_per_file", ".5f")]
    for label, key, spec in rows:
        print(f"  {label:52} {fmt(p.get(key), spec)}")


if __name__ == "__main__":
    main()
