"""Throughput of ``hpctrain train`` for any ``--model`` (e.g. the torch adapter), repeated
in the same processes; prints min/median training samples/s (evaluation excluded).

    mpiexec -n 2 python jobs/bench_train.py --model torch:jobs/torch_cnn.py:make_cnn --repeats 5
"""

import argparse
import os
import statistics
import tempfile

import hpctrain  # noqa: F401  (sizes the BLAS pools before NumPy loads)

from hpctrain.comm import world
from hpctrain.config import load_config
from hpctrain.train import run_training


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="cnn")
    ap.add_argument("--algo", default="dmsgd")
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    comm = world()
    cfg = load_config(None, dict(model=args.model, algo=args.algo, dataset=args.dataset, epochs=args.epochs,
                                 batch_size=args.batch_size, lr=0.05, momentum=0.9, weight_decay=1e-4,
                                 threads=int(os.environ.get("OMP_NUM_THREADS", "1")), quiet=True, overwrite=True))
    rates = []
    with tempfile.TemporaryDirectory() as tmp:
        cfg.out = comm.bcast_bytes(tmp.encode()).decode() + "/run"
        for _ in range(args.repeats):
            rates.append(run_training(cfg, comm)["samples_per_s"])
            comm.barrier()
    if comm.rank == 0:
        print(f"hpctrain {args.algo} {args.model} samples/s min {min(rates):.0f} median {statistics.median(rates):.0f}",
              flush=True)


if __name__ == "__main__":
    main()
