#!/usr/bin/env python3
"""make bench (pruner planner): runs the plan_bench example (1,000,000 images in 100 repositories,
10,000 task definitions by default) and adds its figures to the table: planning time (CPU; the
aim is under 1 s), peak memory, and the in-use resolution indexed once against the scan of every
use for every repository, measured in the same run."""
import argparse
import json
import subprocess

from bench_table import add_row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--images", type=int, default=1_000_000)
    ap.add_argument("--repositories", type=int, default=100)
    ap.add_argument("--task-definitions", type=int, default=10_000)
    ap.add_argument("--rows")
    a = ap.parse_args()
    out = subprocess.run([a.binary, str(a.images), str(a.repositories), str(a.task_definitions)],
                         capture_output=True, text=True, check=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    print(f"planner: {r['images']:,} images in {r['repositories']} repositories, {r['task_definitions']:,} task "
          f"definitions: {r['cpu_s']:.2f} s CPU ({r['wall_s']:.2f} s wall), peak {r['peak_rss_mib']:.0f} MiB "
          f"(inputs alone {r['inputs_peak_rss_mib']:.0f} MiB); "
          f"in-use resolution {r['in_use_indexed_s']:.3f} s indexed, {r['in_use_scanned_s']:.3f} s scanned")
    shape = f"{r['images'] // 1000:,}k images, {r['repositories']} repos, {r['task_definitions'] // 1000}k task defs"
    add_row(a.rows, id="planner.cpu", figure=f"prune planner, {shape}: CPU (s)", unit="s", ours=r["cpu_s"],
            note=f"aim under 1 s; {r['wall_s']:.2f} s wall; {r['deleted']:,} to delete")
    add_row(a.rows, id="planner.peak_rss", figure="prune planner peak memory, inputs included (MiB)", unit="MiB",
            ours=r["peak_rss_mib"], note=f"inputs alone {r['inputs_peak_rss_mib']:.0f} MiB")
    add_row(a.rows, id="planner.in_use", figure="in-use resolution, every repository (s)", unit="s",
            ours=r["in_use_indexed_s"], baseline=r["in_use_scanned_s"], baseline_name="scan per repository")


if __name__ == "__main__":
    main()
