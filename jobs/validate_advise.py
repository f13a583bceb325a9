#!/usr/bin/env python3
"""Validate `hpctrain advise`: predict every method's step time, then train each method and
compare the measured step time with the prediction.

usage (repository root; the launcher prefix puts the ranks on the emulated or real nodes):

    python jobs/validate_advise.py --out runs/validate --ranks 4 \
        --launcher "mpiexec -n {n}" --fit fit.json -- jobs/configs/fashion-mnist.toml --model mlp

Everything after ``--`` is passed to both ``hpctrain advise`` and ``hpctrain train`` (the
config file and train flags). For every method of the advise table (each at the collective
advise ranks best for it, or every collective with ``--all-collectives``) it trains
``--epochs`` epochs of ``--steps-per-epoch`` steps and takes the median of the per-step time
of the epochs after the first (the warm-up). It prints and writes (``OUT/validation.json``,
``OUT/validation.md``): predicted and measured ms per step, the error |p - m| / m, the
Spearman rank correlation of predicted vs measured, and how far the top-ranked method's
measured time is from the best measured.

``--whatif N`` also writes the predictions advise makes for N nodes; a later run of this
script on N nodes with ``--whatif-from OUT/validation.json --nodes-now N`` compares them with
what it measures. Emulated nodes that share one host name need ``--advise-args
"--ranks-per-node 1"``. Runs one method at a time; bounded by ``--timeout`` each.
"""

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys

import numpy as np


def spearman(a, b):
    """Spearman rank correlation of two equal-length sequences (average ranks for ties)."""
    def ranks(x):
        x = np.asarray(x, dtype=float)
        order = x.argsort()
        r = np.empty(len(x))
        r[order] = np.arange(len(x), dtype=float)
        for v in np.unique(x):  # ties share their mean rank
            r[x == v] = r[x == v].mean()
        return r
    if len(a) < 2:
        return float("nan")
    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = np.sqrt((ra ** 2).sum() * (rb ** 2).sum())
    return float((ra * rb).sum() / den) if den else float("nan")


def measured_step(run_dir):
    """Median over the epochs after the first of (loop time / steps) from metrics.jsonl."""
    per_step, prev = [], 0
    with open(os.path.join(run_dir, "metrics.jsonl"), encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            steps = rec["step"] - prev
            prev = rec["step"]
            if steps > 0:
                per_step.append(rec["step_time"] / steps)
    later = per_step[1:] or per_step
    return statistics.median(later) if later else None


def train_flags(row):
    """The train flags of one advise row."""
    flags = ["--algo", row["algo"], "--aggregation", row["aggregation"]]
    flags += ["--compressor", row.get("compressor", "none")]  # "none" too: not the algorithm's default
    if "density" in row:
        flags += ["--density", str(row["density"])]
    if "bits" in row:
        flags += ["--bits", str(row["bits"])]
    if row.get("fp16_allreduce"):
        flags += ["--fp16-allreduce"]
    if row["collective"] != "-":
        flags += ["--collective", row["collective"]]
    return flags


def compare_whatif(results, path, nodes):
    """Add ``whatif_s`` and ``whatif_error`` to each result: the step time an earlier
    advise (its validation.json) predicted for ``nodes`` nodes, against this run's measurement."""
    with open(path, encoding="utf-8") as f:
        rows = json.load(f).get("whatif", {}).get(str(nodes), [])
    pred = {(r["method"], r["collective"]): r["step_s"] for r in rows}
    for x in results:
        w = pred.get((x["method"], x["collective"]))
        x["whatif_s"] = w
        x["whatif_error"] = abs(w - x["measured_s"]) / x["measured_s"] if w and x["measured_s"] else None


def run(cmd, timeout, env):
    print("+", " ".join(shlex.quote(c) for c in cmd), flush=True)
    return subprocess.run(cmd, timeout=timeout, env=env, capture_output=True, text=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output directory (run directories, tables)")
    ap.add_argument("--ranks", type=int, default=4)
    ap.add_argument("--launcher", default="mpiexec -n {n}", help="launcher prefix; {n} is the number of ranks")
    ap.add_argument("--fit", default="", help="alpha-beta fit file for advise (default: advise's short fit)")
    ap.add_argument("--links", default="", help="bench links --json file for advise (a straggler's slow link)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--steps-per-epoch", type=int, default=96,
                    help="a multiple of the sync period (default 8), so that every epoch of a periodic "
                         "method holds as many synchronizations")
    ap.add_argument("--limit", type=int, default=0, help="validate only the first N methods of the ranking")
    ap.add_argument("--all-collectives", action="store_true", help="every (method, collective) row, not the best")
    ap.add_argument("--whatif", default="", help="node counts for advise's what-if predictions, e.g. 4,8")
    ap.add_argument("--whatif-from", default="",
                    help="validation.json of an earlier run with --whatif: also compare its prediction for "
                         "this job's node count (--nodes-now) with what this run measures")
    ap.add_argument("--nodes-now", type=int, default=0, help="this job's node count (default: --ranks)")
    ap.add_argument("--advise-args", default="", help="extra advise flags (words), e.g. '--densities 0.01'")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per launched command")
    ap.add_argument("train_args", nargs=argparse.REMAINDER, help="-- then the config file and train flags")
    args = ap.parse_args(argv)
    extra = [a for a in args.train_args if a != "--"]
    os.makedirs(args.out, exist_ok=True)
    launch = shlex.split(args.launcher.format(n=args.ranks))
    env = dict(os.environ)
    advise_json = os.path.join(args.out, "advise.json")
    cmd = launch + ["hpctrain", "advise", *extra, "--json", advise_json, *shlex.split(args.advise_args)]
    if args.fit:
        cmd += ["--fit", args.fit]
    if args.links:
        cmd += ["--links", args.links]
    if args.whatif:
        cmd += ["--nodes", args.whatif]
    res = run(cmd, args.timeout, env)
    if res.returncode != 0:
        sys.exit(f"validate_advise: advise failed ({res.returncode}): {res.stderr.strip()[-2000:]}")
    doc = json.load(open(advise_json, encoding="utf-8"))
    rows, seen = [], set()
    for r in doc["rows"]:  # ranked: the first row of a method is its best collective
        if args.all_collectives or r["method"] not in seen:
            rows.append(r)
            seen.add(r["method"])
    if args.limit:
        rows = rows[:args.limit]
    # --max-samples of steps_per_epoch x batch x ranks gives each epoch steps_per_epoch steps
    results = []
    for i, r in enumerate(rows):
        run_dir = os.path.join(args.out, f"run-{i:03d}")
        samples = args.steps_per_epoch * doc["job"]["batch_size"] * args.ranks
        cmd = launch + ["hpctrain", "train", *extra, *train_flags(r), "--epochs", str(args.epochs), "--quiet",
                        "--out", run_dir, "--overwrite", "--max-samples", str(samples)]
        res = run(cmd, args.timeout, env)
        meas = measured_step(run_dir) if res.returncode == 0 else None
        results.append({**{k: r[k] for k in ("method", "collective", "algo", "aggregation", "compressor")},
                        "predicted_s": r["step_s"], "measured_s": meas,
                        "error": abs(r["step_s"] - meas) / meas if meas else None,
                        "failed": None if res.returncode == 0 else res.stderr.strip()[-300:]})
    if args.whatif_from:
        compare_whatif(results, args.whatif_from, args.nodes_now or args.ranks)
    ok = [x for x in results if x["measured_s"]]
    rho = spearman([x["predicted_s"] for x in ok], [x["measured_s"] for x in ok])
    best = min((x["measured_s"] for x in ok), default=None)
    top = ok[0]["measured_s"] / best - 1 if ok and best else None
    summary = {"ranks": args.ranks, "launcher": args.launcher, "train_args": extra, "spearman": rho,
               "top_vs_best_measured": top, "max_error": max((x["error"] for x in ok), default=None),
               "results": results, "whatif": doc.get("whatif", {})}
    with open(os.path.join(args.out, "validation.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1)
    whatif = args.whatif_from and f" | what-if from {os.path.basename(args.whatif_from)} ms | error"
    lines = ["| method | collective | predicted ms | measured ms | error" + (whatif or "") + " |",
             "|---|---|---:|---:|---:|" + ("---:|---:|" if whatif else "")]
    for x in results:
        m = f"{1e3 * x['measured_s']:.3f}" if x["measured_s"] else "failed"
        e = f"{100 * x['error']:.1f} %" if x["error"] is not None else "-"
        line = f"| {x['method']} | {x['collective']} | {1e3 * x['predicted_s']:.3f} | {m} | {e}"
        if whatif:
            w, we = x.get("whatif_s"), x.get("whatif_error")
            line += f" | {1e3 * w:.3f}" if w else " | -"
            line += f" | {100 * we:.1f} %" if we is not None else " | -"
        lines.append(line + " |")
    lines.append("")
    lines.append(f"Spearman rank correlation {rho:.3f}; top-ranked method's measured time "
                 + (f"{100 * top:.1f} % above the best measured" if top is not None else "unknown"))
    text = "\n".join(lines)
    with open(os.path.join(args.out, "validation.md"), "w", encoding="utf-8") as f:
        f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
