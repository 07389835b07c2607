#!/usr/bin/env python3
"""A stand-in for efs-sweeper's fan-out (issue 14), for checking scripts/scale.py and
scripts/esm.py end to end before the Rust code lands: a Lambda Runtime API client that speaks the
interface's message shapes (/work/notes/fanout-spec.md) and does the simplest thing behind them.

- A scheduled event: the coordinator. Lists the trash (entries past TRASH_GRACE_DAYS by their
  name) and the live directories without a record (ORPHAN_MIN_AGE_HOURS by mtime/ctime), writes
  the run header `id=<runId>` (unitsLeft) and one item per unit, and sends one message per unit
  (one purge per unit; UNIT_MAX_ACTIONS orphan moves per unit). Returns {runId, units, actions,
  enqueued, notEnqueued, skipped, capExceeded}.
- An SQS event: the worker. Each record's unit is done (rename to .purging+ and rmtree; an orphan
  moved into the trash with a record.json), the header's unitsLeft decremented and its counters
  added; audit lines as the real function writes them. Returns {"batchItemFailures": []}.

No leases, digests, caps, re-checks or deadlines: it measures nothing worth reporting. Not for
use on anything but a scale run's seeded data."""
import json
import os
import shutil
import sys
import time
import urllib.request
import uuid

import boto3

API = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"
ROOT = os.environ["EFS_ROOT"]
TRASH = os.path.join(ROOT, ".trash")
DAY = 86400


def client(service):
    return boto3.client(service, endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")


ddb, sqs = client("dynamodb"), client("sqs")


def audit(**fields):
    print(json.dumps({"level": "INFO", "target": "audit", "message": "audit", "dryRun": False, **fields}), flush=True)


def count_files(path):
    return sum(len(files) for _, _, files in os.walk(path))


def coordinate():
    now = int(time.time())
    grace = int(os.environ.get("TRASH_GRACE_DAYS", "7")) * DAY
    min_age = int(os.environ.get("ORPHAN_MIN_AGE_HOURS", "24")) * 3600
    per_unit = int(os.environ.get("UNIT_MAX_ACTIONS", "50"))
    purges = [{"kind": "purge_trash", "entry": e, "reason": "trash_grace_elapsed"}
              for e in sorted(os.listdir(TRASH)) if not e.startswith(".") and now - int(e.split("+")[0]) >= grace]
    owners = set()
    for page in ddb.get_paginator("scan").paginate(TableName=os.environ["WORKSPACE_TABLE"],
                                                   ProjectionExpression="workspaceId"):
        owners.update(i["workspaceId"]["S"] for i in page["Items"])
    orphans = []
    for tenant in sorted(os.listdir(ROOT)):
        if tenant.startswith("."):
            continue
        for ws in sorted(os.listdir(os.path.join(ROOT, tenant))):
            st = os.lstat(os.path.join(ROOT, tenant, ws))
            if ws not in owners and now - max(st.st_mtime, st.st_ctime) >= min_age:
                orphans.append({"kind": "trash_orphan", "tenant": tenant, "workspace": ws, "reason": "orphan_no_record"})
    units = [[p] for p in purges] + [orphans[i:i + per_unit] for i in range(0, len(orphans), per_unit)]
    run_id = f"{now}-{uuid.uuid4().hex[:8]}"
    table = os.environ["RUNS_TABLE"]
    ddb.put_item(TableName=table, Item={"id": {"S": run_id}, "units": {"N": str(len(units))},
                                        "unitsLeft": {"N": str(len(units))}, "validUntil": {"N": str(now + DAY)}})
    bodies = []
    for n, actions in enumerate(units):
        body = json.dumps({"v": 1, "kind": "sweep", "runId": run_id, "unit": str(n), "actions": actions})
        ddb.put_item(TableName=table, Item={"id": {"S": f"{run_id}/{n}"}, "state": {"S": "queued"}})
        bodies.append(body)
    for i in range(0, len(bodies), 10):
        sqs.send_message_batch(QueueUrl=os.environ["WORK_QUEUE_URL"],
                               Entries=[{"Id": str(j), "MessageBody": b} for j, b in enumerate(bodies[i:i + 10])])
    return {"runId": run_id, "units": len(units), "actions": len(purges) + len(orphans), "enqueued": len(units),
            "notEnqueued": 0, "skipped": [], "capExceeded": None}


def work(unit):
    files = done = 0
    for a in unit["actions"]:
        if a["kind"] == "purge_trash":
            purging = os.path.join(TRASH, ".purging+" + a["entry"])
            os.rename(os.path.join(TRASH, a["entry"]), purging)
            n = count_files(purging)
            shutil.rmtree(purging)
            audit(workspaceId=f".trash/{a['entry']}", action="purge_trash_entry", reason=a["reason"], files=n, bytes=0)
            files += n
        elif a["kind"] == "trash_orphan":
            now = int(time.time())
            entry = os.path.join(TRASH, f"{now}+{a['tenant']}+{a['workspace']}+{uuid.uuid4().hex[:16]}")
            os.mkdir(entry)
            os.rename(os.path.join(ROOT, a["tenant"], a["workspace"]), os.path.join(entry, "data"))
            with open(os.path.join(entry, "record.json"), "w") as f:
                json.dump({"deletedAt": now, "reason": a["reason"], "item": None}, f)
            audit(workspaceId=a["workspace"], tenantId=a["tenant"], action="move_to_trash", reason=a["reason"])
        done += 1
    ddb.update_item(TableName=os.environ["RUNS_TABLE"], Key={"id": {"S": unit["runId"]}},
                    UpdateExpression="ADD unitsLeft :m, actionsDone :d, filesFreed :f",
                    ExpressionAttributeValues={":m": {"N": "-1"}, ":d": {"N": str(done)}, ":f": {"N": str(files)}})


def handle(event):
    records = event.get("Records") if isinstance(event, dict) else None
    if records and all(r.get("eventSource") == "aws:sqs" for r in records):
        failures = []
        for r in records:
            try:
                work(json.loads(r["body"]))
            except Exception as e:  # noqa: BLE001 - the unit comes back
                print(json.dumps({"level": "WARN", "message": f"unit failed: {e}"}), flush=True)
                failures.append({"itemIdentifier": r["messageId"]})
        return {"batchItemFailures": failures}
    return coordinate()


def main():
    while True:
        with urllib.request.urlopen(API + "/invocation/next") as r:
            rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
            event = json.loads(r.read())
        try:
            out, kind = handle(event), "response"
        except Exception as e:  # noqa: BLE001 - reported to the Runtime API
            out, kind = {"errorType": type(e).__name__, "errorMessage": str(e)}, "error"
        req = urllib.request.Request(f"{API}/invocation/{rid}/{kind}", data=json.dumps(out).encode(), method="POST")
        urllib.request.urlopen(req).read()


if __name__ == "__main__":
    sys.exit(main())
