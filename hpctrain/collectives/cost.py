"""The alpha-beta(-gamma) cost model of the collectives (survey 003, §1.3) and the cached fit.

A message of m bytes costs alpha + m beta (latency, inverse bandwidth); reducing m bytes
costs delta + m gamma (the survey assumes gamma = 0; here it is measured, because NumPy's
add runs at memory bandwidth, the same order as an intra-node transfer). Each algorithm is
a list of *steps* (:func:`steps`), each step a count of one primitive on m bytes.

On a network the line alone decides a transfer's cost. On shared memory (MPICH's single
copy: the receiver's core reads the sender's memory) so does the *destination*: writing
into a buffer the peer has just read first invalidates the peer's cached copy. Every
collective has both kinds of receive (its scratch buffer, which only it touches; its own
vector, which it has just sent), so each transfer primitive comes in both kinds:

* ``oneway``: one message in one direction while the peer waits, fresh data into a buffer
  only the receiver has touched (a PS worker's gradient into the server's scratch).
  Priced by the ping-pong fit: ``alpha``, ``beta`` (``segments``).
* ``oneway-sent``: the same into the buffer the receiver has just sent (the PS result back
  into a worker's gradient, which the server has just read). ``fit["oneway-sent"]``.
* ``exchange``: every rank sends m bytes and receives m bytes at once into its scratch (a
  ring reduce-scatter step, a recursive-doubling step, a multi-PS gather). The survey
  prices it like a one-way message (a full-duplex link); ``fit["exchange"]``.
* ``exchange-sent``: the same into the buffer just sent (a ring allgather step, the multi-PS
  return). ``fit["exchange-sent"]``.
* ``concurrent``: every rank sends m bytes to each of several peers *at once* and receives
  m bytes from each (nonblocking sends and receives posted together: gossip with
  degree > 1). Concurrent flows share a node's link worse than one
  flow each way (an emulated 100 Mbit/s link measured 1.8x the exchange's time per byte),
  so ``bench fit`` times an all-to-all of its n ranks and fits ``fit["concurrent"]``: one
  line (per message) alpha_c + m beta_c, where beta_c is the seconds per byte a rank sends
  while its n-1 flows run (``peers`` in the fit says how many). Without it (a fit from an
  older ``bench fit``, from 2 ranks, or from several ranks on each of several nodes, where
  the all-to-all mixes the two links) it is priced like ``exchange``: today's model.
* ``concurrent-sent``: the same into the buffers just sent, priced
  like ``concurrent`` (on a network the destination's cache does not matter; the fit does
  not time it apart, to stay short); without a concurrent fit, like ``exchange-sent``.
* ``reduce``: one element-wise pass over m bytes (``fit["reduce"]``, measured per size;
  without it, m x ``fit["gamma"]``), its operands in this core's cache: the ring, the PS
  and multi-PS add a received chunk into their fresh vector.
* ``reduce-sent``: the same pass into the buffer this rank has *just sent*
  (``fit["reduce-sent"]``, else as ``reduce``): recursive doubling and gossip. Measured here
  at 2-6x a hot add for 64-512 KiB.

A fit without the ``-sent`` entries prices them like the plain ones, one without
``exchange`` prices it like ``oneway`` (the survey's single link), and one without
``concurrent`` prices the concurrent kinds like ``exchange`` and ``exchange-sent``.

Per call, each hand-made collective also spends a constant software overhead (Python
glue, rank synchronisation between dependent steps): ``fit["overhead"][algo]`` seconds,
measured by ``bench fit`` at 8 bytes, where messages cost almost nothing (LogP's o).

n ranks, S bytes per rank (the whole vector); each algorithm receives as many times into
its own vector (``-sent``) as into its scratch:

=====================  =========================  =========================  ===========================  ======================
algorithm              oneway (+ oneway-sent)     exchange (+ exchange-sent) concurrent (+ conc.-sent)    reduce
=====================  =========================  =========================  ===========================  ======================
ring                                              (n-1) + (n-1) x S/n (*)                                 (n-1) x S/n (*)
multi-ps (co-located)                             (n-1) + (n-1) x S/n (*)                                 (n-1) x S/n (*)
ps (rank 0 serves)     (n-1) + (n-1) x S (**)                                                             (n-1) x S
ring-unpartitioned     (n-1) + (n-1) x S                                                                  (n-1) x S
recursive              f + f x S                  log2 p x S (scratch only)                               f x S, sent: log2 p x S
gossip (degree d)                                 d = 1: 1 x S               d > 1: d x S (scratch only)  2d x S, sent: 1 x S
sparse-allgather                                  (n-1) x 8 + (n-1) x P                                   n x P
=====================  =========================  =========================  ===========================  ======================

The co-located multi-PS runs each phase in n-1 pairwise rounds (one shard to rank r+i,
one from rank r-i), so it is priced as the ring: one flow in and one out per rank at a
time. Gossip with several neighbours is the concurrent pattern. Recursive doubling stays
on ``exchange``: its step is one Sendrecv with one peer,
which is exactly what the exchange primitive times (one flow each way, every pair at
once), so its beta already is that pattern's; beta_c describes n-1 flows into and out of
every node at once, which recursive doubling never has. The ring, the sparse allgather
and the ring hops talk to one neighbour each way per step (exchange); the single PS's
server matches its workers' messages one at a time (the up phase is serial) and its
replies leave one link whose bytes the model already adds up (oneway), so neither uses
the concurrent term.

(**) and n-1 empty messages before them (``oneway`` of 0 bytes: the server gives each worker
its turn to send, so that n-1 vectors never arrive into its link at once).

(*) pipelined above ``PIPELINE_MIN_BYTES`` per chunk, see below. p is the largest power of
two <= n, f = 1 if n != p (the fold), P the sparse payload bytes per rank. With one link
for all patterns, no delta and no overhead this is the survey's table: ring and multi-ps
2(n-1) alpha + 2(n-1)/n S beta, ps 2(n-1)(alpha + S beta) (its single PS with N workers
and one extra server costs 2N(alpha + S beta); here rank 0 is server and worker, so
N = n-1; the server's n-1 turns, empty messages, add (n-1) alpha), recursive doubling
log2 n (alpha + S beta).

Chunks (shards) of at least the ring's ``PIPELINE_MIN_BYTES`` travel in
k = ceil((S/n) / SEGMENT_BYTES) segments in the reduce-scatter (the multi-PS gather) and
are reduced as they arrive, so there the ring's and multi-PS's exchange and reduce are
(n-1) k x S/(nk) (k - 1 more latencies per step than the survey's ring, as sent): each add
finds its segment in cache, where a whole chunk's add would run at memory bandwidth. The
allgather still moves whole chunks.

Several ranks per node (``nodes`` N > 1, n/N ranks on each): there are two links, the
node's shared memory (intra, the fit itself) and the network (inter, ``fit["inter"]``, a fit
of the same shape; a fit measured with one rank per node, ``fit["ranks_per_node"] == 1`` on
``fit["nodes"] > 1``, *is* the inter-node link, and a copy inside a node is then priced like
one reduce pass). A flat algorithm's synchronous steps wait for their slowest message, so on
N > 1 nodes every transfer is priced on the inter link. A module may declare
``cost_levels(n, S, nodes)`` -> ``[(steps, "intra"|"inter", share), ...]`` for a collective
that uses the two links apart; ``share`` transfers flow through one link at once (their
bytes add, their latencies do not). The hierarchical allreduce (``hierarchical.py``): the
ring's steps on R = n/N ranks on the intra link (S bytes), and the ring's steps on N ranks on
S/R bytes on the inter link with share R (the R inter-node rings share the NIC): with one
link for both, 2(R-1) alpha + 2(R-1)/R S beta + 2(N-1) alpha + 2(N-1)/N S beta.

The fit (``hpctrain bench fit``) is cached as JSON at ``$HPCTRAIN_CACHE/alpha_beta.json``
or ``~/.cache/hpctrain/alpha_beta.json``.
"""

import inspect
import json
import math
import os

__all__ = ["steps", "modelled", "predict", "links", "crossover", "link", "primitive", "cache_path", "load_fit",
           "save_fit", "check_fit", "concurrent_note", "PRIMITIVES", "CONCURRENT_FALLBACK", "EXCHANGES",
           "exchange_time", "exchange_bytes", "exchange_messages", "price", "slowed"]

PRIMITIVES = ("oneway", "oneway-sent", "exchange", "exchange-sent", "concurrent", "concurrent-sent", "reduce",
              "reduce-sent")
#: what the concurrent kinds cost under a fit without ``concurrent``: today's model
CONCURRENT_FALLBACK = {"concurrent": "exchange", "concurrent-sent": "exchange-sent"}


def _cost_steps(algo):
    """The ``cost_steps(n, S, **kw)`` of the module that implements ``algo`` (every
    registered allreduce, mixer and sparse aggregation may declare one), or None."""
    from . import ALLREDUCE, MIXERS, SPARSE  # the registries import this module's users

    fn = ALLREDUCE.get(algo) or MIXERS.get(algo) or SPARSE.get(algo)
    fn = getattr(fn, "func", fn)  # functools.partial
    module = inspect.getmodule(fn) if fn is not None else None
    return getattr(module, "cost_steps", None)


def steps(algo, n, nbytes, **kw):
    """The steps of ``algo`` on ``n`` ranks for ``nbytes`` per rank (see the module table):
    each collective's module owns its ``cost_steps``; this only dispatches.

    Args:
        kw: ``degree`` (gossip: neighbours per rank), ``payload_ratio`` (sparse
            aggregation: P/S, sparse payload bytes per dense byte).

    Returns:
        A list of ``(primitive, count, bytes)`` with primitive in :data:`PRIMITIVES`; empty
        for n = 1; None for an algorithm without a model (``mpi``, ``auto``).
    """
    fn = _cost_steps(algo)
    if fn is None:
        return None
    if n <= 1:
        return []
    return fn(n, float(nbytes), **kw)


def modelled(algo):
    """Whether :func:`predict` has a model of ``algo``."""
    return _cost_steps(algo) is not None


def link(fit, msg_bytes, kind="oneway"):
    """``(alpha, beta)`` of the fit segment that covers messages of ``msg_bytes``.

    ``kind`` ``oneway`` reads the ping-pong fit (``segments``, else the single
    ``alpha``/``beta``); the other :data:`PRIMITIVES` read ``fit[kind]["segments"]`` when
    present. Without them, each ``-sent`` kind falls back to its plain kind, ``exchange``
    to the one-way link (the survey's full-duplex link), ``reduce`` to
    ``(0, fit["gamma"])``, and without ``fit["concurrent"]`` the concurrent kinds to
    :data:`CONCURRENT_FALLBACK` (the exchange's).

    A fit may hold ``segments`` (list of dicts with ``alpha``, ``beta``, ``max_bytes``;
    the last has ``max_bytes`` None): MPI switches protocol (eager -> rendezvous) at some
    size, and caches run out at others, so the line changes.
    """
    if kind in CONCURRENT_FALLBACK and not fit.get("concurrent"):
        return link(fit, msg_bytes, CONCURRENT_FALLBACK[kind])
    if kind != "oneway":
        part = fit.get(kind)
        if part:
            return _segment(part["segments"], msg_bytes)
        if kind.endswith("-sent"):
            return link(fit, msg_bytes, kind[: -len("-sent")])
        if kind == "reduce":
            return 0.0, fit.get("gamma", 0.0)
    segs = fit.get("segments")
    if segs:
        return _segment(segs, msg_bytes)
    return fit["alpha"], fit["beta"]


def _segment(segs, msg_bytes):
    for seg in segs:
        if seg.get("max_bytes") is None or msg_bytes < seg["max_bytes"]:
            return seg["alpha"], seg["beta"]
    return segs[-1]["alpha"], segs[-1]["beta"]


def primitive(fit, kind, msg_bytes):
    """Seconds of one ``kind`` primitive (:data:`PRIMITIVES`) on ``msg_bytes`` under ``fit``."""
    a, b = link(fit, msg_bytes, kind)
    return a + msg_bytes * b


def links(fit):
    """``(intra, inter)``: the fits of the node's link and of the network (see the module
    docstring); both ``fit`` when it knows of one link only."""
    inter = fit.get("inter")
    if inter:
        return fit, {**inter, "reduce": fit.get("reduce"), "reduce-sent": fit.get("reduce-sent"),
                     "gamma": fit.get("gamma", 0.0)}
    if fit.get("nodes", 1) > 1 and fit.get("ranks_per_node", 1) == 1:
        # measured across nodes only: the node's own link is unknown; a shared-memory copy
        # is priced like one reduce pass (memory bandwidth), without latency
        g = fit.get("gamma", 0.0)
        intra = {"alpha": 0.0, "beta": g, "reduce": fit.get("reduce"), "reduce-sent": fit.get("reduce-sent"),
                 "gamma": g}
        return intra, fit
    return fit, fit


def _sum(plan, fit, share=1):
    t = 0.0
    for kind, count, m in plan:
        if kind.startswith("reduce"):
            t += count * primitive(fit, kind, m)
        else:  # ``share`` transfers flow through the same link at once: the bytes add, the latency does not
            a, b = link(fit, m, kind)
            t += count * (a + share * m * b)
    return t


def _cost_levels(algo):
    from . import ALLREDUCE

    fn = ALLREDUCE.get(algo)
    module = inspect.getmodule(fn) if fn is not None else None
    return getattr(module, "cost_levels", None)


def predict(algo, n, nbytes, fit, nodes=1, **kw):
    """Predicted seconds of ``algo`` for ``nbytes`` per rank under ``fit``.

    Args:
        fit: dict with ``alpha`` (s), ``beta`` (s/byte) and optionally ``segments``,
            ``exchange``, ``reduce``, ``gamma`` (s/byte), ``inter`` (the network's link) and
            ``overhead`` (s per call, per algorithm): see :func:`link`, :func:`links`.
        nodes: the n ranks sit on this many nodes, n/nodes on each (module docstring).
        kw: passed to :func:`steps`.

    Returns:
        Seconds, or None when ``algo`` has no model.
    """
    plan = steps(algo, n, nbytes, **kw)
    if plan is None:
        return None
    if n <= 1:
        return 0.0
    overheads = fit.get("overhead") or {}
    over = overheads.get(algo, overheads.get("ring", 0.0) if algo == "hierarchical" else 0.0)
    intra, inter = links(fit)
    if nodes <= 1:
        return _sum(plan, intra) + over
    levels = _cost_levels(algo)
    if levels is None:
        return _sum(plan, inter) + over
    on = {"intra": intra, "inter": inter}
    return sum(_sum(p, on[where], share) for p, where, share in levels(n, float(nbytes), nodes)) + over


def crossover(a, b, n, fit, lo=8, hi=1 << 30, **kw):
    """Smallest message size (bytes) where ``a`` and ``b`` swap as the faster one, or None.

    Found on a fine geometric grid (the fit may be piecewise), refined by bisection.
    """
    if not (modelled(a) and modelled(b)):
        return None
    diff = lambda s: predict(a, n, s, fit, **kw) - predict(b, n, s, fit, **kw)  # noqa: E731
    grid = [lo * 1.1 ** k for k in range(int(math.log(hi / lo, 1.1)) + 1)]
    prev = diff(grid[0])
    for s0, s1 in zip(grid, grid[1:]):
        d = diff(s1)
        if (prev < 0) != (d < 0) and prev != 0:
            for _ in range(40):
                mid = (s0 + s1) / 2
                if (diff(mid) < 0) == (prev < 0):
                    s0 = mid
                else:
                    s1 = mid
            return s1
        prev = d
    return None


#: the kinds of per-step communication an algorithm declares (``Algorithm.comm_pattern``),
#: each priced by the module that implements it: ``allreduce`` (the ``--collective``),
#: ``allgather`` (ring allgatherv of a payload, ``sparse.py``), ``ps`` (one server round,
#: ``ps_round.py``), ``gossip`` (``gossip.py``), ``ring-hops`` (the payload passed around the
#: ring and its result once more, ``naive_ring.py``).
EXCHANGES = ("allreduce", "allgather", "ps", "gossip", "ring-hops")


def _exchange_fns(kind, collective):
    """``(cost_steps, sent_bytes, overhead key, sent_messages)`` of the module that implements
    ``kind``."""
    import importlib

    gossip, naive_ring, ps_round, sparse = (importlib.import_module(f"{__package__}.{m}")
                                            for m in ("gossip", "naive_ring", "ps_round", "sparse"))

    if kind == "allreduce":
        from . import ALLREDUCE

        fn = ALLREDUCE.get(collective)
        module = inspect.getmodule(getattr(fn, "func", fn)) if fn is not None else None
        return (_cost_steps(collective), getattr(module, "sent_bytes", None), collective,
                getattr(module, "sent_messages", None))
    table = {"allgather": (sparse.allgather_cost_steps, sparse.allgather_sent_bytes, "ring",
                           sparse.allgather_sent_messages),
             "ps": (ps_round.cost_steps, ps_round.sent_bytes, "ps", ps_round.sent_messages),
             "gossip": (gossip.cost_steps, gossip.sent_bytes, "ring", gossip.sent_messages),
             "ring-hops": (naive_ring.cost_steps, naive_ring.sent_bytes, "ring-unpartitioned",
                           naive_ring.sent_messages)}
    if kind not in table:
        raise ValueError(f"unknown exchange kind {kind!r}; choose from {', '.join(EXCHANGES)}")
    return table[kind]


def price(plan, fit, nodes=1):
    """Seconds of a flat ``plan`` (``[(primitive, count, bytes), ...]``) under ``fit``: on
    the node's link for one node, on the network's for several (a synchronous step waits
    for its slowest message)."""
    intra, inter = links(fit)
    return _sum(plan, intra if nodes <= 1 else inter)


def exchange_time(kind, n, nbytes, fit, nodes=1, collective="ring", **kw):
    """Predicted seconds of one exchange of ``kind`` (:data:`EXCHANGES`) on ``n`` ranks
    (on ``nodes`` nodes), ``nbytes`` per rank.

    Args:
        collective: the allreduce that runs an ``allreduce`` exchange (a modelled one).
        kw: ``down`` (ps: reply bytes), ``degree`` (gossip), ``messages`` (and ``down_messages``
            for ps: messages per transfer, the extra ones small).

    Returns:
        Seconds, or None when the collective has no model.
    """
    if kind == "allreduce":
        return predict(collective, n, nbytes, fit, nodes=nodes)
    if n <= 1:
        return 0.0
    steps_fn, _, key, _ = _exchange_fns(kind, collective)
    over = (fit.get("overhead") or {}).get(key, 0.0)
    return price(steps_fn(n, float(nbytes), **kw), fit, nodes) + over


def exchange_bytes(kind, n, nbytes, collective="ring", **kw):
    """Bytes all ``n`` ranks send together in one exchange of ``kind`` (payload bytes, as
    the communicator counts them), or None when the collective does not say."""
    if n <= 1:
        return 0.0
    _, sent, _, _ = _exchange_fns(kind, collective)
    return None if sent is None else float(sent(n, float(nbytes), **kw))


def exchange_messages(kind, n, nbytes, collective="ring", **kw):
    """Point-to-point messages all ``n`` ranks send together in one exchange of ``kind`` (as
    the communicator counts them), or None when the collective does not say."""
    if n <= 1:
        return 0
    *_, sent = _exchange_fns(kind, collective)
    return None if sent is None else int(sent(n, float(nbytes), **kw))


def slowed(fit, factor):
    """A copy of ``fit`` whose transfers are ``factor`` times slower per byte (every beta of
    every transfer kind and of the network link; reductions unchanged): a link at 1/factor
    of the fitted rate, such as the slowest node's."""
    def scale(part):
        out = dict(part)
        if "beta" in out:
            out["beta"] = out["beta"] * factor
        if out.get("segments"):
            out["segments"] = [{**seg, "beta": seg["beta"] * factor} for seg in out["segments"]]
        return out

    out = scale(fit)
    for kind in PRIMITIVES:
        if not kind.startswith("reduce") and fit.get(kind):
            out[kind] = scale(fit[kind])
    if fit.get("inter"):
        out["inter"] = slowed(fit["inter"], factor)
    return out


def cache_path():
    """Where the fit is cached: ``$HPCTRAIN_CACHE/alpha_beta.json`` else ``~/.cache/hpctrain/``."""
    root = os.environ.get("HPCTRAIN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "hpctrain")
    return os.path.join(root, "alpha_beta.json")


def _finite(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what} is not a finite number ({value!r})")
    return float(value)


def _check_segments(segs, what):
    if not isinstance(segs, list) or not segs:
        raise ValueError(f"{what}: no segments")
    for i, seg in enumerate(segs):
        if not isinstance(seg, dict):
            raise ValueError(f"{what}: segment {i} is not an object")
        for key in ("alpha", "beta"):
            if key not in seg:
                raise ValueError(f"{what}: segment {i} has no {key}")
            _finite(seg[key], f"{what}: segment {i}'s {key}")
        if seg.get("max_bytes") is not None:
            _finite(seg["max_bytes"], f"{what}: segment {i}'s max_bytes")


def check_fit(fit):
    """Check that ``fit`` (a dict read from a file) holds what :func:`predict` reads, as
    numbers: ``alpha``, ``beta``, the segments of every transfer kind, ``inter`` and
    ``concurrent`` (each optional but ``alpha``/``beta``; ``concurrent`` needs ``peers``).

    Raises:
        ValueError: one line naming the first bad field.
    """
    if not isinstance(fit, dict):
        raise ValueError("not a JSON object")
    for key in ("alpha", "beta"):
        if key not in fit:
            raise ValueError(f"no {key}")
        _finite(fit[key], key)
    if fit.get("segments") is not None:
        _check_segments(fit["segments"], "segments")
    for kind in (*PRIMITIVES[1:], "inter"):
        part = fit.get(kind)
        if part is None:
            continue
        if not isinstance(part, dict):
            raise ValueError(f"{kind} is not an object")
        if kind == "inter" and "segments" not in part:
            for key in ("alpha", "beta"):
                _finite(part.get(key), f"inter's {key}")
            continue
        _check_segments(part.get("segments"), kind)
    if fit.get("concurrent") is not None:
        peers = fit["concurrent"].get("peers")
        if _finite(peers, "concurrent's peers") < 1:
            raise ValueError(f"concurrent's peers is below 1 ({peers!r})")


def concurrent_note(fit):
    """One line on how ``fit`` prices concurrent flows when it cannot measure them (no
    ``concurrent`` entry), else None."""
    if fit.get("concurrent"):
        return None
    return ("the fit has no concurrent-exchange term (bench fit on 3 ranks or more, one node or one rank per node, "
            "measures it): multi-ps and gossip with several neighbours are priced like the ring's exchanges, "
            "which may be optimistic")


def load_fit(path=None):
    """The cached fit as a dict, or None when there is none (or it is unreadable, or a
    field :func:`check_fit` reads is missing or not a number)."""
    path = path or cache_path()
    try:
        with open(path, encoding="utf-8") as f:
            fit = json.load(f)
        check_fit(fit)
        return fit
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None


def save_fit(fit, path=None):
    """Write ``fit`` (a dict) to the cache atomically; returns the path."""
    path = path or cache_path()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(fit, f, indent=1)
    os.replace(tmp, path)
    return path
