#!/usr/bin/env python3
"""Writes the hand-made seeds of fuzz/corpus/<target>/ (seed-*). Real-shaped events come from
events/. Run from the repository root; `make fuzz` adds what libFuzzer finds next to them."""
import json
import pathlib
import struct

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / f"seed-{name}").write_bytes(data if isinstance(data, bytes) else data.encode())


def digest(n):
    return f"sha256:{n:064x}"


def ddb(v):
    if isinstance(v, bool):
        return {"BOOL": v}
    if isinstance(v, int):
        return {"N": str(v)}
    if v is None:
        return {"NULL": True}
    return {"S": v}


def record(seq, name="REMOVE", ttl=True, **image):
    r = {
        "eventID": f"e{seq}", "eventName": name, "eventVersion": "1.1", "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {"ApproximateCreationDateTime": 1795910000, "Keys": {"workspaceId": ddb(image.get("workspaceId", "ws"))},
                     "SequenceNumber": str(seq), "SizeBytes": 100, "StreamViewType": "NEW_AND_OLD_IMAGES",
                     "OldImage": {k: ddb(v) for k, v in image.items()}},
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/workspaces/stream/x",
    }
    if ttl:
        r["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    return r


def main():
    # Stream events: the real-shaped ones of events/, and records a parser finds hard.
    for f in sorted((ROOT / "events" / "ttl-expiry").glob("*.json")):
        write("stream_record", f"events-{f.stem}", f.read_bytes())
    base = dict(workspaceId="ws-1", tenantId="acme", tier="pro", subscriptionStatus="active",
                lastActivityAt=1795000000, expiresAt=1795900000)
    odd = [
        dict(base, tier="platinum"),
        dict(base, retentionDays=-1),
        dict(base, retentionDays=3651),
        dict(base, expiresAt=1795900000000),
        dict(base, hold=None),
        dict(base, hold=True),
        dict(base, accessPointId="fsap-0123456789abcdef0"),
        dict(base, accessPointId="../fsap"),
        dict(base, workspaceId="../.."),
        dict(base, tenantId="a/b"),
        dict(base, workspaceId="x" * 200),
        dict(base, lastActivityAt="soon"),
    ]
    batch = {"Records": [record(i + 1, **img) for i, img in enumerate(odd)]}
    batch["Records"].append(record(99, name="MODIFY", **base))
    batch["Records"].append(record(100, ttl=False, **base))
    write("stream_record", "hostile-batch", json.dumps(batch))
    write("stream_record", "typed-values", json.dumps({"Records": [{
        "eventName": "REMOVE", "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"},
        "dynamodb": {"SequenceNumber": "7", "ApproximateCreationDateTime": 1795910000, "OldImage": {
            "workspaceId": {"S": "ws-2"}, "tenantId": {"S": "acme"}, "tier": {"S": "free"},
            "subscriptionStatus": {"S": "cancelled"}, "lastActivityAt": {"N": "1.795e9"},
            "tags": {"SS": ["a", "b"]}, "blob": {"B": "AAEC"}, "nested": {"M": {"l": {"L": [{"N": "1"}, {"NULL": True}]}}},
            "counts": {"NS": ["1", "2.5"]}}}}]}))

    # Heartbeat events: every real shape, and near misses.
    for f in sorted((ROOT / "events" / "heartbeat").glob("*.json")):
        write("heartbeat_event", f"events-{f.stem}", f.read_bytes())
    for name, ev in {
        "stray-recompute": {"workspaceId": "ws-1", "recompute": "all"},
        "recompute-all": {"recompute": "all"},
        "at-negative": {"workspaceIds": ["ws-1"], "at": -5},
        "at-future": {"workspaceIds": ["ws-1", "ws-1", "../.."], "at": 99999999999},
        "eventbridge-other": {"source": "aws.ecs", "detail-type": "ECS Container Instance State Change", "time": "2026-11-29T00:00:00Z"},
        "task-no-time": {"source": "aws.ecs", "detail-type": "ECS Task State Change", "detail": {"taskArn": "arn:x"}},
    }.items():
        write("heartbeat_event", name, json.dumps(ev))

    # Policies.
    for name, text in {
        "retention-default": '{"tierDays": {"free": 7, "pro": 30, "enterprise": 90}, "statusCapDays": {"suspended": 3, "cancelled": 7}}',
        "retention-missing-tier": '{"tierDays": {"free": 7, "pro": 30}}',
        "retention-zero": '{"tierDays": {"free": 0, "pro": 30, "enterprise": 3651}}',
        "retention-unknown-key": '{"tierDays": {"free": 7, "pro": 30, "enterprise": 90}, "extra": 1}',
        "prune-template": '{"default": {"keepLastTagged": 10, "untaggedMaxAgeDays": 7, "taggedMaxAgeDays": null, "protectTags": ["latest", "prod-*"], "keepSemverReleases": 5, "pinnedDigests": []}}',
        "prune-repos": '{"default": {"keepLastTagged": 3}, "repositories": {"team/*": {"protectTags": ["v[0-9]*"], "pinnedDigests": ["' + digest(1) + '"]}, "team/app": {"untaggedMaxAgeDays": null}}}',
        "prune-bad-glob": '{"repositories": {"team/[": {}}}',
        "prune-bad-digest": '{"default": {"pinnedDigests": ["sha256:zz"]}}',
    }.items():
        write("policy", name, text)

    # Trash names.
    for name, text in {
        "entry": "1795494162+initech+initech-tps+0123456789abcdef",
        "legacy": "1795494162+initech+initech-tps",
        "staging": ".staging+1795494162+initech+initech-tps+0123456789abcdef",
        "purging": ".purging+1795494162+acme+ws",
        "lost-found": "lost+found",
        "zero": "0+a+b",
        "leading-zero": "0012+acme+ws",
        "upper-nonce": "12+acme+ws+0123456789ABCDEF",
        "dotdot": "12+..+ws",
    }.items():
        write("trash_name", name, text)

    # Ids: <8-byte little-endian time><tenant>\n<workspace>\n<seed>.
    for name, (at, tenant, ws, seed) in {
        "plain": (1795494162, "acme", "ws-1", "111000"),
        "dotdot": (1795494162, "..", "ws", ""),
        "slash": (5, "acme", "a/b", "x"),
        "long": (5, "a" * 128, "b" * 129, "y"),
        "negative": (-1, "acme", "ws", "z"),
        "unicode": (7, "acmé", "ws", "z"),
    }.items():
        write("ids_layout", name, struct.pack("<q", at) + f"{tenant}\n{ws}\n{seed}".encode())

    # The image graph: lines separated by NUL (see fuzz_checks::prune_graph).
    def graph(*lines):
        return b"\0".join(l.encode() for l in lines)

    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": [{"digest": digest(1)}, {"digest": digest(2)}]})
    image = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"})
    referrer = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "subject": {"digest": digest(0)}})
    registry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
    write("prune_graph", "index-in-use", graph("m" + index, "tv1", "m" + image, "m" + image, "m" + referrer,
                                              "m" + image, "told", f"r{registry}/team/app:v1"))
    write("prune_graph", "digest-reference", graph("m" + image, "m" + image, "m" + index,
                                                  f"r{registry}/team/app@{digest(2)}", "dother/app:latest"))
    write("prune_graph", "unreadable", graph("m{not json", "iapplication/vnd.oci.image.index.v1+json", "i",
                                            "m" + image, "trelease-1", "r[::1]:5000/team/app:tag@sha256:" + "a" * 64))
    write("prune_graph", "cosign-tag", graph("m" + image, "tlatest", "m" + image, "tsha256-" + f"{0:064x}" + ".sig",
                                            "rteam/app", "a400"))
    write("prune_graph", "ambiguous", graph("m" + image, "m" + image, "rTEAM/APP:::"))


if __name__ == "__main__":
    main()
