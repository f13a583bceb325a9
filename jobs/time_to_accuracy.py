#!/usr/bin/env python3
"""Time-to-accuracy on an emulated cluster: dmsgd against the communication-efficient algorithms.

usage:
  jobs/time_to_accuracy.py sweep [--model mlp|cnn] [--epochs 3] [--np 4] [--root DIR] [--algos a,b]
  jobs/time_to_accuracy.py run   [--model mlp|cnn] [--nodes 4] [--rate 100mbit] [--epochs 3] [--root DIR]
                                 [--lr-file DIR/lr.json] [--algos a,b]
  jobs/time_to_accuracy.py table [--root DIR] [--target ACC]

The evaluation follows the field's rules for gradient compression (Agarwal et al., "On the
utility of gradient compression in distributed training systems", MLSys 2022): end-to-end
time to accuracy, each method at its own learning rate, against a dense 16-bit baseline as
well as dense fp32. ``sweep`` picks each method's learning rate: it trains every method at
every learning rate of its small grid (``LR_GRIDS``) with plain ``mpiexec -n NP`` (no
emulated network: the link changes the time, never the arithmetic) and writes
DIR/lr.json, each method's lr with the best final test accuracy, and DIR/sweep.md.

``run`` trains every algorithm (at its lr from ``--lr-file`` when given) in turn as one MPI job on ``--nodes`` emulated nodes (network
namespaces behind ``--rate`` links, ``hpctrain cluster run``; needs root), on the MLP with
d ~ 1 M parameters (hidden 1260) or the native CNN (``--model cnn``, d = 225,034) on
Fashion-MNIST, and writes DIR/NAME/{metrics.jsonl, summary.json}; runs whose summary.json
exists are skipped (restartable). ``table`` (also run after ``run``) writes DIR/table.md:
wall time, bytes per rank, final test accuracy, time to a target accuracy (default: dmsgd's
final accuracy minus 0.5 points) and the mean epoch's compute / compress / comm / other, and the plots
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
_COMMON = ["--dataset", "fashion-mnist", "--momentum", "0.9", "--threads", "1", "--seed", "1"]
#: --model -> the flags of the model (the MLP with d ~ 1 M, the native CNN with d = 225,034)
MODELS = {
    "mlp": ["--model", "mlp", "--hidden", str(HIDDEN), "--batch-size", "64", *_COMMON],
    "cnn": ["--model", "cnn", "--batch-size", "64", *_COMMON],
}
BASE = MODELS["mlp"]
#: learning-rate grids by optimiser family: heavy-ball momentum (effective step lr / (1 - 0.9)),
#: plain SGD steps (no momentum term), AdaGrad's normalised steps
LR_GRIDS = {"momentum": (0.02, 0.05, 0.1), "sgd": (0.1, 0.2, 0.5), "adagrad": (0.05, 0.1, 0.2),
            "sign": (0.0003, 0.001, 0.003)}  # sign steps: every coordinate moves by lr
#: name -> the flags that pick the algorithm (s/d 0.01 for the sparsifiers)
ALGOS = {
    "dmsgd": ["--algo", "dmsgd"],
    "dmsgd-fp16": ["--algo", "dmsgd", "--fp16-allreduce"],  # the dense 16-bit baseline
    "gmc-d0.01": ["--algo", "gmc", "--density", "0.01"],
    "dgc-d0.01": ["--algo", "dgc", "--density", "0.01"],
    "mdsgd-d0.01": ["--algo", "mdsgd", "--density", "0.01"],
    "csgd-qsgd4": ["--algo", "csgd", "--compressor", "qsgd", "--bits", "4"],
    "ecsgd-sign": ["--algo", "ecsgd", "--compressor", "sign"],
    "doublesqueeze": ["--algo", "doublesqueeze"],
    "local-sgd-H8": ["--algo", "local-sgd", "--sync-period", "8"],
    "prsgd-momentum-I8": ["--algo", "prsgd-momentum", "--sync-period", "8"],
    "dpsgd-ring": ["--algo", "dpsgd", "--topology", "ring"],
    "powersgd-r2": ["--algo", "powersgd", "--rank", "2"],
    "signsgd": ["--algo", "signsgd"],  # Signum with majority vote (momentum 0.9)
}
#: the optimiser family of each method (which lr grid its sweep uses)
FAMILY = {"dmsgd": "momentum", "dmsgd-fp16": "momentum", "gmc-d0.01": "momentum", "dgc-d0.01": "momentum", "mdsgd-d0.01": "momentum",
          "prsgd-momentum-I8": "momentum", "csgd-qsgd4": "sgd", "ecsgd-sign": "sgd", "doublesqueeze": "sgd",
          "local-sgd-H8": "sgd", "dpsgd-ring": "sgd", "powersgd-r2": "momentum", "signsgd": "sign"}


def _bin(name):
    here = os.path.join(os.path.dirname(sys.executable), name)
    return here if os.path.exists(here) else name


def _names(args):
    names = args.algos.split(",") if args.algos else list(ALGOS)
    bad = [n for n in names if n not in ALGOS]
    if bad:
        sys.exit(f"time_to_accuracy.py: unknown algorithm {', '.join(bad)}; choose from {', '.join(ALGOS)}")
    return names


def _final_accuracy(out):
    with open(os.path.join(out, "summary.json"), encoding="utf-8") as f:
        acc = json.load(f).get("final_test_accuracy")
    return float(acc) if acc is not None else float("nan")


def sweep(args):
    """Every method at every lr of its family's grid, plain mpiexec; the best final accuracy wins."""
    os.makedirs(args.root, exist_ok=True)
    best, lines = {}, ["| method | " + " | ".join(f"lr {i + 1}" for i in range(3)) + " | chosen lr |", "|---|---|---|---|---|"]
    for name in _names(args):
        cells = []
        for lr in LR_GRIDS[FAMILY.get(name, "momentum")]:
            out = os.path.join(args.root, "sweep", name, f"lr{lr}")
            if not os.path.exists(os.path.join(out, "summary.json")):
                cmd = [_bin("mpiexec"), "-n", str(args.np), _bin("hpctrain"), "train", *MODELS[args.model],
                       "--epochs", str(args.epochs), *ALGOS[name], "--lr", str(lr), "-q", "--out", out, "--overwrite"]
                print("$", " ".join(shlex.quote(c) for c in cmd), flush=True)
                if subprocess.run(cmd).returncode:
                    print(f"# {name} lr {lr}: failed", flush=True)
                    cells.append(f"{lr}: failed")
                    continue
            acc = _final_accuracy(out)
            cells.append(f"{lr}: {acc:.4f}")
            if acc == acc and (name not in best or acc > best[name][1]):
                best[name] = (lr, acc)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {best[name][0] if name in best else '-'} |")
    lr_file = os.path.join(args.root, "lr.json")
    old = {}
    if os.path.exists(lr_file):
        with open(lr_file, encoding="utf-8") as f:
            old = json.load(f)
    old.update({k: v[0] for k, v in best.items()})
    with open(lr_file, "w", encoding="utf-8") as f:
        json.dump(old, f, indent=1, sort_keys=True)
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.root, "sweep.md"), "w", encoding="utf-8") as f:
        f.write(text)
    print(text)


def run(args):
    os.makedirs(args.root, exist_ok=True)
    lrs = {}
    if args.lr_file:
        with open(args.lr_file, encoding="utf-8") as f:
            lrs = json.load(f)
    for name in _names(args):
        out = os.path.join(args.root, name)
        if os.path.exists(os.path.join(out, "summary.json")):
            print(f"# {name}: done, skipped", flush=True)
            continue
        cmd = [_bin("hpctrain"), "cluster", "run", "-N", str(args.nodes), "-R", "1", "--rate", args.rate,
               "--", _bin("hpctrain"), "train", *MODELS[args.model], "--epochs", str(args.epochs), *ALGOS[name],
               "--lr", str(lrs.get(name, 0.05)), "--out", out, "--overwrite"]
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
    from hpctrain.metrics import StepClock  # the parts of an epoch's step time (one definition)

    parts = [sum(float(r.get(f"{k}_time", 0.0)) for r in recs) / max(len(recs), 1) for k in StepClock.PARTS]
    return rows, parts


def table(args):
    runs, parts = {}, {}
    for name in ALGOS:
        d = os.path.join(args.root, name)
        if os.path.exists(os.path.join(d, "summary.json")):
            runs[name], parts[name] = _load(d)
    if not runs:
        sys.exit(f"time_to_accuracy.py: no finished runs under {args.root}")
    target = args.target
    if target is None and "dmsgd" in runs:
        target = runs["dmsgd"][-1][2] - 0.005
    base_t = runs["dmsgd"][-1][0] if "dmsgd" in runs else None
    lines = [f"target test accuracy {target:.4f}" + (" (dmsgd's final minus 0.5 points)" if args.target is None else ""),
             "", "| algorithm | epochs | wall time (s) | bytes sent per rank | final test acc | time to target (s) |"
             " time to target / dmsgd's wall time | epoch: compute / compress / comm / other (s) |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for name, rows in runs.items():
        hit = next((t for t, _, a in rows if target is not None and a >= target), None)
        ratio = f"{hit / base_t:.3f}" if hit is not None and base_t else "-"
        lines.append(f"| {name} | {len(rows)} | {rows[-1][0]:.1f} | {rows[-1][1]:.3g} | {rows[-1][2]:.4f} | "
                     f"{'%.1f' % hit if hit is not None else 'not reached'} | {ratio} | "
                     + " / ".join(f"{p:.1f}" if p else "0" for p in parts[name]) + " |")
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
    r.add_argument("--lr-file", default=None, help="each method's lr (lr.json of a sweep); else 0.05")
    w = sub.add_parser("sweep")
    w.add_argument("--np", type=int, default=4)
    for s in (r, w):
        s.add_argument("--model", choices=sorted(MODELS), default="mlp")
        s.add_argument("--epochs", type=int, default=3)
        s.add_argument("--algos", default=None, help=f"comma-separated subset of {', '.join(ALGOS)}")
    for s in (r, w, sub.add_parser("table")):
        s.add_argument("--root", default="runs/time-to-accuracy")
        s.add_argument("--target", type=float, default=None)
    args = p.parse_args()
    {"run": run, "sweep": sweep, "table": table}[args.cmd](args)


if __name__ == "__main__":
    main()
