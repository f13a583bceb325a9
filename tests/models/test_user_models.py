"""The bring-your-own model paths: parameter views for every model kind, the factory told
the dtype and device, torch lazy modules, live and bool model state in checkpoints, the
parameter layout recorded and checked on resume, and user-code errors as one line that
names the user's file and line (exit 2)."""

import subprocess
import textwrap

import h5py
import numpy as np
import pytest

from hpctrain.models import build_model, param_layout
from mpiutil import HPCTRAIN, run_mpi

torch = pytest.importorskip("torch")


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _train(tmp_path, model, *args, out="run"):
    return subprocess.run([HPCTRAIN, "train", "--dataset", "synthetic", "--model", model, "--epochs", "1",
                           "--max-steps", "4", "--batch-size", "32", "--threads", "1", "--out", tmp_path / out,
                           *map(str, args)], capture_output=True, text=True, timeout=180, cwd=tmp_path)


def _one_line(res, *fragments):
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    for frag in fragments:
        assert frag in lines[0], lines[0]
    return lines[0]


PY_MODEL = '''
import numpy as np

class Linear:
    def __init__(self, d, c, dtype="float32", state=None):
        self.d, self.c = d, c
        self.params = np.zeros(d * c + c, dtype=dtype)
        self.grad = np.zeros_like(self.params)
        self.param_shapes = [("w", (d, c)), ("b", (c,))]
        self.state = state if state is not None else {}

    def predict(self, x):
        return x @ self.params[: self.d * self.c].reshape(self.d, self.c) + self.params[self.d * self.c:]

    def loss_and_grad(self, x, y):
        s = self.predict(x)
        s -= s.max(axis=1, keepdims=True)
        e = np.exp(s)
        rows = np.arange(x.shape[0])
        loss = float(np.mean(np.log(e.sum(axis=1)) - s[rows, y]))
        dz = e / e.sum(axis=1, keepdims=True) / x.shape[0]
        dz[rows, y] -= 1.0 / x.shape[0]
        self.grad[: self.d * self.c] = (x.T @ dz).ravel()
        self.grad[self.d * self.c:] = dz.sum(axis=0)
        if "flag" in self.state:
            self.state["flag"][0] = not self.state["flag"][0]
        return loss

def make(input_shape, n_classes, dtype):
    return Linear(int(np.prod(input_shape)), n_classes, dtype)

def with_bool_state(input_shape, n_classes, dtype):
    return Linear(int(np.prod(input_shape)), n_classes, dtype, {"flag": np.zeros(1, dtype=bool)})

def empty(input_shape, n_classes, dtype):
    m = Linear(int(np.prod(input_shape)), n_classes, dtype)
    m.params = m.grad = np.zeros(0, dtype=dtype)
    return m

def broken(input_shape, n_classes):
    raise ValueError("bad hidden size")

def exits(input_shape, n_classes):
    import sys
    sys.exit(0)

class NoneLoss(Linear):
    def loss_and_grad(self, x, y):
        return None

def none_loss(input_shape, n_classes, dtype):
    return NoneLoss(int(np.prod(input_shape)), n_classes, dtype)

class Boom(Linear):
    def loss_and_grad(self, x, y):
        raise RuntimeError("boom in my loss")

def boom(input_shape, n_classes, dtype):
    return Boom(int(np.prod(input_shape)), n_classes, dtype)
'''

TORCH_MODEL = '''
import torch

class Counting(torch.nn.Module):
    def __init__(self, d, c):
        super().__init__()
        self.fc = torch.nn.Linear(d, c)
        self.register_buffer("seen", torch.zeros(1))
        self.register_buffer("odd", torch.zeros(1, dtype=torch.bool))

    def forward(self, x):
        if self.training:
            self.seen = self.seen + x.shape[0]  # reassigned, not updated in place
            self.odd = ~self.odd
        return self.fc(x.flatten(1))

def counting(input_shape, n_classes):
    return Counting(input_shape[0], n_classes)

def lazy(input_shape, n_classes, dtype, device):
    assert dtype in ("float32", "float64") and device == "cpu"
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(16), torch.nn.ReLU(),
                               torch.nn.LazyLinear(n_classes))

def two(input_shape, n_classes):
    return torch.nn.Sequential(torch.nn.Linear(input_shape[0], 8), torch.nn.ReLU(), torch.nn.Linear(8, n_classes))

class Bad(torch.nn.Module):
    def __init__(self, d, c):
        super().__init__()
        self.fc = torch.nn.Linear(d, c)

    def forward(self, x):
        raise KeyError("forward broke")

def bad(input_shape, n_classes):
    return Bad(input_shape[0], n_classes)
'''


def test_param_views_for_every_model_kind(tmp_path):
    py = _write(tmp_path, "pym.py", PY_MODEL)
    tm = _write(tmp_path, "tm.py", TORCH_MODEL)
    cases = {"softmax": (8,), "mlp": (8,), "conv:2:3,relu,flatten,bn,linear:3": (1, 6, 6),
             f"python:{py}:make": (8,), f"torch:{tm}:two": (8,)}
    for spec, shape in cases.items():
        m = build_model(spec, shape, 3, hidden=5)
        params = m.init_params(np, np.float32, 0)
        views = m.param_views()
        assert sum(v.size for _, v in views) == m.size == params.size, spec
        for _, v in views:
            assert np.shares_memory(v, params), spec
        # in buffer order: writing view k writes the buffer's k-th slice
        params[...] = 0
        off = 0
        for k, (name, v) in enumerate(views):
            v[...] = k + 1
            assert np.all(params[off : off + v.size] == k + 1), (spec, name)
            off += v.size
        assert m.param_views(params.copy())[0][1].shape == views[0][1].shape
    tmod = build_model(f"torch:{tm}:two", (8,), 3)
    tmod.init_params(np, np.float32, 0)
    assert param_layout(tmod) == [(n, tuple(p.shape)) for n, p in tmod.module.named_parameters()]
    assert [n for n, _ in build_model("mlp", (8,), 3, hidden=5).param_views(np.zeros(8 * 5 + 5 + 5 * 3 + 3))] == [
        "hidden.weight", "hidden.bias", "out.weight", "out.bias"]


def test_factory_is_told_the_dtype(tmp_path):
    py = _write(tmp_path, "pym.py", PY_MODEL)
    res = _train(tmp_path, f"python:{py}:make", "--dtype", "float64")
    assert res.returncode == 0, res.stderr


def test_torch_lazy_modules_are_materialised(tmp_path):
    tm = _write(tmp_path, "tm.py", TORCH_MODEL)
    res = _train(tmp_path, f"torch:{tm}:lazy", "--checkpoint-every", "2steps")
    assert res.returncode == 0, res.stderr
    m = build_model(f"torch:{tm}:lazy", (65,), 10)
    assert m.size == 65 * 16 + 16 + 16 * 10 + 10


def test_live_and_bool_torch_buffers_are_checkpointed(tmp_path):
    tm = _write(tmp_path, "tm.py", TORCH_MODEL)
    res = _train(tmp_path, f"torch:{tm}:counting", "--checkpoint-every", "2steps", "--max-steps", "3")
    assert res.returncode == 0, res.stderr
    ck = sorted((tmp_path / "run" / "checkpoints").glob("ckpt-*.h5"))[-1]
    with h5py.File(ck, "r") as f:
        assert f["model/buffer.seen"][()].ravel()[0] == 3 * 32  # the live value, not the initial 0
        assert f["model/buffer.odd"][()].ravel()[0] == 1  # bool stored as uint8: flipped 3 times
    ver = subprocess.run([HPCTRAIN, "inspect", ck, "--verify"], capture_output=True, text=True, timeout=60)
    assert ver.returncode == 0, ver.stderr
    more = _train(tmp_path, f"torch:{tm}:counting", "--checkpoint-every", "2steps", "--max-steps", "4",
                  "--resume", "latest", "--overwrite")
    assert more.returncode == 0, more.stderr
    with h5py.File(sorted((tmp_path / "run" / "checkpoints").glob("ckpt-*.h5"))[-1], "r") as f:
        assert f["model/buffer.seen"][()].ravel()[0] == 4 * 32 and f["model/buffer.odd"][()].ravel()[0] == 0


def test_bool_python_state_is_checkpointed(tmp_path):
    py = _write(tmp_path, "pym.py", PY_MODEL)
    res = _train(tmp_path, f"python:{py}:with_bool_state", "--checkpoint-every", "1steps", "--max-steps", "3")
    assert res.returncode == 0, res.stderr
    with h5py.File(sorted((tmp_path / "run" / "checkpoints").glob("ckpt-*.h5"))[-1], "r") as f:
        assert f["model/flag"][()].ravel()[0] == 1


SWAP = """
import torch

class Net(torch.nn.Module):
    def __init__(self, d, c):
        super().__init__()
        self.a = torch.nn.Linear(d, 10)
        self.b = torch.nn.Linear(10, c)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))

def m(input_shape, n_classes):
    return Net(input_shape[0], n_classes)
"""


def test_resume_with_another_layer_order_is_refused(tmp_path):
    path = _write(tmp_path, "swap.py", SWAP)
    res = _train(tmp_path, f"torch:{path}:m", "--checkpoint-every", "2steps")
    assert res.returncode == 0, res.stderr
    # the file edited: b registered before a (same modules, same count, another flat layout)
    path.write_text(SWAP.replace("        self.a = torch.nn.Linear(d, 10)\n        self.b = torch.nn.Linear(10, c)",
                                 "        self.b = torch.nn.Linear(10, c)\n        self.a = torch.nn.Linear(d, 10)"))
    assert "self.b = torch.nn.Linear(10, c)\n        self.a" in path.read_text()
    res2 = _train(tmp_path, f"torch:{path}:m", "--resume", "latest", "--overwrite", "--max-steps", "6")
    _one_line(res2, "laid out otherwise", "parameter 1 is a.weight (10, 64) there but b.weight (10, 10) here")


@pytest.mark.parametrize("factory,fragments", [
    ("broken", ["the factory raised ValueError: bad hidden size", "pym.py:"]),
    ("exits", ["called sys.exit(0)", "pym.py:"]),
    ("empty", ["no parameters"]),
    ("none_loss", ["loss_and_grad() returned NoneType"]),
    ("boom", ["loss_and_grad() raised RuntimeError: boom in my loss", "pym.py:"]),
])
def test_python_user_code_errors_are_one_line(tmp_path, factory, fragments):
    py = _write(tmp_path, "pym.py", PY_MODEL)
    _one_line(_train(tmp_path, f"python:{py}:{factory}"), *fragments)


def test_exit_at_import_and_torch_forward_error_are_one_line(tmp_path):
    ex = _write(tmp_path, "ex.py", "import sys\nsys.exit(3)\ndef make():\n    pass\n")
    _one_line(_train(tmp_path, f"python:{ex}:make"), "called sys.exit(3)", "ex.py:2")
    tm = _write(tmp_path, "tm.py", TORCH_MODEL)
    line = _one_line(_train(tmp_path, f"torch:{tm}:bad"), "forward() raised KeyError", "tm.py:")
    assert "torch/" not in line


ONE_RANK = '''
import torch

class Net(torch.nn.Module):
    def __init__(self, d, c, rank):
        super().__init__()
        self.fc = torch.nn.Linear(d, c)
        self.rank, self.calls = rank, 0

    def forward(self, x):
        self.calls += 1
        if self.rank == 1 and self.calls > 3:
            raise ValueError("rank one broke")
        return self.fc(x)

def make(input_shape, n_classes, rank):
    return Net(input_shape[0], n_classes, rank)
'''


@pytest.mark.mpi
def test_user_error_on_one_rank_ends_the_job(tmp_path):
    m = _write(tmp_path, "one.py", ONE_RANK)
    res = run_mpi(2, [HPCTRAIN, "train", "--dataset", "synthetic", "--model", f"torch:{m}:make", "--epochs", "1",
                      "-q", "--out", tmp_path / "run"], timeout=120, cwd=tmp_path, check=False)
    assert res.returncode == 2, (res.returncode, res.stderr)
    ours = [x for x in res.stderr.splitlines() if x.startswith("hpctrain:")]
    assert len(ours) == 1 and "forward() raised ValueError: rank one broke" in ours[0]
    assert "one.py:13" in ours[0]  # the raise (the text starts with a newline)
    assert "Traceback" not in res.stderr


def test_integer_outputs_meta_parameters_and_non_python_files_are_one_line(tmp_path):
    ints = _write(tmp_path, "ints.py", """
        import numpy as np

        class Ints:
            def __init__(self, c, dtype):
                self.c, self.params = c, np.zeros(3, dtype=dtype)
                self.grad = np.zeros_like(self.params)

            def predict(self, x):
                return np.zeros((x.shape[0], self.c), dtype=np.int64)

            def loss_and_grad(self, x, y):
                return 0.0

        def make(n_classes, dtype):
            return Ints(n_classes, dtype)
        """)
    _one_line(_train(tmp_path, f"python:{ints}:make"), "int64, not floating point")
    meta = _write(tmp_path, "meta.py", """
        import torch

        def make(input_shape, n_classes):
            return torch.nn.Linear(input_shape[0], n_classes, device="meta")
        """)
    _one_line(_train(tmp_path, f"torch:{meta}:make"), "meta device")
    tint = _write(tmp_path, "tint.py", """
        import torch

        class Net(torch.nn.Module):
            def __init__(self, d, c):
                super().__init__()
                self.fc = torch.nn.Linear(d, c)

            def forward(self, x):
                return self.fc(x).long()

        def make(input_shape, n_classes):
            return Net(input_shape[0], n_classes)
        """)
    _one_line(_train(tmp_path, f"torch:{tint}:make"), "torch.int64, not floating point")
    notpy = _write(tmp_path, "data.txt", "not python\n")
    _one_line(_train(tmp_path, f"python:{notpy}:make"), "is not a Python source file")
