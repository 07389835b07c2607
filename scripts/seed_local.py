#!/usr/bin/env python3
"""Creates, on the local emulator, the table and cluster events/env.local.json names, so that
`sam local invoke ... --env-vars events/env.local.json` has something to read (README, "Running
locally"). Safe to run twice. Talks only to AWS_ENDPOINT_URL (default http://127.0.0.1:5055)."""
import json
import os

import boto3

HERE = os.path.dirname(os.path.abspath(__file__))
ENDPOINT = os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:5055")


def client(service):
    return boto3.client(service, endpoint_url=ENDPOINT, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def main():
    with open(os.path.join(HERE, "..", "events", "env.local.json")) as f:
        env = json.load(f)
    tables = {v["WORKSPACE_TABLE"] for v in env.values()}
    clusters = {v["ECS_CLUSTER"] for v in env.values()} - {"none"}
    ddb, ecs = client("dynamodb"), client("ecs")
    for table in sorted(tables):
        if table not in ddb.list_tables()["TableNames"]:
            ddb.create_table(
                TableName=table, BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=[{"AttributeName": "workspaceId", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "workspaceId", "KeyType": "HASH"}],
                StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
            ddb.update_time_to_live(TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiresAt"})
        print(f"table {table}")
    for cluster in sorted(clusters):
        ecs.create_cluster(clusterName=cluster)  # returns the existing one if it exists
        print(f"cluster {cluster}")


if __name__ == "__main__":
    main()
