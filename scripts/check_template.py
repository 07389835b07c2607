#!/usr/bin/env python3
"""make lint: what template.yaml promises an operator, checked on the template itself.

cfn-lint and checkov check that the template is valid and safe in general; this checks that it
says what the README says: every alarm exists on the right metric with the right threshold and is
wired to the optional SNS topic, the dashboard shows what the lifecycle does, a first deploy
changes nothing until the operator says so, and the fan-out's work queues, dead-letter queues and
runs table are what the code and AWS's guidance for SQS event sources need. Alarms are found by
what they watch (namespace, metric, dimensions), not by their names, so renaming one cannot hide
a missing one.

    scripts/check_template.py [template.yaml]      exit 1 and a FAIL line per broken promise
"""
import fnmatch
import json
import os
import re
import sys

import yaml

FUNCTIONS = {
    "ttl-expiry": "TtlExpiryFunction",
    "heartbeat": "HeartbeatFunction",
    "efs-sweeper": "EfsSweeperFunction",
    "ecr-pruner": "EcrPrunerFunction",
    "storage-audit": "StorageAuditFunction",
}
# Functions that delete: each starts in dry run (a parameter defaulting to "true").
DESTRUCTIVE = ["ttl-expiry", "efs-sweeper", "ecr-pruner"]
# Functions whose scheduled run enqueues work units that the same function's SQS event consumes.
FAN_OUT = ["ecr-pruner", "efs-sweeper"]
# AWS's guidance for SQS event sources: visibility timeout at least 6 x the function's timeout,
# maxReceiveCount at least 5 (throttled deliveries count too); SQS allows 1 to 1000 receives, we
# ask for at most 10 so a unit that always fails reaches the DLQ within a day.
VISIBILITY_PER_TIMEOUT = 6
MAX_RECEIVES = range(5, 11)
# The SQS event's MaximumConcurrency: AWS allows 2 to 1000.
MAX_CONCURRENCY = (2, 1000)
# Items of the runs table the fan-out reads and writes (TransactWriteItems is authorised by these).
RUNS_TABLE_ACTIONS = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem",
                      "dynamodb:ConditionCheckItem"}
# The fan-out's settings the functions accept (a value outside fails every start).
RUN_VALID_HOURS = (1, 168, 24)
UNIT_MAX_ACTIONS = (1, 1000, 50)
DAY = 86400
EFS_ACCESS_POINT_QUOTA = 10000
STREAM_RETENTION_MS = 24 * 3600 * 1000
# The storage audit's role may read and list, and put its one event; nothing else.
READ_ONLY_ACTION = re.compile(r"^[a-z0-9]+:(Describe|Get|List|BatchGet|Scan|Query)[A-Za-z]*$")
REF = lambda name: {"Ref": name}  # noqa: E731
ALARM_ACTIONS = {"Fn::If": ["HasAlarmTopic", [REF("AlarmTopicArn")], REF("AWS::NoValue")]}


class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short forms (!Ref, !Sub, !If, ...) as their long forms."""


def _intrinsic(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {"Fn::" + suffix: value}


CfnLoader.add_multi_constructor("!", _intrinsic)


class Checks:
    def __init__(self):
        self.failures = 0
        self.passed = 0

    def check(self, ok, what):
        if ok:
            self.passed += 1
        else:
            self.failures += 1
            print(f"FAIL {what}")
        return ok


def dims(alarm):
    return {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}


def lambda_alarm(alarms, function, metric):
    """The alarms on AWS/Lambda `metric` of one function."""
    logical = FUNCTIONS[function]
    return [
        (name, a) for name, a in alarms.items()
        if a.get("Namespace") == "AWS/Lambda" and a.get("MetricName") == metric
        and dims(a) == {"FunctionName": REF(logical)}
    ]


def custom_alarm(alarms, function, metric):
    """The alarms on one of the functions' own metrics: configurable namespace, Stack + Function."""
    return [
        (name, a) for name, a in alarms.items()
        if a.get("MetricName") == metric and a.get("Namespace") == REF("MetricsNamespace")
        and dims(a) == {"Stack": REF("AWS::StackName"), "Function": function}
    ]


def one(c, found, what):
    c.check(len(found) == 1, f"{what}: expected one alarm, found {[n for n, _ in found] or 'none'}")
    return found[0][1] if found else None


def expect(c, alarm, what, **want):
    if alarm is None:
        return
    for key, value in want.items():
        got = alarm.get(key)
        ok = value(got) if callable(value) else got == value
        c.check(ok, f"{what}: {key} is {got!r}")


def getatt(value, attribute):
    """The logical id in {"Fn::GetAtt": [id, attribute]}, else None."""
    if isinstance(value, dict) and list(value) == ["Fn::GetAtt"]:
        logical, attr = value["Fn::GetAtt"]
        return logical if attr == attribute else None
    return None


def ref(value):
    """The logical id in {"Ref": id}, else None."""
    return value.get("Ref") if isinstance(value, dict) and list(value) == ["Ref"] else None


def policy_statements(function):
    """Every statement of a function's inline policies, both branches of every Fn::If."""
    def branches(x):
        if isinstance(x, dict) and list(x) == ["Fn::If"]:
            for b in x["Fn::If"][1:]:
                yield from branches(b)
        elif isinstance(x, dict) and ref(x) != "AWS::NoValue":
            yield x
    for pol in function["Properties"].get("Policies", []):
        for doc in branches(pol):
            for st in doc.get("Statement", []):
                yield from branches(st)


def listed(value):
    return value if isinstance(value, list) else [value]


def grants(statement, action):
    """Whether an Allow statement's actions (patterns such as sqs:* included, or NotAction) cover `action`."""
    def matches(key):
        return any(isinstance(a, str) and fnmatch.fnmatchcase(action.lower(), a.lower())
                   for a in listed(statement.get(key, [])))
    if statement.get("Effect") != "Allow":
        return False
    return not matches("NotAction") if "NotAction" in statement else matches("Action")


def fan_out(c, t, functions, env, alarms):
    """The fan-out (issue 14): work queues, their DLQs and alarms, the SQS events, the runs table."""
    resources, params = t["Resources"], t["Parameters"]
    timeout = lambda fn: functions[fn]["Properties"].get("Timeout", t["Globals"]["Function"].get("Timeout", 3))  # noqa: E731

    # Both variables or neither (the code refuses one without the other), on the functions that fan out.
    for fn in functions:
        c.check(("WORK_QUEUE_URL" in env(fn)) == ("RUNS_TABLE" in env(fn)),
                f"{fn}: WORK_QUEUE_URL and RUNS_TABLE come together")
    fanned = sorted(fn for fn in functions if "WORK_QUEUE_URL" in env(fn) or "RUNS_TABLE" in env(fn))
    c.check(fanned == sorted(FAN_OUT), f"functions that fan out: {fanned}")
    queue_of = {fn: ref(env(fn).get("WORK_QUEUE_URL")) for fn in fanned}
    owners = list(queue_of.values())
    c.check(len(set(owners)) == len(owners), f"each function has a work queue of its own: {queue_of}")

    # The runs table: the key the code writes, items that expire, recoverable and encrypted.
    tables = {ref(env(fn).get("RUNS_TABLE")) for fn in fanned}
    for name in sorted(tables, key=str):
        table = resources.get(name, {})
        props = table.get("Properties", {})
        c.check(table.get("Type") == "AWS::DynamoDB::Table", f"RUNS_TABLE names a table of the stack: {name}")
        c.check(props.get("KeySchema") == [{"AttributeName": "id", "KeyType": "HASH"}]
                and {"AttributeName": "id", "AttributeType": "S"} in props.get("AttributeDefinitions", []),
                f"{name}: hash key id (S)")
        c.check(props.get("TimeToLiveSpecification") == {"AttributeName": "expiresAt", "Enabled": True},
                f"{name}: TTL on expiresAt")
        c.check(props.get("BillingMode") == "PAY_PER_REQUEST", f"{name}: on demand")
        c.check(props.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled") is True,
                f"{name}: point-in-time recovery")
        c.check(props.get("SSESpecification", {}).get("SSEEnabled") is True, f"{name}: SSE")

    # Every queue a function consumes: a DLQ, a visibility that outlasts 6 invocations, partial
    # batch responses, a concurrency cap from a parameter.
    for fn, function in functions.items():
        for event_name, event in function["Properties"].get("Events", {}).items():
            if event.get("Type") != "SQS":
                continue
            what = f"{fn} SQS event {event_name}"
            e = event.get("Properties", {})
            queue = getatt(e.get("Queue"), "Arn")
            props = resources.get(queue, {}).get("Properties", {})
            c.check(resources.get(queue, {}).get("Type") == "AWS::SQS::Queue", f"{what}: a queue of the stack: {queue}")
            c.check("ReportBatchItemFailures" in e.get("FunctionResponseTypes", []),
                    f"{what}: FunctionResponseTypes has ReportBatchItemFailures (else one failed unit redelivers the batch)")
            cap = ref(e.get("ScalingConfig", {}).get("MaximumConcurrency"))
            param = params.get(cap, {})
            c.check(param.get("Type") == "Number" and param.get("MinValue", 0) >= MAX_CONCURRENCY[0]
                    and param.get("MaxValue", 10**9) <= MAX_CONCURRENCY[1],
                    f"{what}: ScalingConfig.MaximumConcurrency is a parameter in 2..1000: {cap}")
            visibility = props.get("VisibilityTimeout", 30)
            c.check(isinstance(visibility, int) and visibility >= VISIBILITY_PER_TIMEOUT * timeout(fn),
                    f"{what}: {queue} VisibilityTimeout {visibility} >= 6 x {fn}'s timeout {timeout(fn)}")
            c.check(e.get("BatchSize") == 1, f"{what}: BatchSize is 1 (one unit per invocation): {e.get('BatchSize')}")

    for fn in fanned:
        queue = queue_of[fn]
        function = functions[fn]["Properties"]
        events = function.get("Events", {}).values()
        consumed = [getatt(e.get("Properties", {}).get("Queue"), "Arn") for e in events if e.get("Type") == "SQS"]
        c.check(consumed == [queue], f"{fn}: one SQS event, on its own WORK_QUEUE_URL ({queue}): {consumed}")
        c.check(any(e.get("Type") == "Schedule" for e in events), f"{fn}: keeps its schedule (the coordinator)")
        q = resources.get(queue, {})
        props = q.get("Properties", {})
        c.check(q.get("Type") == "AWS::SQS::Queue", f"{fn}: WORK_QUEUE_URL is a queue of the stack: {queue}")
        redrive = props.get("RedrivePolicy") or {}
        dlq = getatt(redrive.get("deadLetterTargetArn"), "Arn")
        dead = resources.get(dlq, {}).get("Properties", {})
        c.check(resources.get(dlq, {}).get("Type") == "AWS::SQS::Queue" and dlq != queue,
                f"{queue}: redrives to a dead-letter queue of the stack: {dlq}")
        c.check(redrive.get("maxReceiveCount") in MAX_RECEIVES,
                f"{queue}: maxReceiveCount {redrive.get('maxReceiveCount')!r} in 5..10")
        for name, (low, high, default) in [("RUN_VALID_HOURS", RUN_VALID_HOURS), ("UNIT_MAX_ACTIONS", UNIT_MAX_ACTIONS)]:
            value = env(fn).get(name, str(default))
            c.check(isinstance(value, str) and value.isdigit() and low <= int(value) <= high,
                    f"{fn}: {name} {value!r} in {low}..{high}")
        hours = str(env(fn).get("RUN_VALID_HOURS", RUN_VALID_HOURS[2]))
        valid = int(hours) * 3600 if hours.isdigit() else 0
        retention = props.get("MessageRetentionPeriod", 345600)
        c.check(retention > valid, f"{queue}: retention {retention} s outlives a run's validity ({valid} s)")
        c.check(dead.get("MessageRetentionPeriod", 345600) > retention,
                f"{dlq}: retention longer than {queue}'s (a message keeps its first enqueue time)")
        for name, p in [(queue, props), (dlq, dead)]:
            c.check(p.get("SqsManagedSseEnabled") is True or bool(p.get("KmsMasterKeyId")), f"{name}: encrypted at rest")
            tls = [r["Properties"]["PolicyDocument"] for r in resources.values() if r["Type"] == "AWS::SQS::QueuePolicy"
                   and REF(name) in r["Properties"].get("Queues", [])]
            c.check(any(st.get("Effect") == "Deny" and st.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
                        and {"Fn::GetAtt": [name, "Arn"]} in listed(st.get("Resource"))
                        for doc in tls for st in doc.get("Statement", [])), f"{name}: denies requests without TLS")

        # Alarms: units waiting too long (before a run's validity ends), any unit in the DLQ.
        a = one(c, [(n, x) for n, x in alarms.items() if x.get("Namespace") == "AWS/SQS"
                    and x.get("MetricName") == "ApproximateAgeOfOldestMessage"
                    and dims(x) == {"QueueName": {"Fn::GetAtt": [queue, "QueueName"]}}], f"{queue} age of oldest unit")
        threshold = params.get(ref(a.get("Threshold")) if a else None, {})
        expect(c, a, f"{queue} age of oldest unit", Statistic="Maximum",
               ComparisonOperator=lambda v: v in ("GreaterThanThreshold", "GreaterThanOrEqualToThreshold"),
               Threshold=lambda v: bool(threshold) and threshold.get("Type") == "Number")
        c.check(bool(threshold) and threshold.get("Default", 0) <= threshold.get("MaxValue", 10**9) <= min(valid, retention),
                f"{queue} age alarm: a parameter whose default and largest value alarm before a run's validity "
                f"({valid} s) ends: {ref(a.get('Threshold')) if a else None}")
        a = one(c, [(n, x) for n, x in alarms.items() if x.get("Namespace") == "AWS/SQS"
                    and x.get("MetricName") == "ApproximateNumberOfMessagesVisible"
                    and dims(x) == {"QueueName": {"Fn::GetAtt": [dlq, "QueueName"]}}], f"{dlq} not empty")
        expect(c, a, f"{dlq} not empty", Statistic="Maximum")
        if a:
            c.check((a.get("ComparisonOperator"), a.get("Threshold")) in
                    [("GreaterThanOrEqualToThreshold", 1), ("GreaterThanThreshold", 0)],
                    f"{dlq} not empty: alarms on the first message ({a.get('ComparisonOperator')} {a.get('Threshold')})")

    # IAM: a function may send only to its own queue; the runs table's item actions, on it alone.
    for fn, function in functions.items():
        statements = list(policy_statements(function))
        own = {"Fn::GetAtt": [queue_of[fn], "Arn"]} if fn in queue_of else None
        for st in statements:
            if grants(st, "sqs:SendMessage"):
                c.check(own is not None and listed(st.get("Resource")) == [own],
                        f"{fn} {st.get('Sid')}: may SendMessage only to its own work queue: {st.get('Resource')}")
        templates = [name for pol in function["Properties"].get("Policies", [])
                     for name in ([pol] if isinstance(pol, str) else list(pol) if isinstance(pol, dict) else [])
                     if "sqs" in name.lower()]
        c.check(not templates, f"{fn}: no managed policy or policy template for SQS: {templates}")
        on_tables = {}
        for st in statements:
            for table in tables:
                arn = {"Fn::GetAtt": [table, "Arn"]}
                if table and (arn in listed(st.get("Resource")) or table in json.dumps(st.get("Resource"))):
                    c.check(fn in fanned and listed(st.get("Resource")) == [arn],
                            f"{fn} {st.get('Sid')}: names {table} alone, and only in a function that fans out")
                    on_tables.setdefault(table, set()).update(
                        a for a in RUNS_TABLE_ACTIONS if grants(st, a))
        if fn in fanned:
            table = ref(env(fn).get("RUNS_TABLE"))
            missing = RUNS_TABLE_ACTIONS - on_tables.get(table, set())
            c.check(not missing, f"{fn}: may read and write {table}'s items: missing {sorted(missing)}")


def substitute(text, variables, params):
    """Resolves a Fn::Sub string well enough to parse it: every ${X} must name something."""
    def value(m):
        name = m.group(1)
        if name in variables:
            return "NS"
        if name in params:
            return "8000" if params[name].get("Type") == "Number" else f"param-{name}"
        return f"resolved-{name}"
    return re.sub(r"\$\{([A-Za-z0-9:.]+)\}", value, text)


def dashboard_metrics(widgets):
    """(namespace, metric, dimensions, period, stat) of every metric line of every widget."""
    out = []
    for w in widgets:
        props = w.get("properties", {})
        for line in props.get("metrics", []):
            options = line[-1] if isinstance(line[-1], dict) else {}
            names = [x for x in line if not isinstance(x, dict)]
            ns, metric, rest = names[0], names[1], names[2:]
            d = dict(zip(rest[0::2], rest[1::2]))
            out.append((ns, metric, d, options.get("period", props.get("period")),
                        options.get("stat", props.get("stat"))))
    return out


def main(path):
    with open(path) as f:
        t = yaml.load(f, Loader=CfnLoader)
    c = Checks()
    params = t["Parameters"]
    resources = t["Resources"]
    conditions = t["Conditions"]
    functions = {name: resources[logical] for name, logical in FUNCTIONS.items()}
    env = lambda name: functions[name]["Properties"].get("Environment", {}).get("Variables", {})  # noqa: E731
    globals_env = t["Globals"]["Function"]["Environment"]["Variables"]
    alarms = {n: r["Properties"] for n, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}

    # --- Every alarm notifies the optional topic, only when it is set. ---
    c.check(conditions.get("HasAlarmTopic") == {"Fn::Not": [{"Fn::Equals": [REF("AlarmTopicArn"), ""]}]},
            "condition HasAlarmTopic is AlarmTopicArn != ''")
    c.check(params["AlarmTopicArn"].get("Default") == "", "AlarmTopicArn is optional (default empty)")
    for name, a in alarms.items():
        c.check(a.get("AlarmActions") == ALARM_ACTIONS, f"{name}: AlarmActions wired to AlarmTopicArn under HasAlarmTopic")
        c.check(a.get("OKActions") == ALARM_ACTIONS, f"{name}: OKActions wired to AlarmTopicArn under HasAlarmTopic")
        c.check(bool(a.get("AlarmDescription")), f"{name}: has a description")

    # --- Metrics: configurable namespace, the stack as a dimension. ---
    c.check(globals_env.get("METRICS_NAMESPACE") == REF("MetricsNamespace"), "every function gets METRICS_NAMESPACE")
    c.check(globals_env.get("METRICS_STACK") == REF("AWS::StackName"), "every function gets METRICS_STACK (the stack name)")
    for name, a in alarms.items():
        if not str(a.get("Namespace", "")).startswith("AWS/"):
            c.check(a.get("Namespace") == REF("MetricsNamespace"), f"{name}: custom metric in MetricsNamespace")
            c.check(dims(a).get("Stack") == REF("AWS::StackName"), f"{name}: custom metric has dimension Stack")

    # --- Lambda's own metrics, for every function. ---
    for fn, logical in FUNCTIONS.items():
        timeout = functions[fn]["Properties"].get("Timeout", t["Globals"]["Function"].get("Timeout", 3))
        a = one(c, lambda_alarm(alarms, fn, "Errors"), f"{fn} Errors")
        expect(c, a, f"{fn} Errors", Statistic="Sum", Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold")
        a = one(c, lambda_alarm(alarms, fn, "Throttles"), f"{fn} Throttles")
        expect(c, a, f"{fn} Throttles", Statistic="Sum", Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold")
        a = one(c, lambda_alarm(alarms, fn, "Duration"), f"{fn} Duration near timeout")
        expect(c, a, f"{fn} Duration near timeout", Statistic="Maximum",
               ComparisonOperator="GreaterThanOrEqualToThreshold",
               Threshold=lambda v, ms=timeout * 1000: isinstance(v, (int, float)) and 0.8 * ms <= v < ms)

    # The stream: alarm well before records leave it at 24 h.
    a = one(c, lambda_alarm(alarms, "ttl-expiry", "IteratorAge"), "ttl-expiry IteratorAge")
    expect(c, a, "ttl-expiry IteratorAge", Statistic="Maximum", ComparisonOperator="GreaterThanOrEqualToThreshold",
           Threshold=lambda v: isinstance(v, (int, float)) and STREAM_RETENTION_MS / 2 <= v <= 0.8 * STREAM_RETENTION_MS)

    # Heartbeat not running: no invocation in an hour, and no data is itself the alarm.
    a = one(c, lambda_alarm(alarms, "heartbeat", "Invocations"), "heartbeat not running")
    expect(c, a, "heartbeat not running", Statistic="Sum", Threshold=1, ComparisonOperator="LessThanThreshold",
           TreatMissingData="breaching", Period=lambda v: isinstance(v, int) and v * 1 <= 3600)

    # --- The functions' own metrics. ---
    a = one(c, custom_alarm(alarms, "ecr-pruner", "DeleteFailures"), "ecr-pruner DeleteFailures")
    expect(c, a, "ecr-pruner DeleteFailures", Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold")
    # Archived images in use are restored every run: each restore (or failed one) alarms.
    a = one(c, custom_alarm(alarms, "ecr-pruner", "ImagesRestored"), "ecr-pruner ImagesRestored")
    expect(c, a, "ecr-pruner ImagesRestored", Statistic="Sum", Threshold=1,
           ComparisonOperator="GreaterThanOrEqualToThreshold")
    pruner_statements = [st for pol in functions["ecr-pruner"]["Properties"].get("Policies", [])
                         if isinstance(pol, dict) for st in pol.get("Statement", [])]
    deleting = [st for st in pruner_statements if "ecr:BatchDeleteImage" in st.get("Action", [])]
    c.check(len(deleting) == 1 and "ecr:UpdateImageStorageClass" in deleting[0].get("Action", []),
            "ecr-pruner may UpdateImageStorageClass (archive, restore) where it may delete, nowhere else")
    c.check(not any("ecr:UpdateImageStorageClass" in st.get("Action", []) for st in pruner_statements
                    if st not in deleting), "ecr-pruner: UpdateImageStorageClass only on the selected repositories")
    c.check("archiveDays" in str(params["PrunePolicy"].get("Description", "")),
            "PrunePolicy documents archiveDays")
    a = one(c, custom_alarm(alarms, "efs-sweeper", "NotDone"), "efs-sweeper NotDone")
    expect(c, a, "efs-sweeper NotDone", Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold")
    capped = [fn for fn in FUNCTIONS if "MAX_ACTIONS" in env(fn)]
    c.check(sorted(capped) == ["ecr-pruner", "efs-sweeper"], f"functions with caps: {capped}")
    for fn in capped:
        a = one(c, custom_alarm(alarms, fn, "CapExceeded"), f"{fn} CapExceeded")
        expect(c, a, f"{fn} CapExceeded", Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold")
    a = one(c, custom_alarm(alarms, "efs-sweeper", "AccessPoints"), "access points vs quota")
    expect(c, a, "access points vs quota", Statistic="Maximum", ComparisonOperator="GreaterThanOrEqualToThreshold",
           Threshold=REF("AccessPointAlarmThreshold"))
    threshold = params.get("AccessPointAlarmThreshold", {})
    c.check(threshold.get("MaxValue") == EFS_ACCESS_POINT_QUOTA and threshold.get("Default", 0) < EFS_ACCESS_POINT_QUOTA,
            "AccessPointAlarmThreshold is below the 10,000 access points EFS allows")

    # --- The storage audit: monthly, reads only, an alarm on a high-severity finding. ---
    a = one(c, custom_alarm(alarms, "storage-audit", "HighFindings"), "storage-audit high findings")
    expect(c, a, "storage-audit high findings", Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold",
           TreatMissingData="notBreaching")
    audit = functions["storage-audit"]["Properties"]
    schedules = [e["Properties"].get("Schedule", "") for e in audit.get("Events", {}).values() if e["Type"] == "Schedule"]
    monthly = [s for s in schedules if re.fullmatch(r"cron\(\d+ \d+ \d+ \* \? \*\)", s)]
    c.check(len(schedules) == 1 and len(monthly) == 1, f"storage-audit runs monthly: {schedules}")
    statements = [st for pol in audit.get("Policies", []) if isinstance(pol, dict) for st in pol.get("Statement", [])]
    c.check(bool(statements), "storage-audit has its own policy")
    for st in statements:
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        c.check(st.get("Effect") == "Allow", f"storage-audit {st.get('Sid')}: allows only")
        for action in actions:
            ok = bool(READ_ONLY_ACTION.match(action)) or action == "elasticfilesystem:ClientMount" \
                or (action == "events:PutEvents" and st.get("Sid") == "PublishFindings")
            c.check(ok, f"storage-audit {st.get('Sid')}: {action} is a read, a list or its one event")
    c.check(not any(isinstance(pol, str) for pol in audit.get("Policies", [])),
            "storage-audit has no managed policy (only its read-only statements)")
    c.check("DRY_RUN" not in env("storage-audit") and "MAX_ACTIONS" not in env("storage-audit"),
            "storage-audit has nothing to dry-run or cap: it deletes nothing")

    # --- The archive (ArchiveWorkspaces): off by default, a bucket that keeps archives safely and
    # ends them by native lifecycle rules, and a sweeper that may only write them. ---
    archive_param = params.get("ArchiveWorkspaces", {})
    c.check(archive_param.get("Default") == "false", "ArchiveWorkspaces defaults to false (no archiving)")
    c.check(conditions.get("Archive") == {"Fn::Equals": [REF("ArchiveWorkspaces"), "true"]},
            "condition Archive is ArchiveWorkspaces == 'true'")
    bucket = resources.get("ArchiveBucket", {})
    c.check(bucket.get("Type") == "AWS::S3::Bucket" and bucket.get("Condition") == "Archive",
            "ArchiveBucket exists only under Archive")
    c.check(bucket.get("DeletionPolicy") == "Retain", "ArchiveBucket is retained when the stack goes")
    props = bucket.get("Properties", {})
    c.check(props.get("VersioningConfiguration", {}).get("Status") == "Enabled", "ArchiveBucket is versioned")
    sse = props.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [{}])
    c.check(bool(sse[0].get("ServerSideEncryptionByDefault", {}).get("SSEAlgorithm")), "ArchiveBucket is encrypted")
    pab = props.get("PublicAccessBlockConfiguration", {})
    c.check(all(pab.get(k) is True for k in ["BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls",
                                             "RestrictPublicBuckets"]), "ArchiveBucket blocks public access")
    rules = [r for r in props.get("LifecycleConfiguration", {}).get("Rules", []) if r.get("Status") == "Enabled"]
    classes = {tr.get("StorageClass") for r in rules for tr in r.get("Transitions", [])}
    c.check({"GLACIER_IR", "DEEP_ARCHIVE"} <= classes, f"archives move to Glacier IR and Deep Archive: {classes}")
    c.check(any(r.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays") for r in rules),
            "old versions of archives expire")
    c.check(any(r.get("AbortIncompleteMultipartUpload") for r in rules), "abandoned multipart uploads are removed")
    for tier in ["Free", "Pro", "Enterprise"]:
        days = REF(f"ArchiveDays{tier}")
        expiring = [r for r in rules if r.get("ExpirationInDays") == days
                    and r.get("TagFilters") == [{"Key": "retentionDays", "Value": days}]]
        c.check(len(expiring) == 1, f"a lifecycle rule expires archives tagged retentionDays=ArchiveDays{tier} after that many days")
    sweeper_env = env("efs-sweeper")
    c.check(sweeper_env.get("ARCHIVE_BUCKET") == {"Fn::If": ["Archive", REF("ArchiveBucket"), REF("AWS::NoValue")]},
            "efs-sweeper gets ARCHIVE_BUCKET only under Archive")
    policy = sweeper_env.get("ARCHIVE_POLICY", {}).get("Fn::If", [None, {}])[1]
    text = policy.get("Fn::Sub", "") if isinstance(policy, dict) else ""
    c.check(all(f"${{ArchiveDays{t}}}" in text for t in ["Free", "Pro", "Enterprise"]) and '"notArchived": ["cancelled"]' in text,
            "ARCHIVE_POLICY takes the three tiers' days (the lifecycle rules' days) and never archives cancelled")
    sweeper_statements = [st for pol in functions["efs-sweeper"]["Properties"].get("Policies", []) if isinstance(pol, dict)
                          for st in pol.get("Statement", [])]
    s3_statements = [st.get("Fn::If", [None, st])[1] for st in sweeper_statements
                     if any(str(a).startswith("s3:") for a in (st.get("Fn::If", [None, st])[1].get("Action", [])
                                                                if isinstance(st.get("Fn::If", [None, st])[1], dict) else []))]
    s3_actions = sorted({a for st in s3_statements for a in st.get("Action", [])})
    c.check(s3_actions == ["s3:AbortMultipartUpload", "s3:GetObject", "s3:PutObject", "s3:PutObjectTagging"],
            f"efs-sweeper may only write, read and abort archives (no delete): {s3_actions}")
    c.check(all(st.get("Resource") == {"Fn::Sub": "${ArchiveBucket.Arn}/workspaces/*"} for st in s3_statements),
            "efs-sweeper's S3 permissions are on the archive bucket's workspaces/ only")

    # --- Every function that reads the cluster's tasks may make every call that read makes
    # (ListTasks, DescribeTasks with tags, DescribeTaskDefinition for mounts and environment),
    # and every one that follows a mounted access point may describe it. A call the role lacks
    # fails every run in AWS: safe, but the function never does its work. ---
    def actions(function):
        found = set()
        for pol in functions[function]["Properties"].get("Policies", []):
            if not isinstance(pol, dict):
                continue
            if "Fn::If" in pol:
                pol = pol["Fn::If"][1]
            for st in pol.get("Statement", []):
                if isinstance(st, dict) and "Fn::If" in st:
                    st = st["Fn::If"][1]
                if not isinstance(st, dict):
                    continue
                acts = st.get("Action", [])
                found.update([acts] if isinstance(acts, str) else acts)
        return found
    task_reads = {"ecs:ListTasks", "ecs:DescribeTasks", "ecs:DescribeTaskDefinition"}
    for function in ["ttl-expiry", "heartbeat", "efs-sweeper", "ecr-pruner", "storage-audit"]:
        missing = task_reads - actions(function)
        c.check(not missing, f"{function} may read the cluster's tasks whole: missing {sorted(missing)}")
        c.check("elasticfilesystem:DescribeAccessPoints" in actions(function) or function == "ecr-pruner",
                f"{function} may describe the access points tasks mount")

    # --- Failed stream batches: kept whole in S3, and an alarm when one lands. ---
    events = functions["ttl-expiry"]["Properties"]["Events"]
    stream = next(e for e in events.values() if e["Type"] == "DynamoDB")["Properties"]
    on_failure = stream.get("DestinationConfig", {}).get("OnFailure", {})
    c.check(on_failure.get("Type") == "S3", "ttl-expiry's failed batches go to S3 (the records, not pointers)")
    bucket = (on_failure.get("Destination") or {}).get("Fn::GetAtt", [None])[0]
    c.check(resources.get(bucket, {}).get("Type") == "AWS::S3::Bucket", f"on-failure destination is a bucket of the stack: {bucket}")
    filters = [m["Id"] for m in resources.get(bucket, {}).get("Properties", {}).get("MetricsConfigurations", [])]
    found = [(n, a) for n, a in alarms.items() if a.get("Namespace") == "AWS/S3" and a.get("MetricName") == "PutRequests"
             and dims(a).get("BucketName") == REF(bucket) and dims(a).get("FilterId") in filters]
    a = one(c, found, "failed batch landed")
    expect(c, a, "failed batch landed", Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold")

    # --- The fan-out: work queues and the runs table. ---
    fan_out(c, t, functions, env, alarms)

    # --- The dashboard. ---
    boards = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    if c.check(len(boards) == 1, "one dashboard"):
        body = boards[0]["DashboardBody"]["Fn::Sub"]
        text, variables = (body[0], body[1]) if isinstance(body, list) else (body, {})
        for name in re.findall(r"\$\{([A-Za-z0-9:.]+)\}", text):
            known = name in variables or name in params or name.split(".")[0] in resources or name.startswith("AWS::")
            c.check(known, f"dashboard: ${{{name}}} names a parameter, resource or variable")
        c.check(variables.get("Ns") == REF("MetricsNamespace"), "dashboard: Ns is MetricsNamespace")
        widgets = json.loads(substitute(text, variables, params))["widgets"]
        lines = dashboard_metrics(widgets)

        def shown(ns, metric, dimensions, per_day=True, what=None):
            hit = [x for x in lines if x[0] == ns and x[1] == metric and x[2] == dimensions]
            ok = bool(hit) and (not per_day or any(x[3] == DAY and x[4] == "Sum" for x in hit))
            c.check(ok, f"dashboard shows {what or metric} {dimensions}{' per day' if per_day else ''}")

        own = lambda fn: {"Stack": "resolved-AWS::StackName", "Function": fn}  # noqa: E731
        shown("NS", "Trashed", own("ttl-expiry"), what="workspaces trashed")
        shown("NS", "SkippedInUse", own("ttl-expiry"), what="workspaces put back (in use)")
        shown("NS", "TrashPurged", own("efs-sweeper"), what="workspaces purged")
        shown("NS", "BytesFreed", own("efs-sweeper"), what="bytes freed (EFS)")
        shown("NS", "BytesFreed", own("ecr-pruner"), what="bytes freed (ECR)")
        shown("NS", "ImagesDeleted", own("ecr-pruner"), what="images deleted")
        shown("NS", "ImagesRestored", own("ecr-pruner"), what="archived images in use restored")
        for fn in capped:
            shown("NS", "CapExceeded", own(fn), what="caps hit")
        for fn, logical in FUNCTIONS.items():
            shown("AWS/Lambda", "Errors", {"FunctionName": f"resolved-{logical}"}, what="failures")
        shown("NS", "DeleteFailures", own("ecr-pruner"), what="failures")
        shown("NS", "NotDone", own("efs-sweeper"), what="failures")
        shown("AWS/Lambda", "IteratorAge", {"FunctionName": "resolved-TtlExpiryFunction"}, per_day=False,
              what="iterator age")

    # --- A first deploy changes nothing until the operator says so. ---
    for fn in DESTRUCTIVE:
        dry = env(fn).get("DRY_RUN")
        param = params.get(dry.get("Ref")) if isinstance(dry, dict) else None
        c.check(param is not None and param.get("Default") == "true", f"{fn}: DRY_RUN is a parameter defaulting to true")
    cluster = params["EcsClusterName"]
    pattern = re.compile(cluster.get("AllowedPattern", ".*"))
    c.check("Default" not in cluster, "EcsClusterName is required (no default)")
    c.check(not pattern.fullmatch("") and pattern.fullmatch("none") and pattern.fullmatch("agents"),
            "EcsClusterName refuses empty and accepts none (the explicit guard-off) and a name")
    repos = params["EcrRepositories"]
    c.check("Default" not in repos, "EcrRepositories is required (no '*' default)")
    c.check(not re.fullmatch(repos.get("AllowedPattern", ".*"), ""), "EcrRepositories refuses empty")
    c.check("Default" not in params["EcrRepositoryPolicyPattern"], "EcrRepositoryPolicyPattern is required")
    stream_arn = re.compile(params["ExistingTableStreamArn"]["AllowedPattern"])
    c.check(bool(stream_arn.fullmatch("")) and bool(stream_arn.fullmatch(
        "arn:aws:dynamodb:us-east-1:123456789012:table/workspaces/stream/2026-01-01T00:00:00.000")),
        "ExistingTableStreamArn accepts empty or a stream ARN")
    table = resources["WorkspaceTable"]["Properties"]
    c.check(table.get("DeletionProtectionEnabled") is True, "the table has deletion protection")

    # --- Operations parameters and presentation. ---
    g = t["Globals"]["Function"]
    c.check(g.get("PermissionsBoundary") == {"Fn::If": ["HasPermissionsBoundary", REF("PermissionsBoundaryArn"), REF("AWS::NoValue")]},
            "every function role gets the optional permissions boundary")
    c.check(g.get("PropagateTags") is True and bool(g.get("Tags")), "function tags are propagated")
    roles = [n for n, r in resources.items() if r["Type"] == "AWS::IAM::Role"]
    c.check(not roles, f"no role outside SAM's function roles (they would miss the boundary): {roles}")
    for n, r in resources.items():
        if r["Type"] == "AWS::Logs::LogGroup":
            c.check(r["Properties"].get("RetentionInDays") == REF("LogRetentionDays"), f"{n}: retention is LogRetentionDays")
    groups = t["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    grouped = [p for grp in groups for p in grp["Parameters"]]
    c.check(sorted(grouped) == sorted(params), f"ParameterGroups list every parameter once: "
            f"missing {sorted(set(params) - set(grouped))}, extra {sorted(set(grouped) - set(params))}")
    for n, o in t["Outputs"].items():
        c.check(bool(o.get("Description")), f"output {n} has a description")
    for n, r in resources.items():
        for skip in r.get("Metadata", {}).get("checkov", {}).get("skip", []):
            c.check(bool(skip.get("id")) and len(str(skip.get("comment", "")).strip()) >= 20,
                    f"{n}: checkov skip {skip.get('id')} says why")

    # --- Local runs: sam local invoke applies only variables the template declares. ---
    c.check(globals_env.get("AWS_ENDPOINT_URL") == {"Fn::If": ["HasLocalEndpoint", REF("LocalEndpointUrl"), REF("AWS::NoValue")]}
            and params["LocalEndpointUrl"].get("Default") == "",
            "AWS_ENDPOINT_URL is declared for local runs only (absent when LocalEndpointUrl is empty)")
    local = os.path.join(os.path.dirname(os.path.abspath(path)), "events", "env.local.json")
    if c.check(os.path.exists(local), f"{local} exists"):
        with open(local) as f:
            local_env = json.load(f)
        c.check(sorted(local_env) == sorted(FUNCTIONS.values()), f"env.local.json has every function: {sorted(local_env)}")
        for logical, variables in local_env.items():
            fn = next((n for n, l in FUNCTIONS.items() if l == logical), None)
            if fn is None:
                continue
            declared = set(globals_env) | set(env(fn))
            unknown = sorted(set(variables) - declared)
            c.check(not unknown, f"env.local.json {logical}: sam local ignores variables the template does not declare: {unknown}")
            if fn in DESTRUCTIVE:
                c.check(variables.get("DRY_RUN") == "true", f"env.local.json {logical}: DRY_RUN is true")
            c.check(variables.get("AWS_ENDPOINT_URL", "").startswith("http://host.docker.internal:"),
                    f"env.local.json {logical}: AWS_ENDPOINT_URL is the host's emulator")

    print(f"check_template: {c.passed} checks passed, {c.failures} failed ({len(alarms)} alarms, "
          f"{len(boards)} dashboard)")
    return 1 if c.failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "template.yaml"))
