#!/usr/bin/env python3
"""A local AWS Lambda Runtime API: runs a function binary (or any runtime client) as Lambda would,
hands it the given events one at a time, and reports what it answered.

    python3 scripts/runtime_api.py --event events/ttl-expiry/ttl-remove-batch.json \
        [--event …] [--timeout 60] [--logs FILE] -- target/release/ttl-expiry

Prints one JSON object: {"results": [{"event", "status", "body", "ms"}], "init_ms",
"first_response_ms", "peak_rss_kib", "cpu_ms", "exit"}. "init_ms" is the time from process start to its first
request for an event (Lambda's Init Duration); "first_response_ms" is the time from process start
to its first answer (the cold start); "peak_rss_kib" is VmHWM and "cpu_ms" the CPU time (user + system, every thread)
read from /proc just before the process is stopped.
Python standard library only, so it runs before any venv exists.
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/2018-06-01/runtime"


class Runtime:
    def __init__(self, events, timeout_s):
        self.events = list(events)
        self.timeout_s = timeout_s
        self.results = []
        self.next_index = 0
        self.pending = {}
        self.lock = threading.Condition()
        self.started = None
        self.first_next_ms = None
        self.init_error = None

    def done(self):
        return len(self.results) >= len(self.events) or self.init_error is not None


def make_handler(rt):
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def reply(self, code, body=b"", headers=None):
            self.send_response(code)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path != PREFIX + "/invocation/next":
                return self.reply(404)
            with rt.lock:
                if rt.first_next_ms is None:
                    rt.first_next_ms = round((time.monotonic() - rt.started) * 1000, 1)
                while rt.next_index >= len(rt.events) and not rt.done():
                    rt.lock.wait(0.5)
                if rt.next_index >= len(rt.events):
                    # Nothing more to hand out: hold the request until the process is stopped.
                    pass
                else:
                    i = rt.next_index
                    rt.next_index += 1
                    rid = str(uuid.uuid4())
                    rt.pending[rid] = i
                    name, payload = rt.events[i]
                    deadline = int((time.time() + rt.timeout_s) * 1000)
                    return self.reply(200, payload, {
                        "Content-Type": "application/json",
                        "Lambda-Runtime-Aws-Request-Id": rid,
                        "Lambda-Runtime-Deadline-Ms": str(deadline),
                        "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:123456789012:function:local",
                        "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000",
                    })
            time.sleep(3600)

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
            ms = round((time.monotonic() - rt.started) * 1000, 1)
            parts = self.path[len(PREFIX):].strip("/").split("/")
            with rt.lock:
                if parts == ["init", "error"]:
                    rt.init_error = body.decode(errors="replace")
                elif len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
                    i = rt.pending.pop(parts[1], None)
                    try:
                        parsed = json.loads(body) if body else None
                    except ValueError:
                        parsed = body.decode(errors="replace")
                    rt.results.append({"event": rt.events[i][0] if i is not None else None,
                                       "status": parts[2], "body": parsed, "ms": ms})
                rt.lock.notify_all()
            self.reply(202, b"{}", {"Content-Type": "application/json"})

    return H


def peak_rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None


def cpu_ms(pid):
    """CPU time of the process so far, every live thread (the scheduler's nanoseconds, not the
    10 ms clock ticks of /proc/PID/stat), in milliseconds."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
    except (OSError, IndexError, ValueError):
        return None
    return round(total / 1e6, 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--event", action="append", default=[], help="a JSON file ('-' for stdin)")
    ap.add_argument("--timeout", type=float, default=60.0, help="the function timeout, seconds")
    ap.add_argument("--logs", help="write the function's stdout/stderr here (default: our stderr)")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not cmd or not a.event:
        ap.error("need --event and a command")
    events = []
    for path in a.event:
        data = sys.stdin.buffer.read() if path == "-" else open(path, "rb").read()
        json.loads(data)  # a clear error here beats a confusing one in the function
        events.append((path, data))
    rt = Runtime(events, a.timeout)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(rt))
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    env = dict(os.environ)
    env.update({
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{srv.server_address[1]}",
        "AWS_LAMBDA_FUNCTION_NAME": os.path.basename(cmd[0]),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/local",
        "AWS_LAMBDA_LOG_STREAM_NAME": "local",
        # Lambda sets both; boto3 reads only the second.
        "AWS_DEFAULT_REGION": os.environ.get("AWS_REGION", "us-east-1"),
    })
    logs = open(a.logs, "ab") if a.logs else sys.stderr
    rt.started = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=logs, stderr=logs)
    deadline = time.monotonic() + a.timeout * max(1, len(events)) + 30
    with rt.lock:
        while not rt.done() and proc.poll() is None and time.monotonic() < deadline:
            rt.lock.wait(0.05)
    rss = peak_rss_kib(proc.pid)
    cpu = cpu_ms(proc.pid)
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    srv.shutdown()
    out = {
        "results": rt.results,
        "init_ms": rt.first_next_ms,
        "first_response_ms": rt.results[0]["ms"] if rt.results else None,
        "peak_rss_kib": rss,
        "cpu_ms": cpu,
        "init_error": rt.init_error,
        "exit": proc.returncode,
    }
    print(json.dumps(out, indent=2))
    ok = len(rt.results) == len(events) and rt.init_error is None
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
