"""A local Lambda SQS event source mapping (ESM): what Lambda does between an SQS queue and a
function, played against moto with a pool of warm function processes (runtime_api.WarmFunction).

    source = SqsEventSource(sqs, queue_url, functions, batch_size=1)
    result = source.run(finished=lambda: units_left() == 0, timeout_s=3600)

What it does, as Lambda does for a mapping with `FunctionResponseTypes: [ReportBatchItemFailures]`
and `ScalingConfig.MaximumConcurrency` = len(functions):
- one poller per function (one execution environment each, never two invocations at once):
  ReceiveMessage of up to `batch_size` messages (the queue's own visibility timeout, as Lambda
  uses it), handed to the function as the real SQS event (`Records[]` with messageId,
  receiptHandle, body, attributes with ApproximateReceiveCount, messageAttributes, md5OfBody,
  eventSource "aws:sqs", eventSourceARN, awsRegion);
- on a response: the messages not named in `batchItemFailures` are deleted; a named one is made
  visible again at once (ChangeMessageVisibility 0). A response that is not a valid partial batch
  response (not an object, an itemIdentifier that is not one of the batch's) fails the whole batch,
  as Lambda treats it;
- on a function error (or a timeout, a crash): the whole batch is made visible again after
  `error_visibility_s` (Lambda leaves it for the queue's visibility timeout; a local run need not
  wait that long). A queue's RedrivePolicy (maxReceiveCount) moves a message to its dead-letter
  queue, which moto does on receive.

`run` stops when the queue holds nothing (visible, in flight or delayed) twice in a row;
`finished` (optional) is the run's own end marker, noted when it first says so.
Takes any boto3-compatible SQS client; this module itself is standard library only.
scripts/esm_check.py checks it on moto with a tiny Python worker."""
import hashlib
import json
import threading
import time

COUNTS = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
          "ApproximateNumberOfMessagesDelayed")


def queue_arn(sqs, queue_url):
    return sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def lambda_message_attributes(attrs):
    """SQS's MessageAttributes as Lambda's event shows them (camelCase, list fields present)."""
    out = {}
    for name, v in (attrs or {}).items():
        a = {"dataType": v["DataType"], "stringListValues": [], "binaryListValues": []}
        if "StringValue" in v:
            a["stringValue"] = v["StringValue"]
        if "BinaryValue" in v:
            a["binaryValue"] = v["BinaryValue"]
        out[name] = a
    return out


def sqs_event(messages, arn, region):
    """The event Lambda hands a function for `messages` (ReceiveMessage's, attributes All)."""
    records = []
    for m in messages:
        a = m.get("Attributes", {})
        records.append({
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": {
                "ApproximateReceiveCount": a.get("ApproximateReceiveCount", "1"),
                "SentTimestamp": a.get("SentTimestamp", str(int(time.time() * 1000))),
                "SenderId": a.get("SenderId", "AIDAIENQZJOLO23YVJ4VO"),
                "ApproximateFirstReceiveTimestamp": a.get("ApproximateFirstReceiveTimestamp",
                                                          str(int(time.time() * 1000))),
            },
            "messageAttributes": lambda_message_attributes(m.get("MessageAttributes")),
            "md5OfBody": m.get("MD5OfBody") or hashlib.md5(m["Body"].encode()).hexdigest(),
            "eventSource": "aws:sqs",
            "eventSourceARN": arn,
            "awsRegion": region,
        })
    return {"Records": records}


def failed_ids(answer, ids):
    """The message ids of a batch that are to come back: the `batchItemFailures` of a valid
    partial batch response, or all of them (an error, or a response Lambda would not accept)."""
    if answer["status"] != "response":
        return set(ids)
    body = answer["body"]
    if body is None or body == {} or body == "":
        return set()
    if not isinstance(body, dict):
        return set(ids)
    failures = body.get("batchItemFailures", [])
    if not isinstance(failures, list):
        return set(ids)
    out = set()
    for f in failures:
        item = f.get("itemIdentifier") if isinstance(f, dict) else None
        if item not in ids:
            return set(ids)  # Lambda: an empty, missing or unknown identifier fails the batch
        out.add(item)
    return out


class SqsEventSource:
    def __init__(self, sqs, queue_url, functions, batch_size=1, region="us-east-1", wait_s=1,
                 error_visibility_s=0, poll_s=0.5):
        self.sqs, self.queue_url, self.functions = sqs, queue_url, list(functions)
        self.batch_size, self.region, self.wait_s = batch_size, region, wait_s
        self.error_visibility_s, self.poll_s = error_visibility_s, poll_s
        self.arn = queue_arn(sqs, queue_url)
        self.lock = threading.Lock()
        self.busy = 0
        self.stop = threading.Event()
        self.invocations = []   # one per batch handed to a function
        self.errors = []        # the poller's own failures (SQS calls), never silent

    def counts(self):
        a = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=list(COUNTS))["Attributes"]
        return {k: int(a.get(k, 0)) for k in COUNTS}

    def _poll(self, index, fn):
        while not self.stop.is_set():
            try:
                got = self.sqs.receive_message(
                    QueueUrl=self.queue_url, MaxNumberOfMessages=self.batch_size, WaitTimeSeconds=self.wait_s,
                    AttributeNames=["All"], MessageAttributeNames=["All"]).get("Messages", [])
            except Exception as e:  # noqa: BLE001 - reported, and the poller goes on
                self.errors.append(f"receive: {e}")
                time.sleep(0.2)
                continue
            if not got:
                continue
            with self.lock:
                self.busy += 1
            ids = [m["MessageId"] for m in got]
            started = time.monotonic()
            answer = fn.invoke(sqs_event(got, self.arn, self.region))
            ended = time.monotonic()
            back = failed_ids(answer, ids)
            handles = {m["MessageId"]: m["ReceiptHandle"] for m in got}
            done = [i for i in ids if i not in back]
            if done:
                self._call("delete", self.sqs.delete_message_batch, QueueUrl=self.queue_url,
                           Entries=[{"Id": str(n), "ReceiptHandle": handles[i]} for n, i in enumerate(done)])
            if back:
                wait = 0 if answer["status"] == "response" else self.error_visibility_s
                self._call("visibility", self.sqs.change_message_visibility_batch, QueueUrl=self.queue_url,
                           Entries=[{"Id": str(n), "ReceiptHandle": handles[i], "VisibilityTimeout": wait}
                                    for n, i in enumerate(sorted(back))])
            with self.lock:
                self.busy -= 1
                self.invocations.append({
                    "function": index,
                    "messages": [{"id": m["MessageId"], "body": m["Body"],
                                  "receiveCount": int(m.get("Attributes", {}).get("ApproximateReceiveCount", "1"))}
                                 for m in got],
                    "status": answer["status"], "body": answer["body"], "ms": answer["ms"],
                    "failed": sorted(back), "started": started, "ended": ended})

    def _call(self, what, op, **kw):
        try:
            out = op(**kw)
            for f in out.get("Failed", []):
                self.errors.append(f"{what}: {f}")
        except Exception as e:  # noqa: BLE001 - reported
            self.errors.append(f"{what}: {e}")

    def run(self, finished=None, timeout_s=None):
        """Polls until the queue holds nothing, or `timeout_s`. A message a function is working on
        is in flight (not visible) until its answer deletes it, and a message sent during an
        invocation is queued before that answer: the queue's counts alone say whether anything is
        left. Returns {"wall_s" (to the last answer), "finished_s" (when `finished` first said so),
        "drained", "timed_out", "invocations", "errors"}."""
        t0 = time.monotonic()
        threads = [threading.Thread(target=self._poll, args=(i, fn), daemon=True)
                   for i, fn in enumerate(self.functions)]
        for t in threads:
            t.start()
        finished_s, quiet, timed_out = None, 0, False
        while quiet < 2:
            time.sleep(self.poll_s)
            if finished_s is None and finished is not None and finished():
                finished_s = time.monotonic() - t0
            empty = not any(self.counts().values())
            quiet = quiet + 1 if empty else 0
            if timeout_s is not None and time.monotonic() - t0 > timeout_s:
                timed_out = True
                break
        self.stop.set()
        for t in threads:
            t.join()
        if finished_s is None and finished is not None and finished():
            finished_s = time.monotonic() - t0
        ends = [inv["ended"] for inv in self.invocations]
        return {"wall_s": (max(ends) - t0) if ends else 0.0, "finished_s": finished_s, "drained": not timed_out,
                "timed_out": timed_out, "invocations": self.invocations, "errors": self.errors}
