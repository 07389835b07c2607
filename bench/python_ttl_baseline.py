#!/usr/bin/env python3
"""Baseline for `make bench`: the same first call as ttl-expiry (a consistent GetItem on the
workspace table for a TTL REMOVE record), written as a Python + boto3 Lambda would be, with a
minimal Runtime API loop (lighter than awslambdaric, so the comparison favours Python)."""
import json
import os
import urllib.request

import boto3

API = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
TABLE = os.environ["WORKSPACE_TABLE"]
ddb = boto3.client("dynamodb")  # built once, outside the handler, as in ttl-expiry


def handler(event):
    for record in event["Records"]:
        old = record["dynamodb"]["OldImage"]
        ddb.get_item(TableName=TABLE, Key={"workspaceId": old["workspaceId"]}, ConsistentRead=True)
    return {"batchItemFailures": []}


while True:
    with urllib.request.urlopen(API + "next") as resp:
        request_id = resp.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(resp.read())
    body = json.dumps(handler(event)).encode()
    urllib.request.urlopen(urllib.request.Request(API + request_id + "/response", data=body, method="POST")).read()
