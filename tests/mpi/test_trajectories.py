"""Pinned short trajectories: every algorithm x compressor x aggregation, 46 steps on 2
and 3 ranks, must end with the parameters whose SHA-256 was recorded in
tests/data/trajectories-Nranks.json.

The pin guards refactors: a change that moves any trajectory by one bit fails here. A
change that *means* to alter an algorithm's semantics re-records its cases with
``mpiexec -n N python tests/workers/pin_trajectories.py OUT.json CASE...`` and says why in
its commit. Float results depend on NumPy's kernels, so the pin is only compared under the
NumPy version that recorded it (skipped, with that reason, elsewhere).
"""

import json
import os

import numpy as np
import pytest

from mpiutil import WORKERS

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data")


@pytest.mark.parametrize("n", [2, 3])
def test_trajectories_match_pins(mpirun, tmp_path, n):
    with open(os.path.join(DATA, f"trajectories-{n}ranks.json")) as f:
        pinned = json.load(f)
    if pinned["_env"]["numpy"] != np.__version__:
        pytest.skip(f"trajectories pinned under numpy {pinned['_env']['numpy']}, this is {np.__version__}")
    out = tmp_path / "now.json"
    mpirun(n, [os.path.join(WORKERS, "pin_trajectories.py"), str(out)], timeout=300)
    with open(out) as f:
        now = json.load(f)
    assert sorted(now) == sorted(pinned["cases"]), "the set of cases changed: re-record the pins"
    moved = [k for k in now if now[k] != pinned["cases"][k]]
    assert not moved, f"{len(moved)} trajectories moved: {moved}"
