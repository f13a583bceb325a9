"""``hpctrain bench allreduce``: time hand-made and MPI allreduce, nccl-tests-style table.

Columns follow nccl-tests: size (bytes), count (elements), type, time (us), algbw and
busbw (GB/s), #wrong. Time is the slowest rank's mean per iteration; busbw = algbw x
2(n-1)/n, the factor nccl-tests uses for allreduce, so that busbw is comparable across
rank counts and with the link bandwidth.
"""

import time

import numpy as np

from ..collectives import get_allreduce

__all__ = ["bench_allreduce", "format_table", "check_allreduce"]


def check_allreduce(comm, fn, count, dtype):
    """Run ``fn`` once on rank-dependent integer-valued data; count wrong elements.

    Every value is a small integer, so the float sum is exact and any wrong element is
    a real error.
    """
    idx = np.arange(count, dtype=np.int64)
    buf = ((idx * 7 + comm.rank * 13) % 101).astype(dtype)
    expect = sum(((idx * 7 + r * 13) % 101) for r in range(comm.size)).astype(dtype)
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
    for name in algos:
        fn = get_allreduce(name)
        for size in sizes:
            count = size // dt.itemsize
            buf = np.zeros(count, dtype=dt)  # zeros: sums stay 0, no overflow or denormals
            for _ in range(warmup):
                fn(comm, buf, "sum")
            comm.barrier()
            t0 = time.perf_counter()
            for _ in range(iters):
                fn(comm, buf, "sum")
            mine = (time.perf_counter() - t0) / iters
            times = comm.allgather_array(np.array([mine]))[:, 0]
            wrong = check_allreduce(comm, fn, count, dt) if check else -1
            t = float(times.max())
            nbytes = count * dt.itemsize
            algbw = nbytes / t / 1e9 if t > 0 else 0.0
            factor = 2 * (comm.size - 1) / comm.size
            rows.append({
                "algo": name, "size": nbytes, "count": count, "type": dt.name, "ranks": comm.size,
                "time_us": t * 1e6, "algbw": algbw, "busbw": algbw * factor, "wrong": wrong,
                "min_us": float(times.min()) * 1e6, "avg_us": float(times.mean()) * 1e6,
                "max_us": float(times.max()) * 1e6,
            })
    return rows


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
