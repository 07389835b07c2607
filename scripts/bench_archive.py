#!/usr/bin/env python3
"""make bench (archive): the sweeper's archive of a trash entry (the `archive_bench` example: the
walk, tar + zstd -3, multipart parts with their SHA-256, into a bucket that keeps only digests)
against `tar -cf - -C DIR . | zstd -3 -q -o FILE`, on the same tree, measured in this run:

- a workspace-like tree (scripts/bench_deleter.py's `make_workspace`) under the FUSE latency model
  (crates/efs-latency: lookup/getattr/open/readdir/read 600 us, writes 2,700 us), each contender
  on a fresh mount (nothing cached by the kernel from the other); the aim is 10x the pipe's files/s;
- the same tree on plain disk (best of three, page cache warm);
- peak RSS (VmHWM, printed by the example) archiving a ~100 MB and a ~2.5 GB workspace of
  incompressible data on plain disk: the memory is the same whatever the size, and the pipe's
  throughput on the large one beside ours."""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from bench_table import add_row
from bench_deleter import READ_US, WRITE_US, count_entries, fuse_mount, make_workspace


def fuse_base():
    """The model's backing on tmpfs when there is one: what it measures is its delays."""
    with open("/proc/mounts") as f:
        shm = any(l.split()[1] == "/dev/shm" and l.split()[2] == "tmpfs" for l in f)
    return tempfile.mkdtemp(prefix="bench-archive-", dir="/dev/shm" if shm else None)


def ours(bench, target, workers=None):
    """Runs the example on `target`: (wall seconds, its JSON report)."""
    cmd = [bench, target] + ([] if workers is None else ["--workers", str(workers)])
    t0 = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.monotonic() - t0
    if out.returncode != 0:
        sys.exit(f"{cmd}: exit status {out.returncode}: {out.stderr}")
    return elapsed, json.loads(out.stdout)


def pipe(target, out_dir):
    """`tar | zstd -3` of `target` into a file: wall seconds."""
    out = os.path.join(out_dir, "baseline.tar.zst")
    t0 = time.monotonic()
    subprocess.run(["bash", "-c", 'set -o pipefail; tar -cf - -C "$1" . | zstd -3 -q -f -o "$2"', "_",
                    target, out], check=True)
    elapsed = time.monotonic() - t0
    os.remove(out)
    return elapsed


def noise(path, total_mb, file_mb=32):
    """`total_mb` of incompressible files (slices of one random block: repeats lie farther apart
    than zstd -3's window) in `path`."""
    os.makedirs(path, exist_ok=True)
    block = os.urandom(64 << 20)
    ring = block + block
    size = file_mb << 20
    for i in range(max(1, total_mb // file_mb)):
        start = (i * 7919 * 4096) % len(block)
        with open(os.path.join(path, f"blob-{i:04}.bin"), "wb") as f:
            f.write(ring[start:start + size])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", required=True, help="the archive_bench example binary")
    ap.add_argument("--efs-latency", required=True, help="the FUSE latency model binary")
    ap.add_argument("--rows", help="append table rows here (scripts/bench_table.py)")
    ap.add_argument("--workspace", type=int, default=12, help="checkouts of the workspace tree")
    ap.add_argument("--small-mb", type=int, default=100, help="the small workspace for peak RSS")
    ap.add_argument("--large-mb", type=int, default=2500, help="the large workspace for peak RSS")
    ap.add_argument("--sweep", default="", help="worker counts to try under the model (e.g. 16,32,64)")
    a = ap.parse_args()
    if os.geteuid() == 0:
        os.nice(-10)
    base = tempfile.mkdtemp(prefix="bench-archive-")
    model_base = fuse_base()
    backing, mnt = os.path.join(model_base, "backing"), os.path.join(model_base, "mnt")
    os.mkdir(backing)
    os.mkdir(mnt)
    try:
        # ---- under the model: the workspace tree, each contender on a fresh mount.
        target = os.path.join(backing, "t")
        make_workspace(target, a.workspace)
        entries = count_entries(target)
        print(f"archive under the FUSE latency model (lookup/getattr/open/readdir/read {READ_US} us), "
              f"workspace tree of {entries:,} entries")
        served = {}
        with fuse_mount(a.efs_latency, backing, mnt, READ_US, WRITE_US, served):
            t_ours, report = ours(a.bench, os.path.join(mnt, "t"))
        files, mb = report["files"], report["bytes"] / 1e6
        print(f"  ours      {t_ours:7.2f} s  {files / t_ours:9,.0f} files/s  {mb / t_ours:6.2f} MB/s  "
              f"{served['total_ops']} ops, {served['delayed_us'] / 1e6:.1f} s of delay")
        ops_ours = served["total_ops"]
        served = {}
        with fuse_mount(a.efs_latency, backing, mnt, READ_US, WRITE_US, served):
            t_pipe = pipe(os.path.join(mnt, "t"), base)
        print(f"  tar|zstd  {t_pipe:7.2f} s  {files / t_pipe:9,.0f} files/s  {mb / t_pipe:6.2f} MB/s  "
              f"{served['total_ops']} ops, {served['delayed_us'] / 1e6:.1f} s of delay")
        label = f"workspace tree, {files:,} files ({mb:.0f} MB)"
        add_row(a.rows, id="archive.fuse.workspace.files_per_s",
                figure=f"archive under FUSE model, {label}: files/s (aim 10x)", unit="/s",
                ours=files / t_ours, baseline=files / t_pipe, baseline_name="tar | zstd -3",
                ratio=t_pipe / t_ours,
                note=f"ours {t_ours:.2f} s, {ops_ours} ops; tar | zstd {t_pipe:.2f} s, {served['total_ops']} ops")
        add_row(a.rows, id="archive.fuse.workspace.mb_per_s", figure=f"archive under FUSE model, {label}: MB/s",
                unit="MB/s", ours=mb / t_ours, baseline=mb / t_pipe, baseline_name="tar | zstd -3",
                ratio=t_pipe / t_ours)
        for w in [int(x) for x in a.sweep.split(",") if x]:
            served = {}
            with fuse_mount(a.efs_latency, backing, mnt, READ_US, WRITE_US, served):
                t, _ = ours(a.bench, os.path.join(mnt, "t"), w)
            print(f"  ours, {w:3} workers: {t:.2f} s, {files / t:,.0f} files/s")
        shutil.rmtree(target)

        # ---- plain disk: the same tree, page cache warm, best of three.
        target = os.path.join(base, "t")
        make_workspace(target, a.workspace)
        os.sync()
        t_ours = min(ours(a.bench, target)[0] for _ in range(3))
        t_pipe = min(pipe(target, base) for _ in range(3))
        print(f"plain disk, same tree: ours {t_ours:.3f} s ({files / t_ours:,.0f} files/s), "
              f"tar|zstd {t_pipe:.3f} s ({files / t_pipe:,.0f} files/s)")
        add_row(a.rows, id="archive.disk.workspace.files_per_s", figure=f"archive on plain disk, {label}: files/s",
                unit="/s", ours=files / t_ours, baseline=files / t_pipe, baseline_name="tar | zstd -3",
                ratio=t_pipe / t_ours, note=f"ours {t_ours:.3f} s, tar | zstd {t_pipe:.3f} s")
        shutil.rmtree(target)

        # ---- peak RSS: a small and a large workspace of incompressible data, plain disk.
        rss = {}
        for name, total in (("small", a.small_mb), ("large", a.large_mb)):
            target = os.path.join(base, name)
            make_workspace(target, 1)
            noise(os.path.join(target, "data"), total)
            t, report = ours(a.bench, target)
            rss[name] = (report["bytes"] / 1e6, report["peakRssMiB"], t)
            print(f"  {report['bytes'] / 1e6:8,.0f} MB: ours {t:6.2f} s ({report['bytes'] / 1e6 / t:6.0f} MB/s), "
                  f"peak RSS {report['peakRssMiB']:.1f} MiB")
            if name == "large":
                t_pipe = pipe(target, base)
                print(f"  {report['bytes'] / 1e6:8,.0f} MB: tar|zstd {t_pipe:6.2f} s "
                      f"({report['bytes'] / 1e6 / t_pipe:6.0f} MB/s)")
                add_row(a.rows, id="archive.disk.large.mb_per_s",
                        figure=f"archive on plain disk, {rss['large'][0]:,.0f} MB incompressible: MB/s", unit="MB/s",
                        ours=rss["large"][0] / t, baseline=rss["large"][0] / t_pipe,
                        baseline_name="tar | zstd -3 (2 processes)", ratio=t_pipe / t)
            shutil.rmtree(target)
        add_row(a.rows, id="archive.rss.small", figure=f"archive peak RSS, {rss['small'][0]:,.0f} MB workspace (MiB)",
                unit="MiB", ours=rss["small"][1])
        # Flat: the large workspace's peak against the small one's (ratio 1.0 = the same memory).
        add_row(a.rows, id="archive.rss.large", figure=f"archive peak RSS, {rss['large'][0]:,.0f} MB workspace (MiB)",
                unit="MiB", ours=rss["large"][1], baseline=rss["small"][1],
                baseline_name=f"the {rss['small'][0]:,.0f} MB workspace")
    finally:
        subprocess.run(["fusermount3", "-u", mnt], stderr=subprocess.DEVNULL)
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(model_base, ignore_errors=True)


if __name__ == "__main__":
    main()
