#!/usr/bin/env python3
"""End to end: the ttl-expiry binary, run through the Lambda Runtime API against moto, with the
cases a deployment meets. Exits non-zero on the first broken expectation."""
import argparse
import json
import os
import subprocess
import sys

import time

from fleet import HERE, Fleet, audit_lines, client, run_function

failures = 0
passes = 0


def check(cond, what):
    global failures, passes
    print(("ok   " if cond else "FAIL ") + what)
    if cond:
        passes += 1
    else:
        failures += 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True, help="where the function binaries are (target/debug)")
    a = ap.parse_args()
    check_ttl_expiry(os.path.join(a.bin_dir, "ttl-expiry"))
    check_heartbeat(os.path.join(a.bin_dir, "heartbeat"))
    check_efs_sweeper(os.path.join(a.bin_dir, "efs-sweeper"))
    check_ecr_pruner(os.path.join(a.bin_dir, "ecr-pruner"))
    check_storage_audit(os.path.join(a.bin_dir, "storage-audit"))
    print(f"e2e: {passes} passed, {failures} failed")
    sys.exit(1 if failures else 0)


def check_ttl_expiry(binary):
    print("== ttl-expiry")

    fleet = Fleet("e2e")
    old = fleet.workspace("acme", "ws-old", tier="free", idle_days=10)
    busy = fleet.workspace("acme", "ws-busy", tier="free", idle_days=10)
    fleet.workspace("acme", "ws-live", tier="pro", idle_days=1)
    fleet.run_task("ws-busy")
    records = fleet.expire_due()
    check(len(records) == 2, f"TTL expired the two idle free workspaces ({len(records)})")
    user_remove = fleet.stream_record("REMOVE", old=old)
    poison = fleet.stream_record("REMOVE", old=dict(old, workspaceId={"S": "../.."}), ttl=True)
    event = {"Records": [user_remove, poison] + records}

    report, lines = run_function(binary, [event, event, {"not": "a stream event"}], fleet.env())
    results = report["results"]
    check(len(results) == 3, "three invocations answered")
    check(results[0]["status"] == "response" and results[0]["body"] == {"batchItemFailures": []},
          f"batch handled with no failures: {results[0]['body']}")
    check(results[1]["body"] == {"batchItemFailures": []}, "redelivery handled with no failures")
    check(results[2]["status"] == "error" and "Records" in json.dumps(results[2]["body"]),
          f"a non-stream event is a clear error: {results[2]['body']}")
    check(not os.path.exists(os.path.join(fleet.root, "acme", "ws-old")), "expired workspace left its place")
    trash = fleet.trash()
    check(len(trash) == 1 and "+acme+ws-old+" in trash[0], f"and is in the trash: {trash}")
    if trash:
        entry = os.path.join(fleet.root, ".trash", trash[0])
        check(len(os.listdir(os.path.join(entry, "data", "src"))) == 3, "with its files")
        with open(os.path.join(entry, "record.json")) as f:
            check(json.load(f)["item"]["workspaceId"] == {"S": "ws-old"}, "with its record beside it")
    check(not fleet.access_point_exists(old["accessPointId"]["S"]), "its access point is deleted")
    check(os.path.isdir(os.path.join(fleet.root, "acme", "ws-busy")), "the workspace in use is kept")
    check(fleet.record("ws-busy") is not None, "and its record put back")
    check(fleet.access_point_exists(busy["accessPointId"]["S"]), "with its access point")
    check(os.path.isdir(os.path.join(fleet.root, "acme", "ws-live")), "the live workspace is untouched")
    audits = audit_lines(lines)
    actions = {(l["action"], l["reason"], l["workspaceId"]) for l in audits}
    check(("move_to_trash", "ttl_expired", "ws-old") in actions, "audit: move_to_trash ttl_expired")
    check(("delete_access_point", "ttl_expired", "ws-old") in actions, "audit: delete_access_point ttl_expired")
    check(("put_back_record", "skipped_in_use", "ws-busy") in actions, "audit: put_back_record skipped_in_use")
    check(("reject_record", "invalid_record", "../..") in actions, "audit: the hostile id is rejected")
    check(("move_to_trash", "already_absent", "ws-old") in actions, "audit: redelivery finds nothing to move")
    check(all(l.get("tenantId") for l in audits if l["action"] != "reject_record"), "audit lines name the tenant")
    emf = [l for l in lines if "_aws" in l]
    first = emf[0] if emf else {}
    check(len(emf) == 2 and first.get("TtlDeletions") == 2 and first.get("Trashed") == 1
          and first.get("SkippedInUse") == 1 and first.get("Failed") == 0,
          f"EMF per batch: trashed 1, put back in use 1: {first}")

    # Bad configuration: the function refuses to start and says which variable is wrong.
    report, lines = run_function(binary, [event], fleet.env(TRASH_GRACE_DAYS="seven"), timeout=5)
    text = json.dumps(lines)
    check(not report["results"] and "TRASH_GRACE_DAYS" in text, "bad configuration stops start-up, naming the variable")
    # A guard never switches off silently: a misspelling, a blank value, a missing ECS_CLUSTER.
    for env, var, what in [(fleet.env(DRYRUN="true"), "DRY_RUN", "a misspelled DRY_RUN"),
                           (fleet.env(ECS_CLUSTER="  "), "ECS_CLUSTER", "a blank ECS_CLUSTER"),
                           ({k: v for k, v in fleet.env().items() if k != "ECS_CLUSTER"}, "ECS_CLUSTER",
                            "no ECS_CLUSTER (none must be said)")]:
        report, lines = run_function(binary, [event], env, timeout=5)
        check(not report["results"] and var in json.dumps(lines), f"{what} stops start-up, naming {var}")



def check_heartbeat(binary):
    print("== heartbeat")
    fleet = Fleet("e2e-hb")
    now = int(time.time())
    fleet.workspace("acme", "ws-a", tier="pro", idle_days=29, access_point=False)     # expires in 1 day
    fleet.workspace("acme", "ws-run", tier="free", idle_days=6, access_point=False)   # expires in 1 day
    fleet.workspace("acme", "ws-held", tier="pro", idle_days=29, access_point=False, hold=True)
    fleet.workspace("acme", "ws-quiet", tier="pro", idle_days=28, access_point=False)  # expires in 2 days
    fleet.run_task("ws-run")
    sqs, events = client("sqs"), client("events")
    bus = f"notices-{fleet.table}"
    events.create_event_bus(Name=bus)
    queue = sqs.create_queue(QueueName=bus)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="n", EventBusName=bus, EventPattern=json.dumps({"source": ["workspace.lifecycle"]}))
    events.put_targets(Rule="n", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
    t = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    scheduled = {"version": "0", "id": "e2e", "detail-type": "Scheduled Event", "source": "aws.events",
                 "account": "123456789012", "time": t, "region": "us-east-1", "resources": [], "detail": {}}
    with open(os.path.join(HERE, "..", "events", "heartbeat", "ecs-task-state-change.json")) as f:
        task_event = json.load(f)
    task_event["time"] = t
    task_event["detail"]["overrides"]["containerOverrides"][0]["environment"][0]["value"] = "ws-held"
    invocations = [
        {"workspaceIds": ["ws-a", "ws-a", "ws-gone", "../x"]},
        scheduled,
        task_event,
        {"recompute": ["ws-a"]},
        {"hello": "world"},
    ]
    report, lines = run_function(binary, invocations, fleet.env(NOTICE_EVENT_BUS=bus))
    r = report["results"]
    check(len(r) == 5, "five invocations answered")
    if len(r) != 5:
        return
    body = r[0]["body"]
    check([e["workspaceId"] for e in body["extended"]] == ["ws-a"] and body["unknown"] == ["ws-gone"],
          f"dispatch: one write for a repeated id, the unknown id reported: {body}")
    check(any(s["reason"] == "invalid_id" for s in body["skipped"]), "dispatch: a hostile id is reported")
    check(fleet.record("ws-gone") is None, "no ghost record for the unknown id")
    exp = int(fleet.record("ws-a")["expiresAt"]["N"])
    check(abs(exp - (now + 30 * 86400)) < 120, "dispatch: pro workspace now expires in 30 days")
    body = r[1]["body"]
    check([e["workspaceId"] for e in body["extended"]] == ["ws-run"], f"schedule: the running task's workspace is extended: {body}")
    check(r[2]["status"] == "response" and r[2]["body"]["skipped"] == [{"workspaceId": "ws-held", "reason": "held"}],
          f"task event on a held workspace: untouched: {r[2]['body']}")
    check("expiresAt" not in fleet.record("ws-held"), "held workspace still has no expiry")
    check(r[3]["body"]["skipped"] == [{"workspaceId": "ws-a", "reason": "unchanged"}], "recompute: nothing to change")
    check(r[4]["status"] == "error" and r[4]["body"]["errorType"] == "InvalidEvent", f"unknown event: a clear error: {r[4]['body']}")
    audits = {(l["action"], l["reason"], l["workspaceId"]) for l in audit_lines(lines)}
    check(("extend_expiry", "activity", "ws-a") in audits and ("extend_expiry", "activity", "ws-run") in audits,
          "audit: one extend_expiry line per change")
    check([n["workspaceId"] for n in r[1]["body"].get("notices", [])] == ["ws-quiet"],
          "schedule: one expiry notice, for the quiet workspace only")
    msgs = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    details = [json.loads(m["Body"])["detail"] for m in msgs]
    check([d["workspaceId"] for d in details] == ["ws-quiet"] and details[0]["tier"] == "pro",
          f"the notice reached the bus: {details}")


def check_efs_sweeper(binary):
    print("== efs-sweeper")
    fleet = Fleet("e2e-sweep")
    now = int(time.time())
    fleet.workspace("acme", "ws-live", idle_days=1)
    os.makedirs(os.path.join(fleet.root, "acme", "ws-orphan", "src"))  # no record, but just made
    old = os.path.join(fleet.root, ".trash", f"{now - 8 * 86400}+acme+ws-old")
    fresh = os.path.join(fleet.root, ".trash", f"{now - 86400}+acme+ws-fresh")
    for entry in (old, fresh):
        os.makedirs(os.path.join(entry, "data", "node_modules", "x"))
        for i in range(50):
            with open(os.path.join(entry, "data", "node_modules", "x", f"{i}.js"), "w") as f:
                f.write("module.exports = 1;\n")
    orphan_ap = fleet.efs.create_access_point(
        FileSystemId=fleet.fs_id, RootDirectory={"Path": "/workspaces/acme/ws-old"},
        Tags=[{"Key": "workspaceId", "Value": "ws-old"}, {"Key": "createdAt", "Value": str(now - 30 * 86400)}])["AccessPointId"]
    scheduled = json.load(open(os.path.join(HERE, "..", "events", "efs-sweeper", "scheduled.json")))
    report, lines = run_function(binary, [scheduled], fleet.env(DRY_RUN="true"), timeout=120)
    dry = report["results"][0]["body"] if report["results"] else {}
    check(os.path.isdir(old) and fleet.access_point_exists(orphan_ap), "dry run: nothing changed")
    report, lines = run_function(binary, [scheduled], fleet.env(DRY_RUN="false"), timeout=120)
    real = report["results"][0]["body"] if report["results"] else {}
    kinds = lambda body: sorted((a["kind"], a["reason"]) for a in body.get("actions", []))
    check(kinds(dry) == kinds(real) == [("delete_access_point", "orphan_access_point"), ("purge_trash", "trash_grace_elapsed")],
          f"dry run and real run agree: {kinds(real)}")
    check(not os.path.exists(old) and os.path.isdir(fresh), "trash past grace purged, within grace kept")
    check(real.get("filesFreed") == 50, f"files freed counted: {real.get('filesFreed')}")
    check(not fleet.access_point_exists(orphan_ap), "orphan access point deleted")
    check(os.path.isdir(os.path.join(fleet.root, "acme", "ws-orphan")), "a just-made orphan directory is too young to touch")
    check(any(s["reason"] == "skipped_too_young" for s in real.get("skipped", [])), "and is reported skipped_too_young")
    check(os.path.isdir(os.path.join(fleet.root, "acme", "ws-live")), "the owned workspace is untouched")
    emf = [l for l in lines if "_aws" in l]
    check(len(emf) == 1 and emf[0]["TrashPurged"] == 1 and emf[0]["CapExceeded"] == 0, "EMF metrics line emitted")
    audits = {(l["action"], l["reason"]) for l in audit_lines(lines)}
    check({("purge_trash_entry", "trash_grace_elapsed"), ("delete_access_point", "orphan_access_point")} <= audits,
          "audit lines with reason codes")
    purged = [l for l in audit_lines(lines) if l["action"] == "purge_trash_entry"]
    check([(l["workspaceId"], l.get("tenantId"), l.get("resource")) for l in purged]
          == [("ws-old", "acme", f".trash/{os.path.basename(old)}")],
          f"the purge's audit line names its workspace and tenant, the path as its resource: {purged}")
    check_archive(binary, fleet, scheduled)
    check_fan_out(binary, fleet, scheduled)


def sqs_event(messages):
    return {"Records": [{
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
        "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:work",
        "awsRegion": "us-east-1"} for m in messages]}


def check_fan_out(binary, fleet, scheduled):
    """WORK_QUEUE_URL + RUNS_TABLE: the scheduled run coordinates (acts on nothing), workers fed
    the queue's messages act, a duplicate and a forged unit change nothing, the run reports once."""
    now = int(time.time())
    sqs, ddb = client("sqs"), client("dynamodb")
    url = sqs.create_queue(QueueName=f"e2e-work-{fleet.table[-8:]}")["QueueUrl"]
    runs = f"e2e-runs-{fleet.table[-8:]}"
    ddb.create_table(TableName=runs, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
    entries = []
    for i in range(3):
        entry = os.path.join(fleet.root, ".trash", f"{now - 10 * 86400}+beta+ws-fan{i}")
        os.makedirs(os.path.join(entry, "data"))
        for j in range(20):
            with open(os.path.join(entry, "data", f"{j}.txt"), "w") as f:
                f.write("x\n")
        entries.append(entry)
    kept = os.path.join(fleet.root, ".trash", f"{now - 3600}+beta+ws-kept")
    os.makedirs(os.path.join(kept, "data"))
    env = fleet.env(DRY_RUN="false", WORK_QUEUE_URL=url, RUNS_TABLE=runs)
    report, lines = run_function(binary, [{"Records": [{"eventSource": "aws:sqs", "messageId": "x", "body": "{}"}]}],
                                 fleet.env(DRY_RUN="false"), timeout=60)
    check(report["results"] and report["results"][0]["status"] == "error" and all(os.path.isdir(e) for e in entries),
          "fan-out: an SQS event without WORK_QUEUE_URL and RUNS_TABLE is refused")
    report, lines = run_function(binary, [scheduled], fleet.env(DRY_RUN="false", WORK_QUEUE_URL=url), timeout=60)
    check(not report["results"] and all(os.path.isdir(e) for e in entries),
          "fan-out: WORK_QUEUE_URL without RUNS_TABLE stops the start")
    report, lines = run_function(binary, [scheduled], env, timeout=120)
    body = report["results"][0]["body"] if report["results"] else {}
    check(body.get("units") == 3 and body.get("enqueued") == 3 and all(os.path.isdir(e) for e in entries),
          f"fan-out: the coordinator sends 3 units and acts on nothing: {body}")
    messages = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=300).get("Messages", [])
        if not got:
            break
        messages += got
    check(len(messages) == 3, f"fan-out: 3 messages in the queue: {len(messages)}")
    forged = json.loads(messages[0]["Body"])
    forged["actions"][0]["action"]["entry"] = os.path.basename(kept)
    forged_message = dict(messages[0], MessageId="forged", Body=json.dumps(forged))
    events = [sqs_event([m]) for m in messages] + [sqs_event([messages[0]]), sqs_event([forged_message])]
    report, lines = run_function(binary, events, env, timeout=120)
    answers = [r["body"].get("batchItemFailures") if isinstance(r["body"], dict) else None for r in report["results"]]
    check(answers == [[], [], [], [], [{"itemIdentifier": "forged"}]],
          f"fan-out: units acknowledged, the duplicate too, the forged one left for the DLQ: {answers}")
    check(not any(os.path.exists(e) for e in entries) and os.path.isdir(kept),
          "fan-out: the units purged their entries; the forged unit's target is kept")
    done = [l for l in lines if l.get("message") == "run done" or l.get("fields", {}).get("message") == "run done"]
    emf = [l for l in lines if "_aws" in l and "RunDurationMs" in l]
    check(len(done) == 1 and len(emf) == 1 and emf[0].get("TrashPurged") == 3 and emf[0].get("FilesFreed") == 60,
          f"fan-out: one run report and one metric set for the run: {done} {emf}")


def check_archive(binary, fleet, scheduled):
    """Archive before purge (ARCHIVE_BUCKET): the entry is archived and verified before its EFS
    copy is purged; an archive that cannot be written purges nothing."""
    now = int(time.time())
    s3 = client("s3")
    bucket = f"e2e-archive-{fleet.table[-8:]}"
    s3.create_bucket(Bucket=bucket)
    entry = os.path.join(fleet.root, ".trash", f"{now - 9 * 86400}+acme+ws-arch")
    os.makedirs(os.path.join(entry, "data", "src"))
    with open(os.path.join(entry, "data", "src", "main.rs"), "w") as f:
        f.write("fn main() {}\n")
    with open(os.path.join(entry, "record.json"), "w") as f:
        json.dump({"deletedAt": now - 9 * 86400, "item": {
            "workspaceId": {"S": "ws-arch"}, "tenantId": {"S": "acme"}, "tier": {"S": "pro"},
            "subscriptionStatus": {"S": "active"}, "lastActivityAt": {"N": str(now - 40 * 86400)}}}, f)
    # A bucket that does not exist: the upload fails, the entry stays for the next run.
    report, lines = run_function(binary, [scheduled], fleet.env(DRY_RUN="false", ARCHIVE_BUCKET=bucket + "-missing"),
                                 timeout=120)
    check(os.path.isfile(os.path.join(entry, "data", "src", "main.rs")), "archive: a failed upload purges nothing")
    report, lines = run_function(binary, [scheduled], fleet.env(DRY_RUN="true", ARCHIVE_BUCKET=bucket), timeout=120)
    dry = report["results"][0]["body"] if report["results"] else {}
    check(os.path.isdir(entry) and "Contents" not in s3.list_objects_v2(Bucket=bucket),
          "archive: the dry run uploads and purges nothing")
    report, lines = run_function(binary, [scheduled], fleet.env(DRY_RUN="false", ARCHIVE_BUCKET=bucket), timeout=120)
    real = report["results"][0]["body"] if report["results"] else {}
    kinds = lambda body: sorted((a["kind"], a["reason"]) for a in body.get("actions", []))
    check(kinds(dry) == kinds(real) == [("archive_trash", "trash_grace_elapsed")],
          f"archive: dry run and real run agree: {kinds(dry)} / {kinds(real)}")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))
    name = os.path.basename(entry)
    check(keys == [f"workspaces/ws-arch/{name}.record.json", f"workspaces/ws-arch/{name}.tar.zst"],
          f"archive: the archive and its record are in the bucket: {keys}")
    check(not os.path.exists(entry), "archive: the EFS copy is purged after the archive verified")
    actions = [(l["action"], l["workspaceId"]) for l in audit_lines(lines) if l["workspaceId"] == "ws-arch"]
    check(actions == [("archive_trash_entry", "ws-arch"), ("purge_trash_entry", "ws-arch")],
          f"archive: audit lines archive, then purge: {actions}")


def check_ecr_pruner(binary):
    print("== ecr-pruner")
    fleet = Fleet("e2e-prune")
    repo = f"agent-{fleet.table[-8:]}"
    client("ecr").create_repository(repositoryName=repo)
    old = [fleet.push_image(repo, f"old-{i}", tag=f"build-{i}") for i in range(3)]
    # The newest tagged image is the last pushed; push times have one-second resolution, and the
    # pruner orders images pushed in the same second by digest. Pushed last and with a digest
    # below the others', the multi-arch build is the newest whichever second each push lands in.
    index, children = fleet.push_buildx(repo, "multi-7", tag="build-9")
    assert index < min(old), "set-up: pick a build seed whose index digest sorts first"
    fleet.run_task_with_image(f"123456789012.dkr.ecr.us-east-1.amazonaws.com/{repo}:build-0")
    policy = json.dumps({"default": {"keepLastTagged": 1, "protectTags": [], "keepSemverReleases": 0}})
    env = {"ECR_REPOSITORIES": repo, "PRUNE_POLICY": policy, "KEEP_TASK_DEFINITION_REVISIONS": "0"}
    scheduled = json.load(open(os.path.join(HERE, "..", "events", "ecr-pruner", "scheduled.json")))
    report, _ = run_function(binary, [scheduled], dict(env, DRY_RUN="true"), timeout=120)
    dry = report["results"][0]["body"] if report["results"] else {}
    report, lines = run_function(binary, [scheduled], dict(env, DRY_RUN="false"), timeout=120)
    real = report["results"][0]["body"] if report["results"] else {}
    left = {i["imageDigest"] for i in client("ecr").describe_images(repositoryName=repo)["imageDetails"]}
    r = real.get("repositories", [{}])[0]
    check(r.get("deleted") == {"tagged_beyond_keep_last": 2}, f"two tagged images beyond keepLastTagged=1 deleted: {r.get('deleted')}")
    check(left == {old[0], index, *children}, "kept: the one in use (by tag) and the newest build with its four children")
    check(r.get("kept", {}).get("in_use_task") == 1 and r.get("kept", {}).get("child_of_kept_index") == 4, f"reasons: {r.get('kept')}")
    check(dry.get("repositories", [{}])[0].get("deleted") == r.get("deleted"), "the dry run said the same")
    audits = [l for l in lines if l.get("target") == "audit" and l.get("action") == "delete_image"]
    check(len(audits) == 2 and all(a["repository"] == repo for a in audits), "one audit line per deleted image")
    report, _ = run_function(binary, [scheduled], dict(env, PRUNE_POLICY='{"default": {"keepLast": 1}}'), timeout=5)
    check(not report["results"], "a bad PRUNE_POLICY stops start-up")


def check_storage_audit(binary):
    print("== storage-audit")
    fleet = Fleet("e2e-audit")
    suffix = fleet.table[-8:]
    prefix = f"/e2e-audit-{suffix}/"
    client("logs").create_log_group(logGroupName=prefix + "bare")
    bucket = f"e2e-audit-{suffix}"
    client("s3").create_bucket(Bucket=bucket)
    env = fleet.env(AUDIT_LOG_GROUP_PREFIXES=prefix, AUDIT_S3_BUCKETS=bucket, AUDIT_EVENT_BUS="off",
                    ECR_REPOSITORIES="none-such")
    scheduled = json.load(open(os.path.join(HERE, "..", "events", "storage-audit", "scheduled.json")))
    # Moto answers GetBucketVersioning with a root element the SDK refuses: the function reaches moto
    # through the storage-audit tests' shim, which renames it (and forwards everything else as is).
    shim_script = os.path.join(HERE, "..", "crates", "storage-audit", "tests", "moto_s3_shim.py")
    shim = subprocess.Popen([sys.executable, shim_script, "--upstream", os.environ["AWS_ENDPOINT_URL"]],
                            stdout=subprocess.PIPE, text=True)
    try:
        endpoint = shim.stdout.readline().split()[-1]
        report, lines = run_function(binary, [scheduled], dict(env, AWS_ENDPOINT_URL=endpoint), timeout=120)
    finally:
        shim.kill()
        shim.wait()
    body = report["results"][0]["body"] if report["results"] else {}
    found = {(f["check"], f["resource"]) for f in body.get("findings", [])}
    check(("log_group_no_retention", prefix + "bare") in found, "a log group without retention is a finding")
    check(("bucket_no_lifecycle", bucket) in found, "a bucket without lifecycle rules is a finding")
    check(not any(r == fleet.table and c in ("ttl_disabled", "could_not_check") for c, r in found),
          "the table's TTL on expiresAt is no finding")
    severities = [f["severity"] for f in body.get("findings", [])]
    order = ["critical", "high", "medium", "low", "info"]
    check(severities == sorted(severities, key=order.index), "findings worst first")
    emf = [l for l in lines if "_aws" in l and l.get("Function") == "storage-audit"]
    check(len(emf) == 1 and emf[0].get("HighFindings", 0) >= 1, f"one EMF line counting high findings: {emf}")
    check(client("s3").list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
          and "retentionInDays" not in client("logs").describe_log_groups(logGroupNamePrefix=prefix)["logGroups"][0],
          "the audit changed nothing")
    report, _ = run_function(binary, [scheduled], dict(env, AUDIT_S3_BUCKET=bucket), timeout=5)
    check(not report["results"], "a misspelt AUDIT_S3_BUCKETS stops start-up")


if __name__ == "__main__":
    main()
