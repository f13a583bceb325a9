"""``hpctrain bench allreduce``: time hand-made and MPI allreduce, nccl-tests-style table.

Columns follow nccl-tests: size (bytes), count (elements), type, time (us), algbw and
busbw (GB/s), #wrong. Time is the slowest rank's mean per iteration; busbw = algbw x
2(n-1)/n, the factor nccl-tests uses for allreduce, so that busbw is comparable across
rank counts and with the link bandwidth.
"""

import numpy as np

from ..collectives import get_allreduce
from .common import time_call, timing_fields

__all__ = ["bench_allreduce", "format_table", "check_allreduce", "busbw_factor", "rank_data"]


def rank_data(count, rank, dtype):
    """Rank-dependent small integers 0..100 (exact in every dtype): the check data."""
    idx = np.arange(count, dtype=np.int64)
    return ((idx * 7 + rank * 13) % 101).astype(dtype)


def check_allreduce(comm, fn, count, dtype):
    """Run ``fn`` once on rank-dependent integer-valued data; count wrong elements.

    Every value is a small integer, so the float sum is exact and any wrong element is
    a real error.
    """
    buf = rank_data(count, comm.rank, dtype)
    expect = sum(rank_data(count, r, np.int64) for r in range(comm.size)).astype(dtype)
    fn(comm, buf, "sum")
    wrong = np.array([int(np.count_nonzero(buf != expect))], dtype=np.int64)
    comm.native_allreduce(wrong)
    return int(wrong[0])


def bench_allreduce(comm, algos, sizes, dtype="float32", iters=20, warmup=5, check=True):
    """Time each allreduce in ``algos`` at each size in bytes.

    Returns:
        A list of row dicts (algo, size, count, type, time_us, algbw, busbw, wrong,
        min/avg/max time over ranks).
    """
    dt = np.dtype(dtype)
    rows = []
    factor = busbw_factor("allreduce", comm.size)
    for name in algos:
        fn = get_allreduce(name)
        for size in sizes:
            count = size // dt.itemsize
            buf = np.zeros(count, dtype=dt)  # zeros: sums stay 0, no overflow or denormals
            times = time_call(comm, lambda: fn(comm, buf, "sum"), iters, warmup)
            wrong = check_allreduce(comm, fn, count, dt) if check else -1
            nbytes = count * dt.itemsize
            rows.append({"algo": name, "size": nbytes, "count": count, "type": dt.name, "ranks": comm.size,
                         "wrong": wrong, **timing_fields(times, nbytes, factor)})
    return rows


def busbw_factor(kind, n, degree=2):
    """busbw / algbw for a collective ``kind`` on ``n`` ranks (docs/benchmarks.md).

    allreduce 2(n-1)/n (nccl-tests); allgather (n-1)/n; gossip ``degree`` (each rank
    sends its whole vector to every neighbour); 1 for n = 1.
    """
    if n <= 1:
        return 1.0
    return {"allreduce": 2 * (n - 1) / n, "allgather": (n - 1) / n, "gossip": float(degree)}[kind]


def format_table(rows):
    """The rows as an nccl-tests-style text table, one block per algorithm."""
    lines = []
    for name in dict.fromkeys(r["algo"] for r in rows):
        block = [r for r in rows if r["algo"] == name]
        lines.append(f"# allreduce algo={name} ranks={block[0]['ranks']} (in-place; time = slowest rank's mean)")
        lines.append(f"#{'size':>11} {'count':>11} {'type':>8} {'time(us)':>10} {'algbw':>8} {'busbw':>8} {'#wrong':>7}"
                     f" {'min(us)':>10} {'max(us)':>10}")
        lines.append(f"#{'(B)':>11} {'(elems)':>11} {'':>8} {'':>10} {'(GB/s)':>8} {'(GB/s)':>8} {'':>7}")
        for r in block:
            wrong = "N/A" if r["wrong"] < 0 else str(r["wrong"])
            lines.append(f"{r['size']:>12} {r['count']:>11} {r['type']:>8} {r['time_us']:>10.1f} "
                         f"{r['algbw']:>8.3f} {r['busbw']:>8.3f} {wrong:>7} {r['min_us']:>10.1f} {r['max_us']:>10.1f}")
        avg = sum(r["busbw"] for r in block) / len(block)
        lines.append(f"# Avg bus bandwidth    : {avg:.4f} GB/s  ({name})")
        lines.append("")
    return "\n".join(lines)
