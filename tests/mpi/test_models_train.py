"""Real models through the CLI on 2 ranks: native cnn / resnet8 / layer specs, a
bring-your-own model file the test writes, and a torch CNN (every rank ends with the
same weights, equal to a single-process PyTorch run on the averaged gradients);
bit-identical resume with dropout masks and batch-norm running statistics."""

import json
import os
import textwrap

import h5py
import numpy as np
import pytest

from hpctrain.data import load_dataset
from hpctrain.train import epoch_order
from mpiutil import HPCTRAIN, WORKERS

N_CLASSES = 4


def image_h5(path, n=480, n_test=160, size=12, channels=1, seed=0):
    """A learnable image set: each class is a fixed random template plus noise, (n, c, h, w)."""
    rng = np.random.default_rng(seed)
    templates = rng.normal(0, 1, (N_CLASSES, channels, size, size))

    def draw(m):
        y = rng.integers(0, N_CLASSES, m)
        return (templates[y] + rng.normal(0, 1.0, (m, channels, size, size))).astype(np.float32), y

    x, y = draw(n)
    xt, yt = draw(n_test)
    with h5py.File(path, "w") as f:
        f["x"], f["y"], f["x_test"], f["y_test"] = x, y, xt, yt
    return f"hdf5:{path}"


BYO = '''
import numpy as np

class Softmax:
    """Softmax regression on the flat-buffer protocol, written by the test."""

    def __init__(self, d, c):
        self.d, self.c = d, c
        self.params = np.zeros(d * c + c)
        self.grad = np.zeros_like(self.params)

    def _wb(self, p):
        return p[: self.d * self.c].reshape(self.d, self.c), p[self.d * self.c :]

    def predict(self, x):
        w, b = self._wb(self.params)
        return x @ w + b

    def loss_and_grad(self, x, y):
        z = self.predict(x)
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        n = x.shape[0]
        loss = -np.log(p[np.arange(n), y]).mean()
        p[np.arange(n), y] -= 1
        p /= n
        gw, gb = self._wb(self.grad)
        gw[...] = x.T @ p
        gb[...] = p.sum(axis=0)
        return loss

def make(input_shape, n_classes):
    return Softmax(int(np.prod(input_shape)), n_classes)
'''

TORCH = '''
import torch

def conv_net(input_shape, n_classes):
    c, h, w = input_shape
    return torch.nn.Sequential(
        torch.nn.Conv2d(c, 4, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(4 * ((h - 2) // 2) * ((w - 2) // 2), n_classes))

def bn_dropout_net(input_shape, n_classes):
    c, h, w = input_shape
    return torch.nn.Sequential(
        torch.nn.Conv2d(c, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Dropout(0.3), torch.nn.Linear(4 * ((h - 2) // 2) * ((w - 2) // 2), n_classes))
'''


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return str(p)


def _params(out, n):
    return [np.load(f"{out}/params{r}.npy") for r in range(n)]


def _train(mpirun, out, n=2, **kw):
    args = [os.path.join(WORKERS, "train_params.py"), out] + [f"{k}={v}" for k, v in kw.items()]
    mpirun(n, args, timeout=240)
    return _params(out, n)


@pytest.mark.mpi
def test_byo_model_file_trains_on_two_ranks_like_the_native_softmax(mpirun, tmp_path):
    data = image_h5(tmp_path / "img.h5")
    path = _write(tmp_path, "my_model.py", BYO)
    common = dict(dataset=data, dtype="float64", epochs=2, batch_size=20, lr=0.1, weight_decay=0.0, seed=1)
    ours = _train(mpirun, tmp_path / "byo", model=f"python:{path}:make", **common)
    native = _train(mpirun, tmp_path / "native", model="softmax", **common)
    assert np.array_equal(ours[0], ours[1])
    np.testing.assert_allclose(ours[0], native[0], rtol=1e-9, atol=1e-12)
    rec = [json.loads(x) for x in (tmp_path / "byo" / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rec[-1]["test_accuracy"] > 0.9


@pytest.mark.mpi
def test_docs_example_model_trains(mpirun, tmp_path):
    data = image_h5(tmp_path / "img.h5")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    example = os.path.join(root, "docs", "examples", "byo_mlp.py")
    _train(mpirun, tmp_path / "ex", model=f"python:{example}:make_model", dataset=data, epochs=2, batch_size=20,
           lr=0.1)
    rec = [json.loads(x) for x in (tmp_path / "ex" / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rec[-1]["test_accuracy"] > 0.9


def _torch_reference(path, dataset, n, epochs, batch, lr, momentum, wd, seed):
    """Single process: the torch module stepped by hand with dmsgd on the ranks' averaged gradients."""
    import importlib.util

    import torch

    spec = importlib.util.spec_from_file_location("ref_torch_model", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    shards = [load_dataset(dataset, r, n, seed) for r in range(n)]
    torch.manual_seed(seed)
    net = mod.conv_net(shards[0].input_shape, shards[0].n_classes).double()
    ps = list(net.parameters())
    vel = [torch.zeros_like(p) for p in ps]
    steps = (shards[0].n_train_total // n) // batch
    for epoch in range(1, epochs + 1):
        orders = [epoch_order(s.x_train.shape[0], seed, epoch, r) for r, s in enumerate(shards)]
        for i in range(steps):
            total = [torch.zeros_like(p) for p in ps]
            for s, order in zip(shards, orders):
                idx = order[i * batch : (i + 1) * batch]
                x = torch.tensor(s.x_train[idx].astype(np.float64)).reshape((batch,) + s.input_shape)
                net.zero_grad()
                torch.nn.functional.cross_entropy(net(x), torch.tensor(s.y_train[idx])).backward()
                for t, p in zip(total, ps):
                    t += p.grad + wd * p.detach()
            with torch.no_grad():
                for p, v, t in zip(ps, vel, total):
                    v.mul_(momentum).add_(t / n)
                    p.sub_(lr * v)
    return torch.cat([p.detach().reshape(-1) for p in ps]).numpy()


@pytest.mark.mpi
def test_torch_cnn_on_two_ranks_equals_single_process_average(mpirun, tmp_path):
    pytest.importorskip("torch")
    data = image_h5(tmp_path / "img.h5")
    path = _write(tmp_path, "tmodel.py", TORCH)
    kw = dict(epochs=2, batch=20, lr=0.05, momentum=0.9, wd=1e-3, seed=3)
    ws = _train(mpirun, tmp_path / "t", model=f"torch:{path}:conv_net", dataset=data, dtype="float64",
                epochs=kw["epochs"], batch_size=kw["batch"], lr=kw["lr"], momentum=kw["momentum"],
                weight_decay=kw["wd"], seed=kw["seed"], algo="dmsgd")
    assert np.array_equal(ws[0], ws[1]), "ranks differ"
    ref = _torch_reference(path, data, 2, **kw)
    np.testing.assert_allclose(ws[0], ref, rtol=1e-9, atol=1e-11)
    rec = [json.loads(x) for x in (tmp_path / "t" / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rec[-1]["test_accuracy"] > 0.8


def _ckpt_arrays(path):
    with h5py.File(path, "r") as f:
        out = {}
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
    return out


RESUME_MODELS = [
    ("cnn-dropout", "conv:8:3,relu,maxpool:2,conv:8:3,relu,maxpool:2,flatten,dropout:0.3,linear:16,relu,linear:4"),
    ("cnn", "cnn"),
    ("resnet8", "resnet8"),
    ("torch-bn-dropout", "torch:{path}:bn_dropout_net"),
]


@pytest.mark.mpi
@pytest.mark.parametrize("name,model", RESUME_MODELS, ids=[n for n, _ in RESUME_MODELS])
def test_resume_is_bit_identical(mpirun, tmp_path, name, model):
    if name.startswith("torch"):
        pytest.importorskip("torch")
    data = image_h5(tmp_path / "img.h5", n=240, n_test=40)
    model = model.format(path=_write(tmp_path, "tmodel.py", TORCH))
    common = ["--model", model, "--dataset", data, "--epochs", "2", "--batch-size", "20", "--lr", "0.05",
              "--seed", "2", "-q"]
    full, part = tmp_path / "full", tmp_path / "part"
    mpirun(2, [HPCTRAIN, "train", *common, "--checkpoint-every", "4steps", "--keep", "0", "--out", full], timeout=240)
    ckpts = sorted((full / "checkpoints").glob("ckpt-*.h5"))
    mid = [c for c in ckpts if c.name.startswith("ckpt-000000008")][0]  # mid-epoch (6 steps per epoch)
    mpirun(2, [HPCTRAIN, "train", *common, "--checkpoint-every", "4steps", "--keep", "0", "--out", part,
               "--resume", mid], timeout=240)
    (last,) = [c for c in ckpts if c.name.startswith("ckpt-000000012")]
    (last_b,) = [c for c in (part / "checkpoints").glob("ckpt-000000012*.h5")]
    a, b = _ckpt_arrays(last), _ckpt_arrays(last_b)
    assert set(a) == set(b)
    model_keys = [k for k in a if k.startswith("model/")]
    assert "model/step" in model_keys
    if name in ("resnet8", "torch-bn-dropout"):
        assert any("running_var" in k for k in model_keys)
    for k in a:
        assert np.array_equal(a[k], b[k]), f"{k} differs after resume"
    assert not np.array_equal(a["params"], _ckpt_arrays(mid)["params"])  # training moved on
    ra = (full / "metrics.jsonl").read_text().splitlines()[-1]
    rb = (part / "metrics.jsonl").read_text().splitlines()[-1]
    assert json.loads(ra)["test_loss"] == json.loads(rb)["test_loss"]


@pytest.mark.mpi
def test_native_cnn_learns_images(mpirun, tmp_path):
    data = image_h5(tmp_path / "img.h5")
    ws = _train(mpirun, tmp_path / "c", model="cnn", dataset=data, epochs=6, batch_size=20, lr=0.01)
    assert np.array_equal(ws[0], ws[1])
    rec = [json.loads(x) for x in (tmp_path / "c" / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rec[-1]["test_accuracy"] > 0.9
