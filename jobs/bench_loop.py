"""Throughput: `hpctrain train` vs a plain NumPy + MPI_Allreduce loop, same model and batch.

Run under MPI, e.g.   mpiexec -n 2 python jobs/bench_loop.py --collective ring   (default: auto)
Both loops run in the same processes, alternating, `--repeats` times; each reports
training samples/s (all ranks together, evaluation excluded). Prints min/median of both,
the ratio of medians and the ratio within each repeat. With --control each repeat also runs
the plain loop once more after hpctrain: plain-again/plain is the noise floor, the ratio a
change that does nothing would show on this machine.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

import hpctrain  # noqa: F401  (sizes the BLAS pools before NumPy loads)
import numpy as np
from mpi4py import MPI

from hpctrain.comm import world
from hpctrain.config import load_config
from hpctrain.data import load_dataset
from hpctrain.train import run_training


def plain_loop(x, y, n_classes, epochs, batch, lr, momentum, wd, seed):
    """The simplest DSGD-momentum softmax loop one would write with mpi4py by hand."""
    comm = MPI.COMM_WORLD
    d = x.shape[1]
    w = np.zeros((d, n_classes), np.float32)
    b = np.zeros(n_classes, np.float32)
    vw, vb = np.zeros_like(w), np.zeros_like(b)
    g = np.zeros(w.size + b.size, np.float32)
    steps = (x.shape[0] // batch)
    rng = np.random.default_rng(seed + comm.rank)
    comm.Barrier()
    t0 = time.perf_counter()
    for _ in range(epochs):
        order = rng.permutation(x.shape[0])
        for i in range(steps):
            idx = order[i * batch:(i + 1) * batch]
            xb, yb = x[idx], y[idx]
            z = xb @ w + b
            z -= z.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(batch), yb] -= 1
            p /= batch
            g[: w.size] = (xb.T @ p + wd * w).ravel()
            g[w.size:] = p.sum(axis=0)
            comm.Allreduce(MPI.IN_PLACE, g, op=MPI.SUM)
            g /= comm.size
            vw *= momentum
            vw += g[: w.size].reshape(w.shape)
            vb *= momentum
            vb += g[w.size:]
            w -= lr * vw
            b -= lr * vb
    comm.Barrier()
    return steps * epochs * batch * comm.size / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--collective", default="auto")
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--control", action="store_true",
                    help="run the plain loop a second time in each repeat: its ratio to the first is the "
                         "machine's noise floor for the hpctrain/plain ratio")
    args = ap.parse_args()
    comm = world()
    cfg = load_config(None, dict(dataset=args.dataset, collective=args.collective, epochs=args.epochs,
                                 batch_size=args.batch_size, lr=0.05, momentum=0.9, weight_decay=1e-4,
                                 quiet=True, overwrite=True))
    data = load_dataset(cfg.dataset, comm.rank, comm.size, cfg.seed)
    # the same number of samples per rank as hpctrain uses (the smallest shard)
    n = data.n_train_total // comm.size
    x, y = data.x_train[:n], data.y_train[:n]
    ours, plain, again = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        cfg.out = comm.bcast_bytes(tmp.encode()).decode() + "/run"
        for _ in range(args.repeats):
            plain.append(plain_loop(x, y, data.n_classes, cfg.epochs, cfg.batch_size, cfg.lr, cfg.momentum,
                                    cfg.weight_decay, cfg.seed))
            ours.append(run_training(cfg, comm)["samples_per_s"])
            comm.barrier()
            if args.control:
                again.append(plain_loop(x, y, data.n_classes, cfg.epochs, cfg.batch_size, cfg.lr, cfg.momentum,
                                        cfg.weight_decay, cfg.seed))
    if comm.rank == 0:
        med_o, med_p = statistics.median(ours), statistics.median(plain)
        print(f"ranks={comm.size} collective={args.collective} dataset={args.dataset} batch={args.batch_size} "
              f"epochs={args.epochs} repeats={args.repeats} threads/rank={os.environ.get('OPENBLAS_NUM_THREADS')}")
        print(f"{'loop':<34} {'min samples/s':>14} {'median samples/s':>17}")
        print(f"{'plain NumPy + MPI_Allreduce':<34} {min(plain):>14.0f} {med_p:>17.0f}")
        print(f"{'hpctrain train --collective ' + args.collective:<34} {min(ours):>14.0f} {med_o:>17.0f}")
        print(f"ratio hpctrain/plain (medians): {med_o / med_p:.3f}")
        # each repeat runs both loops back to back: the ratio within a repeat shares the
        # machine's state of that moment, so it scatters less than the two medians
        for label, other in (("", ours), ("control, plain again/plain ", again)):
            if not other:
                continue
            paired = sorted(o / p for o, p in zip(other, plain))
            q = len(paired) // 4
            print(f"{label}ratio within each repeat: median {statistics.median(paired):.3f}, quartiles "
                  f"{paired[q]:.3f} .. {paired[-1 - q]:.3f} (n={len(paired)})")
        if again:
            print(f"control, plain again/plain (medians): {statistics.median(again) / med_p:.3f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
