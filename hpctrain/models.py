"""Models with hand-written gradients on a flat parameter vector (NumPy or CuPy).

Every model keeps its parameters in one contiguous 1-D array so that collectives and
compressors work on a single buffer; ``views(params)`` gives the shaped views.
"""

import numpy as np

from .errors import ConfigError
from .xp import get_array_module

__all__ = ["SoftmaxRegression", "get_model", "MODELS"]


def _log_softmax_grad(logits, y):
    """Mean cross-entropy of ``logits`` for integer labels ``y`` and d(loss)/d(logits)."""
    xp = get_array_module(logits)
    b = logits.shape[0]
    z = logits - logits.max(axis=1, keepdims=True)
    ez = xp.exp(z)
    s = ez.sum(axis=1, keepdims=True)
    rows = xp.arange(b)
    loss = float((xp.log(s[:, 0]) - z[rows, y]).sum()) / b
    p = ez / s
    p[rows, y] -= 1
    p /= b
    return loss, p


class SoftmaxRegression:
    """Multinomial logistic regression with L2 weight decay on the weights.

    loss(W, b) = mean_i CE(softmax(x_i W + b), y_i) + weight_decay/2 * ||W||^2

    Args:
        n_features: input dimension d.
        n_classes: number of classes c.
    """

    name = "softmax"

    def __init__(self, n_features, n_classes):
        self.n_features = int(n_features)
        self.n_classes = int(n_classes)
        self.size = self.n_features * self.n_classes + self.n_classes

    def init_params(self, xp=np, dtype=np.float32, seed=0):
        """Zero initial parameters (the problem is convex)."""
        return xp.zeros(self.size, dtype=dtype)

    def views(self, params):
        """(W of shape (d, c), b of shape (c,)) as views of ``params``."""
        d, c = self.n_features, self.n_classes
        return params[: d * c].reshape(d, c), params[d * c :]

    def logits(self, params, x):
        """Class scores for the rows of ``x``."""
        w, b = self.views(params)
        return x @ w + b

    def loss_grad(self, params, x, y, grad, weight_decay=0.0):
        """Loss on the batch ``(x, y)``; writes the gradient into ``grad`` (same shape as
        ``params``).

        Returns:
            The loss as a Python float (data term + weight-decay term).
        """
        w, _ = self.views(params)
        gw, gb = self.views(grad)
        loss, dlogits = _log_softmax_grad(self.logits(params, x), y)
        gw[...] = x.T @ dlogits
        dlogits.sum(axis=0, out=gb)
        if weight_decay:
            gw += weight_decay * w
            loss += 0.5 * weight_decay * float((w * w).sum())
        return loss

    def evaluate(self, params, x, y, batch=8192):
        """(summed cross-entropy, number correct) over ``(x, y)`` without weight decay."""
        total, correct = 0.0, 0
        for i in range(0, x.shape[0], batch):
            xb, yb = x[i : i + batch], y[i : i + batch]
            logits = self.logits(params, xb)
            loss, _ = _log_softmax_grad(logits, yb)
            total += loss * xb.shape[0]
            correct += int((logits.argmax(axis=1) == yb).sum())
        return total, correct


MODELS = {"softmax": SoftmaxRegression}


def get_model(name, n_features, n_classes, **kwargs):
    """Build the model registered as ``name``."""
    try:
        cls = MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; choose from {', '.join(MODELS)}") from None
    return cls(n_features, n_classes, **kwargs)
