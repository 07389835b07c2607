#!/usr/bin/env python3
"""End to end: the ttl-expiry binary, run through the Lambda Runtime API against moto, with the
cases a deployment meets. Exits non-zero on the first broken expectation."""
import argparse
import json
import os
import sys

from fleet import Fleet, audit_lines, run_function

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
    ap.add_argument("--binary", required=True)
    a = ap.parse_args()

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

    report, lines = run_function(a.binary, [event, event, {"not": "a stream event"}], fleet.env())
    results = report["results"]
    check(len(results) == 3, "three invocations answered")
    check(results[0]["status"] == "response" and results[0]["body"] == {"batchItemFailures": []},
          f"batch handled with no failures: {results[0]['body']}")
    check(results[1]["body"] == {"batchItemFailures": []}, "redelivery handled with no failures")
    check(results[2]["status"] == "error" and "Records" in json.dumps(results[2]["body"]),
          f"a non-stream event is a clear error: {results[2]['body']}")
    check(not os.path.exists(os.path.join(fleet.root, "acme", "ws-old")), "expired workspace left its place")
    trash = fleet.trash()
    check(len(trash) == 1 and trash[0].endswith("+acme+ws-old"), f"and is in the trash: {trash}")
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

    # Bad configuration: the function refuses to start and says which variable is wrong.
    report, lines = run_function(a.binary, [event], fleet.env(TRASH_GRACE_DAYS="seven"), timeout=5)
    text = json.dumps(lines)
    check(not report["results"] and "TRASH_GRACE_DAYS" in text, "bad configuration stops start-up, naming the variable")

    print(f"e2e: {passes} passed, {failures} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
