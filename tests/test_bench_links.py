"""bench links: the round-robin schedule and the slow-node verdict (pure functions); the
measurement itself runs across emulated nodes in tests/slurm/test_multinode.py."""

import itertools
import json

import pytest

from hpctrain.bench.links import format_links, node_report, round_robin


@pytest.mark.parametrize("n", range(2, 10))
def test_round_robin_pairs_everyone_once_and_no_rank_twice_per_round(n):
    rounds = round_robin(n)
    pairs = [p for r in rounds for p in r]
    assert sorted(pairs) == list(itertools.combinations(range(n), 2))
    for r in rounds:
        ranks = [i for p in r for i in p]
        assert len(ranks) == len(set(ranks))
    assert len(rounds) == (n - 1 if n % 2 == 0 else n)


def fake(hosts, slow_host=None, fast=1e9, slow=1e8, shm=5e9):
    pairs = []
    for a, b in itertools.combinations(range(len(hosts)), 2):
        ha, hb = hosts[a], hosts[b]
        bw = shm if ha == hb else (slow if slow_host in (ha, hb) else fast)
        pairs.append({"a": a, "b": b, "hosts": [ha, hb], "bytes": 1 << 20, "seconds": (1 << 20) / bw,
                      "bytes_per_s": bw})
    return {"hosts": hosts, "pairs": pairs}


def test_the_node_whose_every_pair_is_slow_is_named():
    res = fake(["n1", "n1", "n2", "n2", "n3", "n3", "n4", "n4"], slow_host="n3")
    report = node_report(res)
    assert [r["node"] for r in report if r["slow"]] == ["n3"]
    assert {r["node"]: round(r["vs_median"], 2) for r in report} == {"n1": 1.0, "n2": 1.0, "n3": 0.1, "n4": 1.0}
    assert "slow: n3" in format_links(res, report)
    json.dumps(report)  # --json writes it


def test_no_verdict_without_a_network_or_with_two_nodes():
    assert node_report(fake(["a", "a", "a"])) == []
    two = fake(["a", "b"], slow_host="b")
    assert not any(r["slow"] for r in node_report(two))
    assert "cannot be pinned" in format_links(two, node_report(two))
    assert "no slow node" in format_links(fake(["a", "b", "c"]), node_report(fake(["a", "b", "c"])))
