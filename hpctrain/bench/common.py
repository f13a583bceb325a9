"""Shared pieces of the benchmarks: size parsing, size sweeps, timing and bandwidth figures."""

import re

from ..errors import ConfigError

__all__ = ["parse_size", "size_sweep", "format_bytes", "time_call", "timing_fields"]

_UNITS = {"": 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "KIB": 1 << 10, "M": 1 << 20, "MB": 1 << 20,
          "MIB": 1 << 20, "G": 1 << 30, "GB": 1 << 30, "GIB": 1 << 30}


def parse_size(text):
    """``'64K'`` -> 65536, ``'16M'`` -> 16777216, ``'100'`` -> 100 (binary units)."""
    m = re.fullmatch(r"\s*(\d+)\s*([A-Za-z]*)\s*", str(text))
    if not m or m.group(2).upper() not in _UNITS:
        raise ConfigError(f"invalid size {text!r} (use e.g. 1K, 64M, 1G)")
    return int(m.group(1)) * _UNITS[m.group(2).upper()]


def size_sweep(min_bytes, max_bytes, factor):
    """Sizes from ``min_bytes`` to ``max_bytes`` multiplying by ``factor`` (both ends kept)."""
    if min_bytes < 0 or max_bytes < min_bytes:
        raise ConfigError(f"need 0 <= --min-bytes <= --max-bytes, got {min_bytes} and {max_bytes}")
    if factor < 2:
        raise ConfigError(f"--step-factor must be >= 2, got {factor}")
    sizes, s = [], min_bytes or 1
    if min_bytes == 0:
        sizes.append(0)
    while s <= max_bytes:
        sizes.append(s)
        s *= factor
    if sizes[-1] != max_bytes:
        sizes.append(max_bytes)
    return sizes


def format_bytes(n):
    """``1048576`` -> ``'1M'`` (exact binary units where possible)."""
    for div, suffix in ((1 << 30, "G"), (1 << 20, "M"), (1 << 10, "K")):
        if n >= div and n % div == 0:
            return f"{n // div}{suffix}"
    return str(n)


def time_call(comm, fn, iters, warmup):
    """Mean seconds per call of ``fn()`` on every rank (barrier before timing).

    Returns:
        A NumPy array with one mean time per rank (gathered on every rank).
    """
    import time

    import numpy as np

    for _ in range(warmup):
        fn()
    comm.barrier()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    mine = (time.perf_counter() - t0) / iters
    return comm.allgather_array(np.array([mine]))[:, 0]


def timing_fields(times, nbytes, busbw_factor):
    """nccl-tests/OSU figures from per-rank times: time (slowest rank), algbw, busbw, min/avg/max.

    Args:
        times: seconds per rank.
        nbytes: message size the bandwidths refer to.
        busbw_factor: busbw = algbw x factor (allreduce: 2(n-1)/n).
    """
    t = float(max(times))
    algbw = nbytes / t / 1e9 if t > 0 else 0.0
    return {
        "time_us": t * 1e6, "algbw": algbw, "busbw": algbw * busbw_factor,
        "min_us": float(min(times)) * 1e6, "avg_us": float(sum(times) / len(times)) * 1e6,
        "max_us": t * 1e6,
    }
