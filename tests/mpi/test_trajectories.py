"""Pinned short trajectories: every algorithm x compressor x aggregation, 46 steps on 2
and 3 ranks, must end with the parameters whose SHA-256 was recorded in
tests/data/trajectories-Nranks.json.

The pin guards refactors: a change that moves any trajectory by one bit, or stops running a
pinned case, fails here; a case the worker runs without a pin (a newly registered operator
or algorithm) is reported as a warning, so registering one needs no edit here. A
change that *means* to alter an algorithm's semantics re-records its cases with
``OPENBLAS_CORETYPE=C mpiexec -n N python tests/workers/pin_trajectories.py OUT.json CASE...``
for every kernel set C of the file and says why in its commit.

Float results depend on NumPy's version and on the kernels OpenBLAS picks for the CPU
(SkylakeX kernels on AVX-512 machines, Haswell kernels on AVX2 ones give other bits), so
the file holds one set of hashes per OpenBLAS kernel set; the worker runs with
``OPENBLAS_CORETYPE`` forced to the first set this CPU can execute. Elsewhere (another
NumPy version, a CPU without AVX2) the test is skipped with that reason.
"""

import json
import os
import warnings

import numpy as np
import pytest

from mpiutil import WORKERS

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data")

#: OpenBLAS kernel set -> the CPU flags it needs (/proc/cpuinfo names)
CORETYPE_FLAGS = {
    "SkylakeX": {"avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512cd"},
    "Haswell": {"avx2", "fma"},
}


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def runnable_coretype(pinned, flags):
    """The first kernel set of ``pinned`` whose CPU flags are all in ``flags``, or None."""
    return next((c for c in pinned if CORETYPE_FLAGS.get(c, {"?"}) <= flags), None)


def test_runnable_coretype_picks_the_first_the_cpu_supports():
    pinned = {"SkylakeX": {}, "Haswell": {}}
    assert runnable_coretype(pinned, {"avx2", "fma", "avx512f", "avx512dq", "avx512bw", "avx512vl",
                                      "avx512cd"}) == "SkylakeX"
    assert runnable_coretype(pinned, {"avx2", "fma", "avx512f"}) == "Haswell"
    assert runnable_coretype(pinned, {"sse4_2"}) is None


@pytest.mark.parametrize("n", [2, 3])
def test_trajectories_match_pins(mpirun, tmp_path, n):
    with open(os.path.join(DATA, f"trajectories-{n}ranks.json")) as f:
        pinned = json.load(f)
    if pinned["_env"]["numpy"] != np.__version__:
        pytest.skip(f"trajectories pinned under numpy {pinned['_env']['numpy']}, this is {np.__version__}")
    coretype = runnable_coretype(pinned["coretypes"], _cpu_flags())
    if coretype is None:
        pytest.skip(f"trajectories pinned for OpenBLAS kernels {sorted(pinned['coretypes'])}; this CPU runs none")
    cases = pinned["coretypes"][coretype]
    out = tmp_path / "now.json"
    mpirun(n, [os.path.join(WORKERS, "pin_trajectories.py"), str(out)], timeout=300,
           env={"OPENBLAS_CORETYPE": coretype})
    with open(out) as f:
        now = json.load(f)
    missing = sorted(set(cases) - set(now))
    assert not missing, f"{len(missing)} pinned cases no longer run: {missing}"
    moved = [k for k in cases if now[k] != cases[k]]
    assert not moved, f"{len(moved)} trajectories moved (OpenBLAS {coretype} kernels): {moved}"
    unpinned = sorted(set(now) - set(cases))
    if unpinned:  # a newly registered algorithm or operator: nothing of it to preserve yet
        warnings.warn(f"{len(unpinned)} cases have no pin yet, record them with pin_trajectories.py: {unpinned}")
