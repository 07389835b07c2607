#!/usr/bin/env python3
"""make invoke: one function run by `cargo lambda watch` (which builds it and serves the real Lambda
Runtime API) against moto, with an event sent by `cargo lambda invoke`. A fresh table, file
system, cluster and EFS root are set up first, seeded with the workspaces the sample events name."""
import argparse
import json
import os
import signal
import subprocess
import sys
import time

from fleet import Fleet

PORT = "9050"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--function", required=True)
    ap.add_argument("--event", required=True)
    a = ap.parse_args()
    fleet = Fleet("invoke")
    with open(a.event) as f:
        event = json.load(f)
    # Give the sample event's workspaces a directory each, so there is something to act on.
    for record in event.get("Records", []):
        image = record.get("dynamodb", {}).get("OldImage", {})
        tenant, ws = image.get("tenantId", {}).get("S"), image.get("workspaceId", {}).get("S")
        if tenant and ws and "/" not in tenant + ws and ".." not in tenant + ws:
            os.makedirs(os.path.join(fleet.root, tenant, ws, "src"), exist_ok=True)
    env = dict(os.environ, **fleet.env(NOTICE_EVENT_BUS="off"))
    watch = subprocess.Popen(["cargo", "lambda", "watch", "--invoke-port", PORT], env=env, start_new_session=True)
    try:
        deadline = time.time() + 900
        while True:
            # The first invoke waits for the build; retry while the server comes up.
            out = subprocess.run(["cargo", "lambda", "invoke", a.function, "--invoke-port", PORT, "--data-file", a.event],
                                 env=env, capture_output=True, text=True)
            if out.returncode == 0 or time.time() > deadline or "onnection refused" not in out.stderr:
                break
            time.sleep(2)
        print(out.stdout or out.stderr)
        print(f"EFS root: {fleet.root}; trash: {fleet.trash()}")
        sys.exit(out.returncode)
    finally:
        os.killpg(watch.pid, signal.SIGTERM)


if __name__ == "__main__":
    main()
