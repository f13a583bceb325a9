"""Models with hand-written gradients on a flat parameter vector (NumPy or CuPy).

Every model keeps its parameters in one contiguous 1-D array so that collectives and
compressors work on a single buffer; ``views(params)`` gives the shaped views.
"""

import numpy as np

from ..errors import ConfigError
from ..xp import get_array_module

__all__ = ["SoftmaxRegression", "MLP", "get_model", "MODELS"]


_FLAT_ROWS = {}  # (array module, rows, classes) -> arange(rows) * classes, built once per batch shape


def _flat_labels(xp, y, b, c):
    """Flat indices ``r * c + y[r]`` of the label entries of a C-contiguous (b, c) array:
    one integer index instead of the pair ``[arange(b), y]`` (the same elements, read and
    written several times faster by NumPy on small batches)."""
    key = (xp, b, c)
    rows = _FLAT_ROWS.get(key)
    if rows is None:
        rows = _FLAT_ROWS[key] = xp.arange(b) * c
    return rows + y


def _row_max(z):
    """``z.max(axis=1, keepdims=True)``, exactly: on NumPy with few classes, one
    elementwise maximum per column beats the short-row reduction (max is exact in any order;
    NaN propagates either way)."""
    b, c = z.shape
    if c > 16 or c < 2 or get_array_module(z) is not np:
        return z.max(axis=1, keepdims=True)
    out = np.maximum(z[:, 0], z[:, 1])
    for j in range(2, c):
        np.maximum(out, z[:, j], out=out)
    return out.reshape(b, 1)


def _log_softmax_grad(logits, y, overwrite=False):
    """Mean cross-entropy of ``logits`` for integer labels ``y`` and d(loss)/d(logits).

    With ``overwrite`` the caller's ``logits`` (a temporary) is shifted in place, which
    saves two batch-sized temporaries per step; the results are the same bits."""
    xp = get_array_module(logits)
    b, c = logits.shape
    if not logits.flags.c_contiguous:  # (an external model's scores) the flat indices need C order
        logits, overwrite = xp.ascontiguousarray(logits), True
    if overwrite:
        z = logits
        z -= _row_max(logits)
    else:
        z = logits - _row_max(logits)
    ez = xp.exp(z)
    s = ez.sum(axis=1, keepdims=True)
    flat = _flat_labels(xp, y, b, c)
    loss = float((xp.log(s[:, 0]) - z.reshape(-1)[flat]).sum()) / b
    if overwrite:
        ez /= s
        p = ez
    else:
        p = ez / s
    p.reshape(-1)[flat] -= 1  # p is C-contiguous like z: a view
    p /= b
    return loss, p


def evaluate_batches(logits, x, y, batch, as_float64=False):
    """(summed cross-entropy, number correct) over ``(x, y)``, scored in batches of
    ``batch`` rows by ``logits(xb)`` (every model's ``evaluate``).

    Args:
        logits: ``xb -> scores`` of shape (rows, classes).
        as_float64: score in float64 (external models may return float32).
    """
    total, correct = 0.0, 0
    for i in range(0, x.shape[0], batch):
        xb, yb = x[i : i + batch], y[i : i + batch]
        scores = logits(xb)
        if as_float64:
            scores = scores.astype(np.float64)
        loss, _ = _log_softmax_grad(scores, yb)
        total += loss * xb.shape[0]
        correct += int((scores.argmax(axis=1) == yb).sum())
    return total, correct


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
        self.params = xp.zeros(self.size, dtype=dtype)
        return self.params

    def param_views(self, params=None):
        """(name, view) of W (d, c) and b (c,) in ``params`` (default: :meth:`init_params`'s buffer)."""
        return list(zip(("weight", "bias"), self.views(self.params if params is None else params)))

    def views(self, params):
        """(W of shape (d, c), b of shape (c,)) as views of ``params``."""
        d, c = self.n_features, self.n_classes
        return params[: d * c].reshape(d, c), params[d * c :]

    def logits(self, params, x):
        """Class scores for the rows of ``x``."""
        w, b = self.views(params)
        return x @ w + b

    def _bind(self, params, grad):
        """(W, b, gW, gb, weight-decay scratch, array module) for this pair of buffers, built
        when they change: the trainer passes the same two every step."""
        bound = self.__dict__.get("_bound")
        if bound is None or bound[0] is not params or bound[1] is not grad:
            w, b = self.views(params)
            gw, gb = self.views(grad)
            xp = get_array_module(params)
            bound = self._bound = (params, grad, w, b, gw, gb, xp.empty_like(w), xp)
        return bound[2:]

    def loss_grad(self, params, x, y, grad, weight_decay=0.0):
        """Loss on the batch ``(x, y)``; writes the gradient into ``grad`` (same shape as
        ``params``).

        Returns:
            The loss as a Python float (data term + weight-decay term).
        """
        w, b, gw, gb, wd, xp = self._bind(params, grad)
        loss, dlogits = _log_softmax_grad(x @ w + b, y, overwrite=True)
        xp.matmul(x.T, dlogits, out=gw)  # straight into the gradient buffer
        dlogits.sum(axis=0, out=gb)
        if weight_decay:
            xp.multiply(w, weight_decay, out=wd)  # reused scratch: no temporary of the weights' size
            gw += wd
            flat = w.reshape(-1)
            loss += 0.5 * weight_decay * float(xp.dot(flat, flat))
        return loss

    def evaluate(self, params, x, y, batch=8192):
        """(summed cross-entropy, number correct) over ``(x, y)`` without weight decay."""
        return evaluate_batches(lambda xb: self.logits(params, xb), x, y, batch)


class MLP:
    """One-hidden-layer perceptron with ReLU and softmax output, manual backprop.

    loss = mean_i CE(softmax(relu(x_i W1 + b1) W2 + b2), y_i) + weight_decay/2 (||W1||^2 + ||W2||^2)

    Parameters are one flat vector laid out as W1 (d, h), b1 (h,), W2 (h, c), b2 (c,).

    Args:
        n_features: input dimension d.
        n_classes: number of classes c.
        hidden: hidden units h.
    """

    name = "mlp"

    def __init__(self, n_features, n_classes, hidden=128):
        self.n_features = int(n_features)
        self.n_classes = int(n_classes)
        self.hidden = int(hidden)
        d, h, c = self.n_features, self.hidden, self.n_classes
        self.size = d * h + h + h * c + c

    def init_params(self, xp=np, dtype=np.float32, seed=0):
        """He-normal W1, Glorot-normal W2, zero biases, drawn from ``seed`` (same on every rank)."""
        d, h, c = self.n_features, self.hidden, self.n_classes
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x4D4C50]))
        host = np.zeros(self.size, dtype=np.float64)
        w1, _, w2, _ = self.views(host)
        w1[...] = rng.normal(0.0, np.sqrt(2.0 / d), size=(d, h))
        w2[...] = rng.normal(0.0, np.sqrt(2.0 / (h + c)), size=(h, c))
        self.params = xp.asarray(host.astype(dtype))
        return self.params

    def param_views(self, params=None):
        """(name, view) of W1, b1, W2, b2 in ``params`` (default: :meth:`init_params`'s buffer)."""
        return list(zip(("hidden.weight", "hidden.bias", "out.weight", "out.bias"),
                        self.views(self.params if params is None else params)))

    def views(self, params):
        """(W1, b1, W2, b2) as views of ``params``."""
        d, h, c = self.n_features, self.hidden, self.n_classes
        o1, o2, o3 = d * h, d * h + h, d * h + h + h * c
        return params[:o1].reshape(d, h), params[o1:o2], params[o2:o3].reshape(h, c), params[o3:]

    def _forward(self, params, x):
        w1, b1, w2, b2 = self.views(params)
        pre = x @ w1 + b1
        act = pre * (pre > 0)
        return pre, act, act @ w2 + b2

    def logits(self, params, x):
        """Class scores for the rows of ``x``."""
        return self._forward(params, x)[2]

    def loss_grad(self, params, x, y, grad, weight_decay=0.0):
        """Loss on the batch ``(x, y)``; writes the gradient into ``grad``.

        Returns:
            The loss as a Python float (data term + weight-decay term).
        """
        w1, _, w2, _ = self.views(params)
        gw1, gb1, gw2, gb2 = self.views(grad)
        pre, act, logits = self._forward(params, x)
        loss, dlogits = _log_softmax_grad(logits, y)
        gw2[...] = act.T @ dlogits
        dlogits.sum(axis=0, out=gb2)
        dact = dlogits @ w2.T
        dact *= pre > 0
        gw1[...] = x.T @ dact
        dact.sum(axis=0, out=gb1)
        if weight_decay:
            gw1 += weight_decay * w1
            gw2 += weight_decay * w2
            loss += 0.5 * weight_decay * (float((w1 * w1).sum()) + float((w2 * w2).sum()))
        return loss

    evaluate = SoftmaxRegression.evaluate


MODELS = {"softmax": SoftmaxRegression, "mlp": MLP}


def get_model(name, n_features, n_classes, **kwargs):
    """Build the model registered as ``name``."""
    try:
        cls = MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; choose from {', '.join(MODELS)}") from None
    return cls(n_features, n_classes, **kwargs)
