#!/usr/bin/env python3
"""make bench (deleter): our deleter (the `purge` example) against `rmz` (the fastest `rm` we know)
and `rm -rf`, on the same generated trees, measured in this run:

- under the FUSE latency model (crates/efs-latency: a passthrough that holds each operation's
  reply for an EFS-like delay; every contender feels it, raw system calls included), with the
  model's own overhead measured at zero delay;
- on plain disk;
- under the LD_PRELOAD shim (tools/efs-latency), a cross-check for libc-based contenders only
  (rmz makes raw system calls the shim never sees).

Trees: a flat directory, a deep chain, and a workspace-like tree (git checkouts, node_modules with
.bin symlinks, build output). The bound under latency is the sum of the delays the model gave
(it counts them) divided by the concurrency used."""
import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from bench_table import add_row

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHIM_SRC = os.path.join(ROOT, "tools", "efs-latency", "efs_latency.c")
READ_US, WRITE_US = 600, 2700


def build_shim():
    out = os.path.join(ROOT, ".work", "efs_latency.so")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    subprocess.run(["gcc", "-O2", "-Wall", "-shared", "-fPIC", "-o", out, SHIM_SRC, "-ldl"], check=True)
    return out


# ---------------------------------------------------------------------------------------- trees

def write(path, size=0):
    with open(path, "wb") as fh:
        if size:
            fh.write(b"x" * size)


def make_flat(path, n):
    os.mkdir(path)
    for i in range(n):
        write(os.path.join(path, f"file-{i:06}.o"), i % 64)


def make_chain(path, depth, name_len):
    """A chain `depth` directories deep of `name_len`-character names, a file at every level;
    built through directory handles, as its full path can be far longer than PATH_MAX."""
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


def make_workspace(path, scale):
    """A developer workspace: `scale` git checkouts, each with a packed-and-loose .git, a source
    tree, node_modules (nested packages, .bin symlinks) and build output (target/ with deps and
    fingerprints). About 1,700 entries per checkout."""
    for r in range(scale):
        repo = os.path.join(path, f"repo-{r}")
        for d in range(48):  # loose objects
            od = os.path.join(repo, ".git", "objects", f"{d:02x}")
            os.makedirs(od)
            for o in range(6):
                write(os.path.join(od, f"{o:038x}"), 120)
        os.makedirs(os.path.join(repo, ".git", "objects", "pack"))
        write(os.path.join(repo, ".git", "objects", "pack", "pack-1.pack"), 4096)
        os.makedirs(os.path.join(repo, ".git", "refs", "heads"))
        write(os.path.join(repo, ".git", "refs", "heads", "main"), 41)
        for f in ("HEAD", "config", "index", "packed-refs"):
            write(os.path.join(repo, ".git", f), 64)
        for d in range(12):  # sources
            sd = os.path.join(repo, "src", f"mod{d}")
            os.makedirs(sd)
            for f in range(10):
                write(os.path.join(sd, f"file{f}.ts"), 300)
        nm = os.path.join(repo, "node_modules")
        os.makedirs(os.path.join(nm, ".bin"))
        for p in range(60):  # packages, some with nested dependencies
            pkg = os.path.join(nm, f"pkg-{p}")
            os.makedirs(os.path.join(pkg, "lib"))
            write(os.path.join(pkg, "package.json"), 200)
            write(os.path.join(pkg, "README.md"), 500)
            for f in range(6):
                write(os.path.join(pkg, "lib", f"m{f}.js"), 200)
            if p % 5 == 0:
                os.symlink(f"../pkg-{p}/lib/m0.js", os.path.join(nm, ".bin", f"cli-{p}"))
                inner = os.path.join(pkg, "node_modules", f"dep-{p}")
                os.makedirs(inner)
                for f in range(4):
                    write(os.path.join(inner, f"i{f}.js"), 100)
        tgt = os.path.join(repo, "target", "debug")
        os.makedirs(os.path.join(tgt, "deps"))
        for f in range(150):
            write(os.path.join(tgt, "deps", f"lib{f}.rlib"), 256)
        for f in range(40):  # fingerprints: a directory each, a few small files
            fp = os.path.join(tgt, ".fingerprint", f"crate-{f:04}")
            os.makedirs(fp)
            for g in ("dep-lib", "lib", "invoked.timestamp"):
                write(os.path.join(fp, g), 16)


def count_entries(path):
    n = 1
    for _, ds, fs in os.walk(path):
        n += len(ds) + len(fs)
    return n


def largest_dir(path):
    return max(len(ds) + len(fs) for _, ds, fs in os.walk(path))


def bound_s(served, workers, widest):
    """The least wall time under the model for `workers` calls in flight: the delays it gave,
    spread over the workers; but never less than emptying the widest directory one entry at a
    time (Linux holds a directory's lock across unlink and rmdir, and a lookup waits for it: on
    NFS as on FUSE, one directory's removals are serial whatever the client does)."""
    per_entry = served["delay_us"]["lookup"] + served["delay_us"]["unlink"]
    return max(served["delayed_us"] / workers, widest * per_entry) / 1e6


TREES = {
    "flat": lambda p, n: make_flat(p, n),
    "chain": lambda p, n: make_chain(p, n, 100),
    "workspace": lambda p, n: make_workspace(p, n),
}


# ------------------------------------------------------------------------------------ the model

@contextlib.contextmanager
def fuse_mount(daemon, backing, mnt, read_us, write_us, served):
    """Mounts `backing` at `mnt` through the latency model; on exit unmounts it and fills
    `served` with what the model served (operations, the delay it gave)."""
    stats = os.path.join(os.path.dirname(mnt), "served.json")
    if os.path.exists(stats):
        os.remove(stats)
    proc = subprocess.Popen([daemon, "--read-us", str(read_us), "--write-us", str(write_us),
                             "--stats", stats, backing, mnt])
    try:
        for _ in range(500):
            with open("/proc/self/mounts") as f:
                if any(l.split()[1] == mnt for l in f):
                    break
            if proc.poll() is not None:
                sys.exit(f"efs-latency exited ({proc.returncode}) before mounting {mnt}")
            time.sleep(0.01)
        else:
            sys.exit(f"efs-latency did not mount {mnt}")
        yield
    finally:
        for _ in range(50):
            if subprocess.run(["fusermount3", "-u", mnt], stderr=subprocess.DEVNULL).returncode == 0:
                break
            time.sleep(0.1)
        proc.wait(timeout=30)
    with open(stats) as f:
        served.update(json.load(f))


def run(cmd, target, env_extra=None):
    env = dict(os.environ)
    env.update(env_extra or {})
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd + [target], env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.monotonic() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{cmd}: exit status {os.waitstatus_to_exitcode(status)} on {target}")
    if os.path.lexists(target):
        sys.exit(f"{cmd}: {target} still exists")
    return elapsed, usage.ru_maxrss / 1024


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
    ap.add_argument("--rmz", required=True, help="the rmz binary (pinned, installed by make bench)")
    ap.add_argument("--efs-latency", required=True, help="the FUSE latency model binary")
    ap.add_argument("--rows", help="append table rows here (scripts/bench_table.py)")
    ap.add_argument("--workers", type=int, default=None,
                    help="our concurrency under latency (default: the deleter's default)")
    ap.add_argument("--sweep", default="16,64,256", help="concurrencies compared with their bound (workspace tree)")
    ap.add_argument("--fuse-flat", type=int, default=2000, help="files of the flat tree under the model")
    ap.add_argument("--fuse-chain", type=int, default=200, help="levels of the chain under the model")
    ap.add_argument("--fuse-workspace", type=int, default=2, help="checkouts of the workspace under the model")
    ap.add_argument("--disk-flat", type=int, default=100000)
    ap.add_argument("--disk-chain", type=int, default=4000)
    ap.add_argument("--disk-workspace", type=int, default=12)
    ap.add_argument("--shim-files", type=int, default=2000, help="files for the LD_PRELOAD cross-check; 0: skip")
    ap.add_argument("--no-rm", action="store_true", help="leave `rm -rf` out under the model (slow)")
    a = ap.parse_args()
    # The machine is shared: every contender (and the model's timer) runs at the same raised
    # priority, so that other processes' builds add less noise to the delays being measured.
    if os.geteuid() == 0:
        os.nice(-10)

    workers = a.workers or int(subprocess.run([a.purge, "--print-default-workers"], capture_output=True,
                                              text=True, check=True).stdout)
    rmz_version = subprocess.run([a.rmz, "--version"], capture_output=True, text=True).stdout.strip()
    base = tempfile.mkdtemp(prefix="bench-deleter-")
    backing, mnt = os.path.join(base, "backing"), os.path.join(base, "mnt")
    os.mkdir(backing)
    os.mkdir(mnt)
    ours = ("ours", [a.purge, "--workers", str(workers)])
    rmz = (rmz_version or "rmz", [a.rmz, "-f"])
    rm = ("rm -rf", ["rm", "-rf"])
    try:
        # ---- the model's own overhead: the same removal through it at zero delay, and on disk.
        print(f"FUSE latency model (lookup/getattr/readdir {READ_US} us, unlink/rmdir/rename/create {WRITE_US} us)")
        target = os.path.join(backing, "t")
        make_flat(target, a.fuse_flat)
        served = {}
        with fuse_mount(a.efs_latency, backing, mnt, 0, 0, served):
            t_zero, _ = run(ours[1], os.path.join(mnt, "t"))
        make_flat(target, a.fuse_flat)
        t_disk, _ = run(ours[1], target)
        overhead_us = max(t_zero - t_disk, 0) * 1e6 / served["total_ops"]
        print(f"  model overhead at zero delay: {t_zero:.3f} s through it, {t_disk:.3f} s on disk, "
              f"{served['total_ops']} ops: {overhead_us:.1f} us per op "
              f"({overhead_us * 100 / ((READ_US + WRITE_US) / 2):.1f}% of a mean delay)")
        add_row(a.rows, id="deleter.fuse.overhead_per_op", figure="FUSE model: its own overhead per op (zero delay)",
                unit="us", ours=overhead_us, note=f"{served['total_ops']} ops, {t_zero:.3f} s vs {t_disk:.3f} s on disk")

        # ---- under the model: each tree, ours against rmz (and rm -rf).
        shapes = [("flat", a.fuse_flat, f"flat dir, {a.fuse_flat:,} files"),
                  ("workspace", a.fuse_workspace, None),
                  ("chain", a.fuse_chain, f"chain {a.fuse_chain} deep")]
        for shape, size, label in shapes:
            target = os.path.join(backing, "t")
            TREES[shape](target, size)
            entries = count_entries(target)
            widest = largest_dir(target)
            shutil.rmtree(target)
            label = label or f"workspace tree, {entries:,} entries"
            results = {}
            contenders = [ours, rmz] + ([] if a.no_rm else [rm])
            for name, cmd in contenders:
                TREES[shape](target, size)
                served = {}
                with fuse_mount(a.efs_latency, backing, mnt, READ_US, WRITE_US, served):
                    t, _ = run(cmd, os.path.join(mnt, "t"))
                results[name] = (t, served)
                print(f"  {label:32} {name:16} {t:8.2f} s  {served['total_ops']:7} ops  "
                      f"{served['delayed_us'] / 1e6:7.2f} s of delay")
            t_ours, s_ours = results["ours"]
            bound = bound_s(s_ours, workers, widest)
            fps = entries / t_ours
            add_row(a.rows, id=f"deleter.fuse.{shape}.vs_rmz", figure=f"deleter under FUSE model, {label} (s)",
                    unit="s", ours=t_ours, baseline=results[rmz[0]][0], baseline_name=rmz[0],
                    bound=None if shape == "chain" else bound,
                    note=f"{workers} workers, {fps:,.0f} entries/s, {s_ours['total_ops']} ops")
            if rm[0] in results:
                add_row(a.rows, id=f"deleter.fuse.{shape}.vs_rm", figure=f"deleter under FUSE model, {label} (s)",
                        unit="s", ours=t_ours, baseline=results[rm[0]][0], baseline_name="rm -rf")
            add_row(a.rows, id=f"deleter.fuse.{shape}.rate", figure=f"deleter under FUSE model, {label}: entries/s",
                    unit="/s", ours=fps, baseline=entries / results[rmz[0]][0], baseline_name=rmz[0],
                    ratio=fps / (entries / results[rmz[0]][0]))

        # ---- concurrency against its bound, workspace tree (many directories: parallel work).
        for w in [int(x) for x in a.sweep.split(",") if x]:
            target = os.path.join(backing, "t")
            make_workspace(target, a.fuse_workspace)
            widest = largest_dir(target)
            served = {}
            with fuse_mount(a.efs_latency, backing, mnt, READ_US, WRITE_US, served):
                t, _ = run([a.purge, "--workers", str(w)], os.path.join(mnt, "t"))
            bound = bound_s(served, w, widest)
            print(f"  workspace, {w:4} workers: {t:.2f} s, bound {bound:.2f} s ({t / bound:.2f}x)")
            add_row(a.rows, id=f"deleter.fuse.workspace.workers{w}",
                    figure=f"deleter under FUSE model, workspace, {w} workers (s)",
                    unit="s", ours=t, bound=bound, note=f"{served['total_ops']} ops")

        # ---- plain disk.
        print("plain disk")
        shapes = [("flat", a.disk_flat, f"flat dir, {a.disk_flat:,} files"),
                  ("workspace", a.disk_workspace, None),
                  ("chain", a.disk_chain, f"chain {a.disk_chain} deep")]
        for shape, size, label in shapes:
            target = os.path.join(base, "t")
            results = {}
            for name, cmd in (ours, rmz, rm):
                TREES[shape](target, size)
                if label is None:
                    label = f"workspace tree, {count_entries(target):,} entries"
                results[name] = run(cmd, target)
                print(f"  {label:32} {name:16} {results[name][0]:8.3f} s  {results[name][1]:6.1f} MiB peak RSS")
            add_row(a.rows, id=f"deleter.disk.{shape}.vs_rmz", figure=f"deleter on plain disk, {label} (s)", unit="s",
                    ours=results["ours"][0], baseline=results[rmz[0]][0], baseline_name=rmz[0])
            add_row(a.rows, id=f"deleter.disk.{shape}.vs_rm", figure=f"deleter on plain disk, {label} (s)", unit="s",
                    ours=results["ours"][0], baseline=results[rm[0]][0], baseline_name="rm -rf")
            if shape == "chain":
                add_row(a.rows, id="deleter.disk.chain.rss", figure=f"deleter peak RSS, {label} (MiB)", unit="MiB",
                        ours=results["ours"][1], baseline=results[rmz[0]][1], baseline_name=rmz[0])

        # ---- the LD_PRELOAD shim: a cross-check for libc-based contenders (rmz bypasses it).
        if a.shim_files:
            shim = build_shim()
            report = os.path.join(base, "calls.jsonl")
            env = {"LD_PRELOAD": shim, "EFS_SIM_WRITE_US": str(WRITE_US), "EFS_SIM_READ_US": str(READ_US),
                   "EFS_SIM_REPORT": report}
            target = os.path.join(base, "t")
            times = {}
            for name, cmd in (ours, rm):
                make_flat(target, a.shim_files)
                times[name] = run(cmd, target, env)[0]
                if counted_writes(report) < a.shim_files:
                    sys.exit(f"{name}: the shim did not see its writes; not comparable")
            print(f"LD_PRELOAD shim, {a.shim_files} files: ours {times['ours']:.2f} s, rm -rf {times['rm -rf']:.2f} s")
            add_row(a.rows, id="deleter.shim.flat.vs_rm", figure=f"deleter under LD_PRELOAD shim, flat {a.shim_files:,} (s)",
                    unit="s", ours=times["ours"], baseline=times["rm -rf"], baseline_name="rm -rf")
    finally:
        subprocess.run(["fusermount3", "-u", mnt], stderr=subprocess.DEVNULL)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
