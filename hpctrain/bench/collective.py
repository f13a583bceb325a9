"""``hpctrain bench collective``: every collective over message sizes, nccl-tests-style.

Runs allreduce algorithms (``ring``, ``recursive``, ``multi-ps``, ``ps``,
``ring-unpartitioned``, ``mpi``, ``auto``), the ``gossip`` mixing step (on a topology) and
``sparse-allgather`` / ``sparse-allgather-mpi`` (at a density). Each row has nccl-tests'
columns for out-of-place and in-place runs (time = slowest rank's mean, algbw, busbw,
#wrong), OSU-style min/avg/max time over ranks, and the alpha-beta prediction when a fit
is cached. busbw factors are in :func:`hpctrain.bench.allreduce.busbw_factor` and
docs/benchmarks.md.
"""

import csv
import io
import json

import numpy as np

from ..collectives import ALLREDUCE, MIXERS, SPARSE, cost
from ..errors import ConfigError
from .allreduce import busbw_factor, check_allreduce, rank_data
from .common import time_call, timing_fields

__all__ = ["bench_collective", "format_rows", "write_rows", "plot_rows", "known_algos", "ratio_table", "run_cli"]


def known_algos():
    """Every name ``bench collective --algo`` accepts."""
    return list(ALLREDUCE) + list(MIXERS) + list(SPARSE)


def _kind(name):
    if name in ALLREDUCE:
        return "allreduce"
    if name in MIXERS:
        return "gossip"
    if name in SPARSE:
        return "sparse"
    raise ConfigError(f"unknown algorithm {name!r}; choose from {', '.join(known_algos())}")


def _sparse_data(count, rank, dtype, density, seed=1234):
    """Deterministic (idx, val) of rank ``rank``: ``round(density*count)`` distinct indices."""
    k = min(count, int(round(density * count))) if count else 0
    rng = np.random.default_rng([seed, rank, count])
    idx = np.sort(rng.choice(count, size=k, replace=False)).astype(np.int32 if count < 2**31 else np.int64)
    val = rng.integers(-50, 50, size=k).astype(dtype)
    return idx, val


def _count_wrong(comm, got, expect, dt):
    if dt.kind == "f":
        tol = 1e-5 if dt.itemsize == 4 else 1e-12
        bad = np.abs(got.astype(np.float64) - expect) > tol * (1 + np.abs(expect))
    else:
        bad = got != expect
    wrong = np.array([int(np.count_nonzero(bad))], dtype=np.int64)
    comm.native_allreduce(wrong)
    return int(wrong[0])


def _check_gossip(comm, fn, W, count, dt):
    x = rank_data(count, comm.rank, dt)
    fn(comm, x, W)
    expect = sum(W[comm.rank, j] * rank_data(count, j, np.float64) for j in range(comm.size))
    return _count_wrong(comm, x, np.asarray(expect, dtype=np.float64), dt)


def _check_sparse(comm, fn, count, dt, density):
    idx, val = _sparse_data(count, comm.rank, dt, density)
    out = np.empty(count, dtype=dt)
    fn(comm, idx, val, out)
    expect = np.zeros(count, dtype=np.float64)
    for r in range(comm.size):
        i, v = _sparse_data(count, r, dt, density)
        np.add.at(expect, i, v.astype(np.float64))
    return _count_wrong(comm, out, expect, dt)


def _check_dedicated(comm, mps, count, dt):
    """#wrong of a dedicated-server multi-PS: workers must hold the sum over the workers."""
    x = rank_data(count, comm.rank, dt)
    mps.allreduce(x, "sum")
    if mps.is_server():
        expect = x.astype(np.float64)  # servers' buffers carry no result: nothing to check
    else:
        expect = sum(rank_data(count, r, np.float64) for r in range(mps.workers))
    return _count_wrong(comm, x, np.asarray(expect, dtype=np.float64), dt)


def bench_collective(comm, algos, sizes, dtype="float32", iters=20, warmup=5, check=True,
                     topology=None, density=0.01, fit=None, servers=0):
    """Time each algorithm in ``algos`` at each size (bytes per rank).

    Args:
        comm: a :class:`~hpctrain.comm.Communicator`.
        algos: names from :func:`known_algos`.
        sizes: message sizes in bytes (dense size for sparse-allgather).
        dtype: element type.
        iters, warmup: timed and untimed iterations per size.
        check: count wrong elements once per size (``#wrong``; -1 when off).
        topology: :class:`~hpctrain.topology.Topology` for gossip (default: ring).
        density: fraction of non-zeros per rank for sparse-allgather.
        fit: alpha-beta fit dict for the ``pred_us`` column (None: no prediction).
        servers: k > 0 runs ``multi-ps`` with k dedicated server ranks (the last k); the
            other n - k ranks are workers and get the sum over the workers. 0: co-located.

    Returns:
        A list of row dicts.
    """
    dt = np.dtype(dtype)
    n = comm.size
    mps = None
    if servers and "multi-ps" in algos:
        from ..collectives import MultiPS

        mps = MultiPS(comm, servers=servers)  # refuses k >= n with a one-line error
    kinds = {a: _kind(a) for a in algos}
    if "gossip" in kinds.values():
        if dt.kind != "f":
            raise ConfigError(f"gossip needs a floating-point --dtype, got {dt.name}")
        if topology is None:
            from ..topology import build

            topology = build("ring", n)
        if topology.n != n:
            raise ConfigError(f"topology has {topology.n} ranks but the world has {n}")
    rows = []
    for name in algos:
        kind = kinds[name]
        for size in sizes:
            count = size // dt.itemsize
            nbytes = count * dt.itemsize
            row = {"algo": name, "kind": kind, "size": nbytes, "count": count, "type": dt.name, "ranks": n}
            send = np.zeros(count, dtype=dt)
            recv = np.zeros(count, dtype=dt)
            pred_kw = {}
            if kind == "allreduce" and name == "multi-ps" and mps is not None:
                fn = lambda c, b, op, mps=mps: mps.allreduce(b, op)  # noqa: E731
                factor = busbw_factor("allreduce", n)
                inplace = lambda: fn(comm, recv, "sum")  # noqa: E731
                oop = lambda: fn(comm, (np.copyto(recv, send), recv)[1], "sum")  # noqa: E731
                wrong = _check_dedicated(comm, mps, count, dt) if check else -1
                row["servers"] = servers
                pred_kw = None  # the survey's formulas model the co-located placement only
            elif kind == "allreduce":
                fn = ALLREDUCE[name]
                factor = busbw_factor("allreduce", n)
                inplace = lambda: fn(comm, recv, "sum")  # noqa: E731
                oop = lambda: fn(comm, (np.copyto(recv, send), recv)[1], "sum")  # noqa: E731
                wrong = check_allreduce(comm, fn, count, dt) if check else -1
            elif kind == "gossip":
                fn, W = MIXERS[name], topology.matrix
                deg = int(topology.degrees.max())
                factor = busbw_factor("gossip", n, deg)
                pred_kw = {"degree": deg}
                inplace = lambda: fn(comm, recv, W)  # noqa: E731
                oop = lambda: fn(comm, (np.copyto(recv, send), recv)[1], W)  # noqa: E731
                wrong = _check_gossip(comm, fn, W, count, dt) if check else -1
                row["topology"] = topology.name
                row["degree"] = deg
            else:
                fn = SPARSE[name]
                idx, val = _sparse_data(count, comm.rank, dt, density)
                payload = idx.nbytes + val.nbytes
                pay = comm.allgather_array(np.array([payload], dtype=np.int64))[:, 0]
                # busbw: payload bytes each rank receives per second; algbw: dense bytes/s
                factor = (n - 1) * float(pay.mean()) / nbytes if nbytes else 0.0
                pred_kw = {"payload_ratio": float(pay.mean()) / nbytes if nbytes else 0.0}
                inplace = None
                oop = lambda: fn(comm, idx, val, recv)  # noqa: E731
                wrong = _check_sparse(comm, fn, count, dt, density) if check else -1
                row["density"] = density
                row["payload_bytes"] = int(pay.mean())
            t_oop = time_call(comm, oop, iters, warmup)
            row.update({f"oop_{k}": v for k, v in timing_fields(t_oop, nbytes, factor).items()})
            row["oop_wrong"] = wrong
            if inplace is not None:
                row.update(timing_fields(time_call(comm, inplace, iters, warmup), nbytes, factor))
                row["wrong"] = wrong
            else:  # out-of-place only: the headline columns are the out-of-place ones
                row.update({k: row[f"oop_{k}"] for k in ("time_us", "algbw", "busbw", "min_us", "avg_us", "max_us")})
                row["wrong"] = wrong
                row["inplace"] = False
            if fit is not None and pred_kw is not None:
                modelled = name
                if name == "auto":  # auto runs one candidate per size: predict that one
                    from ..collectives.auto import choose

                    modelled = row["auto_chose"] = choose(comm, nbytes)
                p = cost.predict(modelled, n, nbytes, fit, **pred_kw)
                row["pred_us"] = None if p is None else p * 1e6
            rows.append(row)
    return rows


def format_rows(rows):
    """nccl-tests-style table, one block per algorithm, with OSU min/avg/max over ranks."""
    lines = []
    for name in dict.fromkeys(r["algo"] for r in rows):
        block = [r for r in rows if r["algo"] == name]
        b0 = block[0]
        extra = f" topology={b0['topology']}" if "topology" in b0 else ""
        extra += f" density={b0['density']:g}" if "density" in b0 else ""
        extra += f" dedicated-servers={b0['servers']} (workers get the workers' sum)" if "servers" in b0 else ""
        lines.append(f"# {b0['kind']} algo={name} ranks={b0['ranks']}{extra}"
                     " (time = slowest rank's mean; min/avg/max over ranks of the in-place run)")
        lines.append(f"#{'':>37} {'out-of-place':^37}  {'in-place':^37}")
        hdr = f"{'time':>9} {'algbw':>8} {'busbw':>8} {'#wrong':>7}"
        lines.append(f"#{'size':>11} {'count':>11} {'type':>8}   {hdr}   {hdr} {'min':>9} {'avg':>9} {'max':>9} {'pred':>9}")
        unit = f"{'(us)':>9} {'(GB/s)':>8} {'(GB/s)':>8} {'':>7}"
        lines.append(f"#{'(B)':>11} {'(elems)':>11} {'':>8}   {unit}   {unit} {'(us)':>9} {'(us)':>9} {'(us)':>9} {'(us)':>9}")
        for r in block:
            def cols(prefix, wrong):
                w = "N/A" if wrong < 0 else str(wrong)
                return (f"{r[prefix + 'time_us']:>9.1f} {r[prefix + 'algbw']:>8.3f} "
                        f"{r[prefix + 'busbw']:>8.3f} {w:>7}")
            inp = cols("", r["wrong"]) if r.get("inplace", True) else f"{'N/A':>9} {'N/A':>8} {'N/A':>8} {'N/A':>7}"
            pred = r.get("pred_us")
            pred = f"{pred:>9.1f}" if pred is not None else f"{'-':>9}"
            chose = f"  ({r['auto_chose']})" if "auto_chose" in r else ""
            lines.append(f"{r['size']:>12} {r['count']:>11} {r['type']:>8}   {cols('oop_', r['oop_wrong'])}   {inp}"
                         f" {r['min_us']:>9.1f} {r['avg_us']:>9.1f} {r['max_us']:>9.1f} {pred}{chose}")
        avg = sum(r["busbw"] for r in block) / len(block)
        lines.append(f"# Out of bounds values : {sum(max(r['wrong'], 0) for r in block)} "
                     f"{'OK' if all(r['wrong'] <= 0 for r in block) else 'FAILED'}")
        lines.append(f"# Avg bus bandwidth    : {avg:.4f} GB/s  ({name})")
        lines.append("")
    if rows and not any("pred_us" in r for r in rows):
        lines.append("# pred: no alpha-beta fit is cached; run `hpctrain bench fit` first (same launcher and ranks) "
                     "to fill the pred column and to let --collective auto choose from measurements")
    ratios = ratio_table(rows)
    if ratios:
        lines.append(ratios)
    return "\n".join(lines)


def ratio_table(rows, baseline="mpi"):
    """Time of every algorithm / time of ``baseline`` per size (empty if baseline absent)."""
    base = {r["size"]: r["time_us"] for r in rows if r["algo"] == baseline}
    if not base:
        return ""
    names = [a for a in dict.fromkeys(r["algo"] for r in rows) if a != baseline]
    t = {(r["algo"], r["size"]): r["time_us"] for r in rows}
    lines = [f"# time / {baseline} time (in-place; < 1 is faster than {baseline})",
             f"#{'size':>11} " + " ".join(f"{a:>20}" for a in names)]
    for size, tb in base.items():
        cells = []
        for a in names:
            v = t.get((a, size))
            cells.append(f"{v / tb:>20.2f}" if v is not None and tb > 0 else f"{'-':>20}")
        lines.append(f"{size:>12} " + " ".join(cells))
    return "\n".join(lines) + "\n"


def write_rows(rows, json_path=None, csv_path=None):
    """Write the rows as JSON (list of objects) and/or CSV (one row per line)."""
    from ..files import write_atomic

    if json_path:
        write_atomic(json_path, json.dumps(rows, indent=1))
    if csv_path:
        keys = list(dict.fromkeys(k for r in rows for k in r))
        text = io.StringIO(newline="")
        w = csv.DictWriter(text, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
        write_atomic(csv_path, text.getvalue())


def plot_rows(rows, path, fit=None):
    """Log-log time vs size per algorithm (markers) with alpha-beta predictions (lines).

    Needs matplotlib (extra ``plot``); raises ConfigError when it is missing.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install 'hpctrain[plot]'") from None
    fig, ax = plt.subplots(figsize=(7, 5))
    n = rows[0]["ranks"] if rows else 1
    for i, name in enumerate(dict.fromkeys(r["algo"] for r in rows)):
        block = [r for r in rows if r["algo"] == name and r["size"] > 0]
        if not block:
            continue
        color = f"C{i % 10}"
        xs = [r["size"] for r in block]
        ax.plot(xs, [r["time_us"] for r in block], "o", color=color, label=f"{name} measured")
        if fit is not None:
            kw = {}
            if block[0]["kind"] == "sparse":
                kw["payload_ratio"] = block[-1]["payload_bytes"] / block[-1]["size"]
            if block[0]["kind"] == "gossip":
                kw["degree"] = block[0]["degree"]
            grid = np.geomspace(min(xs), max(xs), 64)
            pred = [cost.predict(name, n, s, fit, **kw) for s in grid]
            if pred[0] is not None:
                ax.plot(grid, np.array(pred) * 1e6, "-", color=color, alpha=0.6, label=f"{name} alpha-beta")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("message size per rank (bytes)")
    ax.set_ylabel("time (us)")
    ax.set_title(f"collectives on {n} ranks")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run_cli(comm, algos, sizes, dtype="float32", iters=20, warmup=5, check=True, topology="ring",
            density=0.01, refit=False, fit_sizes=None, servers=0):
    """Everything ``hpctrain bench collective`` does, minus printing.

    Args:
        algos: comma-separated names (validated here).
        topology: builder name or a .npy/.csv file of W (for gossip).
        refit: run :func:`hpctrain.bench.fit.run_fit` first (and cache it).
        fit_sizes: ping-pong sizes for ``refit``.
        servers: dedicated server ranks for ``multi-ps`` (0: co-located).

    Returns:
        ``(rows, fit)``; ``fit`` is the cached or new fit (None without one).
    """
    from ..topology import build

    names = [a.strip() for a in algos.split(",") if a.strip()]
    for name in names:
        _kind(name)
    if not 0 < density <= 1:
        raise ConfigError(f"--density must be in (0, 1], got {density}")
    topo = None
    if "gossip" in names:
        path = topology if topology.endswith((".npy", ".csv")) else None
        topo = build(None if path else topology, comm.size, path)
    if refit:
        from .fit import run_fit

        from ..collectives.auto import CANDIDATES

        # auto's candidates are timed at 8 B only: their per-call overheads enter its choice
        fit = run_fit(comm, fit_sizes or [1 << k for k in range(10, 27, 2)], [], algos=tuple(CANDIDATES))["fit"]
    else:
        from ..collectives.auto import shared_fit

        fit = shared_fit(comm)
    rows = bench_collective(comm, names, sizes, dtype, iters, warmup, check, topo, density, fit, servers)
    return rows, fit
