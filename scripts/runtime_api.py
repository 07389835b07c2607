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

`WarmFunction` (importable) is one execution environment kept warm: the process behind its own
Runtime API, handed many events in turn as Lambda does between the invocations of one container
(scripts/esm.py plays the SQS event source mapping with a pool of them; scripts/scale.py uses both).
"""
import argparse
import json
import os
import queue
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


def lambda_env(function_name, api_port, extra=None):
    """The process environment Lambda gives a function: ours, `extra`, and the runtime's own."""
    env = dict(os.environ)
    env.update(extra or {})
    env.update({
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{api_port}",
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/local",
        "AWS_LAMBDA_LOG_STREAM_NAME": "local",
        # Lambda sets both; boto3 reads only the second.
        "AWS_DEFAULT_REGION": env.get("AWS_REGION", "us-east-1"),
    })
    return env


class WarmFunction:
    """One execution environment kept warm: `cmd` behind its own Runtime API, handed one event at
    a time by `invoke`, as Lambda does between invocations of one container. Each invocation gets
    the deadline `timeout_s` from when it is handed out; past it (and a grace), the process is
    killed as Lambda does, the invocation reported as `Sandbox.Timedout`, and a new process
    started. A process that dies mid-invocation is reported as `Runtime.ExitError` and started
    again. `clock_offset_s`: the process's own clock runs that far ahead (libfaketime), so the
    deadline it is given is in its clock."""

    GRACE_S = 5.0

    def __init__(self, cmd, env=None, timeout_s=60.0, logs=None, clock_offset_s=0, name=None):
        self.cmd, self.extra_env, self.timeout_s = list(cmd), dict(env or {}), timeout_s
        self.clock_offset_s = clock_offset_s
        self.name = name or os.path.basename(self.cmd[0])
        self.log = open(logs, "ab") if logs else None
        # (request id, payload, deadline ms), or None: no more. One queue per process: a request
        # a dead process left waiting must not take the next process's event.
        self.events = queue.Queue()
        self.answers = queue.Queue()    # (request id, status, parsed body)
        self.invocations = self.crashes = self.timeouts = 0
        self.init_error = None
        self.init_ms = None
        self.cpu_s_dead = 0.0           # CPU of processes that died or were killed
        self.pids = []                  # every process started, in order
        outer = self

        class Handler(BaseHTTPRequestHandler):
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
                if outer.init_ms is None:
                    outer.init_ms = round((time.monotonic() - outer.started) * 1000, 1)
                events = outer.events
                job = events.get()
                if job is None:
                    events.put(None)  # every later request too
                    return self.reply(410)
                rid, payload, deadline_ms = job
                self.reply(200, payload, {
                    "Content-Type": "application/json",
                    "Lambda-Runtime-Aws-Request-Id": rid,
                    "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                    "Lambda-Runtime-Invoked-Function-Arn":
                        f"arn:aws:lambda:us-east-1:123456789012:function:{outer.name}",
                    "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000",
                })

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                parts = self.path[len(PREFIX):].strip("/").split("/")
                try:
                    parsed = json.loads(body) if body else None
                except ValueError:
                    parsed = body.decode(errors="replace")
                if parts == ["init", "error"]:
                    outer.init_error = parsed
                    outer.answers.put((None, "init_error", parsed))
                elif len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
                    outer.answers.put((parts[1], parts[2], parsed))
                self.reply(202, b"{}", {"Content-Type": "application/json"})

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                # A killed process hangs up mid-request: not an error worth a trace.
                if not isinstance(sys.exc_info()[1], (ConnectionError, BrokenPipeError)):
                    super().handle_error(request, client_address)

        self.srv = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.proc = None
        self._start()

    def _start(self):
        self.started = time.monotonic()
        env = lambda_env(self.name, self.srv.server_address[1], self.extra_env)
        out = self.log or subprocess.DEVNULL
        self.proc = subprocess.Popen(self.cmd, env=env, stdout=out, stderr=out)
        self.pids.append(self.proc.pid)

    def _replace(self):
        """The process is gone or must go: stop it (its CPU counted) and start a new one."""
        self.cpu_s_dead += process_cpu_s(self.proc.pid) or 0.0
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.events.put(None)  # releases its waiting request; an event it never took goes with it
        self.events = queue.Queue()
        self._start()

    def wait_ready(self, timeout_s=30.0):
        """Waits for the process to ask for its first event (its init done): True when it has."""
        limit = time.monotonic() + timeout_s
        while self.init_ms is None and self.proc.poll() is None and time.monotonic() < limit:
            time.sleep(0.01)
        return self.init_ms is not None

    def invoke(self, payload):
        """Hands `payload` (bytes or a JSON-able value) to the function and waits for its answer:
        {"status": "response"|"error", "body", "ms", "requestId"}."""
        if not isinstance(payload, (bytes, bytearray)):
            payload = json.dumps(payload).encode()
        rid = str(uuid.uuid4())
        t0 = time.monotonic()
        deadline_ms = int((time.time() + self.clock_offset_s + self.timeout_s) * 1000)
        self.invocations += 1
        self.events.put((rid, bytes(payload), deadline_ms))
        limit = t0 + self.timeout_s + self.GRACE_S
        while True:
            try:
                got, status, body = self.answers.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    self.crashes += 1
                    code = self.proc.returncode
                    self._replace()
                    return self._answer(rid, t0, "error", {"errorType": "Runtime.ExitError", "exit": code})
                if time.monotonic() > limit:
                    self.timeouts += 1
                    self._replace()
                    return self._answer(rid, t0, "error", {"errorType": "Sandbox.Timedout"})
                continue
            if status == "init_error":
                self._replace()
                return self._answer(rid, t0, "error", {"errorType": "Runtime.InitError", "init": body})
            if got == rid:
                return self._answer(rid, t0, status, body)
            # An answer to an invocation already given up on: ignored, as Lambda does.

    @staticmethod
    def _answer(rid, t0, status, body):
        return {"status": status, "body": body, "ms": round((time.monotonic() - t0) * 1000, 1), "requestId": rid}

    def cpu_s(self):
        """CPU seconds of every process this environment ran so far (user + system)."""
        return self.cpu_s_dead + (process_cpu_s(self.proc.pid) or 0.0)

    def close(self):
        """Stops the process and the Runtime API: what it ran, its CPU and peak RSS."""
        out = {"invocations": self.invocations, "crashes": self.crashes, "timeouts": self.timeouts,
               "init_ms": self.init_ms, "cpu_s": round(self.cpu_s(), 2), "peak_rss_kib": peak_rss_kib(self.proc.pid)}
        self.events.put(None)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.srv.shutdown()
        self.srv.server_close()
        if self.log:
            self.log.close()
        return out


def process_cpu_s(pid):
    """CPU seconds (user + system) a process has used, its exited threads included (the thread
    group's totals in /proc/PID/stat, 10 ms ticks); None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


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
    env = lambda_env(os.path.basename(cmd[0]), srv.server_address[1])
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
