"""Bring-your-own and torch adapters in one process: module references, the protocol
checks, gradients straight into hpctrain's buffer, evaluation on other weights."""

import sys

import numpy as np
import pytest

from hpctrain.errors import ConfigError
from hpctrain.models import build_model

MODULE = '''
import numpy as np

class Lin:
    def __init__(self, d, c, dtype):
        self.d, self.c = d, c
        self.params = np.zeros(d * c, dtype=dtype)
        self.grad = np.zeros_like(self.params)
    def predict(self, x):
        return x @ self.params.reshape(self.d, self.c)
    def loss_and_grad(self, x, y):
        self.grad[...] = 1.0
        return 0.5

def make(input_shape, n_classes, **kw):
    return Lin(int(np.prod(input_shape)), n_classes, np.float32)

def make64(input_shape, n_classes):
    return Lin(int(np.prod(input_shape)), n_classes, np.float64)

def not_a_model():
    return object()
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_models_14.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_models_14"
    sys.modules.pop("my_models_14", None)


def test_module_reference_and_protocol(user_module):
    m = build_model(f"python:{user_module}:make", (3,), 2)
    p = m.init_params(np, np.float32, 0)
    assert p is m.obj.params  # the algorithms update the user's buffer in place
    g = np.zeros_like(p)
    loss = m.loss_grad(p, np.ones((4, 3), np.float32), np.zeros(4, np.int64), g, 0.1)
    p2 = np.full_like(p, 2.0)
    assert loss == pytest.approx(0.5) and np.all(g == 1.0)
    scores = m.logits(p2, np.ones((1, 3), np.float32))  # other weights: copied in and restored
    assert np.allclose(scores, 6.0) and np.all(m.obj.params == 0)
    g2 = np.zeros_like(p2)
    m.loss_grad(p2, np.ones((4, 3), np.float32), np.zeros(4, np.int64), g2, 0.1)
    np.testing.assert_allclose(g2, 1.0 + 0.1 * 2.0)


@pytest.mark.parametrize("ref,match", [
    ("python:{m}:make64", "params is float64, but this run uses --dtype float32"),
    ("python:{m}:not_a_model", "needs a flat contiguous NumPy array .params"),
    ("python:{m}:nope", "has no factory 'nope'"),
    ("python:no_such_module_14:make", "no module named 'no_such_module_14'"),
    ("python:{m}", "expected python:PATH_OR_MODULE:FACTORY"),
])
def test_protocol_errors(user_module, ref, match):
    with pytest.raises(ConfigError, match=match):
        build_model(ref.format(m=user_module), (3,), 2)


def test_torch_gradient_lands_in_hpctrain_buffer(tmp_path):
    torch = pytest.importorskip("torch")
    (tmp_path / "tm.py").write_text(
        "import torch\n"
        "def make(input_shape, n_classes):\n"
        "    c, h, w = input_shape\n"
        "    return torch.nn.Sequential(torch.nn.Conv2d(c, 3, 3), torch.nn.BatchNorm2d(3), torch.nn.ReLU(),\n"
        "                               torch.nn.Flatten(), torch.nn.Linear(3 * (h - 2) * (w - 2), n_classes))\n")
    m = build_model(f"torch:{tmp_path}/tm.py:make", (2, 5, 5), 3, seed=7, dtype="float64")
    p = m.init_params(np, np.float64, 7)
    g = np.zeros_like(p)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 50)), rng.integers(0, 3, 4)
    loss = m.loss_grad(p, x, y, g)
    # every parameter and its .grad share memory with hpctrain's buffers
    for (a, b, _), (_, q) in zip(m.slices, m.named):
        assert q.data_ptr() == p[a:b].__array_interface__["data"][0]
        assert q.grad.data_ptr() == g[a:b].__array_interface__["data"][0]
    # an independent copy of the module (same seed) gives the same loss and gradient
    sys.path.insert(0, str(tmp_path))
    import tm

    torch.manual_seed(7)
    ref = tm.make((2, 5, 5), 3).double()
    out = torch.nn.functional.cross_entropy(ref(torch.tensor(x).reshape(4, 2, 5, 5)), torch.tensor(y))
    out.backward()
    assert loss == pytest.approx(float(out.detach()), rel=1e-12)
    np.testing.assert_allclose(g, torch.cat([q.grad.reshape(-1) for q in ref.parameters()]).numpy(), rtol=1e-12)
    # an update of hpctrain's buffer is what the module computes with next
    p -= 0.1 * g
    m.loss_grad(p, x, y, g)
    with torch.no_grad():
        for q in ref.parameters():
            q -= 0.1 * q.grad
        ref(torch.tensor(x).reshape(4, 2, 5, 5))  # train mode: the same BN running-stat update
    np.testing.assert_allclose(m.state_dict()["buffer.1.running_var"], ref[1].running_var.numpy(), rtol=1e-12)
    np.testing.assert_allclose(m.logits(p, x), ref.eval()(torch.tensor(x).reshape(4, 2, 5, 5)).detach().numpy(),
                               rtol=1e-10)
    assert "model/buffer/1.running_mean" not in m.state_dict() and "buffer.1.running_mean" in m.state_dict()
    sys.path.remove(str(tmp_path))


def test_torch_refuses_gpu(tmp_path):
    pytest.importorskip("torch")
    (tmp_path / "tm.py").write_text("import torch\ndef make():\n    return torch.nn.Linear(3, 2)\n")
    with pytest.raises(ConfigError, match="runs on the CPU only"):
        build_model(f"torch:{tmp_path}/tm.py:make", (3,), 2, device="gpu")
