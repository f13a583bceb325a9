"""The alpha-beta(-gamma) cost model of the collectives (survey 003, §1.3) and the cached fit.

A message of S bytes costs alpha + S beta (latency, inverse bandwidth); reducing S bytes
costs S gamma (the survey assumes gamma = 0; here it is measured, because NumPy's add
runs at memory bandwidth, the same order as an intra-node transfer). Each algorithm's
time is ``lat * alpha + bw * S * beta + red * S * gamma`` with the coefficients below
(n ranks, S bytes per rank):

=====================  ================  =================  =============
algorithm              lat (x alpha)     bw (x S beta)      red (x S gamma)
=====================  ================  =================  =============
ring                   2(n-1)            2(n-1)/n           (n-1)/n
multi-ps (co-located)  2(n-1)            2(n-1)/n           (n-1)/n
ps (rank 0 serves)     2(n-1)            2(n-1)             n-1
ring-unpartitioned     2(n-1)            2(n-1)             n-1
recursive              L = log2 p + 2f   L                  log2 p + f
gossip (degree d)      d                 d                  d
sparse-allgather       2(n-1)            (n-1) P/S          n P/S
=====================  ================  =================  =============

p is the largest power of two <= n, f = 1 if n != p (the fold), P the sparse payload
bytes per rank. The survey's single PS with N workers and one extra server costs
2N(alpha + S beta); here rank 0 is server and worker, so N = n-1.

The fit (``hpctrain bench fit``) is cached as JSON at ``$HPCTRAIN_CACHE/alpha_beta.json``
or ``~/.cache/hpctrain/alpha_beta.json``.
"""

import json
import math
import os

__all__ = ["coefficients", "predict", "crossover", "message_bytes", "link", "cache_path", "load_fit", "save_fit", "MODELLED"]

MODELLED = ("ring", "multi-ps", "ps", "ring-unpartitioned", "recursive", "gossip", "sparse-allgather")


def coefficients(algo, n, degree=2, payload_ratio=None):
    """``(lat, bw, red)`` of ``algo`` on ``n`` ranks (see the module table).

    Args:
        degree: neighbours per rank (gossip).
        payload_ratio: P/S, sparse payload bytes per dense byte (sparse-allgather).

    Returns:
        A tuple of three floats, or None for an algorithm without a model (``mpi``).
    """
    if n <= 1:
        return (0.0, 0.0, 0.0)
    if algo in ("ring", "multi-ps"):
        return (2.0 * (n - 1), 2.0 * (n - 1) / n, (n - 1) / n)
    if algo in ("ps", "ring-unpartitioned"):
        return (2.0 * (n - 1), 2.0 * (n - 1), float(n - 1))
    if algo == "recursive":
        p = 1 << (n.bit_length() - 1)
        f = 0 if p == n else 1
        lg = math.log2(p)
        return (lg + 2 * f, lg + 2 * f, lg + f)
    if algo == "gossip":
        return (float(degree), float(degree), float(degree))
    if algo.startswith("sparse-allgather"):
        ratio = 1.0 if payload_ratio is None else payload_ratio
        return (2.0 * (n - 1), (n - 1) * ratio, n * ratio)
    return None


def message_bytes(algo, n, nbytes, payload_ratio=None, **_):
    """Size of one message of ``algo`` (selects the fit segment: eager vs rendezvous)."""
    if algo in ("ring", "multi-ps"):
        return nbytes / max(n, 1)
    if algo.startswith("sparse-allgather"):
        return nbytes * (1.0 if payload_ratio is None else payload_ratio)
    return nbytes


def link(fit, msg_bytes):
    """``(alpha, beta)`` of the fit segment that covers messages of ``msg_bytes``.

    A fit may hold ``segments`` (list of dicts with ``alpha``, ``beta``, ``max_bytes``;
    the last has ``max_bytes`` None): MPI switches protocol (eager -> rendezvous) at some
    size and the line changes. Without segments the single ``alpha``/``beta`` is used.
    """
    for seg in fit.get("segments") or ():
        if seg.get("max_bytes") is None or msg_bytes < seg["max_bytes"]:
            return seg["alpha"], seg["beta"]
    return fit["alpha"], fit["beta"]


def predict(algo, n, nbytes, fit, **kw):
    """Predicted seconds of ``algo`` for ``nbytes`` per rank under ``fit``.

    Args:
        fit: dict with ``alpha`` (s), ``beta`` (s/byte), optionally ``gamma`` (s/byte)
            and ``segments`` (see :func:`link`).
        kw: passed to :func:`coefficients`.

    Returns:
        Seconds, or None when ``algo`` has no model.
    """
    c = coefficients(algo, n, **kw)
    if c is None:
        return None
    alpha, beta = link(fit, message_bytes(algo, n, nbytes, **kw))
    return c[0] * alpha + nbytes * (c[1] * beta + c[2] * fit.get("gamma", 0.0))


def crossover(a, b, n, fit, lo=8, hi=1 << 30, **kw):
    """Smallest message size (bytes) where ``a`` and ``b`` swap as the faster one, or None.

    Found on a fine geometric grid (the fit may be piecewise), refined by bisection.
    """
    if coefficients(a, n, **kw) is None or coefficients(b, n, **kw) is None:
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


def cache_path():
    """Where the fit is cached: ``$HPCTRAIN_CACHE/alpha_beta.json`` else ``~/.cache/hpctrain/``."""
    root = os.environ.get("HPCTRAIN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "hpctrain")
    return os.path.join(root, "alpha_beta.json")


def load_fit(path=None):
    """The cached fit as a dict, or None when there is none (or it is unreadable)."""
    path = path or cache_path()
    try:
        with open(path, encoding="utf-8") as f:
            fit = json.load(f)
        float(fit["alpha"]), float(fit["beta"])
        return fit
    except (OSError, ValueError, KeyError, TypeError):
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
