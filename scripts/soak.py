#!/usr/bin/env python3
"""The soak: the function binaries, driven through the Lambda Runtime API, with the project's fault
proxy (tools/fault-proxy) between every function and moto, on a fleet with real directories.

    python3 scripts/soak.py --bin-dir target/debug [--size full|short] [--report soak-report.json]

Every AWS call a function makes goes through the proxy, with rules on every operation: 10%
throttling, 2% 5xx, 1% dropped connections (effective rates), `partial` answers on 5% of the batch
and describe calls, `slow` answers on a few operations. Set-up and checks talk to moto directly.

- ttl-expiry: TTL REMOVE records (plus user deletes and modifies) in batches of 100, redelivered
  the way Lambda does: a response naming batchItemFailures is retried from the first failed
  sequence number; a function error (or a simulated timeout) bisects the batch. Workspaces in use
  (a running task), held, and re-created between two deliveries are mixed in.
- heartbeat: workspaces touched concurrently from 4 processes with out-of-order times; a watcher
  scans the table throughout and any expiry seen to move back is a wrong outcome.
- efs-sweeper and ecr-pruner: the same run on two identical fleets, one without faults and one
  with; the faulty one must end in the same state or say it stopped early, and never delete more.

The report (printed, and as JSON with --report): records handled, redeliveries, faults injected per
kind (the proxy's own counts), wrong outcomes with details, wall time. Exits non-zero on any wrong
outcome or when a fault kind was injected fewer times than the size requires.
"""
import argparse
import collections
import json
import os
import queue
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from fleet import DAY, ENDPOINT, HERE, Fleet, client, moto_post

ROOT = os.path.dirname(HERE)
SIZES = {
    # ttl: TTL REMOVE records; hb: heartbeat workspaces; sweep/prune: fleet sizes; min_faults: the
    # least number of injections of every fault kind for the run to count.
    "full": {"ttl": 10_000, "hb": 2_000, "hb_rounds": 2, "sweep": 400, "prune": 120, "min_faults": 100},
    "short": {"ttl": 400, "hb": 150, "hb_rounds": 2, "sweep": 60, "prune": 30, "min_faults": 3},
}
BATCH = 100
MAX_RETRIES = 12  # per (sub-)batch, then Lambda sends it to the failure destination
PRUNE_KEEP_TAGGED = 10
EXTRA_ENV = {}
FAULT_KINDS = ("throttle", "5xx", "drop", "partial", "slow")


def fault_rules():
    """The rules, in the proxy's order (the first rule that fires wins), with conditional rates so
    that the effective rates are 10% throttle, 2% 5xx, 1% drop, 5% partial."""
    throttle, err, drop, partial = 0.10, 0.02, 0.01, 0.05
    p_err = err / (1 - throttle)
    p_drop = drop / (1 - throttle - err)
    p_partial = partial / (1 - throttle - err - drop)
    rules = [f"*=throttle:{throttle}", f"*=5xx:{p_err:.5f}", f"*=drop:{p_drop:.5f}"]
    for op in ("BatchGetItem", "BatchWriteItem", "DescribeTasks", "DescribeServices", "BatchGetImage",
               "BatchDeleteImage"):
        rules.append(f"{op}=partial:{p_partial:.5f}")
    rules += ["DynamoDB_20120810.GetItem=slow200:0.01", "ListTasks=slow300:0.05",
              "access-points=slow200:0.02", "DescribeImages=slow300:0.05", "DynamoDB_20120810.Scan=slow300:0.1"]
    return rules


class QuietServer(ThreadingHTTPServer):
    """A client that hangs up (the SDK after a dropped connection) is not an error worth a trace."""
    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ConnectionError, BrokenPipeError)):
            super().handle_error(request, client_address)


class Proxy:
    """tools/fault-proxy/fault_proxy.py in front of moto."""

    def __init__(self, rules, seed):
        script = os.path.join(ROOT, "tools", "fault-proxy", "fault_proxy.py")
        args = [sys.executable, script, "--upstream", ENDPOINT, "--port", "0", "--seed", str(seed)]
        for r in rules:
            args += ["--rule", r]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        self.endpoint = next(w for w in line.split() if w.startswith("http://"))

    def counts(self):
        import urllib.request
        with urllib.request.urlopen(self.endpoint + "/__faults") as r:
            return json.load(r)["rules"]

    def by_kind(self):
        kinds = collections.Counter({k: 0 for k in FAULT_KINDS})
        matched = 0
        for r in self.counts():
            fault = r["rule"].split("=", 1)[1].split(":", 1)[0]
            kinds["slow" if fault.startswith("slow") else fault] += r["injected"]
            if r["rule"].startswith("*=throttle"):
                matched = r["matched"]
        return dict(kinds), matched

    def close(self):
        self.proc.terminate()
        self.proc.wait()


class LiveFunction:
    """One function process behind a Runtime API that hands it events one at a time, as Lambda
    does for one execution environment. A process that dies is counted and started again."""

    def __init__(self, binary, env, log_path, timeout_s=300):
        self.binary, self.env, self.timeout_s = binary, dict(env, **EXTRA_ENV), timeout_s
        self.events, self.answers = queue.Queue(), queue.Queue()
        self.log = open(log_path, "ab")
        self.log_path = log_path
        self.crashes = 0
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def reply(self, code, body=b"", headers=None):
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                payload = outer.events.get()
                if payload is None:
                    return self.reply(410)
                deadline = int((time.time() + outer.timeout_s) * 1000)
                self.reply(200, payload, {
                    "Content-Type": "application/json", "Lambda-Runtime-Aws-Request-Id": str(uuid.uuid4()),
                    "Lambda-Runtime-Deadline-Ms": str(deadline),
                    "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:123456789012:function:soak",
                    "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000"})

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                kind = self.path.rstrip("/").rsplit("/", 1)[-1]
                if kind in ("response", "error"):
                    try:
                        parsed = json.loads(body) if body else None
                    except ValueError:
                        parsed = body.decode(errors="replace")
                    outer.answers.put((kind, parsed))
                elif kind == "error" or self.path.endswith("/init/error"):
                    outer.answers.put(("init_error", body.decode(errors="replace")))
                self.reply(202, b"{}", {"Content-Type": "application/json"})

        self.srv = QuietServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.proc = None
        self._start()

    def _start(self):
        env = dict(os.environ)
        env.update(self.env)
        env.update({"AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{self.srv.server_address[1]}",
                    "AWS_LAMBDA_FUNCTION_NAME": os.path.basename(self.binary),
                    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
                    "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/soak", "AWS_LAMBDA_LOG_STREAM_NAME": "soak"})
        self.proc = subprocess.Popen([self.binary], env=env, stdout=self.log, stderr=self.log)

    def invoke(self, event):
        self.events.put(json.dumps(event).encode())
        while True:
            try:
                return self.answers.get(timeout=1)
            except queue.Empty:
                if self.proc.poll() is not None:
                    # The process died mid-invocation: Lambda reports a function error and starts
                    # a new environment. The event was taken; drop it if it was not.
                    self.crashes += 1
                    code = self.proc.returncode
                    while not self.events.empty():
                        self.events.get_nowait()
                    self._start()
                    return ("error", {"errorType": "Runtime.ExitError", "exit": code})

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.events.put(None)
        self.srv.shutdown()
        self.log.close()

    def log_lines(self):
        out = []
        with open(self.log_path, errors="replace") as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    out.append({"raw": line.rstrip()})
        return out


class Report:
    def __init__(self):
        self.wrong = []
        self.figures = collections.OrderedDict()

    def check(self, ok, scenario, what):
        if not ok:
            self.wrong.append({"scenario": scenario, "what": what})
        return ok


def audits(lines):
    return [l for l in lines if l.get("target") == "audit"]


def files_of(path):
    out = {}
    for dirpath, _, names in os.walk(path):
        for n in names:
            with open(os.path.join(dirpath, n), "rb") as f:
                out[os.path.relpath(os.path.join(dirpath, n), path)] = f.read()
    return out


def make_dir(root, tenant, ws, files=2):
    path = os.path.join(root, tenant, ws)
    os.makedirs(os.path.join(path, "src"), exist_ok=True)
    for i in range(files):
        with open(os.path.join(path, "src", f"f{i}.txt"), "w") as f:
            f.write(f"{ws}:{i}\n")


def expected_files(ws, files=2):
    return {os.path.join("src", f"f{i}.txt"): f"{ws}:{i}\n".encode() for i in range(files)}


def batch_put(ddb, table, items):
    def put(chunk):
        req = [{"PutRequest": {"Item": i}} for i in chunk]
        while req:
            out = ddb.batch_write_item(RequestItems={table: req})
            req = out.get("UnprocessedItems", {}).get(table, [])
    chunks = [items[i:i + 25] for i in range(0, len(items), 25)]
    with ThreadPoolExecutor(4) as ex:
        list(ex.map(put, chunks))


def item(ws, tenant, now, tier="free", expires=None, hold=False, ap=None, **extra):
    it = {"workspaceId": {"S": ws}, "tenantId": {"S": tenant}, "userId": {"S": f"{tenant}-user"},
          "tier": {"S": tier}, "subscriptionStatus": {"S": "active"}, "lastActivityAt": {"N": str(now - 10 * DAY)}}
    if expires is not None:
        it["expiresAt"] = {"N": str(expires)}
    if hold:
        it["hold"] = {"BOOL": True}
    if ap:
        it["accessPointId"] = {"S": ap}
    for k, v in extra.items():
        it[k] = v
    return it


def start_tasks(fleet, workspaces):
    """A running task tagged with each workspace (one task definition; moto tasks kept RUNNING)."""
    moto_post("/moto-api/state-manager/set-transition",
              {"model_name": "ecs::task", "transition": {"progression": "manual", "times": 1000000}})
    family = f"soak-{uuid.uuid4().hex[:6]}"
    fleet.ecs.register_task_definition(
        family=family, requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="256", memory="512",
        containerDefinitions=[{"name": "agent", "image": "agent:latest", "memory": 512}])
    subnet = fleet.ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    sg = fleet.security_group()

    def run(ws):
        fleet.ecs.run_task(cluster=fleet.cluster, taskDefinition=family, launchType="FARGATE",
                           networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [sg]}},
                           tags=[{"key": "workspaceId", "value": ws}])
    with ThreadPoolExecutor(4) as ex:
        list(ex.map(run, workspaces))


# ---------------------------------------------------------------------------------------------
# ttl-expiry


class Shard:
    """Lambda's event source mapping for one shard: batches in order; a response naming failures is
    retried from the first failed sequence number; a function error bisects the batch."""

    def __init__(self, fn, stats):
        self.fn, self.stats = fn, stats
        self.abandoned = []

    def deliver(self, records, after_first=None):
        work = collections.deque([(records, 0, False)])
        first = True
        while work:
            recs, tries, _ = work.popleft()
            status, body = self.fn.invoke({"Records": recs})
            self.stats["invocations"] += 1
            self.stats["records_delivered"] += len(recs)
            timed_out = False
            if first and after_first is not None:
                # The world changes while the first delivery runs, and the invocation times out
                # (Lambda sees a function error): the records are delivered again, bisected.
                after_first()
                timed_out = True
            first = False
            if status != "response" or timed_out:
                self.stats["function_errors" if status != "response" else "simulated_timeouts"] += 1
                if tries >= MAX_RETRIES:
                    self.abandoned += recs
                    continue
                self.stats["redeliveries"] += 1
                if len(recs) > 1:
                    self.stats["bisections"] += 1
                    half = len(recs) // 2
                    work.appendleft((recs[half:], tries + 1, False))
                    work.appendleft((recs[:half], tries + 1, False))
                else:
                    work.appendleft((recs, tries + 1, False))
                continue
            failed = {f["itemIdentifier"] for f in (body or {}).get("batchItemFailures", [])}
            if not failed:
                continue
            idx = next(i for i, r in enumerate(recs) if r["dynamodb"]["SequenceNumber"] in failed)
            self.stats["records_reported_failed"] += len(failed)
            if tries >= MAX_RETRIES:
                self.abandoned += recs[idx:]
                continue
            self.stats["redeliveries"] += 1
            work.appendleft((recs[idx:], tries + 1, False))


def soak_ttl(binary, size, proxy, work_dir, report):
    scenario = "ttl-expiry"
    t0 = time.time()
    fleet = Fleet("soak-ttl")
    now = int(time.time())
    rng = random.Random(11)
    n = size["ttl"]
    kinds = {}
    for i in range(n):
        r = rng.random()
        # Re-created workspaces sit in one batch in ten (about 10% of its records): such a batch is
        # delivered again whole, as after a timeout.
        recreatable = (i // BATCH) % 10 == 3
        # In use: 0.6% (56 running tasks at full size). More tasks make each in-use listing slower
        # than ttl-expiry's 2-second freshness window, and every record then lists the cluster
        # again on its own (README, "Reliability": found by the soak).
        kinds[f"ws-{i:05d}"] = ("in_use" if r < 0.006 or i == 1 else "held" if r < 0.02 else
                                "recreated" if recreatable and r < 0.15 else "expired")
    tenants = {ws: f"t{int(ws[3:]) % 37:02d}" for ws in kinds}
    live = {f"live-{i:04d}": f"t{i % 37:02d}" for i in range(max(50, n // 20))}
    user_deleted = {f"gone-{i:04d}": f"t{i % 37:02d}" for i in range(max(20, n // 50))}
    # Directories: every workspace has its data. Access points: one in five expiring workspaces
    # (and every in-use and re-created one), tagged and rooted as the platform makes them.
    aps = {}
    ap_for = [ws for ws, k in kinds.items() if k != "expired" or int(ws[3:]) % 5 == 0]

    def mk_ap(ws):
        tenant = tenants.get(ws) or live.get(ws)
        return ws, fleet.efs.create_access_point(
            FileSystemId=fleet.fs_id, RootDirectory={"Path": f"/workspaces/{tenant}/{ws}"},
            Tags=[{"Key": "workspaceId", "Value": ws}, {"Key": "createdAt", "Value": str(now - 30 * DAY)}])["AccessPointId"]
    with ThreadPoolExecutor(4) as ex:
        aps = dict(ex.map(mk_ap, ap_for))
    for ws, tenant in list(tenants.items()) + list(live.items()) + list(user_deleted.items()):
        make_dir(fleet.root, tenant, ws)
    live_items = {ws: item(ws, t, now, tier="pro", expires=now + 20 * DAY) for ws, t in live.items()}
    batch_put(fleet.ddb, fleet.table, list(live_items.values()))
    start_tasks(fleet, [ws for ws, k in kinds.items() if k == "in_use"])
    setup_s = time.time() - t0

    # The stream: TTL REMOVEs (old images with an expiry in the past, held ones with hold set
    # since), user deletes (no userIdentity) and modifies of live workspaces mixed in.
    records = []
    old_images = {}
    extra = collections.deque()
    for i, ws in enumerate(kinds):
        hold = kinds[ws] == "held"
        old = item(ws, tenants[ws], now, expires=now - rng.randint(60, 3 * DAY), hold=hold, ap=aps.get(ws))
        old_images[ws] = old
        records.append(fleet.stream_record("REMOVE", old=old, ttl=True))
        if i % 40 == 7 and user_deleted:
            gws = f"gone-{len(extra):04d}"
            if gws in user_deleted:
                records.append(fleet.stream_record("REMOVE", old=item(gws, user_deleted[gws], now, expires=now + DAY)))
                extra.append(gws)
        if i % 25 == 3:
            lws = rng.choice(list(live))
            records.append(fleet.stream_record("MODIFY", old=live_items[lws], new=live_items[lws]))
    env = fleet.env(AWS_ENDPOINT_URL=proxy.endpoint, RUST_LOG="info")
    fn = LiveFunction(binary, env, os.path.join(work_dir, "ttl-expiry.log"))
    stats = collections.Counter()
    shard = Shard(fn, stats)
    recreated_at = {}

    def recreate(ws_list):
        def go():
            for ws in ws_list:
                tenant = tenants[ws]
                ap = fleet.efs.create_access_point(
                    FileSystemId=fleet.fs_id, RootDirectory={"Path": f"/workspaces/{tenant}/{ws}"},
                    Tags=[{"Key": "workspaceId", "Value": ws}])["AccessPointId"]
                it = item(ws, tenant, now, tier="pro", expires=now + 30 * DAY, ap=ap, generation={"N": "2"})
                fleet.ddb.put_item(TableName=fleet.table, Item=it)
                recreated_at[ws] = ap
        return go

    t1 = time.time()
    for start in range(0, len(records), BATCH):
        batch = records[start:start + BATCH]
        rec = [r["dynamodb"]["Keys"]["workspaceId"]["S"] for r in batch
               if r["eventName"] == "REMOVE" and "userIdentity" in r]
        rec = [ws for ws in rec if kinds.get(ws) == "recreated"]
        shard.deliver(batch, after_first=recreate(rec) if rec else None)
    run_s = time.time() - t1
    fn.close()
    lines = fn.log_lines()
    report.check(fn.crashes == 0, scenario, f"function process died {fn.crashes} times")

    # Checks, straight against moto and the directories.
    abandoned = {r["dynamodb"]["Keys"]["workspaceId"]["S"] for r in shard.abandoned}
    table = {}
    for page in fleet.ddb.get_paginator("scan").paginate(TableName=fleet.table, ConsistentRead=True):
        for it in page["Items"]:
            table[it["workspaceId"]["S"]] = it
    trash_dir = os.path.join(fleet.root, ".trash")
    entries = collections.defaultdict(list)
    odd_entries = []
    for name in (os.listdir(trash_dir) if os.path.isdir(trash_dir) else []):
        parts = name.split("+")
        if len(parts) >= 3 and parts[0].isdigit():
            entries[parts[2]].append(name)
        else:
            odd_entries.append(name)
    report.check(not odd_entries, scenario, f"staging or unexpected trash entries left: {odd_entries[:5]}")
    ap_left = {a["AccessPointId"] for page in fleet.efs.get_paginator("describe_access_points").paginate(FileSystemId=fleet.fs_id)
               for a in page["AccessPoints"]}
    outcomes = collections.Counter()
    for ws, kind in kinds.items():
        tenant = tenants[ws]
        live_path = os.path.join(fleet.root, tenant, ws)
        if ws in abandoned:
            # Sent to the failure destination: nothing may be lost either way.
            data = files_of(live_path) if os.path.isdir(live_path) else \
                files_of(os.path.join(trash_dir, entries[ws][0], "data")) if entries.get(ws) else {}
            report.check(data == expected_files(ws), scenario, f"{ws} ({kind}, abandoned): data lost")
            outcomes["abandoned"] += 1
            continue
        if kind == "expired":
            ok = report.check(not os.path.lexists(live_path), scenario, f"{ws}: expired but still in place")
            ok &= report.check(len(entries.get(ws, [])) == 1, scenario, f"{ws}: expired, trash entries {entries.get(ws)}")
            if entries.get(ws):
                e = os.path.join(trash_dir, entries[ws][0])
                ok &= report.check(files_of(os.path.join(e, "data")) == expected_files(ws), scenario, f"{ws}: trashed data differs")
                try:
                    with open(os.path.join(e, "record.json")) as f:
                        rj = json.load(f)
                    ok &= report.check(rj["item"]["workspaceId"] == {"S": ws}, scenario, f"{ws}: record.json names {rj['item'].get('workspaceId')}")
                except (OSError, ValueError, KeyError) as e2:
                    ok &= report.check(False, scenario, f"{ws}: no readable record.json in trash: {e2}")
            ok &= report.check(ws not in table, scenario, f"{ws}: expired but has a record")
            if ws in aps:
                ok &= report.check(aps[ws] not in ap_left, scenario, f"{ws}: access point not deleted")
            outcomes["trashed" if ok else "wrong"] += 1
        else:
            ok = report.check(os.path.isdir(live_path) and files_of(live_path) == expected_files(ws), scenario,
                              f"{ws} ({kind}): data not in place")
            ok &= report.check(not entries.get(ws), scenario, f"{ws} ({kind}): in the trash: {entries.get(ws)}")
            rec = table.get(ws)
            ok &= report.check(rec is not None, scenario, f"{ws} ({kind}): no record")
            if rec is not None and kind == "in_use":
                ok &= report.check(int(rec.get("expiresAt", {}).get("N", 0)) > now, scenario, f"{ws}: put back without a future expiry")
                ok &= report.check(aps[ws] in ap_left, scenario, f"{ws}: in use, its access point deleted")
            if rec is not None and kind == "held":
                ok &= report.check(rec.get("hold") == {"BOOL": True} and "expiresAt" not in rec, scenario, f"{ws}: held record back wrong: {rec}")
            if rec is not None and kind == "recreated":
                ok &= report.check(rec.get("generation") == {"N": "2"}, scenario, f"{ws}: re-created record replaced: {rec}")
                ok &= report.check(recreated_at.get(ws) in ap_left, scenario, f"{ws}: re-created, new access point deleted")
            outcomes[("kept_" + kind) if ok else "wrong"] += 1
    for ws, tenant in user_deleted.items():
        p = os.path.join(fleet.root, tenant, ws)
        report.check(os.path.isdir(p) and not entries.get(ws) and ws not in table, scenario, f"{ws}: user delete was acted on")
    for ws, it in live_items.items():
        report.check(table.get(ws) == it and os.path.isdir(os.path.join(fleet.root, live[ws], ws)), scenario,
                     f"{ws}: live workspace changed")
    for ws, names in entries.items():
        report.check(ws not in table, scenario, f"trash holds {names} but a live record owns {ws}")

    # The audit: no record acted on twice to different outcomes.
    per_ws = collections.defaultdict(list)
    for a in audits(lines):
        per_ws[a.get("workspaceId")].append(a)
    double = 0
    for ws, acts in per_ws.items():
        kind = kinds.get(ws)
        moves = {a.get("resource") for a in acts if a["action"] == "move_to_trash" and a["reason"] != "already_absent"}
        backs = sum(1 for a in acts if a["action"] == "move_back")
        puts = [a for a in acts if a["action"] == "put_back_record"]
        trash_like = moves or any(a["action"] == "delete_access_point" and a["reason"] == "ttl_expired" for a in acts)
        bad = None
        if len(moves) > 1:
            bad = f"moved to the trash twice: {sorted(moves)}"
        elif kind in ("in_use", "held") and trash_like:
            bad = f"{kind} but acted on as expired: {[(a['action'], a['reason']) for a in acts]}"
        elif kind == "expired" and (puts or backs):
            bad = f"expired but also kept: {[(a['action'], a['reason']) for a in acts]}"
        elif kind == "recreated" and moves and backs == 0 and ws not in abandoned:
            bad = "re-created, moved to the trash and never moved back"
        elif kind in ("in_use", "held") and len(puts) > 1:
            bad = f"record put back {len(puts)} times"
        if bad:
            double += 1
            report.check(False, scenario, f"{ws}: {bad}")
    fig = {
        "ttl_remove_records": n, "records_in_stream": len(records), "batches": (len(records) + BATCH - 1) // BATCH,
        "invocations": stats["invocations"], "redeliveries": stats["redeliveries"],
        "records_redelivered": stats["records_delivered"] - len(records), "bisections": stats["bisections"],
        "simulated_timeouts": stats["simulated_timeouts"], "function_errors": stats["function_errors"],
        "records_reported_failed": stats["records_reported_failed"], "abandoned_to_failure_destination": len(abandoned),
        "outcomes": dict(outcomes), "audit_lines": sum(len(v) for v in per_ws.values()), "acted_on_twice_differently": double,
        "setup_s": round(setup_s, 1), "run_s": round(run_s, 1),
    }
    report.figures[scenario] = fig
    shutil.rmtree(fleet.root, ignore_errors=True)
    return fig


# ---------------------------------------------------------------------------------------------
# heartbeat


def soak_heartbeat(binary, size, proxy, work_dir, report):
    scenario = "heartbeat"
    fleet = Fleet("soak-hb")
    now = int(time.time())
    rng = random.Random(23)
    n = size["hb"]
    ids = [f"hb-{i:05d}" for i in range(n)]
    held = set(ids[::20])
    unknown = [f"nobody-{i:04d}" for i in range(max(10, n // 20))]
    initial = {}
    items = []
    for i, ws in enumerate(ids):
        last = now - rng.randint(1, 20) * DAY
        it = item(ws, f"t{i % 13:02d}", now, tier="pro", expires=None if ws in held else last + 30 * DAY, hold=ws in held)
        it["lastActivityAt"] = {"N": str(last)}
        initial[ws] = it
        items.append(it)
    batch_put(fleet.ddb, fleet.table, items)
    # Four processes, each touching every workspace hb_rounds times, in dispatches of 1 to 16
    # ids (a dispatch is usually one workspace) with an `at` anywhere in the last 12 days (some an
    # hour ahead: clamped to now).
    plans = []
    for p in range(4):
        touches = [(ws, now - rng.randint(-3600, 12 * DAY)) for _ in range(size["hb_rounds"]) for ws in ids]
        touches += [(u, now) for u in unknown]
        rng.shuffle(touches)
        events = []
        while touches:
            k = rng.randint(1, 16)
            chunk, touches = touches[:k], touches[k:]
            at = max(t for _, t in chunk)
            events.append({"workspaceIds": [w for w, _ in chunk], "at": at})
        plans.append(events)
    env = fleet.env(AWS_ENDPOINT_URL=proxy.endpoint, NOTICE_EVENT_BUS="off", RUST_LOG="info")
    stats = collections.Counter()
    results = []
    lock = threading.Lock()
    stop = threading.Event()
    shortened = []
    seen = {}

    def watch():
        # Any expiry seen to move back, any record seen that should not exist, while it runs.
        ddb = client("dynamodb")
        while not stop.is_set():
            for page in ddb.get_paginator("scan").paginate(TableName=fleet.table, ConsistentRead=True):
                for it in page["Items"]:
                    ws = it["workspaceId"]["S"]
                    exp = int(it["expiresAt"]["N"]) if "expiresAt" in it else None
                    prev = seen.get(ws)
                    if prev is not None and exp is not None and exp < prev:
                        shortened.append((ws, prev, exp))
                    if exp is not None:
                        seen[ws] = max(exp, prev or 0)
            stats["watch_scans"] += 1
            stop.wait(0.5)

    def process(p):
        fn = LiveFunction(binary, env, os.path.join(work_dir, f"heartbeat-{p}.log"))
        for ev in plans[p]:
            for attempt in range(6):
                started = int(time.time())
                status, body = fn.invoke(ev)
                with lock:
                    stats["invocations"] += 1
                if status == "response":
                    with lock:
                        results.append((ev, body, started))
                    break
                with lock:
                    stats["retried_invocations"] += 1
            else:
                with lock:
                    stats["abandoned_invocations"] += 1
        fn.close()
        return fn.crashes

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    t1 = time.time()
    with ThreadPoolExecutor(4) as ex:
        crashes = sum(ex.map(process, range(4)))
    run_s = time.time() - t1
    stop.set()
    watcher.join()
    report.check(crashes == 0, scenario, f"function processes died {crashes} times")
    final = {}
    for page in fleet.ddb.get_paginator("scan").paginate(TableName=fleet.table, ConsistentRead=True):
        for it in page["Items"]:
            final[it["workspaceId"]["S"]] = it
    for ws, prev, exp in shortened[:50]:
        report.check(False, scenario, f"{ws}: expiry seen to move back from {prev} to {exp}")
    report.check(set(final) == set(ids), scenario, f"records created: {sorted(set(final) - set(ids))[:10]}")
    reported_unknown = set()
    floor = collections.defaultdict(int)  # what the successful heartbeats promise, at least
    reported_expiry = collections.defaultdict(int)
    interval = 300
    for ev, body, started in results:
        reported_unknown.update(body.get("unknown", []))
        at = min(ev["at"], started)  # the function clamps `at` to its clock, no earlier than this
        done = {e["workspaceId"] for e in body.get("extended", [])} | \
            {s["workspaceId"] for s in body.get("skipped", []) if s["reason"] in ("coalesced", "not_newer")}
        for e in body.get("extended", []):
            reported_expiry[e["workspaceId"]] = max(reported_expiry[e["workspaceId"]], int(e["expiresAt"]))
        for ws in done:
            floor[ws] = max(floor[ws], at)
    wrongly_unknown = reported_unknown - set(unknown)
    report.check(not wrongly_unknown, scenario, f"reported unknown but exists: {sorted(wrongly_unknown)[:10]}")
    for ws in ids:
        it = final.get(ws)
        if it is None:
            report.check(False, scenario, f"{ws}: record lost")
            continue
        if ws in held:
            report.check("expiresAt" not in it and it.get("hold") == {"BOOL": True}, scenario, f"{ws}: held record changed: {it}")
            continue
        exp = int(it["expiresAt"]["N"])
        first = int(initial[ws]["expiresAt"]["N"])
        report.check(exp >= first, scenario, f"{ws}: expiry shortened from {first} to {exp}")
        report.check(exp >= reported_expiry[ws], scenario, f"{ws}: reported extended to {reported_expiry[ws]}, stored {exp}")
        if floor[ws]:
            # The activity clamped to the invocation's clock, less the coalescing interval.
            report.check(exp >= floor[ws] - interval + 30 * DAY, scenario,
                         f"{ws}: a successful heartbeat at {floor[ws]} is lost (expiresAt {exp})")
    fig = {"workspaces": n, "processes": 4, "touches": sum(len(e["workspaceIds"]) for p in plans for e in p),
           "invocations": stats["invocations"], "retried_invocations": stats["retried_invocations"],
           "abandoned_invocations": stats["abandoned_invocations"], "watch_scans": stats["watch_scans"],
           "extended": sum(len(b.get("extended", [])) for _, b, _ in results),
           "reported_unknown": len(reported_unknown), "expiries_seen_shortened": len(shortened), "run_s": round(run_s, 1)}
    report.figures[scenario] = fig
    return fig


# ---------------------------------------------------------------------------------------------
# efs-sweeper and ecr-pruner: the same run with and without faults


def sweep_fleet(name, size, now):
    """A fleet whose weekly sweep has work of every kind. Built the same way for every name."""
    fleet = Fleet(name)
    rng = random.Random(31)
    n = size["sweep"]
    items = []
    for i in range(n):
        ws, t = f"ws-{i:04d}", f"t{i % 7}"
        make_dir(fleet.root, t, ws)
        items.append(item(ws, t, now, tier="pro", expires=now + 10 * DAY))
    batch_put(fleet.ddb, fleet.table, items)
    old = now - 3 * DAY
    orphans = [(f"or-{i:04d}", f"t{i % 7}") for i in range(n // 8)]
    for ws, t in orphans:
        make_dir(fleet.root, t, ws)
        p = os.path.join(fleet.root, t, ws)
        for d in (os.path.join(p, "src"), p):
            os.utime(d, (old, old))
    for i in range(n // 4):
        age = 10 * DAY if i % 3 else DAY  # two in three past the 7-day grace
        entry = os.path.join(fleet.root, ".trash", f"{now - age - i}+t{i % 7}+tr-{i:04d}+{i:016x}")
        make_dir(entry, "data", "x", files=3 + rng.randint(0, 5))
        with open(os.path.join(entry, "record.json"), "w") as f:
            json.dump({"item": item(f"tr-{i:04d}", f"t{i % 7}", now)}, f)
    for i in range(n // 10):
        ws = f"ap-{i:04d}"
        owned = i % 4 == 0
        fleet.efs.create_access_point(
            FileSystemId=fleet.fs_id, RootDirectory={"Path": f"/workspaces/t{i % 7}/{ws}"},
            Tags=[{"Key": "workspaceId", "Value": ws}, {"Key": "createdAt", "Value": str(now - 5 * DAY)}])
        if owned:
            fleet.ddb.put_item(TableName=fleet.table, Item=item(ws, f"t{i % 7}", now, expires=now + DAY))
    start_tasks(fleet, [ws for ws, _ in orphans[:3]])
    return fleet


def sweep_state(fleet):
    """What a sweep can change, with names that do not depend on when it ran."""
    state = set()
    for dirpath, dirs, files in os.walk(fleet.root):
        rel = os.path.relpath(dirpath, fleet.root)
        parts = rel.split(os.sep)
        if parts[0] == ".trash" and len(parts) >= 2:
            # Orphans moved by the sweep get the run's time in their name: keep tenant and id.
            name = parts[1].split("+")
            parts[1] = "+".join(name[1:3]) if len(name) >= 3 else parts[1]
        for f in files:
            state.add("file:" + "/".join(parts + [f]))
    for page in fleet.efs.get_paginator("describe_access_points").paginate(FileSystemId=fleet.fs_id):
        for a in page["AccessPoints"]:
            state.add("ap:" + a["RootDirectory"]["Path"])
    return state


def soak_sweeper(binary, size, proxy, work_dir, report):
    scenario = "efs-sweeper"
    now = int(time.time())
    # Orphan directories made by the soak are new (a ctime cannot be set back) and the sweeper's
    # least age is an hour: both runs must skip them (skipped_too_young); purges and orphan access
    # points are the destructive work compared.
    env = {"ORPHAN_MIN_AGE_HOURS": "24",  "MAX_ACTIONS": "10000", "MAX_ACTION_PERCENT": "100",
           "MAX_PURGE_PERCENT": "100", "RUST_LOG": "info"}
    event = json.load(open(os.path.join(ROOT, "events", "efs-sweeper", "scheduled.json")))
    results = {}
    for label, endpoint in (("clean", ENDPOINT), ("faults", proxy.endpoint)):
        fleet = sweep_fleet(f"soak-sweep-{label}", size, now)
        before = sweep_state(fleet)
        fn = LiveFunction(binary, fleet.env(AWS_ENDPOINT_URL=endpoint, **env), os.path.join(work_dir, f"sweeper-{label}.log"))
        runs = []
        for attempt in range(4):
            status, body = fn.invoke(event)
            state = sweep_state(fleet)
            with open(os.path.join(work_dir, f"sweeper-{label}-{attempt}.json"), "w") as f:
                json.dump({"status": status, "body": body}, f, indent=1)
            said = status != "response" or bool(body.get("notDone")) or bool(body.get("stoppedAtDeadline"))
            runs.append({"status": status, "said_stopped_early": said, "state": state,
                         "actions": len(body.get("actions", [])) if isinstance(body, dict) else 0,
                         "notDone": len(body.get("notDone", [])) if isinstance(body, dict) else 0})
            if not said:
                break
        fn.close()
        report.check(fn.crashes == 0, scenario, f"{label}: process died {fn.crashes} times")
        results[label] = (before, runs)
        shutil.rmtree(fleet.root, ignore_errors=True)
    clean_before, clean_runs = results["clean"]
    fault_before, fault_runs = results["faults"]
    report.check(clean_before == fault_before, scenario, "the two fleets differ before the run")
    clean_final = clean_runs[-1]["state"]
    clean_gone = clean_before - clean_final
    report.check(not clean_runs[0]["said_stopped_early"], scenario, f"fault-free run stopped early: {clean_runs[0]['status']}")
    report.check(len(clean_gone) > 0, scenario, "the fault-free run did nothing")
    for i, run in enumerate(fault_runs):
        more = (fault_before - run["state"]) - clean_gone
        report.check(not more, scenario, f"run {i + 1} under faults deleted more: {sorted(more)[:5]}")
        same = run["state"] == clean_final
        report.check(same or run["said_stopped_early"], scenario,
                     f"run {i + 1} under faults ended elsewhere without saying so: "
                     f"{sorted(run['state'] ^ clean_final)[:5]}")
    final_same = fault_runs[-1]["state"] == clean_final
    report.check(final_same, scenario, f"still different after {len(fault_runs)} runs under faults")
    fig = {"runs_under_faults": len(fault_runs), "runs_that_said_stopped_early": sum(r["said_stopped_early"] for r in fault_runs),
           "actions_fault_free": clean_runs[0]["actions"], "not_done_under_faults": [r["notDone"] for r in fault_runs],
           "paths_and_access_points_changed": len(clean_gone), "same_final_state": final_same}
    report.figures[scenario] = fig
    return fig


def prune_fleet(name, size, now):
    """A registry to prune. Which tagged images are the newest must not depend on where a second
    boundary falls between pushes (ties are broken by digest): the kept ones are pushed a second
    after the others."""
    fleet = Fleet(name)
    repo = f"soak-{fleet.table[-8:]}"
    client("ecr").create_repository(repositoryName=repo)
    n = size["prune"]
    for i in range(n):
        fleet.push_image(repo, f"img-{i}", tag=f"build-{i:04d}" if i % 5 else None)
    time.sleep(1.1)
    multi = 2
    for k in range(multi):
        fleet.push_buildx(repo, f"multi-{k}", tag=f"multi-{k}")
    for i in range(PRUNE_KEEP_TAGGED - multi):
        fleet.push_image(repo, f"new-{i}", tag=f"new-{i:04d}")
    fleet.run_task_with_image(f"123456789012.dkr.ecr.us-east-1.amazonaws.com/{repo}:build-0001")
    return fleet, repo


def prune_state(repo):
    ecr = client("ecr")
    out = set()
    for page in ecr.get_paginator("describe_images").paginate(repositoryName=repo):
        for d in page["imageDetails"]:
            out.add((d["imageDigest"], tuple(sorted(d.get("imageTags", [])))))
    return out


def soak_pruner(binary, size, proxy, work_dir, report):
    scenario = "ecr-pruner"
    now = int(time.time())
    event = json.load(open(os.path.join(ROOT, "events", "ecr-pruner", "scheduled.json")))
    policy = json.dumps({"default": {"keepLastTagged": PRUNE_KEEP_TAGGED, "protectTags": [], "keepSemverReleases": 0}})
    results = {}
    for label, endpoint in (("clean", ENDPOINT), ("faults", proxy.endpoint)):
        fleet, repo = prune_fleet(f"soak-prune-{label}", size, now)
        before = prune_state(repo)
        env = fleet.env(AWS_ENDPOINT_URL=endpoint, ECR_REPOSITORIES=repo, PRUNE_POLICY=policy,
                        KEEP_TASK_DEFINITION_REVISIONS="0", ECS_CLUSTERS=fleet.cluster, RUST_LOG="info")
        env.pop("EFS_ROOT"), env.pop("EFS_FILE_SYSTEM_ID"), env.pop("ACCESS_POINT_ROOT_PREFIX"), env.pop("WORKSPACE_TABLE")
        env.pop("ECS_CLUSTER")
        fn = LiveFunction(binary, env, os.path.join(work_dir, f"pruner-{label}.log"))
        runs = []
        for attempt in range(4):
            status, body = fn.invoke(event)
            state = prune_state(repo)
            text = json.dumps(body)
            said = status != "response" or any(k in text for k in ('"failed"', '"notDone"', '"stoppedEarly"', '"errors"', '"incomplete"'))
            runs.append({"status": status, "said_stopped_early": said, "state": state, "body": body})
            with open(os.path.join(work_dir, f"pruner-{label}-{attempt}.json"), "w") as f:
                json.dump({"status": status, "body": body}, f, indent=1)
            if not said:
                break
        fn.close()
        report.check(fn.crashes == 0, scenario, f"{label}: process died {fn.crashes} times")
        results[label] = (before, runs)
    clean_before, clean_runs = results["clean"]
    fault_before, fault_runs = results["faults"]
    report.check(clean_before == fault_before, scenario, "the two registries differ before the run")
    clean_final = clean_runs[-1]["state"]
    clean_gone = clean_before - clean_final
    report.check(not clean_runs[0]["said_stopped_early"], scenario, f"fault-free run stopped early: {json.dumps(clean_runs[0]['body'])[:300]}")
    report.check(len(clean_gone) > 0, scenario, "the fault-free run deleted nothing")
    for i, run in enumerate(fault_runs):
        more = (fault_before - run["state"]) - clean_gone
        report.check(not more, scenario, f"run {i + 1} under faults deleted more: {sorted(more)[:3]}")
        report.check(run["state"] == clean_final or run["said_stopped_early"], scenario,
                     f"run {i + 1} under faults ended elsewhere without saying so")
    final_same = fault_runs[-1]["state"] == clean_final
    report.check(final_same, scenario, f"still different after {len(fault_runs)} runs under faults")
    fig = {"images": len(clean_before), "deleted_fault_free": len(clean_gone), "runs_under_faults": len(fault_runs),
           "runs_that_said_stopped_early": sum(r["said_stopped_early"] for r in fault_runs), "same_final_state": final_same}
    report.figures[scenario] = fig
    return fig


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--size", choices=sorted(SIZES), default="full")
    ap.add_argument("--report", help="write the JSON report here")
    ap.add_argument("--only", action="append", choices=["ttl", "heartbeat", "sweeper", "pruner"])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                    help="set in every function's environment (to see the soak fail: ECS_CLUSTER=none)")
    a = ap.parse_args()
    EXTRA_ENV.update(e.split("=", 1) for e in a.env)
    size = SIZES[a.size]
    start = time.time()
    work_dir = os.path.join(ROOT, ".work", f"soak-{a.size}")  # the functions' logs, kept for reading
    shutil.rmtree(work_dir, ignore_errors=True)
    os.makedirs(work_dir)
    proxy = Proxy(fault_rules(), a.seed)
    report = Report()
    only = set(a.only or ["ttl", "heartbeat", "sweeper", "pruner"])
    try:
        for key, fn, binary in (("ttl", soak_ttl, "ttl-expiry"), ("heartbeat", soak_heartbeat, "heartbeat"),
                                ("sweeper", soak_sweeper, "efs-sweeper"), ("pruner", soak_pruner, "ecr-pruner")):
            if key in only:
                t = time.time()
                fig = fn(os.path.join(a.bin_dir, binary), size, proxy, work_dir, report)
                fig["wall_s"] = round(time.time() - t, 1)
                print(f"soak: {binary} done in {fig['wall_s']} s, {len(report.wrong)} wrong outcomes so far", flush=True)
        faults, calls = proxy.by_kind()
    finally:
        proxy.close()
    wall = round(time.time() - start, 1)
    short_faults = {k: v for k, v in faults.items() if v < size["min_faults"]}
    out = {"size": a.size, "wall_s": wall, "aws_calls_through_proxy": calls, "faults_injected": faults,
           "min_faults_per_kind": size["min_faults"], "fault_rules": fault_rules(),
           "wrong_outcomes": len(report.wrong), "wrong": report.wrong[:200], "scenarios": report.figures,
           "logs": work_dir}
    print()
    print(f"soak ({a.size}): {wall} s wall, {calls} AWS calls through the fault proxy")
    print(f"  {'fault':<10}{'injected':>10}")
    for k in FAULT_KINDS:
        print(f"  {k:<10}{faults[k]:>10}{'  (fewer than ' + str(size['min_faults']) + ')' if k in short_faults else ''}")
    for name, fig in report.figures.items():
        print(f"  {name}: " + ", ".join(f"{k}={v}" for k, v in fig.items()))
    print(f"  wrong outcomes: {len(report.wrong)}")
    for w in report.wrong[:30]:
        print(f"    {w['scenario']}: {w['what']}")
    if a.report:
        with open(a.report, "w") as f:
            json.dump(out, f, indent=2, default=str)
    sys.exit(1 if report.wrong or short_faults else 0)


if __name__ == "__main__":
    main()
