"""Interleaved A/B timing of registered allreduces: min/median over repeats.

Each repeat runs every algorithm back to back at each size, so slow phases of a noisy
machine hit all of them alike. Time per call is the slowest rank's mean.

    mpiexec -n 2 python jobs/bench_ab.py --sizes 1K,4M,16M,64M --algos mpi,ring,recursive,auto --repeats 7
"""

import argparse
import statistics
import time

import hpctrain  # noqa: F401  (sizes the BLAS pools before NumPy loads)
import numpy as np

from hpctrain.bench.common import parse_size
from hpctrain.collectives import get_allreduce
from hpctrain.comm import world


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1K,4M,16M,64M")
    ap.add_argument("--algos", default="mpi,ring,recursive,auto")
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    comm = world()
    algos = {a: get_allreduce(a) for a in args.algos.split(",")}
    n = comm.size
    factor = 2 * (n - 1) / n
    if comm.rank == 0:
        print(f"# {n} ranks, {args.repeats} interleaved repeats; time = slowest rank's mean per call (us); "
              f"busbw = bytes/time x 2(n-1)/n (GB/s)")
        print(f"#{'size':>11} {'algo':>10} {'min(us)':>10} {'median(us)':>11} {'busbw@min':>10} {'busbw@med':>10}")
    for size in (parse_size(s) for s in args.sizes.split(",")):
        buf = np.zeros(size // 4, np.float32)
        iters = max(3, min(2000, int(2e6 // max(size, 1000))))
        res = {a: [] for a in algos}
        for _ in range(args.repeats):
            for a, fn in algos.items():
                for _ in range(3):
                    fn(comm, buf, "sum")
                comm.barrier()
                t0 = time.perf_counter()
                for _ in range(iters):
                    fn(comm, buf, "sum")
                t = (time.perf_counter() - t0) / iters
                res[a].append(float(comm.allgather_array(np.array([t])).max()))
        if comm.rank == 0:
            for a, v in res.items():
                lo, med = min(v), statistics.median(v)
                print(f"{size:>12} {a:>10} {lo * 1e6:>10.1f} {med * 1e6:>11.1f} {size / lo / 1e9 * factor:>10.3f} "
                      f"{size / med / 1e9 * factor:>10.3f}", flush=True)


if __name__ == "__main__":
    main()
