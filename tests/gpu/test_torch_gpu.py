"""hpctrain.torch with CUDA tensors: the flat buffers live on the GPU and are shared with
CuPy through DLPack (zero copy); gradient mode on the GPU equals the CPU run.

Runs only where torch sees CUDA and CuPy sees a GPU (marker ``gpu``); elsewhere skipped
with the reason.
"""

import json
import os
import sys

import numpy as np
import pytest

from hpctrain.xp import gpu_available
from mpiutil import run_mpi

pytestmark = pytest.mark.gpu

torch = pytest.importorskip("torch")
_OK, _WHY = gpu_available()
if not _OK:
    pytest.skip(f"GPU tests need CuPy and a CUDA GPU: {_WHY}", allow_module_level=True)
if not torch.cuda.is_available():
    pytest.skip("torch tests on the GPU need a CUDA build of PyTorch", allow_module_level=True)

import cupy as cp  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "torchapi"))
from scripts import USER_SCRIPT  # noqa: E402

from hpctrain.torch._flat import as_array  # noqa: E402


def test_dlpack_shares_memory_without_a_copy():
    t = torch.arange(10, dtype=torch.float32, device="cuda")
    a = as_array(t)
    assert isinstance(a, cp.ndarray)
    assert a.data.ptr == t.data_ptr()  # the same device memory
    a[3] = -1.0
    torch.cuda.synchronize()
    assert float(t[3]) == -1.0


def _run(tmp_path, ranks, **cfg):
    path = tmp_path / "u.py"
    path.write_text(USER_SCRIPT)
    out = tmp_path / f"out-{cfg['mode']}-{cfg.get('device', 'cpu')}-{ranks}"
    out.mkdir()
    cfg = {"out": str(out), "ranks": ranks, "steps": 5, "batch": 4, **cfg}
    run_mpi(ranks, [str(path), json.dumps(cfg)], timeout=300, cwd=tmp_path)
    return [np.load(out / f"params-{r}.npy") for r in range(ranks)]


@pytest.mark.parametrize("ranks", [1, 2])
def test_gradient_mode_on_the_gpu_equals_the_cpu(tmp_path, ranks):
    cpu = _run(tmp_path, ranks, mode="grad", dtype="float64", collective="ring")
    gpu = _run(tmp_path, ranks, mode="grad", dtype="float64", collective="ring", device="cuda")
    np.testing.assert_allclose(gpu[0], cpu[0], rtol=1e-9, atol=1e-11)


def test_algorithm_mode_on_the_gpu_equals_the_cpu(tmp_path):
    opts = {"momentum": 0.9}
    cpu = _run(tmp_path, 2, mode="algo", algo="dmsgd", options=opts, dtype="float64")
    gpu = _run(tmp_path, 2, mode="algo", algo="dmsgd", options=opts, dtype="float64", device="cuda")
    np.testing.assert_allclose(gpu[0], cpu[0], rtol=1e-9, atol=1e-11)
