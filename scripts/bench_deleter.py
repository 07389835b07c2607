#!/usr/bin/env python3
"""make bench (deleter): our parallel deleter against `rm -rf` and Python's shutil.rmtree, on the
same generated tree, under tools/efs-latency (EFS-like metadata latency) and on plain
disk, all measured in this run. Checks from the shim's report that every contender's calls were
counted (a contender that bypassed libc would look unfairly fast) before printing ratios."""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHIM_SRC = os.path.join(ROOT, "tools", "efs-latency", "efs_latency.c")


def build_shim():
    out = os.path.join(ROOT, ".work", "efs_latency.so")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    subprocess.run(["gcc", "-O2", "-Wall", "-shared", "-fPIC", "-o", out, SHIM_SRC, "-ldl"], check=True)
    return out


def make_tree(path, dirs, files_per_dir, depth):
    """`dirs` leaf directories `depth` levels deep, each with `files_per_dir` small files."""
    n = 0
    for d in range(dirs):
        parts = [f"l{(d >> (4 * k)) % 16}" for k in range(depth - 1)] + [f"d{d}"]
        leaf = os.path.join(path, *parts)
        os.makedirs(leaf, exist_ok=True)
        for f in range(files_per_dir):
            with open(os.path.join(leaf, f"f{f}.js"), "wb") as fh:
                fh.write(b"x" * (f % 64))
            n += 1
    entries = sum(len(ds) + len(fs) for _, ds, fs in os.walk(path)) + 1
    return n, entries


def run(cmd, target, shim, env_extra, report):
    env = dict(os.environ)
    if shim:
        env.update({"LD_PRELOAD": shim, "EFS_SIM_WRITE_US": "2700", "EFS_SIM_READ_US": "600", "EFS_SIM_REPORT": report})
    env.update(env_extra)
    t0 = time.monotonic()
    subprocess.run(cmd + [target], env=env, check=True, stdout=subprocess.DEVNULL)
    elapsed = time.monotonic() - t0
    if os.path.exists(target):
        sys.exit(f"{cmd}: {target} still exists")
    return elapsed


def make_chain(path, depth, name_len):
    """A chain `depth` directories deep of `name_len`-character names, a file at every level;
    built through directory handles, as its full path is far longer than PATH_MAX."""
    os.mkdir(path)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    name = "n" * name_len
    for _ in range(depth):
        os.mkdir(name, dir_fd=fd)
        os.close(os.open("f", os.O_CREAT | os.O_WRONLY, 0o600, dir_fd=fd))
        child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
        os.close(fd)
        fd = child
    os.close(fd)


def peak_rss_mib(cmd, target):
    """Runs `cmd target`; returns the child's peak resident set in MiB."""
    proc = subprocess.Popen(cmd + [target], stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0 or os.path.exists(target):
        sys.exit(f"{cmd}: failed on the deep chain")
    return usage.ru_maxrss / 1024


def counted_writes(report):
    writes = 0
    if os.path.exists(report):
        with open(report) as f:
            for line in f:
                writes += json.loads(line)["write_calls"]
        os.remove(report)
    return writes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--purge", required=True, help="the purge example binary")
    ap.add_argument("--dirs", type=int, default=400)
    ap.add_argument("--files", type=int, default=50, help="files per directory")
    ap.add_argument("--workers", default="64", help="comma-separated worker counts to compare")
    ap.add_argument("--deep", type=int, default=4000,
                    help="levels of the deep chain (200-character names) whose peak RSS is measured; 0: skip")
    a = ap.parse_args()
    shim = build_shim()
    base = tempfile.mkdtemp(prefix="bench-deleter-")
    report = os.path.join(base, "calls.jsonl")
    contenders = [("rm -rf", ["rm", "-rf"], {}),
                  ("shutil.rmtree", [sys.executable, "-c", "import shutil, sys; shutil.rmtree(sys.argv[1])"], {})]
    for w in [int(x) for x in a.workers.split(",")]:
        contenders.append((f"ours ({w} workers)", [a.purge, "--workers", str(w)], {}))
    results = {}
    files, entries = make_tree(os.path.join(base, "probe"), a.dirs, a.files, 3)
    shutil.rmtree(os.path.join(base, "probe"))
    print(f"tree: {files} files, {entries} entries ({a.dirs} leaf directories, 3 levels)")
    for mode, use_shim in (("EFS-like (shim: write 2700 us, read 600 us)", True), ("plain disk", False)):
        print(f"\n{mode}")
        for name, cmd, extra in contenders:
            target = os.path.join(base, "t")
            make_tree(target, a.dirs, a.files, 3)
            elapsed = run(cmd, target, shim if use_shim else None, extra, report)
            if use_shim:
                writes = counted_writes(report)
                if writes < entries:
                    sys.exit(f"{name}: the shim counted {writes} write calls for {entries} entries; not comparable")
            results[(mode, name)] = elapsed
            print(f"  {name:22} {elapsed:8.2f} s")
        rm = results[(mode, "rm -rf")]
        for name, _, _ in contenders[1:]:
            print(f"  {name:22} {rm / results[(mode, name)]:8.1f}x vs rm -rf")
    if a.deep:
        # Memory must not grow with depth (the sweeper has 1 GB): a deep chain, removed by ours.
        print(f"\ndeep chain: {a.deep} levels of 200-character names, a file at each (plain disk)")
        for name, cmd in (("ours (sequential)", [a.purge, "--sequential"]),
                          ("ours (64 workers)", [a.purge, "--workers", "64"])):
            target = os.path.join(base, "deep")
            make_chain(target, a.deep, 200)
            print(f"  {name:22} {peak_rss_mib(cmd, target):8.1f} MiB peak RSS")
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
