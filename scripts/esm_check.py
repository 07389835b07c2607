#!/usr/bin/env python3
"""Checks scripts/esm.py and runtime_api.WarmFunction on moto with a tiny Python worker (no
function binary needed): every message is handed over as the real SQS event, a message named in
batchItemFailures comes back (and its receive count grows), a crash mid-invocation and a timeout are
survived (the process started again, the batch back in the queue), a message that always fails ends
in the dead-letter queue after maxReceiveCount receives, and the run stops when the queue is empty.

    AWS_ENDPOINT_URL=http://127.0.0.1:5061 .venv/bin/python scripts/esm_check.py
"""
import json
import os
import sys
import tempfile
import uuid

import boto3

from esm import SqsEventSource
from fleet import ENDPOINT
from runtime_api import WarmFunction

# The worker: each record's body says what to do on which receive.
WORKER = r'''
import json, os, sys, time, urllib.request
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"
while True:
    with urllib.request.urlopen(api + "/invocation/next") as r:
        rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
        deadline = int(r.headers["Lambda-Runtime-Deadline-Ms"])
        event = json.loads(r.read())
    failures = []
    for rec in event["Records"]:
        keys = {"messageId", "receiptHandle", "body", "attributes", "messageAttributes", "md5OfBody",
                "eventSource", "eventSourceARN", "awsRegion"}
        assert set(rec) == keys and rec["eventSource"] == "aws:sqs", rec
        body, n = json.loads(rec["body"]), int(rec["attributes"]["ApproximateReceiveCount"])
        print(json.dumps({"id": body["id"], "receive": n, "deadline_in_s": deadline / 1000 - time.time()}), flush=True)
        if body.get("crash_on") == n:
            os._exit(3)
        if body.get("hang_on") == n:
            time.sleep(3600)
        if body.get("fail_until", 0) >= n or body.get("always_fail"):
            failures.append({"itemIdentifier": rec["messageId"]})
    out = json.dumps({"batchItemFailures": failures}).encode()
    urllib.request.urlopen(urllib.request.Request(f"{api}/invocation/{rid}/response", data=out, method="POST")).read()
'''


def main():
    sqs = boto3.client("sqs", endpoint_url=ENDPOINT, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    suffix = uuid.uuid4().hex[:6]
    dlq = sqs.create_queue(QueueName=f"esm-check-dlq-{suffix}")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    q = sqs.create_queue(QueueName=f"esm-check-{suffix}", Attributes={
        "VisibilityTimeout": "600", "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5})})["QueueUrl"]
    bodies = [{"id": i} for i in range(40)]
    bodies += [{"id": 100, "fail_until": 2}, {"id": 101, "crash_on": 1}, {"id": 102, "always_fail": True},
               {"id": 103, "hang_on": 1}]
    for i in range(0, len(bodies), 10):
        sqs.send_message_batch(QueueUrl=q, Entries=[{"Id": str(j), "MessageBody": json.dumps(b)}
                                                    for j, b in enumerate(bodies[i:i + 10])])
    tmp = tempfile.mkdtemp(prefix="esm-check-")
    worker = os.path.join(tmp, "worker.py")
    with open(worker, "w") as f:
        f.write(WORKER)
    logs = [os.path.join(tmp, f"w{i}.log") for i in range(3)]
    pool = [WarmFunction([sys.executable, worker], timeout_s=3, logs=logs[i], name="esm-check") for i in range(3)]
    res = SqsEventSource(sqs, q, pool).run(timeout_s=120)
    closed = [fn.close() for fn in pool]
    seen = []
    for path in logs:
        with open(path) as f:
            seen += [json.loads(l) for l in f if l.startswith("{")]
    receives = {}
    for s in seen:
        receives.setdefault(s["id"], []).append(s["receive"])
    dead = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", [])
    checks = [
        (res["drained"] and not res["timed_out"], f"the run ended with the queue empty: {res['drained']}"),
        (all(len(receives.get(i, [])) >= 1 for i in range(40)), "every plain message handed over"),
        (receives.get(100) == [1, 2, 3], f"a failed item comes back until it succeeds: {receives.get(100)}"),
        (receives.get(101, [])[:2] == [1, 2], f"a crash: the message comes back: {receives.get(101)}"),
        (sum(c["crashes"] for c in closed) == 1, f"one crash counted: {closed}"),
        (receives.get(103, [])[:2] == [1, 2], f"a timeout: the message comes back: {receives.get(103)}"),
        (sum(c["timeouts"] for c in closed) == 1, "one timeout counted"),
        (len(receives.get(102, [])) == 5, f"an item that always fails is received maxReceiveCount times: {receives.get(102)}"),
        ([json.loads(m["Body"])["id"] for m in dead] == [102], f"and then dead-lettered: {[m['Body'] for m in dead]}"),
        (all(0 < s["deadline_in_s"] <= 3 for s in seen), "each invocation's deadline is the timeout away"),
        (not res["errors"], f"no SQS call of the poller failed: {res['errors']}"),
    ]
    for ok, what in checks:
        print(("ok   " if ok else "FAIL ") + what)
    sys.exit(0 if all(ok for ok, _ in checks) else 1)


if __name__ == "__main__":
    main()
