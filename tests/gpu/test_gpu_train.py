"""Training on the GPU (CuPy): the same run on --device gpu and cpu gives the same weights
(float64, to rounding), on one rank and on two ranks through the staged transport.

Runs only where CuPy sees a GPU (marker ``gpu``); elsewhere skipped with the reason.
"""

import os

import numpy as np
import pytest

from hpctrain.xp import gpu_available
from mpiutil import WORKERS, run_mpi

pytestmark = pytest.mark.gpu

_OK, _WHY = gpu_available()
if not _OK:
    pytest.skip(f"GPU tests need CuPy and a CUDA GPU: {_WHY}", allow_module_level=True)

ARGS = ["dataset=synthetic", "dtype=float64", "epochs=1", "batch_size=200", "lr=0.1"]


@pytest.mark.parametrize("n,algo", [(1, "dmsgd"), (2, "dmsgd"), (2, "gmc"), (2, "dpsgd"), (2, "powersgd"),
                                    (2, "signsgd")])
def test_gpu_training_matches_cpu(tmp_path, n, algo):
    cpu, gpu = tmp_path / "cpu", tmp_path / "gpu"
    cpu.mkdir()
    gpu.mkdir()
    worker = os.path.join(WORKERS, "train_params.py")
    run_mpi(n, [worker, cpu, *ARGS, f"algo={algo}", "device=cpu"], timeout=300)
    run_mpi(n, [worker, gpu, *ARGS, f"algo={algo}", "device=gpu", "transport=staged"], timeout=300)
    for r in range(n):
        a, b = np.load(cpu / f"params{r}.npy"), np.load(gpu / f"params{r}.npy")
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)
