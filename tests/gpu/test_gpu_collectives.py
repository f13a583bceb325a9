"""Collectives on CuPy buffers through the staged and cuda-aware transports.

Runs only where CuPy sees a GPU (marker ``gpu``); elsewhere skipped with the reason. One
process (n = 1) checks the transports' copies; the multi-rank check launches mpiexec.
"""

import json
import os

import numpy as np
import pytest

from mpiutil import WORKERS, run_mpi
from hpctrain.xp import cupy_or_none, gpu_available

pytestmark = pytest.mark.gpu

_OK, _WHY = gpu_available()
if not _OK:
    pytest.skip(f"GPU tests need CuPy and a CUDA GPU: {_WHY}", allow_module_level=True)

cp = cupy_or_none()


def test_staged_transport_roundtrip_device_arrays():
    from hpctrain.comm.transport import StagedTransport

    tr = StagedTransport()
    x = cp.arange(1000, dtype=cp.float32)
    v = tr.send_view(x)
    assert isinstance(v, np.ndarray) and np.array_equal(v, cp.asnumpy(x))
    tr.release(v)
    y = cp.zeros(1000, dtype=cp.float32)
    rv = tr.recv_view(y)
    rv[:] = 3
    tr.finish_recv(y, rv)
    tr.release(rv)
    assert bool((y == 3).all()) and tr.allocations == 1


@pytest.mark.mpi
@pytest.mark.parametrize("transport", ["staged", "cuda-aware"])
def test_allreduce_on_device_buffers(tmp_path, transport):
    if transport == "cuda-aware":
        from hpctrain.comm.transport import cuda_aware_mpi

        ok, why = cuda_aware_mpi()
        if not ok:
            pytest.skip(f"MPI is not CUDA-aware: {why}")
    run_mpi(2, [os.path.join(WORKERS, "collective_gpu.py"), tmp_path, transport], timeout=180, cwd=tmp_path)
    for r in range(2):
        res = json.loads((tmp_path / f"rank{r}.json").read_text())
        assert all(res.values()), {k: v for k, v in res.items() if not v}
