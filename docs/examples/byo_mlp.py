"""A bring-your-own model for hpctrain: a one-hidden-layer MLP on the flat-buffer protocol.

Train it with

    mpiexec -n 2 hpctrain train --model python:docs/examples/byo_mlp.py:make_model --dataset fashion-mnist

The protocol (docs/models.md): ``params`` and ``grad`` are flat NumPy arrays of the run's
dtype; ``loss_and_grad(x, y)`` returns the mean loss and writes the gradient into
``grad``; ``predict(x)`` returns class scores; ``state`` (optional) holds arrays that
checkpoints carry. hpctrain's algorithms update ``params`` in place, so the model reads
its weights from that buffer on every call (the shaped views below are views of it).
"""

import numpy as np


class MLP:
    def __init__(self, d, c, hidden=64, seed=0, dtype=np.float32):
        self.d, self.c, self.h = d, c, hidden
        self.params = np.zeros(d * hidden + hidden + hidden * c + c, dtype=dtype)
        self.grad = np.zeros_like(self.params)
        rng = np.random.default_rng(seed)  # the same seed on every rank: the same start
        w1, _, w2, _ = self._views(self.params)
        w1[...] = rng.normal(0, np.sqrt(2.0 / d), w1.shape)
        w2[...] = rng.normal(0, np.sqrt(1.0 / hidden), w2.shape)
        self.state = {"batches_seen": np.zeros(1, dtype=np.int64)}  # checkpointed with the run

    def _views(self, p):
        d, h, c = self.d, self.h, self.c
        o1, o2, o3 = d * h, d * h + h, d * h + h + h * c
        return p[:o1].reshape(d, h), p[o1:o2], p[o2:o3].reshape(h, c), p[o3:]

    def predict(self, x):
        w1, b1, w2, b2 = self._views(self.params)
        return np.maximum(x @ w1 + b1, 0) @ w2 + b2

    def loss_and_grad(self, x, y):
        w1, b1, w2, b2 = self._views(self.params)
        gw1, gb1, gw2, gb2 = self._views(self.grad)
        pre = x @ w1 + b1
        act = np.maximum(pre, 0)
        z = act @ w2 + b2
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        n = x.shape[0]
        loss = float(-np.log(p[np.arange(n), y]).mean())
        p[np.arange(n), y] -= 1
        p /= n
        gw2[...] = act.T @ p
        gb2[...] = p.sum(axis=0)
        da = (p @ w2.T) * (pre > 0)
        gw1[...] = x.T @ da
        gb1[...] = da.sum(axis=0)
        self.state["batches_seen"][0] += 1
        return loss


def make_model(input_shape, n_classes, seed):
    """The factory hpctrain calls (with the keyword arguments it names)."""
    return MLP(int(np.prod(input_shape)), n_classes, seed=seed)
