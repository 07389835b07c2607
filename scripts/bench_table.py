#!/usr/bin/env python3
"""make bench's one table. Each bench_*.py appends rows (JSON lines) to the file given by --rows;
this script prints them as one table and writes them as JSON (bench/results.json), or compares
them with committed results (make bench-compare).

A row: id (stable key), figure, unit, ours, baseline (name and value, measured in the same run),
ratio (baseline / ours where less is better, so a larger ratio is always better for us), bound
(the least `ours` can be, where one exists) and a note. Absolute values are not comparable from
run to run on a shared machine; ratios are what `--compare` checks."""
import argparse
import datetime
import json
import os
import platform
import sys


def add_row(path, **row):
    """Appends one row; `ratio` is computed when both sides are given and it is not."""
    if path is None:
        return
    if row.get("ratio") is None and row.get("ours") and row.get("baseline"):
        row["ratio"] = row["baseline"] / row["ours"]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if abs(v) >= 1000:
        s = f"{v:,.0f}"
    elif abs(v) >= 100:
        s = f"{v:.0f}"
    elif abs(v) >= 10:
        s = f"{v:.1f}"
    else:
        s = f"{v:.2f}"
    return f"{s} {unit}".strip()


def table(rows):
    head = ["figure", "ours", "baseline", "ratio", "bound"]
    lines = []
    for r in rows:
        base = "-" if r.get("baseline") is None else f"{fmt(r['baseline'], r.get('unit', ''))} ({r.get('baseline_name', '')})"
        bound = "-" if r.get("bound") is None else fmt(r["bound"], r.get("unit", ""))
        if r.get("bound") and r.get("ours"):
            bound += f" (ours {r['ours'] / r['bound']:.2f}x)"
        ratio = "-" if r.get("ratio") is None else f"{r['ratio']:.1f}x"
        # A `|` in a cell (`tar | zstd`) would end it in Markdown.
        cells = [r["figure"], fmt(r.get("ours"), r.get("unit", "")), base, ratio, bound]
        lines.append([c.replace("|", "\\|") for c in cells])
    widths = [max(len(x[i]) for x in [head] + lines) for i in range(len(head))]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |",
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for l in lines:
        out.append("| " + " | ".join(c.ljust(w) for c, w in zip(l, widths)) + " |")
    return "\n".join(out)


def load_rows(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def compare(new_rows, old_path, tolerance):
    with open(old_path) as f:
        old = {r["id"]: r for r in json.load(f)["rows"]}
    fell = []
    for r in new_rows:
        o = old.get(r["id"])
        if not o or o.get("ratio") is None or r.get("ratio") is None:
            continue
        if r["ratio"] < o["ratio"] * (1 - tolerance):
            fell.append((r, o))
    for r, o in fell:
        print(f"FELL: {r['figure']}: ratio {r['ratio']:.2f}x, committed {o['ratio']:.2f}x "
              f"({(1 - r['ratio'] / o['ratio']) * 100:.0f}% lower)")
    missing = sorted(set(old) - {r["id"] for r in new_rows})
    for m in missing:
        print(f"missing from this run: {m}")
    return not fell


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", required=True, help="JSON lines written by the bench_*.py scripts")
    ap.add_argument("--out", help="write the table as JSON here")
    ap.add_argument("--compare", help="committed results to compare ratios against")
    ap.add_argument("--tolerance", type=float, default=0.2)
    a = ap.parse_args()
    rows = load_rows(a.rows)
    print(table(rows))
    if a.out:
        doc = {"generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                           "load_avg_1m": os.getloadavg()[0]},
               "rows": rows}
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        with open(a.out, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        print(f"\nwritten: {a.out}")
    if a.compare:
        ok = compare(rows, a.compare, a.tolerance)
        print("no ratio fell by more than {:.0f}%".format(a.tolerance * 100) if ok else "some ratios fell")
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
