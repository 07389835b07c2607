"""Shared helpers for the end-to-end check, the demo and the benchmarks: set up the table, file
system and cluster on moto, seed workspaces, expire records the way DynamoDB TTL does, and run a
function binary through the local Runtime API (scripts/runtime_api.py)."""
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

import boto3

HERE = os.path.dirname(os.path.abspath(__file__))
ENDPOINT = os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:5055")
DAY = 86400
RETENTION = {"free": 7, "pro": 30, "enterprise": 90}


def client(service):
    return boto3.client(service, endpoint_url=ENDPOINT, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def moto_post(path, body):
    req = urllib.request.Request(ENDPOINT + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req).read()


class Fleet:
    """One isolated set of resources: its own table, file system, cluster and EFS root."""

    def __init__(self, name="demo"):
        suffix = uuid.uuid4().hex[:8]
        self.ddb, self.efs, self.ecs, self.ec2 = (client(s) for s in ("dynamodb", "efs", "ecs", "ec2"))
        self.table = f"{name}-workspaces-{suffix}"
        self.ddb.create_table(
            TableName=self.table, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "workspaceId", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "workspaceId", "KeyType": "HASH"}],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
        self.ddb.update_time_to_live(TableName=self.table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiresAt"})
        self.fs_id = self.efs.create_file_system(CreationToken=f"{name}-{suffix}")["FileSystemId"]
        self.cluster = f"{name}-cluster-{suffix}"
        self.ecs.create_cluster(clusterName=self.cluster)
        self.root = tempfile.mkdtemp(prefix=f"{name}-efs-")
        self.sequence = 1000

    def env(self, **overrides):
        env = {"WORKSPACE_TABLE": self.table, "EFS_ROOT": self.root, "EFS_FILE_SYSTEM_ID": self.fs_id,
               "ECS_CLUSTER": self.cluster, "ACCESS_POINT_ROOT_PREFIX": "/workspaces", "RUST_LOG": "info"}
        env.update({k: str(v) for k, v in overrides.items()})
        return env

    def workspace(self, tenant, ws, tier="pro", status="active", idle_days=0, files=3, access_point=True,
                  hold=False, retention_days=None):
        """Creates a workspace's directory, access point and record, last active idle_days ago."""
        now = int(time.time())
        path = os.path.join(self.root, tenant, ws)
        os.makedirs(os.path.join(path, "src"), exist_ok=True)
        for i in range(files):
            with open(os.path.join(path, "src", f"file{i}.txt"), "wb") as f:
                f.write(os.urandom(2048))
        item = {"workspaceId": {"S": ws}, "tenantId": {"S": tenant}, "userId": {"S": f"{tenant}-user"},
                "tier": {"S": tier}, "subscriptionStatus": {"S": status},
                "lastActivityAt": {"N": str(now - idle_days * DAY)}}
        if hold:
            item["hold"] = {"BOOL": True}
        else:
            days = retention_days or min(RETENTION[tier], {"active": 10**6, "suspended": 3, "cancelled": 7}[status])
            item["expiresAt"] = {"N": str(now - idle_days * DAY + days * DAY)}
        if retention_days:
            item["retentionDays"] = {"N": str(retention_days)}
        if access_point:
            ap = self.efs.create_access_point(
                FileSystemId=self.fs_id, RootDirectory={"Path": f"/workspaces/{tenant}/{ws}"},
                Tags=[{"Key": "workspaceId", "Value": ws}])
            item["accessPointId"] = {"S": ap["AccessPointId"]}
        self.ddb.put_item(TableName=self.table, Item=item)
        return item

    def security_group(self):
        """A security group of moto's default VPC (moto's ECS services refuse a made-up id)."""
        return self.ec2.describe_security_groups()["SecurityGroups"][0]["GroupId"]

    def run_task(self, ws):
        """A running Fargate task tagged with the workspace (moto needs a default-VPC subnet)."""
        moto_post("/moto-api/state-manager/set-transition",
                  {"model_name": "ecs::task", "transition": {"progression": "manual", "times": 1000000}})
        family = f"agent-{uuid.uuid4().hex[:6]}"
        self.ecs.register_task_definition(
            family=family, requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="256", memory="512",
            containerDefinitions=[{"name": "agent", "image": "agent:latest", "memory": 512}])
        subnet = self.ec2.describe_subnets()["Subnets"][0]["SubnetId"]
        out = self.ecs.run_task(
            cluster=self.cluster, taskDefinition=family, launchType="FARGATE",
            networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [self.security_group()]}},
            tags=[{"key": "workspaceId", "value": ws}])
        return out["tasks"][0]["taskArn"]

    def push_image(self, repo, seed, tag=None, size=3_200_000):
        """A single-platform manifest, digest = sha256 of its bytes (as ECR computes it)."""
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 1469,
                               "digest": "sha256:" + hashlib.sha256(f"c-{seed}".encode()).hexdigest()},
                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "size": size,
                                "digest": "sha256:" + hashlib.sha256(f"l-{seed}".encode()).hexdigest()}]}
        return self._put(repo, manifest, "application/vnd.oci.image.manifest.v1+json", tag)

    def push_buildx(self, repo, seed, tag=None):
        """An index with amd64 and arm64 images and their two attestation manifests."""
        children = [self.push_image(repo, f"{seed}-{k}") for k in ("amd64", "arm64", "att-amd64", "att-arm64")]
        manifests = [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": 1000,
                      "platform": {"architecture": a, "os": "linux"}} for d, a in zip(children[:2], ("amd64", "arm64"))]
        manifests += [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": 800,
                       "platform": {"architecture": "unknown", "os": "unknown"},
                       "annotations": {"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": of}}
                      for d, of in zip(children[2:], children[:2])]
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests}
        return self._put(repo, index, "application/vnd.oci.image.index.v1+json", tag), children

    def _put(self, repo, manifest, media_type, tag):
        body = json.dumps(manifest)
        digest = "sha256:" + hashlib.sha256(body.encode()).hexdigest()
        kw = {"repositoryName": repo, "imageManifest": body, "imageManifestMediaType": media_type, "imageDigest": digest}
        if tag:
            kw["imageTag"] = tag
        client("ecr").put_image(**kw)
        return digest

    def run_task_with_image(self, image):
        """A running Fargate task whose container runs `image`."""
        moto_post("/moto-api/state-manager/set-transition",
                  {"model_name": "ecs::task", "transition": {"progression": "manual", "times": 1000000}})
        family = f"svc-{uuid.uuid4().hex[:6]}"
        self.ecs.register_task_definition(
            family=family, requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="256", memory="512",
            containerDefinitions=[{"name": "app", "image": image, "memory": 512}])
        subnet = self.ec2.describe_subnets()["Subnets"][0]["SubnetId"]
        self.ecs.run_task(cluster=self.cluster, taskDefinition=family, launchType="FARGATE",
                          networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [self.security_group()]}})

    def record(self, ws):
        return self.ddb.get_item(TableName=self.table, Key={"workspaceId": {"S": ws}}, ConsistentRead=True).get("Item")

    def access_point_exists(self, ap_id):
        try:
            return bool(self.efs.describe_access_points(AccessPointId=ap_id)["AccessPoints"])
        except self.efs.exceptions.AccessPointNotFound:
            return False

    def stream_record(self, name, old=None, new=None, ttl=False):
        self.sequence += 1
        image = old or new
        rec = {"eventID": uuid.uuid4().hex, "eventName": name, "eventVersion": "1.1", "eventSource": "aws:dynamodb",
               "awsRegion": "us-east-1",
               "eventSourceARN": f"arn:aws:dynamodb:us-east-1:123456789012:table/{self.table}/stream/2026-11-24T00:00:00.000",
               "dynamodb": {"ApproximateCreationDateTime": int(time.time()), "Keys": {"workspaceId": image["workspaceId"]},
                            "SequenceNumber": f"{self.sequence:021d}", "SizeBytes": 300,
                            "StreamViewType": "NEW_AND_OLD_IMAGES"}}
        if old:
            rec["dynamodb"]["OldImage"] = old
        if new:
            rec["dynamodb"]["NewImage"] = new
        if ttl:
            rec["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
        return rec

    def expire_due(self, now=None):
        """What DynamoDB TTL does (moto never does it): delete every record whose expiresAt has
        passed and hand back the REMOVE stream records, with the TTL service's userIdentity."""
        now = now or int(time.time())
        records = []
        for page in self.ddb.get_paginator("scan").paginate(TableName=self.table, ConsistentRead=True):
            for item in page["Items"]:
                expires = item.get("expiresAt", {}).get("N")
                if expires is None or int(expires) > now:
                    continue
                old = self.ddb.delete_item(
                    TableName=self.table, Key={"workspaceId": item["workspaceId"]}, ReturnValues="ALL_OLD",
                    ConditionExpression="expiresAt <= :now",
                    ExpressionAttributeValues={":now": {"N": str(now)}}).get("Attributes")
                if old:
                    records.append(self.stream_record("REMOVE", old=old, ttl=True))
        return records

    def trash(self):
        path = os.path.join(self.root, ".trash")
        return sorted(os.listdir(path)) if os.path.isdir(path) else []


def run_function(binary, events, env, timeout=60):
    """Runs `binary` through the local Runtime API with `events` (dicts). Returns the harness's
    report and the function's log lines (parsed JSON)."""
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, event in enumerate(events):
            path = os.path.join(tmp, f"event{i}.json")
            with open(path, "w") as f:
                json.dump(event, f)
            files.append(path)
        logs = os.path.join(tmp, "logs.txt")
        args = [sys.executable, os.path.join(HERE, "runtime_api.py"), "--timeout", str(timeout), "--logs", logs]
        for path in files:
            args += ["--event", path]
        full_env = dict(os.environ)
        full_env.update(env)
        proc = subprocess.run(args + ["--", binary], env=full_env, capture_output=True, text=True)
        report = json.loads(proc.stdout) if proc.stdout.strip() else {"results": [], "stderr": proc.stderr}
        lines = []
        with open(logs) as f:
            for line in f:
                try:
                    lines.append(json.loads(line))
                except ValueError:
                    lines.append({"raw": line.rstrip()})
        return report, lines


def audit_lines(lines):
    return [l for l in lines if l.get("target") == "audit"]
