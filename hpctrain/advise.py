"""Which method is fastest here: predicted step time and bytes per step of every method.

``hpctrain advise`` (Agarwal et al., "On the Utility of Gradient Compression in
Distributed Training Systems", MLSys 2022, give the performance model; the survey's
alpha-beta formulas price the messages). For every valid (algorithm, compressor, density
or bits, aggregation, collective) on n ranks::

    step = compute + local + comm
    compute = the model's forward and backward pass (measured: a few steps, slowest rank)
    local   = the algorithm's own arithmetic on one rank (compress, decode, update; measured
              on a one-rank communicator) + (n - 1) decodes per exchange that decodes every
              rank's payload + ``serial`` compress-and-decode rounds that wait on each other
              (ring hops, a server's re-compression; measured per call)
    comm    = sum over the algorithm's declared exchanges (``Algorithm.comm_pattern``) of
              per_step x the collective's alpha-beta time (``cost.exchange_time``)

``nodes``: the what-if of larger jobs keeps the measured compute and local costs and
re-prices the communication on N nodes of the current ranks per node (the fitted network
link between nodes; on one node, the node's link).

Library code: no printing, no click (the CLI prints :func:`format_table`).
"""

import dataclasses
import json
import math
import os
import statistics
import time

import numpy as np

from .algorithms import ALGORITHMS, AlgoContext
from .collectives import get_allreduce
from .collectives import cost
from .compress import is_half_precision, is_lossless
from .collectives.hierarchical import layout as node_layout
from .collectives.half import HalfWire
from .compress import COMPRESSORS
from .config import load_config
from .errors import ConfigError, DataError, HpctrainError

__all__ = ["candidates", "predict_row", "straggler_factor", "healthy_fit", "rank_rows", "run_advise", "format_table", "read_runs",
           "load_fit_file", "read_json_file", "plot_whatif", "parse_grids", "format_report", "COLLECTIVES", "DENSITIES", "BITS"]

#: the modelled allreduces a dense exchange is priced with (``hierarchical`` joins on several nodes)
COLLECTIVES = ("ring", "recursive", "multi-ps", "ps")
DENSITIES = (0.1, 0.01, 0.001)
BITS = (2, 4, 8)
MAX_JSON_BYTES = 64 << 20  # a bench fit file with every round's raw times is well below this


#: operators whose payload size follows the gradients' scale during training, not the
#: method: the few probe steps cannot price the run. Left out of the table unless named
#: with ``--compressor`` (then priced at the probe steps' payload).
UNPRICED = {"threshold": "its payload (every |g| above a fixed threshold) follows the gradients' scale as "
                         "training goes on; --compressor threshold prices it at the probe steps' payload"}


def candidates(algos=None, compressors=None, densities=DENSITIES, bits=BITS):
    """Every (algorithm, aggregation, compressor, density or bits) the registry allows.

    Args:
        algos, compressors: restrict to these names (None: all).

    Returns:
        A list of dicts of config keys (``algo``, ``aggregation``, ``compressor`` and
        ``density`` or ``bits`` where the operator takes them).
    """
    out = []
    for name, cls in ALGORITHMS.items():
        if algos and name not in algos:
            continue
        for agg in cls.aggregations:
            for comp in cls.compressors or (None,):
                if compressors and comp not in compressors:
                    continue
                if not compressors and comp in UNPRICED:  # priced only when asked for by name
                    continue
                params = getattr(COMPRESSORS.get(comp), "config_params", ())
                grid = ([{"density": d} for d in densities] if "density" in params
                        else [{"bits": b} for b in bits] if "bits" in params else [{}])
                for extra in grid:
                    out.append({"algo": name, "aggregation": agg, "compressor": comp or "none", **extra})
                    if cls.bucketing == "free" and comp is None and (not compressors or any(map(is_half_precision, compressors))):
                        out[-1]["fp16_allreduce"] = False  # and the same in float16 (--fp16-allreduce)
                        out.append({**out[-1], "fp16_allreduce": True})
    return out


def method_label(c):
    """``ecsgd+topk(0.01) ps`` style name of a candidate dict."""
    comp = c.get("compressor", "none")
    text = c["algo"]
    if not is_lossless(comp) or ALGORITHMS[c["algo"]].compressors:
        text += f"+{comp}"
        if "density" in c:
            text += f"({c['density']:g})"
        elif "bits" in c:
            text += f"({c['bits']}b)"
    if c.get("fp16_allreduce"):
        text += "+fp16"
    if len(ALGORITHMS[c["algo"]].aggregations) > 1:
        text += f" {c['aggregation']}"
    return text


def read_json_file(path, flag):
    """The JSON document in the file named by option ``flag`` (one line if it cannot be read).

    Raises:
        ConfigError: missing, not a regular file, too large, or not JSON.
    """
    from .files import check_input

    check_input(path, f"{flag} file", ConfigError)  # missing, a directory, a FIFO: one line, never a hang
    if os.path.getsize(path) > MAX_JSON_BYTES:
        raise ConfigError(f"{flag} {path}: {os.path.getsize(path)} bytes is too large")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError, RecursionError) as exc:
        raise ConfigError(f"{flag} {path}: not a JSON file ({_first_line(exc)})") from None


def _first_line(exc):
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def load_fit_file(path):
    """The alpha-beta fit in ``path`` (a ``bench fit --json`` file or the cached fit).

    Raises:
        ConfigError: the file is missing or holds no fit.
    """
    doc = read_json_file(path, "--fit")
    fit = doc.get("fit", doc) if isinstance(doc, dict) else None
    try:
        if not (math.isfinite(float(fit["alpha"])) and math.isfinite(float(fit["beta"]))):
            raise ValueError
    except (KeyError, TypeError, ValueError):
        raise ConfigError(f"--fit {path}: no alpha and beta in it (write one with: hpctrain bench fit --json FILE)") from None
    try:
        cost.check_fit(fit)
    except ValueError as exc:
        raise ConfigError(f"--fit {path}: {exc} (write a new one with: hpctrain bench fit --json FILE)") from None
    return fit


#: exchanges that pass through one server's link, one worker at a time: a slow worker
#: delays only its own messages; every other exchange advances in lockstep with its slowest link
SERVER_BOUND = ("ps",)


def straggler_factor(links):
    """How much slower the slowest link is than a typical node's, from ``bench links --json``:
    the median over nodes of each node's best inter-node bandwidth (``bench links``' own
    verdict) over the slowest inter-node pair's (all pairs, median over slowest, when every
    rank is on one node); 1 without a slow link.

    Raises:
        ConfigError: the document holds no usable pairs.
    """
    typical, inter, _ = _link_rates(links)
    return max(1.0, typical / min(inter))


def _link_rates(links):
    """(typical node bandwidth, the inter-node pairs' bandwidths, {(a, b): bandwidth}) of a
    ``bench links --json`` document (see :func:`straggler_factor`)."""
    from .bench.links import node_report

    pairs = links.get("pairs") if isinstance(links, dict) else None
    try:
        rates = [(p["hosts"][0] != p["hosts"][1], float(p["bytes_per_s"])) for p in pairs]
        by_ranks = {tuple(sorted((int(p["a"]), int(p["b"])))): float(p["bytes_per_s"]) for p in pairs if "a" in p}
        report = node_report(links)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        raise ConfigError("--links: not a file of bench links --json (no pairs with hosts and bytes_per_s)") from None
    inter = [r for x, r in rates if x] or [r for _, r in rates]
    if not inter or min(inter) <= 0 or not all(math.isfinite(r) for r in inter):
        raise ConfigError("--links: no measured pair bandwidths in it")
    typical = statistics.median(r["best_bytes_per_s"] for r in report) if report else statistics.median(inter)
    return typical, inter, by_ranks


def healthy_fit(fit, links, n):
    """``fit`` as it would be on healthy links, when it was measured on this job's ``n`` ranks
    *with* the slow link of ``links`` (advise's own short fit): each primitive already ran at
    the pace of the slowest pair its pattern crosses (the ping-pongs ranks 0 and 1, the
    exchanges the pairs 2i, 2i+1 at once, the all-to-all every pair), so its beta is divided
    by that pair's slowdown; the straggler model (:func:`predict_row`) then applies the
    slowdown once. Without this the slow link would be counted twice.

    Returns:
        (fit, {primitive group: slowdown divided out}); the fit unchanged (and {}) when the
        links were measured on another number of ranks or no pattern crosses a slow pair.
    """
    typical, _, by_ranks = _link_rates(links)
    if not by_ranks or max(max(p) for p in by_ranks) != n - 1:
        return fit, {}

    def seen(pairs):
        return max([1.0] + [typical / by_ranks[p] for p in pairs if p in by_ranks and by_ranks[p] > 0])

    groups = {("oneway", "oneway-sent"): seen([(0, 1)]),
              ("exchange", "exchange-sent"): seen([(2 * i, 2 * i + 1) for i in range(n // 2)]),
              ("concurrent", "concurrent-sent"): seen(list(by_ranks))}
    out, divided = dict(fit), {}
    for kinds, factor in groups.items():
        if factor <= 1.0:
            continue
        divided["/".join(kinds)] = factor
        for kind in kinds:
            if fit.get(kind):
                out[kind] = cost.slowed(fit[kind], 1.0 / factor)
        if kinds[0] == "oneway":  # the survey's single line is the ping-pong's
            top = cost.slowed({k: fit[k] for k in ("alpha", "beta", "segments") if k in fit}, 1.0 / factor)
            out.update(top)
    return out, divided


def _exchange_slowdown(kind, collective, n, slow):
    """The factor on beta of one exchange with one link ``slow`` times slower."""
    if slow == 1.0 or n <= 1:
        return 1.0
    if kind in SERVER_BOUND or (kind == "allreduce" and collective == "ps"):
        return (n - 2 + slow) / (n - 1)  # n - 2 workers at the fitted rate, one slow
    return slow


def predict_row(meas, n, nodes, fit, collective, slow=1.0):
    """Predicted seconds and bytes of one measured candidate on ``n`` ranks, ``nodes`` nodes.

    Args:
        meas: dict with ``compute_s``, ``local_s``, ``decode_s`` (one payload decode),
            ``compress_s`` (one compress call) and ``pattern`` (dict n -> list of
            :class:`~hpctrain.algorithms.base.Exchange`); ``reduce_s_per_byte`` where the
            collective adds float16 (``--fp16-allreduce``): its reductions at that rate.
        collective: the allreduce of ``allreduce`` exchanges.
        slow: the slowest link's slowdown (:func:`straggler_factor`): lockstep exchanges
            run at its pace, a server's round has one slow worker.

    Returns:
        dict ``compute_s``, ``local_s``, ``comm_s``, ``step_s``, ``bytes_per_step`` (sent by
        one rank, mean over ranks); None when the collective has no model.
    """
    pattern = meas["pattern"][n]
    comm_s, sent, local = 0.0, 0.0, meas["local_s"]
    for ex in pattern:
        factor = _exchange_slowdown(ex.kind, collective, n, slow)
        link = fit if factor == 1.0 else cost.slowed(fit, factor)
        if meas.get("reduce_s_per_byte"):  # the collective adds float16 (--fp16-allreduce)
            seg = {"segments": [{"alpha": 0.0, "beta": meas["reduce_s_per_byte"], "max_bytes": None}]}
            link = dict(link, reduce=seg, **{"reduce-sent": seg})
        t = cost.exchange_time(ex.kind, n, ex.nbytes, link, nodes=nodes, collective=collective, **ex.options())
        b = cost.exchange_bytes(ex.kind, n, ex.nbytes, collective=collective, **ex.options())
        if t is None:
            return None
        comm_s += ex.per_step * t
        sent += ex.per_step * (b or 0.0) / max(n, 1)
        if ex.decodes:
            local += ex.per_step * (n - 1) * meas["decode_s"]
        local += ex.per_step * ex.serial * (meas.get("compress_s", 0.0) + meas["decode_s"])
    return {"compute_s": meas["compute_s"], "local_s": local, "comm_s": comm_s,
            "step_s": meas["compute_s"] + local + comm_s, "bytes_per_step": sent}


def rank_rows(measured, n, nodes, fit, collectives=COLLECTIVES, slow=1.0):
    """The ranked table for ``n`` ranks on ``nodes`` nodes: one row per candidate and
    collective (only the candidates with an allreduce exchange vary it), fastest first,
    with speed-ups over dense fp32 (the fastest ``dmsgd`` row) and dense fp16 (the fastest
    row whose compressor is ``fp16``)."""
    colls = list(collectives) + (["hierarchical"] if nodes > 1 and "hierarchical" not in collectives else [])
    rows = []
    for m in measured:
        uses = any(ex.kind == "allreduce" for ex in m["pattern"][n])
        for c in (colls if uses else ["-"]):
            pred = predict_row(m, n, nodes, fit, c if uses else "ring", slow)
            if pred is None:
                continue
            rows.append({"method": m["label"], **m["config"], "collective": c, **pred,
                         "converged": m.get("converged")})
    rows.sort(key=lambda r: r["step_s"])
    fp32 = min((r["step_s"] for r in rows if r["algo"] == "dmsgd" and not r.get("fp16_allreduce")), default=None)
    fp16 = min((r["step_s"] for r in rows if r.get("fp16_allreduce") or is_half_precision(r.get("compressor"))),
               default=None)
    for i, r in enumerate(rows, 1):
        r["rank"] = i
        r["speedup_fp32"] = fp32 / r["step_s"] if fp32 and r["step_s"] > 0 else None
        r["speedup_fp16"] = fp16 / r["step_s"] if fp16 and r["step_s"] > 0 else None
    return rows


def read_runs(run_dirs):
    """What earlier runs (``--runs``) say about convergence, per method.

    Returns:
        dict: key (algo, aggregation, compressor, density or bits) -> ``yes (acc 0.871)``
        when the run finished and its training loss fell, ``no (acc ...)`` when it did not
        fall, ``no (did not finish)`` for a run without summary.json (stopped, diverged).
    """
    from .plot import load_run

    out = {}
    for d in run_dirs:
        _, records = load_run(d)
        finished = os.path.exists(os.path.join(d, "summary.json"))
        cfg = _run_config(d, finished)
        losses = [r["train_loss"] for r in records]  # finite numbers (load_run checks)
        acc = records[-1]["test_accuracy"]
        if not finished:
            out[_run_key(cfg)] = "no (did not finish)"
        else:
            out[_run_key(cfg)] = f"{'yes' if len(losses) == 1 or losses[-1] < losses[0] else 'no'} (acc {acc:.3f})"
    return out


def _run_config(d, finished):
    """The configuration of run directory ``d``: summary.json's copy, else config.toml's."""
    import tomllib

    from .files import check_input

    name = "summary.json" if finished else "config.toml"
    path = check_input(os.path.join(d, name), f"{name} of the run", DataError)
    try:
        with open(path, "rb") as f:
            doc = json.load(f) if finished else tomllib.load(f)
    except (OSError, ValueError, RecursionError, UnicodeDecodeError) as exc:
        raise DataError(f"{d}: unreadable {name} ({_first_line(exc)})") from None
    cfg = doc.get("config" if finished else "train") if isinstance(doc, dict) else None
    if not isinstance(cfg, dict) or cfg.get("algo") not in ALGORITHMS:
        raise DataError(f"{d}: {name} names no known algo")
    return cfg


def _run_key(cfg):
    comp = cfg.get("compressor", "none") if ALGORITHMS.get(cfg.get("algo")) and ALGORITHMS[cfg["algo"]].compresses \
        else "none"
    params = getattr(COMPRESSORS.get(comp), "config_params", ())
    knob = cfg.get("density") if "density" in params else cfg.get("bits") if "bits" in params else None
    if knob is not None and not isinstance(knob, (int, float)):
        raise DataError(f"summary.json of a run: {knob!r} is not a density or a number of bits")
    agg = cfg.get("aggregation", "allreduce")
    if cfg.get("fp16_allreduce") is True and is_lossless(comp):
        comp = "fp16-allreduce"  # the dense run in float16 is its own method
    return (cfg.get("algo"), agg, comp, None if knob is None else float(knob))


def _timed_median(fn, reps, sync, warmup=1):
    """Median seconds of ``fn`` over ``reps`` calls after ``warmup``; ``sync`` waits for
    queued device work at each boundary (on the GPU)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _half_add_seconds(d, reps):
    """Median seconds of one float16 addition of two d-vectors as the host collectives do it
    (:func:`hpctrain.halfcast.half_add`): several times a float32 addition's cost."""
    from .halfcast import half_add

    a, b = np.ones(d, np.float16), np.ones(d, np.float16)
    add = half_add()
    return _timed_median(lambda: add(a, b, out=a), reps, lambda: None)


def _measure_local(cfg, selfcomm, params, grad, ctx_args, reps, sizes, sync):
    """Median seconds of one algorithm step on a one-rank communicator, of one decode of
    another rank's message (``Algorithm.decode_one``) and of one compress call, and the
    pattern for every n in ``sizes`` (its payload sizes from the steps' last payload)."""
    reduce = get_allreduce("ring")
    ctx = AlgoContext(cfg, selfcomm, HalfWire(reduce) if cfg.fp16_allreduce else reduce, params.size, *ctx_args)
    p = params.copy()
    alg = ALGORITHMS[cfg.algo](ctx, p)
    comp = getattr(alg, "comp", None)
    seen = {"payload": None, "seconds": []}
    if comp is not None:  # time its compress calls; keep the last payload of real gradients
        raw = comp.compress

        def compress(*a, **k):
            sync()
            t0 = time.perf_counter()
            out = raw(*a, **k)
            sync()
            seen["seconds"].append(time.perf_counter() - t0)
            seen["payload"] = out
            return out
        comp.compress = compress
    g = grad.copy()
    state = {"t": 0}

    def one():
        g[...] = grad
        alg.step(p, g, 1e-3, state["t"])
        state["t"] += 1

    local = _timed_median(one, reps, sync)
    if seen["payload"] is not None:
        comp.compress = raw
        alg.set_probe_payload(seen["payload"])
    decode_one = alg.decode_one()
    decode = _timed_median(decode_one, reps, sync) if decode_one is not None else 0.0
    compress_s = statistics.median(seen["seconds"][1:] or seen["seconds"]) if seen["seconds"] else 0.0
    return local, decode, compress_s, {n: alg.comm_pattern(n) for n in sizes}


def run_advise(cfg_path, overrides, comm, fit=None, nodes_list=(), runs=None, densities=DENSITIES, bits=BITS,
               collectives=COLLECTIVES, probe_steps=3, slow=1.0, ranks_per_node=None, links=None):
    """Measure and predict (collective: every rank calls it).

    Args:
        cfg_path, overrides: the training configuration (as ``hpctrain train`` takes them);
            ``algo`` and ``compressor`` given there restrict the candidates.
        comm: the job's communicator.
        fit: the alpha-beta fit (None: a short fit now, which needs 2 ranks or more).
        nodes_list: node counts of the what-if tables.
        runs: ``read_runs`` result (convergence marks) or None.
        probe_steps: timed steps of the model and of each candidate (after one warm-up).
        slow: the slowest link's slowdown (:func:`straggler_factor` of ``bench links``).
        links: the ``bench links`` document itself: a short fit measured now is rebased to
            healthy links with it (:func:`healthy_fit`).
        ranks_per_node: ranks per node of the what-if jobs (default: this job's, from the
            host names; emulated nodes that share one host name need it).

    Returns:
        A dict: ``job`` (ranks, nodes), ``fit``, ``compute_s``, ``rows`` (this job),
        ``whatif`` ({nodes: rows}), ``skipped`` (candidates that cannot run here, why).
    """
    from .train import StepGuard, _setup, agree, model_layers
    from .xp import resolve_device, synchronize
    from .threads import limit_threads, local_rank

    given = {k: v for k, v in overrides.items() if v is not None}
    for algo, _, comp, knob in runs or ():  # the runs' own densities and bits join the grid
        params = getattr(COMPRESSORS.get(comp), "config_params", ())
        if knob is not None and "density" in params and knob not in densities:
            densities = (*densities, knob)
        elif knob is not None and "bits" in params and int(knob) not in bits:
            bits = (*bits, int(knob))
    base = load_config(cfg_path, given)
    if probe_steps < 1:
        raise ConfigError("--probe-steps must be at least 1")
    n = comm.size
    lay = node_layout(comm)
    per_node = ranks_per_node or max(1, n // max(lay.nodes, 1))
    sizes = sorted({n, *(int(N) * per_node for N in nodes_list)})
    fit_source = "given"
    if fit is None:
        if n < 2:
            raise ConfigError("one rank measures no network: give --fit FILE (from: hpctrain bench fit --json FILE) "
                              "or run advise on 2 ranks or more")
        from .bench.common import size_sweep
        from .bench.fit import run_fit

        res = run_fit(comm, size_sweep(1 << 10, 4 << 20, 4), [4 << 20], ["ring"], "float32", 3, 3, save=False,
                      max_rounds=3)  # bounded: seconds on a fast network, about a minute at 100 Mbit/s
        fit, fit_source = res["fit"], "measured now (short fit)"
        if links is not None and slow > 1.0:
            fit, divided = healthy_fit(fit, links, n)
            if divided:
                fit_source += ", rebased to healthy links (" + ", ".join(
                    f"{k} {v:.1f}x" for k, v in divided.items()) + " slower in it)"
    xp = resolve_device(base.device, local_rank())
    threads = limit_threads(base.threads) if base.threads else None  # as the training run (kept alive below)
    data, model, steps_per_epoch, _ = agree(comm, lambda: _setup(base, comm, xp))
    dtype = np.dtype(base.dtype)
    params = model.init_params(xp, dtype, base.seed)
    grad = xp.zeros_like(params)
    rng = np.random.default_rng(base.seed)
    batch = min(base.batch_size, data.x_train.shape[0])

    def forward_backward():  # as the training loop: gather a batch's rows, loss and gradient
        idx = xp.asarray(rng.choice(data.x_train.shape[0], batch, replace=False))
        model.loss_grad(params, xp.take(data.x_train, idx, axis=0), data.y_train[idx], grad, base.weight_decay)

    sync = lambda: synchronize(params)  # noqa: E731 (a no-op on the CPU)
    compute = _timed_median(forward_backward, probe_steps, sync)
    # the loop's agreement every CHECK_EVERY steps: the parameters' finiteness check (here) and
    # one MAX allreduce of two numbers (priced below, like recursive doubling)
    compute += _timed_median(lambda: bool(xp.isfinite(params).all()), probe_steps, sync) / StepGuard.CHECK_EVERY
    layers = model_layers(model)
    selfcomm = comm.split(comm.rank)
    algos = [base.algo] if "algo" in given else None
    compressors = [base.compressor] if "compressor" in given else None
    cands = candidates(algos=algos, compressors=compressors, densities=densities, bits=bits)
    measured, skipped, local = [], [], []
    half_add_s = None
    for c in cands:
        why = None
        try:
            cfg = load_config(cfg_path, {**given, **c})
            loc, dec, comp_s, pattern = _measure_local(cfg, selfcomm, params, grad,
                                                       (steps_per_epoch, xp, {}, layers), probe_steps, sizes, sync)
            add16 = 0.0
            if cfg.fp16_allreduce and xp is np:  # the same addition for every such candidate: timed once
                add16 = half_add_s = half_add_s or _half_add_seconds(params.size, probe_steps)
        except HpctrainError as exc:  # a configuration this model cannot run
            why = str(exc)
        failed = comm.allgather_array(np.array([why is not None], dtype=np.int8))[:, 0]
        if failed.any():  # skipped on every rank alike, so that all keep the same list
            skipped.append({"method": method_label(c),
                            "why": why or f"failed on rank {int(np.flatnonzero(failed)[0])}"})
            continue
        measured.append({"label": method_label(c), "config": c, "pattern": pattern})
        local.append((loc, dec, comp_s, add16))
    # the slowest rank decides a synchronous step: the maximum over ranks of every time
    times = np.array([compute] + [v for four in local for v in four], dtype=np.float64)
    comm.native_allreduce(times, "max")
    compute = float(times[0]) + (cost.predict("recursive", n, 16, fit, nodes=lay.nodes) or 0.0) / StepGuard.CHECK_EVERY
    for i, m in enumerate(measured):
        m["compute_s"], m["local_s"], m["decode_s"], m["compress_s"], add16 = (
            compute, *map(float, times[1 + 4 * i:5 + 4 * i]))
        if add16 > 0:  # float16 additions: priced at their own rate, per byte of halves
            m["reduce_s_per_byte"] = add16 / (2.0 * params.size)
        if runs:
            m["converged"] = runs.get(_run_key(m["config"]))
    out = {"job": {"ranks": n, "nodes": lay.nodes, "ranks_per_node": per_node, "dim": int(params.size),
                   "model": base.model, "batch_size": base.batch_size},
           "fit_source": fit_source, "fit": fit, "fit_note": cost.concurrent_note(fit), "compute_s": compute,
           "straggler_factor": slow,
           "rows": rank_rows(measured, n, lay.nodes, fit, collectives, slow),
           "whatif": {}, "skipped": skipped,
           "left_out": [] if compressors else [{"compressor": k, "why": v} for k, v in UNPRICED.items()
                                               if candidates(algos=algos, compressors=[k])]}
    for N in nodes_list:
        out["whatif"][str(int(N))] = rank_rows(measured, int(N) * per_node, int(N), fit, collectives, slow)
    del threads
    return out


def _bytes(b):
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if b >= scale:
            return f"{b / scale:.2f} {unit}"
    return f"{b:.0f} B"


def _numbers(text, flag, kind):
    names = [a.strip() for a in text.split(",") if a.strip()]
    if not names:
        raise ConfigError(f"{flag} names nothing; give at least one value")
    try:
        return [kind(v) for v in names]
    except ValueError:
        raise ConfigError(f"{flag} takes comma-separated numbers, got {text!r}") from None


def parse_grids(nodes, densities, bits, collectives):
    """The comma-separated option values ``--nodes``, ``--densities``, ``--bits-grid`` and
    ``--collectives``, checked (densities and bits by the training configuration's rules
    when each candidate is built).

    Raises:
        ConfigError: a value that is not a number, a node count below 1, a collective
            without a cost model.
    """
    from .collectives import ALLREDUCE

    node_counts = _numbers(nodes, "--nodes", int) if nodes.strip() else []
    if any(v < 1 for v in node_counts):
        raise ConfigError("--nodes: node counts must be at least 1")
    colls = [c.strip() for c in collectives.split(",") if c.strip()]
    bad = [c for c in colls if c not in ALLREDUCE or not cost.modelled(c)] or ([] if colls else ["(none)"])
    if bad:
        raise ConfigError(f"--collectives: no cost model of {', '.join(bad)}; choose from "
                          f"{', '.join(a for a in ALLREDUCE if cost.modelled(a))}")
    return node_counts, _numbers(densities, "--densities", float), _numbers(bits, "--bits-grid", int), colls


def format_report(res, top=None):
    """What rank 0 prints: the job line, this job's table, each what-if table, the methods
    this model cannot run."""
    job = res["job"]
    slow = res.get("straggler_factor", 1.0)
    parts = [f"hpctrain advise: {job['model']} (d = {job['dim']}), batch {job['batch_size']} per rank, "
             f"{job['ranks']} ranks on {job['nodes']} node(s); network fit {res['fit_source']}"
             + (f", slowest link {slow:.1f}x slower" if slow > 1 else "")
             + f"; compute {1e3 * res['compute_s']:.3f} ms/step",
             *([f"note: {res['fit_note']}"] if res.get("fit_note") else []),
             format_table(res["rows"], f"\npredicted on this job ({job['ranks']} ranks):", top)]
    for N, rows in res["whatif"].items():
        parts.append(format_table(rows, f"\nwhat-if: {N} nodes x {job['ranks_per_node']} ranks:", top))
    if res["skipped"]:
        parts.append(f"\n{len(res['skipped'])} method(s) cannot run this model: "
                     + "; ".join(f"{s['method']}: {s['why']}" for s in res["skipped"][:5]))
    for x in res.get("left_out", ()):
        parts.append(f"left out: {x['compressor']}: {x['why']}")
    return "\n".join(parts)


def format_table(rows, title, top=None):
    """The ranked table as text (``top`` rows, all when None)."""
    head = (f"{'#':>3}  {'method':<42} {'collective':<12} {'step ms':>9} {'compute':>8} {'local':>8} {'comm':>9} "
            f"{'x fp32':>7} {'x fp16':>7} {'bytes/step':>11}  converged")
    lines = [title, head]
    for r in rows[:top] if top else rows:
        sp = lambda v: f"{v:7.2f}" if v else f"{'-':>7}"  # noqa: E731
        lines.append(f"{r['rank']:>3}  {r['method']:<42} {r['collective']:<12} {1e3 * r['step_s']:9.3f} "
                     f"{1e3 * r['compute_s']:8.3f} {1e3 * r['local_s']:8.3f} {1e3 * r['comm_s']:9.3f} "
                     f"{sp(r['speedup_fp32'])} {sp(r['speedup_fp16'])} {_bytes(r['bytes_per_step']):>11}  "
                     f"{r.get('converged') or '-'}")
    if top and len(rows) > top:
        lines.append(f"     ... {len(rows) - top} more rows (all in --json)")
    return "\n".join(lines)


def plot_whatif(result, path, top=8):
    """Predicted step time against the number of nodes (every ``--nodes`` value, and this
    job when it has their ranks per node) of the ``top`` methods fastest at the largest size
    and the dense baseline, each at its best collective; log-log, written to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    job = result["job"]
    same_layout = job["ranks"] == job["nodes"] * job["ranks_per_node"]  # this job is one of the curve's points
    tables = {**({job["nodes"]: result["rows"]} if same_layout else {}),
              **{int(k): v for k, v in result["whatif"].items()}}
    if not tables:
        raise ConfigError("--plot needs --nodes (the node counts to plot)")
    sizes = sorted(tables)
    best = {N: {} for N in sizes}
    for N in sizes:
        for r in tables[N]:  # ranked: the first row of a method is its best collective
            best[N].setdefault(r["method"], r["step_s"])
    last = best[sizes[-1]]
    methods = sorted(last, key=last.get)[:top]
    if "dmsgd" in last and "dmsgd" not in methods:
        methods.append("dmsgd")
    fig, ax = plt.subplots(figsize=(8, 5))
    for m in methods:
        xs = [N for N in sizes if m in best[N]]
        ax.plot(xs, [1e3 * best[N][m] for N in xs], marker="o", label=m, linestyle="--" if m == "dmsgd" else "-")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(f"nodes ({result['job']['ranks_per_node']} rank(s) per node)")
    ax.set_ylabel("predicted step time (ms)")
    ax.set_title(f"{result['job']['model']}, d = {result['job']['dim']}: predicted step time by job size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def to_json(result):
    """``result`` of :func:`run_advise` as plain JSON-able data."""
    return json.loads(json.dumps(result, default=lambda o: dataclasses.asdict(o) if dataclasses.is_dataclass(o)
                                 else str(o)))
