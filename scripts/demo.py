#!/usr/bin/env python3
"""make demo: a small fleet on moto, a week of idleness, DynamoDB TTL's deletions, and ttl-expiry
(the function binaries of the demo profile, through the Lambda Runtime API) cleaning up after them."""
import argparse
import json
import os
import subprocess
import time

from fleet import Fleet, audit_lines, client, run_function


def du(path):
    files = size = 0
    for dirpath, _, names in os.walk(path):
        for n in names:
            files += 1
            size += os.lstat(os.path.join(dirpath, n)).st_size
    return files, size


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    a = ap.parse_args()
    ttl_expiry = os.path.join(a.bin_dir, "ttl-expiry")
    heartbeat = os.path.join(a.bin_dir, "heartbeat")
    t0 = time.time()
    fleet = Fleet("demo")
    print(f"== Seeding a fleet on moto ({fleet.table}, {fleet.fs_id}, EFS root {fleet.root})")
    seeds = [
        # tenant, workspace, tier, status, idle days, extra
        ("acme", "acme-monorepo", "enterprise", "active", 60, {}),
        ("acme", "acme-legal-archive", "enterprise", "active", 400, {"hold": True}),
        ("globex", "globex-api", "pro", "active", 12, {}),
        ("globex", "globex-spike", "pro", "active", 31, {}),
        ("initech", "initech-tps", "free", "active", 9, {}),
        ("initech", "initech-agent-run", "free", "active", 20, {}),
        ("umbrella", "umbrella-ml", "pro", "cancelled", 8, {}),
        ("hooli", "hooli-search", "free", "suspended", 4, {}),
        ("hooli", "hooli-nucleus", "enterprise", "active", 5, {"retention_days": 3}),
        ("initech", "initech-report", "free", "active", 5, {}),
    ]
    print(f"   {'workspace':22} {'tenant':9} {'tier':10} {'status':9} {'idle':>5}  expires")
    for tenant, ws, tier, status, idle, extra in seeds:
        item = fleet.workspace(tenant, ws, tier=tier, status=status, idle_days=idle, files=5, **extra)
        exp = item.get("expiresAt", {}).get("N")
        when = "never (hold)" if exp is None else time.strftime("%Y-%m-%d", time.gmtime(int(exp)))
        print(f"   {ws:22} {tenant:9} {tier:10} {status:9} {idle:>4}d  {when}")
    arn = fleet.run_task("initech-agent-run")
    print(f"   a Fargate task is running on initech-agent-run ({arn.rsplit('/', 1)[-1]})")

    print("\n== A dispatch to globex-spike: heartbeat (its binary, Lambda Runtime API) saves it")
    before = fleet.record("globex-spike")["expiresAt"]["N"]
    report, _ = run_function(heartbeat, [{"workspaceId": "globex-spike"}], fleet.env(NOTICE_EVENT_BUS="off"))
    body = report["results"][0]["body"] if report["results"] else report
    after = fleet.record("globex-spike")["expiresAt"]["N"]
    print(f"   expired {time.strftime('%Y-%m-%d', time.gmtime(int(before)))} (TTL had not got to it yet) -> "
          f"now expires {time.strftime('%Y-%m-%d', time.gmtime(int(after)))}; summary: {body}")

    print("\n== DynamoDB TTL deletes the expired records (done here by hand: moto never expires items)")
    records = fleet.expire_due()
    for r in records:
        print(f"   REMOVE {r['dynamodb']['OldImage']['workspaceId']['S']}  (userIdentity: dynamodb.amazonaws.com)")
    sizes = {r["dynamodb"]["OldImage"]["workspaceId"]["S"]: du(os.path.join(fleet.root, r["dynamodb"]["OldImage"]["tenantId"]["S"], r["dynamodb"]["OldImage"]["workspaceId"]["S"])) for r in records}

    print("\n== ttl-expiry handles the stream batch (its binary, Lambda Runtime API)")
    report, lines = run_function(ttl_expiry, [{"Records": records}], fleet.env())
    result = report["results"][0] if report["results"] else {"status": "no answer", "body": report}
    print(f"   answered {result['status']} in {result.get('ms')} ms (cold start included): {result['body']}")
    for line in audit_lines(lines):
        what = f"{line['action']:20} {line['reason']:16} {line['workspaceId']:22}"
        extra = line.get("resource", "")
        if line["action"] == "move_to_trash" and line["reason"] == "ttl_expired":
            files, size = sizes.get(line["workspaceId"], (0, 0))
            extra = f"{files} files, {size / 1024:.0f} KiB -> .trash/{os.path.basename(extra)}"
        print(f"   audit: {what} {extra}")

    print("\n== What is left")
    for tenant, ws, *_ in seeds:
        present = os.path.isdir(os.path.join(fleet.root, tenant, ws))
        rec = fleet.record(ws)
        state = "record" if rec else "no record"
        if rec and "expiresAt" in rec:
            state += " until " + time.strftime("%Y-%m-%d", time.gmtime(int(rec["expiresAt"]["N"])))
        print(f"   {ws:22} data {'in place' if present else 'in trash':9} {state}")
    trash = fleet.trash()
    files, size = du(os.path.join(fleet.root, ".trash"))
    print(f"   .trash: {len(trash)} entries, {files} files, {size / 1024:.0f} KiB, restorable for 7 days")
    print("\n== The 15-minute schedule: heartbeat touches running workspaces and sends expiry notices")
    tick = {"version": "0", "id": "demo", "detail-type": "Scheduled Event", "source": "aws.events", "account": "123456789012",
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "region": "us-east-1", "resources": [], "detail": {}}
    report, _ = run_function(heartbeat, [tick, tick], fleet.env(NOTICE_EVENT_BUS="default"))
    for i, result in enumerate(report["results"]):
        body = result["body"]
        print(f"   run {i + 1}: extended {[e['workspaceId'] for e in body.get('extended', [])]}, "
              f"notices {[n['workspaceId'] for n in body.get('notices', [])]} (a notice goes once per expiry date)")

    print("\n== The weekly efs-sweeper (dry run first, as the template deploys it, then for real)")
    now = int(time.time())
    last_month = os.path.join(fleet.root, ".trash", f"{now - 20 * 86400}+initech+initech-old-spike")
    os.makedirs(os.path.join(last_month, "data", "node_modules", "left-pad"))
    for i in range(200):
        with open(os.path.join(last_month, "data", "node_modules", "left-pad", f"{i}.js"), "w") as f:
            f.write("module.exports = s => s.padStart(10);\n" * 20)
    stray = fleet.efs.create_access_point(
        FileSystemId=fleet.fs_id, RootDirectory={"Path": "/workspaces/initech/initech-old-spike"},
        Tags=[{"Key": "workspaceId", "Value": "initech-old-spike"}, {"Key": "createdAt", "Value": str(now - 40 * 86400)}])
    os.makedirs(os.path.join(fleet.root, "globex", "globex-half-created"))
    sweeper = os.path.join(a.bin_dir, "efs-sweeper")
    scheduled = {"version": "0", "id": "demo", "detail-type": "Scheduled Event", "source": "aws.events",
                 "account": "123456789012", "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "region": "us-east-1", "resources": [], "detail": {}}
    for dry in ("true", "false"):
        report, _ = run_function(sweeper, [scheduled], fleet.env(DRY_RUN=dry), timeout=120)
        body = report["results"][0]["body"] if report["results"] else report
        label = "dry run" if dry == "true" else "real run"
        acts = [f"{x['kind']} {x.get('entry') or x.get('id') or x.get('workspace')} ({x['reason']})" for x in body.get("actions", [])]
        print(f"   {label}: {len(acts)} actions, {body.get('filesFreed', 0)} files / {body.get('bytesFreed', 0) / 1024:.0f} KiB freed")
        for act in acts:
            print(f"     - {act}")
    skipped = [f"{x['what']} ({x['reason']})" for x in body.get("skipped", [])]
    print(f"   kept: {', '.join(skipped)}")
    print(f"   orphan access point {stray['AccessPointId']} still exists: {fleet.access_point_exists(stray['AccessPointId'])}")

    print("\n== The daily ecr-pruner on the platform's registry (57 images, 55 orphans)")
    repo = f"outpost-control-plane-{fleet.table[-8:]}"
    client("ecr").create_repository(repositoryName=repo)
    running = fleet.push_image(repo, "prod", tag="prod-2026-01")
    served = fleet.push_image(repo, "api", tag="sha-3f9c2a1")
    for build in range(11):
        fleet.push_buildx(repo, f"build-{build}")
    fleet.run_task_with_image(f"123456789012.dkr.ecr.us-east-1.amazonaws.com/{repo}:prod-2026-01")
    fleet.run_task_with_image(f"123456789012.dkr.ecr.us-east-1.amazonaws.com/{repo}@{served}")
    print(f"   {repo}: {len(client('ecr').describe_images(repositoryName=repo)['imageDetails'])} images; "
          "two tagged images run in ECS, eleven buildx builds (index + amd64 + arm64 + 2 attestations) do not")
    pruner = os.path.join(a.bin_dir, "ecr-pruner")
    policy = json.dumps({"default": {"keepLastTagged": 0, "protectTags": ["latest"], "untaggedMaxAgeDays": 0}})
    for dry in ("true", "false"):
        report, _ = run_function(pruner, [tick], {"ECR_REPOSITORIES": repo, "PRUNE_POLICY": policy, "DRY_RUN": dry,
                                                  "KEEP_TASK_DEFINITION_REVISIONS": "0"}, timeout=120)
        body = report["results"][0]["body"] if report["results"] else report
        r = body["repositories"][0]
        label = "dry run" if dry == "true" else "real run"
        print(f"   {label}: delete {r['deleted']}, keep {r['kept']}, {r['bytesFreed'] / 1e6:.1f} MB freed")
    left = client("ecr").describe_images(repositoryName=repo)["imageDetails"]
    print(f"   left: {sorted(t for i in left for t in i.get('imageTags', []))} (indexes went before their children)")

    print("\n== lifecycle status (the operator's view, same adapters as the functions)")
    out = subprocess.run([os.path.join(a.bin_dir, "lifecycle"), "status"], env=dict(os.environ, **fleet.env(RUST_LOG="off")),
                         capture_output=True, text=True)
    print("   " + (out.stdout or out.stderr).rstrip().replace("\n", "\n   "))

    print(f"\nDone in {time.time() - t0:.1f} s. Moto is stopped by make; the EFS root was {fleet.root}.")


if __name__ == "__main__":
    main()
