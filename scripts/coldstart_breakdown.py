#!/usr/bin/env python3
"""Where a function's cold start goes: runs it once through the local Runtime API under
`strace -f -ttt --seccomp-bpf` (only the system calls that mark a phase stop the process, so the
tracing costs little) and prints the phases from process start to its first answer:

  exec + dynamic loading    execve to the program's own first system call after libc is in
  start-up to the SDK       runtime, logging, configuration, up to the first profile-file read
  SDK configuration         profile files, region, credentials, clients
    of which trust store    the CA bundle (and any certificate directory) read and parsed
  to the first /next        the rest of the clients and the runtime's own set-up
  waiting for the event     the Runtime API's answer
  handler to first call     parse, plan, sign, connect
  AWS calls (moto)          from each request written to its answer read
  handler after the calls   decide, act, report, answer

    python3 scripts/coldstart_breakdown.py --bin-dir target/release [--function ttl-expiry] [--runs 5]

Needs strace, moto (AWS_ENDPOINT_URL) and the venv (boto3). Medians over --runs."""
import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile

from bench_coldstart import lambda_trust_store
from fleet import Fleet, run_function

SYSCALLS = "execve,openat,connect,writev,recvfrom,read"
LINE = re.compile(r"^(\d+)\s+(\d+\.\d+)\s+(\w+)\((.*)$")


def parse(path):
    events = []
    with open(path) as f:
        for line in f:
            m = LINE.match(line)
            if m:
                events.append((float(m.group(2)), m.group(3), m.group(4)))
    return events


def phases(events, runtime_port, aws_port):
    t0 = events[0][0]
    first = lambda pred, after=0.0: next((t for t, c, a in events if t >= after and pred(c, a)), None)
    libc = first(lambda c, a: c == "openat" and "libc.so" in a)
    own = next((t for t, c, a in events if t > libc and not (c == "read" and "\\177ELF" in a)
                and not (c == "openat" and ".so" in a)), None)
    sdk = first(lambda c, a: c == "openat" and ".aws/" in a)
    # The trust store: from opening the first certificate file to the last read of one.
    cert_fds, cert_open, cert_end = set(), None, None
    for t, c, a in events:
        m = re.search(r"\) = (\d+)$", a.rstrip())
        if c == "openat" and ("cert" in a or "/pki/" in a):
            cert_open = cert_open or t
            if m:
                cert_fds.add(m.group(1))
        elif c == "read" and a.split(",")[0] in cert_fds:
            cert_end = t
    next_req = first(lambda c, a: c == "writev" and "runtime/invocation/next" in a)
    event = first(lambda c, a: c == "recvfrom" and "200 OK" in a, next_req or 0)
    requests = [t for t, c, a in events if c == "writev" and t > (event or 0)
                and re.search(r'iov_base="(GET|POST|PUT|DELETE) /(?!2018-06-01)', a)]
    answers = [t for t, c, a in events if c == "recvfrom" and t > (event or 0) and "HTTP/1.1" in a]
    answer = first(lambda c, a: c == "writev" and "/response" in a)
    calls, waiting = [], 0.0
    for r in requests:
        resp = next((t for t in answers if t > r), None)
        if resp and (answer is None or resp < answer):
            calls.append((r, resp))
            waiting += resp - r
    ms = lambda a, b: (b - a) * 1000 if a is not None and b is not None else float("nan")
    first_call = calls[0][0] if calls else answer
    last_resp = calls[-1][1] if calls else event
    out = {
        "exec + dynamic loading": ms(t0, own),
        "start-up to the SDK": ms(own, sdk),
        "SDK configuration and clients": ms(sdk, next_req),
        "  of which the trust store": ms(cert_open, cert_end),
        "waiting for the event": ms(next_req, event),
        "handler to its first call": ms(event, first_call),
        f"AWS calls on moto ({len(calls)})": waiting * 1000,
        "handler between and after the calls": ms(event, answer) - ms(event, first_call) - waiting * 1000,
        "total to the first answer": ms(t0, answer),
    }
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--function", default="ttl-expiry", choices=["ttl-expiry", "heartbeat"])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--platform-trust-store", action="store_true",
                    help="leave SSL_CERT_FILE/SSL_CERT_DIR as they are (default: Lambda's one bundle)")
    a = ap.parse_args()
    if shutil.which("strace") is None:
        print("coldstart_breakdown: strace is not installed (Debian: strace); no breakdown")
        return
    fleet = Fleet("breakdown")
    item = fleet.workspace("acme", "ws-bench", idle_days=0, access_point=False)
    env = fleet.env(RUST_LOG="info", **({} if a.platform_trust_store else lambda_trust_store()))
    event = ({"Records": [fleet.stream_record("REMOVE", old=item, ttl=True)]} if a.function == "ttl-expiry"
             else {"workspaceIds": ["ws-bench"]})
    binary = os.path.abspath(os.path.join(a.bin_dir, a.function))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        wrapper = os.path.join(tmp, "strace.sh")
        trace = os.path.join(tmp, "trace")
        with open(wrapper, "w") as f:
            # strace detaches when it is stopped and leaves the function running: stopping the
            # wrapper stops the function (strace's child) first.
            f.write(f"#!/bin/sh\nstrace -f -ttt -s 160 --seccomp-bpf -e trace={SYSCALLS} -o {trace} {binary} &\n"
                    "s=$!\ntrap 'pkill -P $s; wait $s' TERM\nwait $s\n")
        os.chmod(wrapper, 0o755)
        for _ in range(a.runs):
            report, _ = run_function(wrapper, [event], env)
            if not report.get("results"):
                sys.exit(f"no answer: {report}")
            rows.append(phases(parse(trace), None, None))
            if os.environ.get("BREAKDOWN_KEEP"):
                os.system(f"cp {trace} {os.environ['BREAKDOWN_KEEP']}")
    print(f"{a.function}: where the cold start goes (median of {a.runs}, under strace with a seccomp filter)")
    for key in rows[0]:
        print(f"  {key:40} {statistics.median(r[key] for r in rows):6.2f} ms")


if __name__ == "__main__":
    main()
