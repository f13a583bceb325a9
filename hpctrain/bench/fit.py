"""``hpctrain bench fit``: measure the cost model's primitives, fit them, compare the survey's
formulas (:mod:`hpctrain.collectives.cost`) with the hand-made collectives, cache the fit.

What is timed is one allreduce of a *fresh* gradient: before every timed call each rank
rewrites its buffer (untimed), as backpropagation does before each step, then all ranks
meet at a barrier and the call is timed. A loop of calls on an unchanged buffer measures
something else on shared memory: the peer's caches still hold the lines it read in the
previous call, and every write must first invalidate them (measured here: a 2-rank ring of
4 MiB takes ~1.3 ms in such a loop and ~0.8 ms on a fresh buffer, and the loop's rounds
jump between the two).

Primitives, each timed per message size m between ranks 0 and 1 (the pairs 2i, 2i+1 for
the exchanges), in the state a collective's step finds its buffers in:

* ``oneway``: ping-pong of freshly written data into a buffer only the receiver has
  touched (a worker's gradient into the server's scratch), half the round trip; each
  round trip after an untimed rewrite of all buffers and a barrier. Fitted as
  alpha + m beta: the survey's alpha-beta model.
* ``oneway-sent``: the same hop into the buffer the receiver has just *sent* (the server's
  result into a worker's gradient, which the server has just read): the classic ping-pong
  loop where each side receives into, and sends back, one buffer.
* ``exchange``: ``Sendrecv`` both ways at once, fresh data into a receiver-only buffer
  (a ring reduce-scatter step into its scratch), per call after a rewrite and a barrier.
* ``exchange-sent``: the same into the buffer the peer has just read (an allgather step):
  a loop alternating two buffers, each rank sending what it has just received.
* ``reduce``: one element-wise add (c += b) of m bytes on every rank at once, b just
  received (a fresh a exchanged for it, untimed) and c freshly written: how the ring and
  the parameter servers add a received chunk into their fresh gradient.
* ``reduce-sent``: the same add into the buffer just sent (a += b), not below
  ``reduce``: how recursive doubling and gossip add (the peer has just read a, so every
  write may first invalidate its copy).
* ``concurrent``: an all-to-all, every rank sending m bytes to each of the n-1 others at once
  and receiving m bytes from each (nonblocking isend/irecv, all posted together, as the
  co-located multi-PS does), fresh data into a receiver-only buffer, per call after a
  rewrite and a barrier. Fitted per message, (time / (n-1)) = alpha_c + m beta_c, so beta_c
  is the seconds per byte a rank sends while all its flows run. Timed at every other size
  (from the largest down) up to (n-1) m <= the largest size, on 3 ranks or more, and only
  where one kind of link carries every flow (one node, or one rank per node). Its receives
  reuse the largest size's buffer, so the fit needs no more memory.
* per-call overhead of each collective: its time at 8 bytes minus the model's.

The transfer lines are fitted piecewise (:func:`fit_segments`): MPI switches protocol with
the size (eager, rendezvous, single copy) and the caches run out, so one line rarely covers
1 KiB..64 MiB. R^2 is reported on the linear scale. The reductions, which the survey does
not model, are kept as measured tables (:func:`interpolate_segments`): their cost per byte
rises and falls with the cache state of the operands.

Machines drift: on a shared VM the same transfer can run 2-3x slower for seconds to
minutes at a time. So nothing is timed in one block: each *round* times every primitive at
every size and every collective at every comparison size, in an order rotated each round,
and rounds follow until the medians settle. Each quantity is its median over the rounds, so
the fit and the times it is compared with come from the same mixture of the machine's
states; the report adds a second view, each quantity's fastest round with the model fitted
to those (a quantity that never caught the machine's fast state in a round makes that view
miss, which is why it is not the first).
"""

import datetime
import os
import time

import numpy as np

from ..collectives import ALLREDUCE, cost
from ..errors import ConfigError

__all__ = ["measure_round", "concurrent_sizes", "fit_line", "fit_segments", "interpolate_segments", "run_fit",
           "format_fit", "accuracy", "headline", "crossings",
           "time_fresh", "COMPARE", "OVERHEAD_BYTES", "TOLERANCE", "DRIFT_WARN", "TRANSFERS", "KEYS"]

COMPARE = ("ring", "multi-ps", "ps", "ring-unpartitioned", "recursive")
OVERHEAD_BYTES = 8
TRANSFERS = ("oneway", "oneway-sent", "exchange", "exchange-sent")  # the fitted primitives, in report order


def _iters(size):
    """Calls per timed loop (the loops of the ``-sent`` transfer primitives)."""
    return int(max(3, min(1000, 1e6 // max(size, 1024))))


def _reps(size, iters=10):
    """Fresh calls per size per round: ``iters``, more for small messages (cheap, noisier)."""
    return int(max(iters, min(10 * iters, 2e5 // max(size, 1024))))


def time_fresh(comm, fill, fn, reps):
    """Median over ``reps`` calls of the slowest rank's seconds in ``fn()``, each call after
    an untimed ``fill()`` (rewrite the buffers) and a barrier.

    Returns:
        Seconds (the same on every rank).
    """
    ts = np.empty(reps)
    for k in range(reps):
        fill()
        comm.barrier()
        t0 = time.perf_counter()
        fn()
        ts[k] = time.perf_counter() - t0
    return float(np.median(comm.allgather_array(ts).max(axis=0)))


def _zero(*arrays):
    def fill():
        for x in arrays:
            x[...] = 0  # sums of zeros stay finite (no denormals, no overflow)
    return fill


def _pingpong_fresh(comm, a, b, reps, peer=1):
    """One-way seconds (half a round trip, ranks 0 and ``peer``) of fresh data into buffers
    that only the receiver has touched: rank 0 sends a and receives into b, the peer receives
    into b and sends it back; every round trip after a rewrite of a and b and a barrier (the
    other ranks only join the barriers)."""
    r = comm.rank

    def trip():
        if r == 0:
            comm.send(a, peer, tag=60)
            comm.recv(b, peer, tag=61)
        else:
            comm.recv(b, 0, tag=60)
            comm.send(b, 0, tag=61)
    return _among(comm, r in (0, peer), _zero(a, b), trip, reps) / 2


def _inter_peer(comm):
    """The first rank of the second node when ranks 0 and 1 share a node and there are
    several nodes (then the ping-pong 0 <-> 1 is intra-node and this one is the network);
    else None."""
    from ..collectives.hierarchical import layout

    lay = layout(comm)
    if lay.nodes > 1 and lay.sizes[0] > 1:
        return lay.leaders[1]
    return None


def _layout_facts(comm):
    from ..collectives.hierarchical import layout

    lay = layout(comm)
    facts = {"nodes": lay.nodes, "ranks_per_node": max(lay.sizes)}
    rate = os.environ.get("HPCTRAIN_LINK_RATE", "")
    if rate.isdigit():
        facts["link_rate_bits"] = int(rate)  # set by the cluster emulator: the configured NIC rate
    return facts


def _among(comm, mine, fill, fn, reps):
    """:func:`time_fresh` where only the ranks with ``mine`` take part; the others only join
    the barriers and the gather."""
    if not mine:
        fill = fn = _zero()
    return time_fresh(comm, fill, fn, reps)


def _pingpong_sent(comm, a, it):
    """Mean one-way seconds between ranks 0 and 1, over ``it`` round trips after one warm-up.

    Each side receives into the buffer it has just sent and sends back what it has just
    received, as a parameter-server worker does with its gradient: the data leaves the
    cache it was written in, and every receive writes lines the peer has just read.
    """
    r = comm.rank
    comm.barrier()
    if r == 0:
        comm.send(a, 1, tag=60)
        comm.recv(a, 1, tag=61)  # warm-up round trip
        t0 = time.perf_counter()
        for _ in range(it):
            comm.send(a, 1, tag=60)
            comm.recv(a, 1, tag=61)
        return (time.perf_counter() - t0) / (2 * it)
    if r == 1:
        for _ in range(it + 1):
            comm.recv(a, 0, tag=60)
            comm.send(a, 0, tag=61)
    return 0.0


def _exchange_fresh(comm, a, b, reps):
    """Seconds of one paired Sendrecv (rank r with r^1) of fresh a into b, per call after a
    rewrite of a and b and a barrier (an odd world's last rank sits this one out)."""
    peer = comm.rank ^ 1
    return _among(comm, peer < comm.size, _zero(a, b), lambda: comm.sendrecv(a, peer, b, peer), reps)


def _exchange_sent(comm, a, b, it):
    """Mean seconds of a paired Sendrecv (rank r with r^1), alternating buffers: each rank
    sends what it has just received and receives into what it sent before."""
    peer = comm.rank ^ 1
    comm.barrier()
    if peer >= comm.size:  # odd world: the last rank sits this one out
        return 0.0
    comm.sendrecv(a, peer, b, peer)
    t0 = time.perf_counter()
    for k in range(it):
        if k & 1:
            comm.sendrecv(b, peer, a, peer)
        else:
            comm.sendrecv(a, peer, b, peer)
    return (time.perf_counter() - t0) / it


def concurrent_sizes(sizes, n, ranks_per_node=1, nodes=1):
    """The message sizes m (per peer) of the concurrent all-to-all: every other size from
    the largest that fits (n-1) m <= max(sizes) down, all that fit when that leaves fewer
    than 3 (a line needs them); none where fewer than 3 fit, on 2 ranks (one peer: that is
    the exchange) or where flows would mix the node's link with the network (several ranks
    on each of several nodes)."""
    fits = [s for s in sizes if (n - 1) * s <= max(sizes)]
    if n < 3 or (nodes > 1 and ranks_per_node > 1) or len(fits) < 3:
        return []
    every_other = fits[::-1][::2][::-1]
    return every_other if len(every_other) >= 3 else fits


def _alltoall_fresh(comm, a, recv, reps):
    """Seconds of one concurrent all-to-all of ``a`` (m bytes to each of the other ranks,
    m bytes from each into its own slice of ``recv``), every receive and send posted at
    once as the co-located multi-PS does, per call after a rewrite and a barrier."""
    n, r, m = comm.size, comm.rank, a.size
    slices = [recv[j * m : (j + 1) * m] for j in range(n - 1)]
    sources = [(r - i) % n for i in range(1, n)]

    def alltoall():
        reqs = [comm.irecv(slices[j], src, tag=62) for j, src in enumerate(sources)]
        reqs += [comm.isend(a, (r + i) % n, tag=62) for i in range(1, n)]
        comm.waitall(reqs)
    return time_fresh(comm, _zero(a, recv[: (n - 1) * m]), alltoall, reps)


def _add_fresh(comm, a, b, target, dt, reps):
    """Seconds of ``target += b`` (as ``dt``) right after a fresh a was sent to the peer and
    b received from it (untimed, with the rewrite of a, b and target).

    ``target`` another rewritten buffer: how the ring and the parameter servers add a chunk
    they have just received into their fresh vector. ``target`` a itself (the buffer just
    sent): recursive doubling's add.
    """
    peer = comm.rank ^ 1
    whole = a.size // dt.itemsize * dt.itemsize  # bytes that form whole elements
    x, y = target[:whole].view(dt), b[:whole].view(dt)
    zero = _zero(a, b, target)

    def fill():
        zero()
        comm.sendrecv(a, peer, b, peer)
    return _among(comm, peer < comm.size, fill, lambda: np.add(x, y, out=x), reps)


def _ranks_per_core():
    """Ranks on this node per core this rank may run on (> 1: ranks share cores)."""
    from ..threads import _cores, local_ranks

    return local_ranks() / max(_cores(), 1)


def _slowest(comm, seconds):
    return float(comm.allgather_array(np.array([seconds]))[:, 0].max())


KEYS = ("oneway", "oneway-sent", "exchange", "exchange-sent", "add", "add-sent")  # per-size lists of a round


def measure_round(comm, sizes, algos, compare_sizes, dtype, iters, bufs, cbufs, rotate=0, csizes=()):
    """One round: every primitive at every size, every algorithm at 8 B and ``compare_sizes``.

    The round's parts (the primitives as one part, then each algorithm) run in an order
    rotated by ``rotate``, so that no part always follows the same one: a part that always
    comes right after the primitives' largest buffers would always find the caches (and,
    on a VM, the host) in the state those left behind.

    Args:
        iters: fresh calls of each algorithm per size (more at small sizes: :func:`_reps`).
        bufs: dict size -> (a, b, c) uint8 buffers of the primitives (reused across rounds).
        cbufs: dict size -> ``dtype`` buffer of the collectives (reused across rounds).
        csizes: message sizes of the concurrent all-to-all (:func:`concurrent_sizes`; its
            receives go to the largest size's third buffer, (n-1) m <= that size).

    Returns:
        A dict with the :data:`KEYS` (``add``: a received buffer into a fresh one;
        ``add-sent``: into the buffer just sent), lists of seconds per size; ``concurrent``
        (with ``csizes``): seconds of the all-to-all per size of ``csizes``; ``algos``:
        {algo: list of seconds per size of [8] + compare_sizes} (median over fresh calls of
        the slowest rank's time).
    """
    parts = ["primitives", *algos]
    peer = _inter_peer(comm)
    out = {**{k: [] for k in KEYS}, **({"inter": []} if peer is not None else {}),
           **({"concurrent": []} if csizes else {}), "algos": {}}
    for i in range(len(parts)):
        part = parts[(i + rotate) % len(parts)]
        if part == "primitives":
            _primitives(comm, sizes, np.dtype(dtype), bufs, iters, out)
            recv = bufs[max(sizes)][2]  # the largest buffer, free between the primitives
            for m in csizes:
                out["concurrent"].append(_alltoall_fresh(comm, bufs[m][0], recv, _reps((comm.size - 1) * m, iters)))
        else:
            out["algos"][part] = _collective(comm, ALLREDUCE[part], [OVERHEAD_BYTES, *compare_sizes], iters, cbufs)
    return out


def _primitives(comm, sizes, dt, bufs, iters, out):
    for size in sizes:
        a, b, c = bufs[size]
        it, reps = _iters(size), _reps(size, iters)
        out["oneway"].append(_pingpong_fresh(comm, a, b, reps))
        out["oneway-sent"].append(_slowest(comm, _pingpong_sent(comm, a, it)))
        out["exchange"].append(_exchange_fresh(comm, a, b, reps))
        out["exchange-sent"].append(_slowest(comm, _exchange_sent(comm, a, b, it)))
        out["add"].append(_add_fresh(comm, a, b, c, dt, reps))
        out["add-sent"].append(_add_fresh(comm, a, b, a, dt, reps))
        if "inter" in out:  # ranks 0 and 1 share a node: the network's ping-pong too
            out["inter"].append(_pingpong_fresh(comm, a, b, reps, peer=_inter_peer(comm)))


def _collective(comm, fn, sizes, iters, cbufs):
    times = []
    for size in sizes:
        buf = cbufs[size]
        fn(comm, buf, "sum")  # warm-up (scratch buffers, first touch)
        times.append(time_fresh(comm, _zero(buf), lambda: fn(comm, buf, "sum"), _reps(size, iters)))
    return times


def fit_line(sizes, times, latency=True):
    """Fit t = a + b S minimising relative error; returns (a, b, r2) with b >= 0.

    Args:
        latency: ``a`` is a latency (the line reaches down to the smallest messages), so
            it cannot be negative. A line of larger sizes only (a segment above the first)
            is used within its own range, where its intercept is no latency and may be
            negative (a convex stretch, such as caches running out).
    """
    S, t = np.asarray(sizes, float), np.asarray(times, float)
    w = 1.0 / t
    A = np.stack([w, S * w], axis=1)
    (a, b), *_ = np.linalg.lstsq(A, np.ones_like(t), rcond=None)
    if a < 0 and latency:  # latency cannot be negative: refit the slope alone
        a, b = 0.0, float(np.sum(S * t * w * w) / np.sum(S * S * w * w))
    elif b < 0:  # nor can a transfer take negative time: a constant
        a, b = float(np.sum(t * w * w) / np.sum(w * w)), 0.0
    pred = a + b * S
    ss_res = float(np.sum((t - pred) ** 2))
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return float(a), float(b), r2


def fit_segments(sizes, times, min_points=3, max_segments=5, floor=1e-4):
    """Piecewise alpha-beta: consecutive lines, each over at least ``min_points`` sizes.

    MPI changes protocol with the message size (eager copies through shared cells,
    rendezvous/single-copy above a threshold) and caches run out, so one line rarely fits
    1 KiB..64 MiB. For every k <= ``max_segments`` the best split into k segments (least
    relative squared error, each segment fitted by :func:`fit_line`) is found by dynamic
    programming, and k is chosen by the Bayesian information criterion
    N ln(SSE/N) + (3k - 1) ln N (two parameters per line, k - 1 break points), with the
    relative error floored at an RMS of ``floor`` (timings are never more precise), so an
    extra line must explain a real bend, not noise.

    Returns:
        ``(segments, r2)``: a list of dicts ``alpha``, ``beta``, ``min_bytes``,
        ``max_bytes`` (None for the last), ``r2`` each; and R^2 of the whole piecewise fit
        on the linear scale.
    """
    S, t = np.asarray(sizes, float), np.asarray(times, float)
    N = len(S)
    memo = {}

    def seg(i, j):  # fit and relative SSE of points i..j-1 (only the first line has a latency)
        if (i, j) not in memo:
            a, b, r2 = fit_line(S[i:j], t[i:j], latency=i == 0)
            memo[(i, j)] = ((a, b, r2), float(np.sum(((a + b * S[i:j]) / t[i:j] - 1) ** 2)))
        return memo[(i, j)]

    # table[j] = (error, parts): best split of points 0..j-1 into the segments so far
    table, best, best_score = {0: (0.0, [])}, None, np.inf
    for k in range(1, min(max_segments, N // min_points) + 1):
        nxt = {}
        for i, (err, parts) in table.items():
            for j in range(i + min_points, N + 1):
                e = err + seg(i, j)[1]
                if j not in nxt or e < nxt[j][0]:
                    nxt[j] = (e, parts + [(i, j)])
        table = nxt
        if N in table:
            score = N * np.log(max(table[N][0], N * floor**2) / N) + (3 * k - 1) * np.log(N)
            if score < best_score - 1e-9:
                best, best_score = table[N], score
    segs, pred = [], np.empty_like(t)
    for idx, (i, j) in enumerate(best[1]):
        (a, b, r2), _ = seg(i, j)
        last = idx == len(best[1]) - 1
        segs.append({"alpha": a, "beta": b, "r2": r2, "min_bytes": int(S[i]),
                     "max_bytes": None if last else int(S[j])})
        pred[i:j] = a + b * S[i:j]
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    r2_all = 1.0 - float(np.sum((t - pred) ** 2)) / ss_tot if ss_tot > 0 else 1.0
    return segs, r2_all


def interpolate_segments(sizes, times):
    """Segments that join consecutive measured points (a measured table, not a fit).

    Used for the reduction, whose cost per byte changes with the cache state of its operands
    (hot, just read by a peer, out of cache) too often for a few lines; the survey models no
    reduction cost at all. Below the first size the first segment applies, above the last
    the last one.
    """
    S, t = np.asarray(sizes, float), np.asarray(times, float)
    if len(S) == 1:
        return [{"alpha": float(t[0]), "beta": 0.0, "min_bytes": int(S[0]), "max_bytes": None}]
    segs = []
    for i in range(len(S) - 1):
        beta = float((t[i + 1] - t[i]) / (S[i + 1] - S[i]))
        segs.append({"alpha": float(t[i] - beta * S[i]), "beta": beta, "min_bytes": int(S[i]),
                     "max_bytes": None if i == len(S) - 2 else int(S[i + 1])})
    return segs


def _stack(samples, key):
    """One quantity over the rounds: an array (rounds x sizes); ``key`` a :data:`KEYS` entry
    or ``("algos", name)``."""
    if isinstance(key, tuple):
        return np.array([smp["algos"][key[1]] for smp in samples])
    return np.array([smp[key] for smp in samples])


def _quantities(samples):
    return [*KEYS, *(k for k in ("inter", "concurrent") if k in samples[0]),
            *(("algos", a) for a in samples[0]["algos"])]


def _settled(samples, window=5, tol=0.03):
    """Whether no median over the rounds moved by more than ``tol`` in the last ``window`` rounds."""
    if len(samples) <= window:
        return False
    for key in _quantities(samples):
        before = np.median(_stack(samples[:-window], key), axis=0)
        if np.any(np.abs(np.median(_stack(samples, key), axis=0) - before) > tol * before):
            return False
    return True


def _reduce_sent(tables):
    """The reduce-sent table: the add into the buffer just sent, never below the plain add."""
    return np.maximum(tables["add-sent"], tables["add"])


def summary_alpha_beta(segments):
    """The survey's two numbers from a piecewise fit: alpha the latency, the intercept of
    the *first* (small-message) line, never below 0; beta the seconds per byte of the
    *last* (large-message) line. A later line's intercept is no latency: it may be
    negative where the bandwidth improves with size."""
    return max(0.0, float(segments[0]["alpha"])), float(segments[-1]["beta"])


def _build_fit(n, sizes, tables, algo_times, nodes=1, csizes=()):
    """The cost model's fit (see :mod:`hpctrain.collectives.cost`) from one table per
    :data:`KEYS` entry (seconds per size) and each algorithm's times ([8 B] + compared
    sizes), which give its per-call overhead; with ``csizes``, ``tables["concurrent"]``
    (seconds of the all-to-all per size of ``csizes``) gives ``fit["concurrent"]``."""
    lines = {k: fit_segments(sizes, tables[k]) for k in TRANSFERS}
    one_segs, r2 = lines["oneway"]
    red_segs = interpolate_segments(sizes, tables["add"])
    alpha, beta = summary_alpha_beta(one_segs)
    fit = {
        "alpha": alpha, "beta": beta, "gamma": max(red_segs[-1]["beta"], 0.0),
        "r2": r2, "segments": one_segs,
        **{k: {"segments": segs, "r2": r2k} for k, (segs, r2k) in lines.items() if k != "oneway"},
        "reduce": {"segments": red_segs, "table": True},
        "reduce-sent": {"segments": interpolate_segments(sizes, _reduce_sent(tables)), "table": True},
        "overhead": {},
    }
    if "inter" in tables:  # the network, measured between nodes (ranks 0 and 1 share one)
        segs, r2i = fit_segments(sizes, tables["inter"])
        fit["inter"] = {"alpha": segs[-1]["alpha"], "beta": segs[-1]["beta"], "segments": segs, "r2": r2i}
    if len(csizes) and "concurrent" in tables:  # per message: the all-to-all's time over its n-1 messages
        segs, r2c = fit_segments(csizes, np.asarray(tables["concurrent"], float) / (n - 1))
        fit["concurrent"] = {"segments": segs, "r2": r2c, "peers": n - 1, "sizes": [int(c) for c in csizes]}
    for algo, times in algo_times.items():
        fit["overhead"][algo] = max(0.0, float(times[0]) - cost.predict(algo, n, OVERHEAD_BYTES, fit, nodes=nodes))
    return fit


def run_fit(comm, sizes, compare_sizes, algos=COMPARE, dtype="float32", iters=10, rounds=20,
            save=True, path=None, max_rounds=None):
    """Measure the primitives and ``algos`` in interleaved rounds; fit; cache.

    Args:
        sizes: message sizes of the primitives (at least 3).
        compare_sizes: sizes (bytes per rank) at which ``algos`` are timed and predicted.
        iters: fresh calls of each algorithm per size per round (more for small sizes).
        rounds: at least this many rounds; every quantity is its median over the rounds.
            More follow, up to ``max_rounds`` (default 3 x ``rounds``), while some median
            still moved by more than 3% in the last 5 rounds. Every rank sees the same
            (gathered) times, so all take the same decision.

    Returns:
        A dict: ``fit`` (see :mod:`hpctrain.collectives.cost`; from the median rounds),
        ``points`` (median and fastest primitive times per size), ``rows`` (per algorithm
        and size: ``time_us`` and ``pred_us`` of the median rounds, ``fastest_us`` and
        ``pred_fastest_us`` of the fastest rounds with the model fitted to those),
        ``crossovers``, ``path``, ``rounds`` (every round's raw times).
    """
    if comm.size < 2:
        raise ConfigError("bench fit needs at least 2 ranks (it ping-pongs between ranks 0 and 1)")
    sizes = sorted(set(int(s) for s in sizes))
    if len(sizes) < 3:
        raise ConfigError(f"bench fit needs at least 3 message sizes to fit a line, got {len(sizes)}")
    fittable = [a for a in ALLREDUCE if cost.modelled(a)]
    bad = [a for a in algos if a not in fittable]
    if bad:
        raise ConfigError(f"bench fit has no cost model of {', '.join(map(repr, bad))}; "
                          f"choose from {', '.join(fittable)}")
    bufs = {s: tuple(np.zeros(s, np.uint8) for _ in range(3)) for s in sizes}
    cbufs = {s: np.zeros(max(s // np.dtype(dtype).itemsize, 1), dtype=dtype) for s in [OVERHEAD_BYTES, *compare_sizes]}
    max_rounds = max(rounds, max_rounds or 3 * rounds)
    facts = _layout_facts(comm)
    nodes = facts["nodes"]
    csizes = concurrent_sizes(sizes, comm.size, facts["ranks_per_node"], nodes)
    samples = []
    while len(samples) < max_rounds and (len(samples) < rounds or not _settled(samples)):
        samples.append(measure_round(comm, sizes, algos, compare_sizes, dtype, iters, bufs, cbufs, rotate=len(samples),
                                     csizes=csizes))
    rounds = len(samples)
    stacks = {k: _stack(samples, k) for k in _quantities(samples)}
    median = {k: np.median(st, axis=0) for k, st in stacks.items()}
    fastest = {k: st.min(axis=0) for k, st in stacks.items()}
    fit = _build_fit(comm.size, sizes, median, {a: median[("algos", a)] for a in algos}, nodes, csizes)
    fit.update(facts)
    fit.update({"fit_ranks": comm.size, "ranks_per_core": _ranks_per_core(), "dtype": dtype, "sizes": sizes,
                "rounds": rounds, "created": datetime.datetime.now().isoformat(timespec="seconds")})
    # the same model from each quantity's fastest round: the second view
    fit_fastest = {**_build_fit(comm.size, sizes, fastest, {a: fastest[("algos", a)] for a in algos}, nodes, csizes),
                   **facts}
    rows = []
    for algo in algos:
        st = stacks[("algos", algo)][:, 1:]
        q25, q75 = np.percentile(st, 25, axis=0), np.percentile(st, 75, axis=0)
        meds, fasts = median[("algos", algo)][1:], fastest[("algos", algo)][1:]
        for size, t, f, lo, hi in zip(compare_sizes, meds, fasts, q25, q75):
            rows.append({"algo": algo, "size": int(size), "ranks": comm.size, "time_us": float(t) * 1e6,
                         "iqr_pct": float(100 * (hi - lo) / t) if t > 0 else 0.0,  # spread of the rounds
                         "pred_us": cost.predict(algo, comm.size, size, fit, nodes=nodes) * 1e6,
                         "fastest_us": float(f) * 1e6,
                         "pred_fastest_us": cost.predict(algo, comm.size, size, fit_fastest, nodes=nodes) * 1e6})
    cross = []
    for i, a in enumerate(algos):
        for b in algos[i + 1:]:
            cross += crossings(a, b, comm.size, fit, nodes=nodes)
    where = None
    if save and comm.rank == 0:
        where = cost.save_fit(fit, path)
    points = {"sizes": sizes, **{k: median[k].tolist() for k in TRANSFERS},
              **{f"{k}_fastest": fastest[k].tolist() for k in TRANSFERS},
              "reduce": median["add"].tolist(), "reduce_sent": _reduce_sent(median).tolist(),
              **({"concurrent_sizes": [int(c) for c in csizes], "concurrent": median["concurrent"].tolist()}
                 if csizes else {})}
    return {"fit": fit, "points": points, "rows": rows, "crossovers": cross, "path": where,
            "compare_sizes": [int(c) for c in compare_sizes], "rounds": samples}


def crossings(a, b, n, fit, nodes=1, lo=8, hi=1 << 30, limit=8):
    """Every size where ``a`` and ``b`` swap as the predicted faster one (a piecewise fit
    can swap them more than once), with the same model the table's predictions use.

    Returns:
        A list of ``{"a", "b", "bytes", "below", "above"}``: the crossing and the faster
        one just below and just above it.
    """
    out = []
    while len(out) < limit and lo < hi:
        s = cost.crossover(a, b, n, fit, lo=lo, hi=hi, nodes=nodes)
        if s is None:
            break
        def first(size):
            return a if cost.predict(a, n, size, fit, nodes=nodes) < cost.predict(b, n, size, fit, nodes=nodes) else b

        out.append({"a": a, "b": b, "bytes": s, "below": first(s / 1.02), "above": first(s * 1.02)})
        lo = s * 1.05
    return out


TOLERANCE = 0.20  # |predicted / measured - 1| reported as "within" below this


def headline(seg, top=None):
    """A segment's figures as osu_latency / osu_bw users read them: (latency in seconds,
    bandwidth in bytes/s), both positive and finite.

    The latency is the intercept when it is one (>= 0); a later segment's negative
    intercept is no latency, so its headline is the time of its smallest message. The
    bandwidth is 1/beta; a flat segment (beta = 0) gets its largest message over its
    time instead of an infinite figure.

    Args:
        seg: a segment of :func:`fit_segments` (alpha, beta, min_bytes, max_bytes).
        top: the largest measured size, for the last segment (max_bytes None).
    """
    lo, hi = seg["min_bytes"], seg["max_bytes"] or top or seg["min_bytes"]
    alpha, beta = float(seg["alpha"]), float(seg["beta"])
    latency = alpha if alpha >= 0 else alpha + beta * lo
    bandwidth = 1.0 / beta if beta > 0 else hi / max(alpha + beta * hi, 1e-12)
    return latency, bandwidth


def _segment_lines(title, segs, r2, top=None):
    lines = [f"{title}: R^2 = {r2:.5f} ({len(segs)} segment{'s' if len(segs) > 1 else ''}, linear scale)"]
    for k, seg in enumerate(segs):
        lat, bw = headline(seg, top)
        lines.append(f"  {seg['min_bytes']:>9} B .. {seg['max_bytes'] or 'inf':>9}: "
                     f"latency \u03b1 = {lat * 1e6:.2f} \u00b5s, bandwidth 1/\u03b2 = {bw / 1e9:.2f} GB/s")
        what = "alpha" if k == 0 else "intercept"  # only the first line reaches the latency
        lines.append(f"  {'':>25} (line: {what} {seg['alpha'] * 1e6:.3f} us, beta {seg['beta'] * 1e9:.4f} ns/B, "
                     f"R^2 {seg['r2']:.5f})")
    return lines


DRIFT_WARN = 1.3  # median round / fastest round above which the report says the machine drifted


def accuracy(rows, pred="pred_us", meas="time_us"):
    """Per algorithm: the range of pred/meas, how many sizes are within TOLERANCE, and the
    drift (median over sizes of the median round's time / the fastest round's).

    Args:
        pred, meas: the row keys compared: the median rounds' (default) or
            ``pred_fastest_us`` and ``fastest_us``, the fastest rounds'.
    """
    out = {}
    for algo in dict.fromkeys(r["algo"] for r in rows):
        mine = [r for r in rows if r["algo"] == algo]
        ratios = np.array([r[pred] / r[meas] for r in mine])
        out[algo] = {"min_ratio": float(ratios.min()), "max_ratio": float(ratios.max()),
                     "within": int(np.sum(np.abs(ratios - 1) <= TOLERANCE)), "rows": len(ratios),
                     "drift": float(np.median([r["time_us"] / r["fastest_us"] for r in mine]))}
    return out


def network_check(f):
    """``(measured, configured)`` network bandwidth in bytes/s (1/beta of the inter-node
    link against the emulator's configured rate), or None where either is unknown."""
    rate = f.get("link_rate_bits")
    if not rate or f.get("nodes", 1) < 2:
        return None
    beta = f["inter"]["beta"] if "inter" in f else f["beta"]
    return (1.0 / beta if beta > 0 else float("inf")), rate / 8.0


def _network_lines(f):
    out = []
    if f.get("nodes", 1) > 1:
        where = ("ping-pong rank 0 <-> 1 crosses nodes: the fit above is the network" if "inter" not in f else
                 "ranks 0 and 1 share a node: the fit above is the node; the network, rank 0 <-> first rank of node 2")
        out.append(f"# {f['nodes']} nodes, up to {f['ranks_per_node']} ranks per node: {where}")
        if "inter" in f:
            out += _segment_lines("one-way across nodes (ping-pong, fresh buffers): alpha-beta", f["inter"]["segments"],
                                  f["inter"]["r2"])
    chk = network_check(f)
    if chk:
        meas, conf = chk
        out.append(f"# network: 1/beta = {meas / 1e9:.4f} GB/s, configured link {conf / 1e9:.4f} GB/s"
                   f" ({f['link_rate_bits'] / 1e6:g} Mbit/s): ratio {meas / conf:.3f}")
    return out


def _concurrent_lines(f, pts):
    """The concurrent all-to-all's fit and points, or one line on why there is none."""
    conc = f.get("concurrent")
    if not conc:
        return ["# concurrent all-to-all: not measured (it needs 3 ranks or more, on one node or one rank per node, "
                "and 3 sizes m with (ranks-1) m <= --max-bytes); concurrent flows are priced like exchanges"]
    lines = _segment_lines(f"concurrent all-to-all ({conc['peers']} peers at once, isend/irecv; per message: "
                           f"time / {conc['peers']}): alpha_c-beta_c", conc["segments"], conc["r2"],
                           max(conc["sizes"]))
    exchange = cost.link(f, max(conc["sizes"]), "exchange")[1]
    if exchange > 0 and conc["segments"][-1]["beta"] > 0:
        lines.append(f"  beta_c / the exchange's beta at {max(conc['sizes'])} B: "
                     f"{conc['segments'][-1]['beta'] / exchange:.2f}")
    lines.append(f"#{'size':>11} {'all-to-all(us)':>15} {'fit':>11} {'err%':>6}")
    for s, t in zip(pts.get("concurrent_sizes", []), pts.get("concurrent", [])):
        p = conc["peers"] * cost.primitive(f, "concurrent", s)
        lines.append(f"{s:>12} {t * 1e6:>15.2f} {p * 1e6:>11.2f} {100 * (p - t) / t:>6.1f}")
    return lines


def format_fit(res):
    """Text report of :func:`run_fit`: the fits, the points, predicted vs measured, crossovers."""
    f, pts = res["fit"], res["points"]
    titles = {"oneway": "one-way (ping-pong rank 0 <-> 1, fresh data into a fresh buffer): alpha-beta",
              "oneway-sent": "one-way into the buffer just sent (ping-pong loop on one buffer)",
              "exchange": "exchange (Sendrecv both ways, pairs; fresh data into a fresh buffer)",
              "exchange-sent": "exchange into the buffer just sent (Sendrecv loop, alternating buffers)"}
    lines = [f"# cost model fit: {f['fit_ranks']} ranks, {f['rounds']} interleaved rounds (until no median moved by 3% in"
             " 5 rounds), each quantity its median round; collectives timed on a freshly written buffer",
             *_segment_lines(titles["oneway"], f["segments"], f["r2"], max(pts["sizes"]))]
    for k in TRANSFERS[1:]:
        if k in f:
            lines += _segment_lines(titles[k], f[k]["segments"], f[k]["r2"], max(pts["sizes"]))
    lines += _network_lines(f)
    lines += _concurrent_lines(f, pts)
    lines += [f"reduce (a += b, {f['dtype']}) and reduce-sent (into the buffer just sent): measured at each size"
              " below, linear in between",
              *([f"WARNING: {f['ranks_per_core']:.1f} ranks per core: ranks take turns on the cores, which the "
                 "model (one core per rank) does not describe"] if f.get("ranks_per_core", 0) > 1 else []),
              "per-call overhead (time at 8 B minus the model): "
              + ", ".join(f"{a} {o * 1e6:.1f} us" for a, o in f["overhead"].items()),
              "# primitives (us): median round, the fit's value, and the fit's error in %",
              f"#{'size':>11} " + " ".join(f"{k:>13} {'fit':>9} {'err%':>5}" for k in TRANSFERS)
              + f" {'reduce':>9} {'red-sent':>9}"]
    for i, s in enumerate(pts["sizes"]):
        cells = []
        for k in TRANSFERS:
            t, p = pts[k][i], cost.primitive(f, k, s)
            cells.append(f"{t * 1e6:>13.2f} {p * 1e6:>9.2f} {100 * (p - t) / t:>5.1f}")
        lines.append(f"{s:>12} " + " ".join(cells) + f" {pts['reduce'][i] * 1e6:>9.2f} {pts['reduce_sent'][i] * 1e6:>9.2f}")
    lines += ["", "# predicted vs measured (per round the median call, slowest rank): the median round with the model of "
                  "the median rounds (iqr%: the rounds' interquartile range, % of the median) | the fastest round "
                  "with the model of the fastest rounds, "
                  f"{res['rows'][0]['ranks'] if res['rows'] else f['fit_ranks']} ranks",
              f"#{'algo':>19} {'size':>11} {'measured(us)':>13} {'iqr%':>6} {'predicted(us)':>14} {'pred/meas':>10} |"
              f" {'fastest(us)':>11} {'predicted':>10} {'pred/meas':>10}"]
    for r in res["rows"]:
        lines.append(f"{r['algo']:>20} {r['size']:>11} {r['time_us']:>13.1f} {r.get('iqr_pct', 0.0):>6.1f}"
                     f" {r['pred_us']:>14.1f}"
                     f" {r['pred_us'] / r['time_us']:>10.2f} | {r['fastest_us']:>11.1f} {r['pred_fastest_us']:>10.1f}"
                     f" {r['pred_fastest_us'] / r['fastest_us']:>10.2f}")
    acc, acc_fast = accuracy(res["rows"]), accuracy(res["rows"], "pred_fastest_us", "fastest_us")
    for algo, a in acc.items():
        q = acc_fast[algo]
        lines.append(f"# {algo}: pred/meas {a['min_ratio']:.2f} .. {a['max_ratio']:.2f}, "
                     f"{a['within']}/{a['rows']} sizes within {TOLERANCE:.0%} (fastest rounds: {q['min_ratio']:.2f} .. "
                     f"{q['max_ratio']:.2f}, {q['within']}/{q['rows']}; median round {a['drift']:.2f}x the fastest)")
    if acc and max(a["drift"] for a in acc.values()) > DRIFT_WARN:
        lines.append(f"# NOTE: the median round took over {DRIFT_WARN}x the fastest: the machine drifted during the "
                     "run; where the two views disagree, rerun (or raise --rounds) before trusting a miss")
    lines += ["", "# model crossovers (size where two algorithms are predicted equal)"]
    for c in res["crossovers"]:
        sides = f" ({c['below']} faster below, {c['above']} above)" if "below" in c else ""
        lines.append(f"{c['a']:>20} = {c['b']:<20} at {c['bytes']:.0f} B{sides}")
    if not res["crossovers"]:
        lines.append("(none)")
    lines.append("# fastest per size: measured vs predicted")
    for s in dict.fromkeys(r["size"] for r in res["rows"]):
        blk = [r for r in res["rows"] if r["size"] == s]
        m = min(blk, key=lambda r: r["time_us"])["algo"]
        p = min(blk, key=lambda r: r["pred_us"])["algo"]
        lines.append(f"{s:>12}  measured {m:<20} predicted {p}")
    if res.get("path"):
        lines.append(f"# fit cached at {res['path']} (used by --collective auto; rerun to refit)")
    return "\n".join(lines)
