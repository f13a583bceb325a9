"""Compression benchmark: time and effective GB/s of every operator, CPU (NumPy) or GPU (CuPy).

For each (operator, size) it times ``compress`` (which includes bit packing) and
``decompress`` (unpacking included) over ``repeats`` runs after ``warmup`` runs and reports
min and median. GB/s is the dense input's bytes over the median time. Sparse operators
also report the selected fraction (count / d). On the GPU every row carries the time of
a device-to-device copy of the same dense bytes measured in the same run, and the ratio
to it. The pseudo-operator ``argpartition`` times NumPy's exact top-k selection
(np.argpartition of |x|) as the CPU baseline for the sparsifiers.
"""

import math
import statistics
import time

import numpy as np

from ..compress import COMPRESSORS, get_compressor
from ..errors import ConfigError
from ..xp import resolve_device, synchronize

__all__ = ["DEFAULT_OPS", "DEFAULT_PARAMS", "run_compress_bench", "format_compress_table"]

#: every registered lossy operator (``none``, the lossless identity, is left out)
DEFAULT_OPS = tuple(name for name, cls in COMPRESSORS.items() if not cls.lossless)
#: parameters used for each operator name: its class's ``bench_params`` (density 1%, 8 bits, ...)
DEFAULT_PARAMS = {name: dict(cls.bench_params) for name, cls in COMPRESSORS.items()}


def _timed(fn, xp, repeats, warmup):
    for _ in range(warmup):
        fn()
    synchronize(xp.empty(1)) if xp is not np else None
    times = []
    res = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = fn()
        if xp is not np:
            xp.cuda.get_current_stream().synchronize()
        times.append(time.perf_counter() - t0)
    return times, res


def _op_spec(op):
    """'qsgd:bits=4,scaling=norm' -> ('qsgd', {'bits': 4, 'scaling': 'norm'})."""
    name, _, rest = op.partition(":")
    params = dict(DEFAULT_PARAMS.get(name, {}))
    for item in filter(None, rest.split(",")):
        key, eq, val = item.partition("=")
        if not eq:
            raise ConfigError(f"bad operator spec {op!r}: expected name:key=value,...")
        for conv in (int, float):
            try:
                val = conv(val)
                break
            except ValueError:
                continue
        params[key.strip()] = val
    return name, params


def run_compress_bench(ops, sizes, device="cpu", repeats=5, warmup=1, dtype="float32", seed=0):
    """Benchmark compression operators.

    Args:
        ops: operator specs: registry names (``topk``, ``approx-topk``, ``qsgd``, ...),
            optionally with parameters (``"qsgd:bits=4,scaling=norm"``), or ``argpartition``
            (CPU baseline: np.argpartition of |x| at density 1%).
        sizes: vector lengths d (e.g. 1_000_000 .. 100_000_000).
        device: "cpu" (NumPy) or "gpu" (CuPy; ConfigError when no GPU is usable).
        repeats: timed runs per measurement (min and median reported).
        warmup: untimed runs first.
        dtype: "float32" or "float64".
        seed: data seed (standard normal entries).

    Returns:
        One dict per (op, size) with keys op, params, device, size, dtype, dense_bytes,
        wire_bytes, compression_ratio, selected_fraction (None for dense ops),
        compress_min_s, compress_med_s, compress_gbps, decompress_min_s, decompress_med_s,
        decompress_gbps, and on GPU d2d_med_s, compress_vs_d2d, decompress_vs_d2d.
    """
    if int(repeats) < 1 or int(warmup) < 0:
        raise ConfigError("repeats must be >= 1 and warmup >= 0")
    if dtype not in ("float32", "float64"):
        raise ConfigError(f"dtype must be float32 or float64, got {dtype!r}")
    xp = resolve_device(device)
    rows = []
    for d in sizes:
        d = int(d)
        host = np.random.default_rng(seed).standard_normal(d).astype(dtype)
        x = xp.asarray(host)
        dense = d * host.dtype.itemsize
        d2d = None
        if xp is not np:
            dst = xp.empty_like(x)
            d2d_times, _ = _timed(lambda: dst.__setitem__(Ellipsis, x), xp, repeats, warmup)
            d2d = statistics.median(d2d_times)
        for op in ops:
            name, params = _op_spec(op)
            row = {"op": op, "params": params, "device": device, "size": d, "dtype": dtype, "dense_bytes": dense}
            if name == "argpartition":
                if xp is not np:
                    continue
                k = max(1, round(0.01 * d))
                ct, _ = _timed(lambda: np.argpartition(np.abs(x), d - k)[d - k:], xp, repeats, warmup)
                row.update(wire_bytes=None, compression_ratio=None, selected_fraction=k / d,
                           decompress_min_s=None, decompress_med_s=None, decompress_gbps=None)
            else:
                comp = get_compressor(name, **params)
                step = [0]

                def do_compress():
                    step[0] += 1
                    return comp.compress(x, step=step[0], rank=0)

                ct, payload = _timed(do_compress, xp, repeats, warmup)
                out = xp.empty_like(x)
                dt, _ = _timed(lambda: comp.decompress(payload, out), xp, repeats, warmup)
                dmed = statistics.median(dt)
                row.update(
                    wire_bytes=payload.nbytes,
                    compression_ratio=dense / payload.nbytes,
                    selected_fraction=(payload.count / d if comp.sparse and d else None),
                    decompress_min_s=min(dt), decompress_med_s=dmed,
                    decompress_gbps=dense / dmed / 1e9 if dmed > 0 else math.inf,
                )
            cmed = statistics.median(ct)
            row.update(compress_min_s=min(ct), compress_med_s=cmed,
                       compress_gbps=dense / cmed / 1e9 if cmed > 0 else math.inf)
            if d2d is not None:
                row.update(d2d_med_s=d2d, compress_vs_d2d=cmed / d2d if d2d else None,
                           decompress_vs_d2d=(row["decompress_med_s"] / d2d if d2d and row["decompress_med_s"] else None))
            rows.append(row)
    return rows


def _fmt(v, spec):
    return "-" if v is None else format(v, spec)


def format_compress_table(rows):
    """Render :func:`run_compress_bench` rows as a fixed-width table (one line per row).

    Returns:
        The table as a string (header line first).
    """
    gpu = any("d2d_med_s" in r for r in rows)
    head = (f"{'op':<26}{'size':>12}{'wire_B':>12}{'ratio':>8}{'sel_frac':>10}"
            f"{'comp_min_ms':>13}{'comp_med_ms':>13}{'comp_GB/s':>11}"
            f"{'dec_min_ms':>12}{'dec_med_ms':>12}{'dec_GB/s':>10}")
    if gpu:
        head += f"{'d2d_ms':>9}{'comp/d2d':>10}{'dec/d2d':>9}"
    lines = [head]
    for r in rows:
        ms = lambda v: None if v is None else v * 1e3  # noqa: E731
        line = (f"{r['op']:<26}{r['size']:>12d}{_fmt(r['wire_bytes'], 'd'):>12}{_fmt(r['compression_ratio'], '.1f'):>8}"
                f"{_fmt(r['selected_fraction'], '.5f'):>10}"
                f"{_fmt(ms(r['compress_min_s']), '.2f'):>13}{_fmt(ms(r['compress_med_s']), '.2f'):>13}"
                f"{_fmt(r['compress_gbps'], '.2f'):>11}"
                f"{_fmt(ms(r['decompress_min_s']), '.2f'):>12}{_fmt(ms(r['decompress_med_s']), '.2f'):>12}"
                f"{_fmt(r['decompress_gbps'], '.2f'):>10}")
        if gpu:
            line += (f"{_fmt(ms(r.get('d2d_med_s')), '.3f'):>9}{_fmt(r.get('compress_vs_d2d'), '.1f'):>10}"
                     f"{_fmt(r.get('decompress_vs_d2d'), '.1f'):>9}")
        lines.append(line)
    return "\n".join(lines)
