"""Native layers on CuPy: the same code path as NumPy gives the same loss, gradient and
batch-norm statistics (float64, to rounding), and `--device gpu` trains the cnn like the CPU.

Runs only where CuPy sees a GPU (marker ``gpu``); elsewhere skipped with the reason.
"""

import os
import sys

import numpy as np
import pytest

from hpctrain.models import build_model
from hpctrain.xp import gpu_available
from mpiutil import WORKERS, run_mpi

pytestmark = pytest.mark.gpu

_OK, _WHY = gpu_available()
if not _OK:
    pytest.skip(f"GPU tests need CuPy and a CUDA GPU: {_WHY}", allow_module_level=True)

import cupy as cp  # noqa: E402

SPECS = [("cnn", (1, 28, 28), 10), ("resnet8", (3, 8, 8), 4),
         ("conv:4:3:2:1,bn,relu,avgpool:2,dropout:0.3,linear:6,relu,linear:3", (2, 9, 9), 3)]


@pytest.mark.parametrize("spec,shape,nc", SPECS, ids=[s[0][:12] for s in SPECS])
def test_layers_on_cupy_match_numpy(spec, shape, nc):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, int(np.prod(shape))))
    y = rng.integers(0, nc, 6)
    out = []
    for xp in (np, cp):
        m = build_model(spec, shape, nc, seed=1)
        p = m.init_params(xp, np.float64, 1)
        g = xp.zeros_like(p)
        loss = m.loss_grad(p, xp.asarray(x), xp.asarray(y), g, 1e-3)
        ev = m.evaluate(p, xp.asarray(x), xp.asarray(y))
        state = {k: cp.asnumpy(v) if xp is cp else np.asarray(v) for k, v in m.state_dict().items()}
        out.append((loss, cp.asnumpy(g) if xp is cp else g, ev, state))
    (l0, g0, e0, s0), (l1, g1, e1, s1) = out
    assert l1 == pytest.approx(l0, rel=1e-10)
    np.testing.assert_allclose(g1, g0, rtol=1e-8, atol=1e-11)
    assert e1[1] == e0[1] and e1[0] == pytest.approx(e0[0], rel=1e-10)
    for k in s0:
        np.testing.assert_allclose(s1[k], s0[k], rtol=1e-10, atol=1e-12)


def test_gpu_cnn_training_matches_cpu(tmp_path):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "mpi"))
    from test_models_train import image_h5

    data = image_h5(tmp_path / "img.h5")
    args = [f"dataset={data}", "model=cnn", "dtype=float64", "epochs=1", "batch_size=20", "lr=0.01"]
    for dev in ("cpu", "gpu"):
        (tmp_path / dev).mkdir()
        run_mpi(1, [os.path.join(WORKERS, "train_params.py"), tmp_path / dev, *args, f"device={dev}"], timeout=300)
    np.testing.assert_allclose(np.load(tmp_path / "gpu" / "params0.npy"), np.load(tmp_path / "cpu" / "params0.npy"),
                               rtol=1e-8, atol=1e-11)
