"""signSGD / Signum with majority vote against a NumPy oracle: crafted votes with ties,
both aggregations, 2-4 ranks."""

import os

import numpy as np
import pytest

from hpctrain.algorithms.signsgd import majority_vote, pack_signs
from mpiutil import WORKERS


def oracle_vote(signs):
    """sign(sum_k s_k) over rows of +-1 values, a tie voting +1."""
    total = signs.sum(axis=0)
    return np.where(total >= 0, 1.0, -1.0)


def test_majority_vote_on_crafted_votes_with_ties():
    x = np.array([[1.0, -1.0, 0.0, -2.0, 3.0, -0.5, 0.0, 1.0, -1.0],
                  [-1.0, -1.0, 0.0, 2.0, -3.0, -0.5, -1.0, 1.0, 1.0],
                  [1.0, 1.0, -1.0, -2.0, -3.0, 0.5, -1.0, -1.0, 1.0],
                  [-1.0, 1.0, -1.0, 2.0, -3.0, 0.5, -1.0, -1.0, -1.0]])
    for n in (1, 2, 3, 4):
        packed = np.stack([pack_signs(r) for r in x[:n]])
        got = majority_vote(packed, x.shape[1], np.empty(x.shape[1]))
        want = oracle_vote(np.where(x[:n] >= 0, 1.0, -1.0))
        np.testing.assert_array_equal(got, want)
    # 4 workers: coordinate 0 is a 2-2 tie (+1), coordinate 4 is 1-3 (-1), coordinate 2 2-2 (+1)
    got = majority_vote(np.stack([pack_signs(r) for r in x]), x.shape[1], np.empty(x.shape[1]))
    assert got[0] == 1 and got[4] == -1 and got[2] == 1


@pytest.mark.parametrize("n,aggregation,momentum", [(2, "allreduce", 0.0), (3, "ps", 0.0), (4, "ps", 0.9),
                                                     (4, "allreduce", 0.9)])
def test_vote_trajectory_equals_the_oracle(mpirun, tmp_path, n, aggregation, momentum):
    steps = 5
    mpirun(n, [os.path.join(WORKERS, "signsgd_steps.py"), str(tmp_path), aggregation, str(momentum), str(steps)],
           timeout=120)
    runs = [np.load(tmp_path / f"rank{r}.npz") for r in range(n)]
    grads = np.stack([r["grads"] for r in runs])  # (n, steps, d)
    d = grads.shape[2]
    m, w = np.zeros((n, d)), np.zeros(d)
    for t in range(steps):
        m = momentum * m + (1 - momentum) * grads[:, t] if momentum else grads[:, t].copy()
        w -= 0.01 * oracle_vote(np.where(m >= 0, 1.0, -1.0))
    for run in runs:
        np.testing.assert_allclose(run["params"], w, rtol=0, atol=1e-12)
