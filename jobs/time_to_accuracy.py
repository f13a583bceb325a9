#!/usr/bin/env python3
"""Time-to-accuracy on an emulated cluster: dmsgd against the communication-efficient algorithms.

usage:
  jobs/time_to_accuracy.py run   [--nodes 4] [--rate 100mbit] [--epochs 5] [--root DIR] [--algos a,b]
  jobs/time_to_accuracy.py table [--root DIR] [--target ACC]

``run`` trains every algorithm in turn as one MPI job on ``--nodes`` emulated nodes (network
namespaces behind ``--rate`` links, ``hpctrain cluster run``; needs root), on the MLP with
d ~ 1 M parameters (hidden 1260) on Fashion-MNIST, and writes DIR/NAME/{metrics.jsonl,
summary.json}; runs whose summary.json exists are skipped (restartable). ``table`` (also
run after ``run``) writes DIR/table.md: wall time, bytes per rank, final test accuracy and
time to a target accuracy (default: dmsgd's final accuracy minus 0.5 points), and the plots
DIR/accuracy-time.png and DIR/accuracy-bytes.png (``hpctrain plot --x time|bytes``).
Every command line is printed.
"""

import argparse
import json
import os
import shlex
import subprocess
import sys

HIDDEN = 1260  # 784*1260 + 1260 + 1260*10 + 10 = 1,001,710 parameters
BASE = ["--model", "mlp", "--hidden", str(HIDDEN), "--dataset", "fashion-mnist", "--batch-size", "64",
        "--lr", "0.05", "--momentum", "0.9", "--threads", "1", "--seed", "1"]
#: name -> the flags that pick the algorithm (s/d 0.01 for the sparsifiers)
ALGOS = {
    "dmsgd": ["--algo", "dmsgd"],
    "gmc-d0.01": ["--algo", "gmc", "--density", "0.01"],
    "dgc-d0.01": ["--algo", "dgc", "--density", "0.01"],
    "mdsgd-d0.01": ["--algo", "mdsgd", "--density", "0.01"],
    "csgd-qsgd4": ["--algo", "csgd", "--compressor", "qsgd", "--bits", "4"],
    "ecsgd-sign": ["--algo", "ecsgd", "--compressor", "sign"],
    "doublesqueeze": ["--algo", "doublesqueeze"],
    "local-sgd-H8": ["--algo", "local-sgd", "--sync-period", "8"],
    "prsgd-momentum-I8": ["--algo", "prsgd-momentum", "--sync-period", "8"],
    "dpsgd-ring": ["--algo", "dpsgd", "--topology", "ring"],
}


def _bin(name):
    here = os.path.join(os.path.dirname(sys.executable), name)
    return here if os.path.exists(here) else name


def run(args):
    os.makedirs(args.root, exist_ok=True)
    names = args.algos.split(",") if args.algos else list(ALGOS)
    bad = [n for n in names if n not in ALGOS]
    if bad:
        sys.exit(f"time_to_accuracy.py: unknown algorithm {', '.join(bad)}; choose from {', '.join(ALGOS)}")
    for name in names:
        out = os.path.join(args.root, name)
        if os.path.exists(os.path.join(out, "summary.json")):
            print(f"# {name}: done, skipped", flush=True)
            continue
        cmd = [_bin("hpctrain"), "cluster", "run", "-N", str(args.nodes), "-R", "1", "--rate", args.rate,
               "--", _bin("hpctrain"), "train", *BASE, "--epochs", str(args.epochs), *ALGOS[name],
               "--out", out, "--overwrite"]
        print("$", " ".join(shlex.quote(c) for c in cmd), flush=True)
        rc = subprocess.run(cmd).returncode
        if rc:
            print(f"# {name}: exit {rc}", flush=True)
    table(args)


def _load(d):
    recs = [json.loads(line) for line in open(os.path.join(d, "metrics.jsonl")) if line.strip()]
    t = b = 0.0
    rows = []
    for r in recs:
        t += float(r.get("wall_time", 0.0))
        per = r.get("bytes_sent_per_rank", [0])
        b += sum(per) / max(len(per), 1)
        rows.append((t, b, float(r["test_accuracy"])))
    return rows


def table(args):
    runs = {}
    for name in ALGOS:
        d = os.path.join(args.root, name)
        if os.path.exists(os.path.join(d, "summary.json")):
            runs[name] = _load(d)
    if not runs:
        sys.exit(f"time_to_accuracy.py: no finished runs under {args.root}")
    target = args.target
    if target is None and "dmsgd" in runs:
        target = runs["dmsgd"][-1][2] - 0.005
    base_t = runs["dmsgd"][-1][0] if "dmsgd" in runs else None
    lines = [f"target test accuracy {target:.4f}" + (" (dmsgd's final minus 0.5 points)" if args.target is None else ""),
             "", "| algorithm | epochs | wall time (s) | bytes sent per rank | final test acc | time to target (s) |"
             " time to target / dmsgd's wall time |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, rows in runs.items():
        hit = next((t for t, _, a in rows if target is not None and a >= target), None)
        ratio = f"{hit / base_t:.3f}" if hit is not None and base_t else "-"
        lines.append(f"| {name} | {len(rows)} | {rows[-1][0]:.1f} | {rows[-1][1]:.3g} | {rows[-1][2]:.4f} | "
                     f"{'%.1f' % hit if hit is not None else 'not reached'} | {ratio} |")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.root, "table.md"), "w") as f:
        f.write(text)
    print(text)
    dirs = [os.path.join(args.root, n) for n in runs]
    for x in ("time", "bytes"):
        cmd = [_bin("hpctrain"), "plot", *dirs, "--x", x, "-o", os.path.join(args.root, f"accuracy-{x}.png")]
        print("$", " ".join(shlex.quote(c) for c in cmd), flush=True)
        subprocess.run(cmd, check=False)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--nodes", type=int, default=4)
    r.add_argument("--rate", default="100mbit")
    r.add_argument("--epochs", type=int, default=5)
    r.add_argument("--algos", default=None, help=f"comma-separated subset of {', '.join(ALGOS)}")
    for s in (r, sub.add_parser("table")):
        s.add_argument("--root", default="runs/time-to-accuracy")
        s.add_argument("--target", type=float, default=None)
    args = p.parse_args()
    run(args) if args.cmd == "run" else table(args)


if __name__ == "__main__":
    main()
