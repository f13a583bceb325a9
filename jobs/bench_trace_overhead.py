"""Benchmark: the cost of --trace when it is off (and on), as a ratio of samples/s.

Runs the same short training job alternately with a baseline tree (default: the main
checkout, which has no tracing), this tree with tracing off, and this tree with
``--trace``; prints min/median samples/s of each and the ratios of the medians. Also
times the null span (what a span site costs when off) against the mean step time.

    python jobs/bench_trace_overhead.py --baseline BASELINE_TREE --repeats 9 -n 2 --epochs 10

BASELINE_TREE is this tree with the span sites taken out (see docs/benchmarks.md):
``with span(...):`` / ``with trace.span(...):`` lines replaced by ``if True:``.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import timeit

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)


def one(tree, a, extra, tmp, i):
    out = os.path.join(tmp, f"run{i}")
    cmd = [os.path.join(BIN, "mpiexec"), "-n", str(a.n), sys.executable, "-m", "hpctrain", "train", "--dataset",
           a.dataset, "--epochs", str(a.epochs), "--batch-size", "64", "-q", "--out", out, *extra]
    env = {**os.environ, "PYTHONPATH": tree, "HPCTRAIN_THREADS": "1"}
    subprocess.run(cmd, check=True, env=env, timeout=600, cwd=tmp)
    with open(os.path.join(out, "summary.json")) as f:
        return json.load(f)["samples_per_s"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", default="/work/main")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("-n", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--dataset", default="synthetic")
    a = ap.parse_args()
    rates = {"baseline": [], "off": [], "on": []}
    with tempfile.TemporaryDirectory() as tmp:
        i = 0
        for _ in range(a.repeats):  # interleaved, so drift on a shared machine hits all three alike
            for name, tree, extra in (("baseline", a.baseline, []), ("off", HERE, []),
                                      ("on", HERE, ["--trace", os.path.join(tmp, f"t{i}.json")])):
                rates[name].append(one(tree, a, extra, tmp, i))
                i += 1
    med = {k: statistics.median(v) for k, v in rates.items()}
    for k, v in rates.items():
        print(f"{k:>8}: samples/s min {min(v):,.0f}  median {med[k]:,.0f}  (n={len(v)})")
    print(f"off / baseline = {med['off'] / med['baseline']:.4f}   on / off = {med['on'] / med['off']:.4f}")
    # neighbouring runs share the machine's state: the ratio within each round is less noisy
    paired = sorted(o / b for o, b in zip(rates["off"], rates["baseline"]))
    q = len(paired) // 4
    print(f"off / baseline per round: median {statistics.median(paired):.4f}, "
          f"quartiles {paired[q]:.4f} .. {paired[-1 - q]:.4f} (n={len(paired)})")
    sys.path.insert(0, HERE)
    from hpctrain import trace

    null = min(timeit.repeat("with span('compute'):\n    pass", globals={"span": trace.span}, number=100000,
                             repeat=5)) / 100000
    step = a.n * 64 / med["off"]  # seconds per step (all ranks step together)
    # the step loop has no span site (trace.wrap returns the functions themselves when
    # off); a ring allreduce passes two (its phases), recursive doubling none
    print(f"null span: {null * 1e9:.0f} ns; the step loop has none when off; a ring allreduce's 2 would be "
          f"{2 * null / step * 100:.3f}% of a {step * 1e6:.0f} us step")
