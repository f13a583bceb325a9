"""``hpctrain bench fit``: measure alpha, beta (ping-pong) and gamma (local reduction), then
compare the survey's cost formulas with measured collective times and cache the fit.

* alpha, beta: rank 0 and rank 1 ping-pong through :class:`~hpctrain.comm.Communicator`
  (so alpha includes hpctrain's per-message Python overhead); one-way time
  t(S) = alpha + S beta is fitted by least squares on relative error (so small sizes
  count as much as large ones); R^2 is reported on the plain (linear) scale.
* gamma: seconds per byte of the element-wise reduction (``np.add`` in place) on rank 0.
* predictions: :mod:`hpctrain.collectives.cost` (survey 003 §1.3 formulas plus gamma).
* the fit is written to :func:`hpctrain.collectives.cost.cache_path` for ``auto``.
"""

import datetime
import time

import numpy as np

from ..collectives import cost
from ..errors import ConfigError
from .collective import bench_collective

__all__ = ["pingpong", "reduce_cost", "fit_line", "fit_segments", "run_fit", "format_fit", "COMPARE"]

COMPARE = ("ring", "multi-ps", "ps", "ring-unpartitioned", "recursive")


def _iters(size):
    return int(max(5, min(2000, 4e6 // max(size, 1024))))


def pingpong(comm, sizes, repeats=3):
    """One-way message time per size between ranks 0 and 1 (others wait).

    Returns:
        A list of seconds (fastest of ``repeats`` means over many round trips),
        identical on every rank.
    """
    out = np.zeros(len(sizes))
    r = comm.rank
    for i, size in enumerate(sizes):
        buf = np.zeros(size, dtype=np.uint8)
        it = _iters(size)
        reps = []
        for _ in range(repeats):
            comm.barrier()
            if r == 0:
                comm.send(buf, 1, tag=60)
                comm.recv(buf, 1, tag=61)  # warm-up round trip
                t0 = time.perf_counter()
                for _ in range(it):
                    comm.send(buf, 1, tag=60)
                    comm.recv(buf, 1, tag=61)
                reps.append((time.perf_counter() - t0) / (2 * it))
            elif r == 1:
                for _ in range(it + 1):
                    comm.recv(buf, 0, tag=60)
                    comm.send(buf, 0, tag=61)
        if r == 0:
            out[i] = float(min(reps))
    comm.bcast_array(out)
    return out.tolist()


def reduce_cost(comm, sizes, dtype="float32"):
    """Seconds of ``a += b`` per size on rank 0 (broadcast to all ranks)."""
    out = np.zeros(len(sizes))
    if comm.rank == 0:
        for i, size in enumerate(sizes):
            a = np.zeros(max(size // np.dtype(dtype).itemsize, 1), dtype=dtype)
            b = np.ones_like(a)
            it = _iters(size)
            np.add(a, b, out=a)
            t0 = time.perf_counter()
            for _ in range(it):
                np.add(a, b, out=a)
            out[i] = (time.perf_counter() - t0) / it
    comm.bcast_array(out)
    return out.tolist()


def fit_line(sizes, times):
    """Fit t = a + b S minimising relative error; returns (a, b, r2) with a, b >= 0."""
    S, t = np.asarray(sizes, float), np.asarray(times, float)
    w = 1.0 / t
    A = np.stack([w, S * w], axis=1)
    (a, b), *_ = np.linalg.lstsq(A, np.ones_like(t), rcond=None)
    if a < 0:  # latency cannot be negative: refit the slope alone
        a, b = 0.0, float(np.sum(S * t * w * w) / np.sum(S * S * w * w))
    pred = a + b * S
    ss_res = float(np.sum((t - pred) ** 2))
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return float(a), float(b), r2


def fit_segments(sizes, times, min_points=3):
    """Piecewise alpha-beta: one line, or two split at the size that fits best.

    MPI changes protocol with the message size (eager copies through shared cells,
    rendezvous/single-copy above a threshold), so one line rarely fits 1 KiB..16 MiB. Each
    candidate split (at least ``min_points`` sizes per side) is fitted with
    :func:`fit_line`; the split with the least relative error wins when it halves the
    error of a single line.

    Returns:
        ``(segments, r2)``: a list of dicts ``alpha``, ``beta``, ``max_bytes`` (None for
        the last), ``r2`` each; and R^2 of the whole piecewise fit on the linear scale.
    """
    S, t = np.asarray(sizes, float), np.asarray(times, float)

    def rel_sse(parts):
        return sum(float(np.sum(((a + b * S[i:j]) / t[i:j] - 1) ** 2)) for (i, j), (a, b, _) in parts)

    a, b, r2 = fit_line(S, t)
    best = ([((0, len(S)), (a, b, r2))], rel_sse([((0, len(S)), (a, b, r2))]))
    for k in range(min_points, len(S) - min_points + 1):
        parts = [((0, k), fit_line(S[:k], t[:k])), ((k, len(S)), fit_line(S[k:], t[k:]))]
        err = rel_sse(parts)
        if err < 0.5 * best[1] and (len(best[0]) == 1 or err < best[1]):
            best = (parts, err)
    segs, pred = [], np.empty_like(t)
    for idx, ((i, j), (a, b, r2)) in enumerate(best[0]):
        last = idx == len(best[0]) - 1
        segs.append({"alpha": a, "beta": b, "r2": r2, "min_bytes": int(S[i]),
                     "max_bytes": None if last else int(S[j])})
        pred[i:j] = a + b * S[i:j]
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    r2_all = 1.0 - float(np.sum((t - pred) ** 2)) / ss_tot if ss_tot > 0 else 1.0
    return segs, r2_all


def run_fit(comm, sizes, compare_sizes, algos=COMPARE, dtype="float32", iters=10, warmup=3,
            save=True, path=None, repeats=3):
    """Measure alpha, beta, gamma; time ``algos`` at ``compare_sizes``; cache the fit.

    Args:
        repeats: benchmark repeats; each (algorithm, size) keeps its fastest.

    Returns:
        A dict: ``fit`` (alpha, beta, gamma, r2, ...), ``points`` (ping-pong and reduce
        times per size), ``rows`` (benchmark rows with ``pred_us``), ``crossovers``, ``path``.
    """
    if comm.size < 2:
        raise ConfigError("bench fit needs at least 2 ranks (it ping-pongs between ranks 0 and 1)")
    pp = pingpong(comm, sizes)
    segs, r2 = fit_segments(sizes, pp)
    red = reduce_cost(comm, sizes, dtype)
    _, gamma, r2_red = fit_line(sizes, red)
    fit = {
        "alpha": segs[-1]["alpha"], "beta": segs[-1]["beta"], "gamma": gamma, "r2": r2,
        "r2_reduce": r2_red, "segments": segs, "fit_ranks": comm.size, "dtype": dtype,
        "sizes": list(sizes), "created": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    rows = []
    for _ in range(repeats):  # the machine is noisy: keep each (algo, size)'s fastest repeat
        rep = bench_collective(comm, list(algos), compare_sizes, dtype, iters, warmup, check=False, fit=fit)
        if not rows:
            rows = rep
        else:
            for r, q in zip(rows, rep):
                if q["time_us"] < r["time_us"]:
                    r.update(q)
    names = [a for a in algos if cost.coefficients(a, comm.size) is not None]
    cross = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            s = cost.crossover(a, b, comm.size, fit)
            if s is not None:
                cross.append({"a": a, "b": b, "bytes": s})
    where = None
    if save and comm.rank == 0:
        where = cost.save_fit(fit, path)
    return {"fit": fit, "points": {"sizes": list(sizes), "pingpong": pp, "reduce": red},
            "rows": rows, "crossovers": cross, "path": where}


def format_fit(res):
    """Text report of :func:`run_fit`: the fit, the ping-pong points, predicted vs measured."""
    f, pts = res["fit"], res["points"]
    lines = [
        f"# alpha-beta fit (ping-pong rank 0 <-> 1, {f['fit_ranks']} ranks running)",
        f"R^2 = {f['r2']:.5f} (piecewise fit over all sizes, linear scale)",
        *[f"  {seg['min_bytes']:>9} B .. {seg['max_bytes'] or 'inf':>9}: alpha = {seg['alpha'] * 1e6:8.3f} us, "
          f"beta = {seg['beta'] * 1e9:.4f} ns/B ({1 / seg['beta'] / 1e9 if seg['beta'] > 0 else float('inf'):.2f} GB/s), "
          f"R^2 = {seg['r2']:.5f}" for seg in f["segments"]],
        f"gamma = {f['gamma'] * 1e9:.4f} ns/B (reduction a += b, {f['dtype']})   R^2 = {f['r2_reduce']:.5f}",
        f"#{'size':>11} {'one-way(us)':>12} {'fit(us)':>10} {'err%':>7} {'reduce(us)':>11}",
    ]
    for s, t, rd in zip(pts["sizes"], pts["pingpong"], pts["reduce"]):
        a, b = cost.link(f, s)
        p = a + s * b
        lines.append(f"{s:>12} {t * 1e6:>12.2f} {p * 1e6:>10.2f} {100 * (p - t) / t:>7.1f} {rd * 1e6:>11.2f}")
    lines.append("")
    lines.append(f"# predicted vs measured (in-place, slowest rank's mean), {res['rows'][0]['ranks']} ranks")
    lines.append(f"#{'algo':>19} {'size':>11} {'measured(us)':>13} {'predicted(us)':>14} {'pred/meas':>10}")
    for r in res["rows"]:
        p = r.get("pred_us")
        if p is None:
            continue
        lines.append(f"{r['algo']:>20} {r['size']:>11} {r['time_us']:>13.1f} {p:>14.1f} {p / r['time_us']:>10.2f}")
    lines.append("")
    lines.append("# model crossovers (size where two algorithms are predicted equal)")
    for c in res["crossovers"]:
        lines.append(f"{c['a']:>20} = {c['b']:<20} at {c['bytes']:.0f} B")
    if not res["crossovers"]:
        lines.append("(none)")
    lines.append("# fastest per size: measured vs predicted")
    sizes = list(dict.fromkeys(r["size"] for r in res["rows"]))
    for s in sizes:
        blk = [r for r in res["rows"] if r["size"] == s and r.get("pred_us") is not None]
        if blk:
            m = min(blk, key=lambda r: r["time_us"])["algo"]
            p = min(blk, key=lambda r: r["pred_us"])["algo"]
            lines.append(f"{s:>12}  measured {m:<20} predicted {p}")
    if res.get("path"):
        lines.append(f"# fit cached at {res['path']} (used by --algo auto; rerun to refit)")
    return "\n".join(lines)
