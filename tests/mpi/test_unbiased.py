"""Monte-Carlo: every unbiased (algorithm, compressor, aggregation) steps by the mean gradient.

The registry says which combinations are unbiased (``Algorithm.unbiased_with`` times
``Algorithm.aggregations``), so a new one is tested without editing this file. Each rank
feeds a constant gradient for STEPS steps (tests/workers/unbiased_mc.py). The bound: the
mean of <u_t, gbar>/||gbar||^2 lies within Z standard errors of 1, and every coordinate of
the mean update lies within Z standard errors of gbar (Z = 5: a two-sided 6e-7 chance per
coordinate for a truly unbiased update, ~1e-4 over all coordinates and combinations).
Random-k with d/k = 4 that re-scales already-sparse coordinates has a ratio near 4; the
bound fails it by hundreds of standard errors.
"""

import json
import os

import numpy as np
import pytest

from hpctrain.algorithms import ALGORITHMS
from mpiutil import WORKERS

STEPS = 3000
Z = 5.0


def test_registry_declares_unbiased_combinations():
    combos = [(a, c, g) for a, cls in ALGORITHMS.items() for c in cls.unbiased_with for g in cls.aggregations]
    assert ("csgd", "randk", "ps") in combos and ("csgd", "qsgd", "ring") in combos
    for a, c, g in combos:
        assert c == "none" or c in ALGORITHMS[a].compressors


@pytest.mark.parametrize("n", [2, 3])
def test_unbiased_updates(mpirun, tmp_path, n):
    out = tmp_path / "mc.json"
    mpirun(n, [os.path.join(WORKERS, "unbiased_mc.py"), str(out), str(STEPS)], timeout=600)
    with open(out) as f:
        res = json.load(f)
    expected = {f"{a}/{c}/{g}" for a, cls in ALGORITHMS.items() for c in cls.unbiased_with for g in cls.aggregations}
    assert set(res) == expected
    bad = {}
    for k, v in res.items():
        dev, se = np.array(v["dev"]), np.array(v["se"])
        # 1e-9 absorbs float rounding where an update is (nearly) deterministic
        worst = float(np.max((dev - 1e-9) / np.maximum(se, 1e-300)))
        if abs(v["ratio"] - 1) > Z * v["ratio_se"] + 1e-9 or worst > Z:
            bad[k] = (round(v["ratio"], 4), round(v["ratio_se"], 4), round(worst, 1))
    assert not bad, f"biased on {n} ranks (ratio, its s.e., worst coordinate in s.e.): {bad}"
