"""Wire size is exact: bytes a 2-rank mpiexec exchange really moves == payload.nbytes, and
the receiver decompresses exactly what the sender meant; random-k indices agree across ranks."""

import json
import os

import numpy as np
import pytest

from mpiutil import WORKERS

pytestmark = pytest.mark.mpi


def test_two_rank_exchange(mpirun, tmp_path):
    mpirun(2, [os.path.join(WORKERS, "compress_exchange.py"), str(tmp_path)], timeout=90)
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    a0, a1 = np.load(tmp_path / "rank0.npz"), np.load(tmp_path / "rank1.npz")
    assert len(r0) == 10
    for tag, s in r0.items():
        assert s["bytes_sent"] == s["nbytes"] == r1[tag]["bytes_recv"] == r1[tag]["n"] == r1[tag]["nbytes"], tag
        assert np.array_equal(a0[f"dec_{tag}"].view(np.uint32), a1[f"dec_{tag}"].view(np.uint32)), tag
    tag = next(t for t in r0 if t.endswith("randk"))
    assert np.array_equal(a0[f"randk_idx_{tag}"], a1[f"randk_idx_{tag}"])
    assert np.array_equal(a0[f"randk_vals_{tag}"], a1[f"randk_vals_{tag}"])
    assert r0[tag]["nbytes"] == 32 + 300 * 4  # values only: k = round(0.01 * 30011) = 300
