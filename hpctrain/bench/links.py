"""Which node's network is slow: point-to-point bandwidth of every pair of ranks.

A ring (or any collective) runs at the pace of its slowest link, so every rank waits about
as long and per-rank communication times do not point at the culprit. Measuring each pair
alone does: in round ``k`` of a round-robin tournament every rank pings one partner
(disjoint pairs, so each node's NIC carries one exchange at a time), ``iters`` round trips
of ``nbytes`` each, timed by the pair's first rank. A node whose best inter-node pair is far
below the other nodes' best is the straggler (with two nodes both share the one link and
it cannot be told which end is slow).
"""

import itertools
import statistics
import time

import numpy as np

from ..errors import ConfigError

__all__ = ["round_robin", "bench_links", "node_report", "format_links"]

_TAG = 70


def round_robin(n):
    """Rounds of disjoint pairs covering every pair of ``range(n)`` once (circle method;
    with odd ``n`` one rank sits out each round)."""
    ids = list(range(n)) + ([None] if n % 2 else [])
    m = len(ids)
    rounds = []
    for _ in range(m - 1):
        pairs = [(ids[i], ids[m - 1 - i]) for i in range(m // 2)]
        rounds.append([tuple(sorted(p)) for p in pairs if None not in p])
        ids = [ids[0], ids[-1], *ids[1:-1]]
    return rounds


def bench_links(comm, nbytes=1 << 20, iters=3, warmup=1):
    """Bandwidth (bytes/s, one way) of every pair of ranks (collective).

    Returns:
        ``{"hosts": [host of each rank], "pairs": [{"a", "b", "seconds", "bytes_per_s"}]}``
        on every rank.
    """
    if comm.size < 2:
        raise ConfigError("bench links needs at least 2 ranks (e.g. srun -N 4 --ntasks-per-node=1)")
    if nbytes < 1 or iters < 1:
        raise ConfigError("bench links: --bytes and --iters must be >= 1")
    buf = np.ones(max(1, nbytes // 8), dtype=np.float64)
    hosts = comm.hostnames()
    results = np.zeros((comm.size, comm.size), dtype=np.float64)
    for pairs in round_robin(comm.size):
        comm.barrier()
        for a, b in pairs:
            if comm.rank not in (a, b):
                continue
            peer = b if comm.rank == a else a
            for i in range(warmup + iters):
                if i == warmup:
                    t0 = time.perf_counter()
                if comm.rank == a:
                    comm.send(buf, peer, tag=_TAG)
                    comm.recv(buf, peer, tag=_TAG + 1)
                else:
                    comm.recv(buf, peer, tag=_TAG)
                    comm.send(buf, peer, tag=_TAG + 1)
            if comm.rank == a:
                results[a, b] = (time.perf_counter() - t0) / (2 * iters)  # one way
    comm.native_allreduce(results)
    size = buf.nbytes
    pairs = [{"a": a, "b": b, "hosts": [hosts[a], hosts[b]], "bytes": size, "seconds": float(results[a, b]),
              "bytes_per_s": float(size / results[a, b]) if results[a, b] > 0 else float("inf")}
             for a, b in itertools.combinations(range(comm.size), 2)]
    return {"hosts": hosts, "pairs": pairs}


def node_report(result, slow_below=0.5):
    """Per node: the best bandwidth of its inter-node pairs, that over the median node's,
    and ``slow`` when under ``slow_below``. Empty when all ranks share one node."""
    best = {}
    for p in result["pairs"]:
        ha, hb = p["hosts"]
        if ha == hb:
            continue  # shared memory, not the network
        for h in (ha, hb):
            best[h] = max(best.get(h, 0.0), p["bytes_per_s"])
    if not best:
        return []
    typical = statistics.median(best.values())
    order = list(dict.fromkeys(result["hosts"]))
    return [{"node": h, "best_bytes_per_s": float(best[h]), "vs_median": float(best[h] / typical),
             "slow": bool(len(best) > 2 and best[h] < slow_below * typical)} for h in order if h in best]


def format_links(result, report):
    """The pair table and the per-node verdict, as text."""
    lines = [f"{'ranks':>7}  {'hosts':<24} {'MB/s':>10}  {'us one way':>11}"]
    for p in result["pairs"]:
        lines.append(f"{p['a']:>3}-{p['b']:<3}  {' - '.join(p['hosts']):<24} {p['bytes_per_s'] / 1e6:>10.1f}  "
                     f"{p['seconds'] * 1e6:>11.1f}")
    if report:
        lines.append("")
        lines.append(f"{'node':<12} {'best MB/s':>10}  {'vs median':>9}")
        for r in report:
            lines.append(f"{r['node']:<12} {r['best_bytes_per_s'] / 1e6:>10.1f}  {r['vs_median']:>8.2f}x"
                         + ("   <- slow link" if r["slow"] else ""))
        slow = [r["node"] for r in report if r["slow"]]
        if slow:
            lines.append(f"slow: {', '.join(slow)} (best pair under half the median node's)")
        elif len(report) == 2:
            lines.append("two nodes share one link: a slow pair cannot be pinned on either end")
        else:
            lines.append("no slow node")
    else:
        lines.append("every rank is on one node: no network link was measured")
    return "\n".join(lines)
