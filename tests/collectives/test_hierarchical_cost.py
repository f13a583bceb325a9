"""The hierarchical allreduce's cost formula and the two-link model (no MPI job): against
the survey's closed forms, computed here independently."""

import pytest

from hpctrain.collectives import cost

A, B = 20e-6, 1 / 0.125e9  # one link: 20 us, 1 Gbit/s
ONE = {"alpha": A, "beta": B, "gamma": 0.0}


@pytest.mark.parametrize("N,R", [(2, 2), (4, 2), (2, 4), (3, 3)])
def test_hierarchical_is_two_rings_on_one_link(N, R):
    S = 1 << 20  # chunks below the pipelining size
    n = N * R
    want = 2 * (R - 1) * A + 2 * (R - 1) / R * S * B + 2 * (N - 1) * A + 2 * (N - 1) / N * S * B
    assert cost.predict("hierarchical", n, S, ONE, nodes=N) == pytest.approx(want, rel=1e-12)


def test_flat_ring_on_nodes_pays_the_network_and_hierarchical_wins_by_nic_bytes():
    S = 1 << 22
    inter = {"alpha": A, "beta": B}
    fit = {"alpha": 1e-6, "beta": 1e-12, "gamma": 0.0, "inter": inter}  # shared memory ~free
    ring = cost.predict("ring", 4, S, fit, nodes=2)
    assert ring == pytest.approx(6 * A + 1.5 * S * B, rel=1e-9)  # 2(n-1)/n S on the NIC
    hier = cost.predict("hierarchical", 4, S, fit, nodes=2)
    assert hier == pytest.approx(2 * A + 1.0 * S * B, rel=1e-3)  # 2(N-1)/N S = S on the NIC
    assert 1.45 < ring / hier < 1.51  # 1.5 from the bytes, a little more from 6 latencies against 2
    # on one node the two-link fit prices the intra link only
    assert cost.predict("ring", 4, S, fit) == pytest.approx(6e-6 + 1.5 * S * 1e-12, rel=1e-9)


def test_a_fit_measured_one_rank_per_node_is_the_network():
    S = 1 << 20
    fit = {**ONE, "nodes": 4, "ranks_per_node": 1, "gamma": 1e-10}
    intra, inter = cost.links(fit)
    assert inter is fit and intra["alpha"] == 0.0 and intra["beta"] == 1e-10
    # the NIC: the ring over 2 nodes on S; the node: one exchange, one exchange-sent and one
    # add of S/2 at memory speed (gamma), and the inter-node ring's add of S/4
    hier = cost.predict("hierarchical", 4, S, fit, nodes=2)
    want = 2 * A + S * B + 3 * (S / 2) * 1e-10 + (S / 4) * 1e-10
    assert hier == pytest.approx(want, rel=1e-9)
