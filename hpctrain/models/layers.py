"""Layers with hand-written forward and backward passes on the array module (NumPy or CuPy).

Images travel in NHWC layout (batch, height, width, channels): a convolution is then
one ``as_strided`` im2col view, one copy into a (b*oh*ow, k*k*c) matrix and one GEMM,
and its output is already NHWC. Every layer owns a contiguous slice of the model's flat
parameter buffer (``n_params`` values) and, for the gradient, the same slice of the
flat gradient buffer; it splits the slice into shaped views itself.

The layer protocol:

* ``build(in_shape) -> out_shape`` (shapes without the batch axis) fixes the sizes;
* ``init(rng, p)`` fills the layer's float64 host slice ``p`` (He-normal weights);
* ``forward(p, x, train) -> out`` keeps what backward needs;
* ``backward(p, g, dout) -> dx`` writes d(loss)/d(params) into ``g`` (overwrites);
* ``state`` (name -> array) is model state that checkpoints carry (batch norm);
* ``decay`` lists (start, stop) ranges of the slice that weight decay applies to;
* ``param_views(p) -> [(name, view)]`` names the shaped pieces of the slice.
"""

import math

import numpy as np

from ..compress.rng import counter_key, uniform
from ..xp import get_array_module

__all__ = ["Layer", "Conv2d", "MaxPool", "AvgPool", "GlobalAvgPool", "ReLU", "Linear", "Flatten", "Dropout",
           "BatchNorm", "Residual", "STREAM_DROPOUT"]

#: counter-RNG stream of dropout masks: (seed, step, rank, STREAM_DROPOUT + layer index)
STREAM_DROPOUT = 0x100


def _as_strided(xp, x, shape, strides):
    return xp.lib.stride_tricks.as_strided(x, shape=shape, strides=strides)


class Layer:
    """Base class: a layer without parameters or state."""

    n_params = 0
    name = "layer"

    def __init__(self):
        self.state = {}
        self.decay = []
        self.in_shape = self.out_shape = None

    def build(self, in_shape):
        self.in_shape = self.out_shape = tuple(in_shape)
        return self.out_shape

    def init(self, rng, p):
        pass

    def forward(self, p, x, train):
        raise NotImplementedError

    def backward(self, p, g, dout):
        raise NotImplementedError

    def param_views(self, p):
        """(name, view) of each shaped piece of the layer's slice ``p`` (none without parameters)."""
        return [("params", p)] if self.n_params else []

    def _weight_bias(self, p):
        w, b = self._views(p)
        return [("weight", w)] + ([("bias", b)] if b is not None else [])

    def set_context(self, model, index):
        """Called by the model: its seed/rank/step holder and this layer's index."""
        self.model, self.index = model, index

    def __repr__(self):
        return f"{self.name}{self.in_shape}->{self.out_shape}"


class Conv2d(Layer):
    """2-D convolution, NHWC, weight (k, k, c_in, c_out) + bias (c_out), zero padding.

    out[b, i, j, o] = sum_{u,v,c} xpad[b, i*s + u, j*s + v, c] W[u, v, c, o] + bias[o]
    """

    name = "conv"

    def __init__(self, channels, kernel, stride=1, padding=0, bias=True):
        super().__init__()
        self.cout, self.k, self.stride, self.pad, self.bias = int(channels), int(kernel), int(stride), int(padding), bias

    def build(self, in_shape):
        if len(in_shape) != 3:
            raise ValueError(f"conv needs image input (h, w, c), got shape {tuple(in_shape)}")
        h, w, c = in_shape
        k, s, p = self.k, self.stride, self.pad
        oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        if oh < 1 or ow < 1:
            raise ValueError(f"conv kernel {k} does not fit input {h}x{w} (padding {p})")
        self.in_shape, self.out_shape = tuple(in_shape), (oh, ow, self.cout)
        self.cin = c
        nw = k * k * c * self.cout
        self.n_params = nw + (self.cout if self.bias else 0)
        self.decay = [(0, nw)]
        return self.out_shape

    def param_views(self, p):
        return self._weight_bias(p)

    def _views(self, p):
        nw = self.k * self.k * self.cin * self.cout
        return p[:nw].reshape(self.k * self.k * self.cin, self.cout), (p[nw:] if self.bias else None)

    def init(self, rng, p):
        w, _ = self._views(p)
        w[...] = rng.normal(0.0, math.sqrt(2.0 / (self.k * self.k * self.cin)), size=w.shape)

    def _cols(self, x):
        xp = get_array_module(x)
        if self.pad:
            p = self.pad
            x = xp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
        x = xp.ascontiguousarray(x)
        b, _, _, c = x.shape
        oh, ow, _ = self.out_shape
        sb, sh, sw, sc = x.strides
        s, k = self.stride, self.k
        view = _as_strided(xp, x, (b, oh, ow, k, k, c), (sb, sh * s, sw * s, sh, sw, sc))
        return view.reshape(b * oh * ow, k * k * c)  # the one copy of im2col

    def forward(self, p, x, train):
        w, bias = self._views(p)
        cols = self._cols(x)
        out = cols @ w
        if bias is not None:
            out += bias
        self._cache = (cols, x.shape[0]) if train else None
        return out.reshape((x.shape[0],) + self.out_shape)

    def backward(self, p, g, dout):
        xp = get_array_module(dout)
        w, _ = self._views(p)
        gw, gb = self._views(g)
        cols, b = self._cache
        self._cache = None
        d2 = dout.reshape(-1, self.cout)
        xp.matmul(cols.T, d2, out=gw)
        if gb is not None:
            d2.sum(axis=0, out=gb)
        if getattr(self, "first", False):
            return None  # the model's input needs no gradient
        dcols = (d2 @ w.T).reshape((b,) + self.out_shape[:2] + (self.k, self.k, self.cin))
        h, wd, c = self.in_shape
        pd, s = self.pad, self.stride
        oh, ow, _ = self.out_shape
        dx = xp.zeros((b, h + 2 * pd, wd + 2 * pd, c), dtype=dout.dtype)
        for u in range(self.k):  # col2im: k*k strided adds
            for v in range(self.k):
                dx[:, u : u + s * (oh - 1) + 1 : s, v : v + s * (ow - 1) + 1 : s, :] += dcols[:, :, :, u, v, :]
        if pd:
            dx = dx[:, pd : pd + h, pd : pd + wd, :]
        return dx


class _Pool(Layer):
    def __init__(self, size):
        super().__init__()
        self.size = int(size)

    def build(self, in_shape):
        if len(in_shape) != 3:
            raise ValueError(f"{self.name} needs image input (h, w, c), got shape {tuple(in_shape)}")
        h, w, c = in_shape
        k = self.size
        if h < k or w < k:
            raise ValueError(f"{self.name} size {k} does not fit input {h}x{w}")
        self.in_shape, self.out_shape = tuple(in_shape), (h // k, w // k, c)
        return self.out_shape

    def _windows(self, x):
        """(b, oh, ow, c, k*k) copy of the non-overlapping windows (floor: edges cropped)."""
        oh, ow, c = self.out_shape
        k = self.size
        x = x[:, : oh * k, : ow * k, :]
        return x.reshape(x.shape[0], oh, k, ow, k, c).transpose(0, 1, 3, 5, 2, 4).reshape(
            x.shape[0], oh, ow, c, k * k)

    def _unwindow(self, dw):
        xp = get_array_module(dw)
        b = dw.shape[0]
        oh, ow, c = self.out_shape
        k = self.size
        h, w, _ = self.in_shape
        d = dw.reshape(b, oh, ow, c, k, k).transpose(0, 1, 4, 2, 5, 3).reshape(b, oh * k, ow * k, c)
        if (oh * k, ow * k) == (h, w):
            return xp.ascontiguousarray(d)
        dx = xp.zeros((b, h, w, c), dtype=dw.dtype)
        dx[:, : oh * k, : ow * k, :] = d
        return dx


class MaxPool(_Pool):
    """Max over non-overlapping size x size windows (stride = size); the gradient goes
    to the first maximum of each window (row-major within the window)."""

    name = "maxpool"

    def _taps(self, x):
        oh, ow, _ = self.out_shape
        k = self.size
        return [((u, v), x[:, u : oh * k : k, v : ow * k : k, :]) for u in range(k) for v in range(k)]

    def forward(self, p, x, train):
        xp = get_array_module(x)
        taps = self._taps(x)
        out = taps[0][1].copy()
        for _, t in taps[1:]:
            xp.maximum(out, t, out=out)
        self._cache = (x, out) if train else None
        return out

    def backward(self, p, g, dout):
        xp = get_array_module(dout)
        x, out = self._cache
        self._cache = None
        dx = xp.zeros(x.shape, dtype=dout.dtype)
        oh, ow, _ = self.out_shape
        k = self.size
        taken = xp.zeros(out.shape, dtype=bool)
        for (u, v), t in self._taps(x):
            hit = t == out
            hit &= ~taken
            taken |= hit
            dx[:, u : oh * k : k, v : ow * k : k, :] = dout * hit
        return dx


class AvgPool(_Pool):
    """Mean over non-overlapping size x size windows (stride = size)."""

    name = "avgpool"

    def forward(self, p, x, train):
        return self._windows(x).mean(axis=-1)

    def backward(self, p, g, dout):
        xp = get_array_module(dout)
        kk = self.size * self.size
        return self._unwindow(xp.broadcast_to(dout[..., None] / kk, dout.shape + (kk,)))


class GlobalAvgPool(Layer):
    """Mean over height and width: (h, w, c) -> (c,)."""

    name = "gap"

    def build(self, in_shape):
        if len(in_shape) != 3:
            raise ValueError(f"gap needs image input (h, w, c), got shape {tuple(in_shape)}")
        self.in_shape, self.out_shape = tuple(in_shape), (in_shape[2],)
        return self.out_shape

    def forward(self, p, x, train):
        return x.mean(axis=(1, 2))

    def backward(self, p, g, dout):
        xp = get_array_module(dout)
        h, w, c = self.in_shape
        return xp.broadcast_to((dout / (h * w))[:, None, None, :], (dout.shape[0], h, w, c)).copy()


class ReLU(Layer):
    """max(x, 0)."""

    name = "relu"

    def forward(self, p, x, train):
        mask = x > 0
        if train:
            self._mask = mask
        return x * mask

    def backward(self, p, g, dout):
        mask, self._mask = self._mask, None
        return dout * mask


class Flatten(Layer):
    """(h, w, c) -> (h*w*c,) (NHWC order)."""

    name = "flatten"

    def build(self, in_shape):
        self.in_shape, self.out_shape = tuple(in_shape), (int(np.prod(in_shape)),)
        return self.out_shape

    def forward(self, p, x, train):
        return x.reshape(x.shape[0], -1)

    def backward(self, p, g, dout):
        return dout.reshape((dout.shape[0],) + self.in_shape)


class Linear(Layer):
    """y = x W + b with W (n_in, n_out); a multi-axis input is flattened first."""

    name = "linear"

    def __init__(self, units, bias=True):
        super().__init__()
        self.units, self.bias = int(units), bias

    def build(self, in_shape):
        self.in_shape = tuple(in_shape)
        self.n_in = int(np.prod(in_shape))
        self.out_shape = (self.units,)
        nw = self.n_in * self.units
        self.n_params = nw + (self.units if self.bias else 0)
        self.decay = [(0, nw)]
        return self.out_shape

    def param_views(self, p):
        return self._weight_bias(p)

    def _views(self, p):
        nw = self.n_in * self.units
        return p[:nw].reshape(self.n_in, self.units), (p[nw:] if self.bias else None)

    def init(self, rng, p):
        w, _ = self._views(p)
        w[...] = rng.normal(0.0, math.sqrt(2.0 / self.n_in), size=w.shape)

    def forward(self, p, x, train):
        w, b = self._views(p)
        x2 = x.reshape(x.shape[0], -1)
        if train:
            self._x = x2
        out = x2 @ w
        if b is not None:
            out += b
        return out

    def backward(self, p, g, dout):
        xp = get_array_module(dout)
        w, _ = self._views(p)
        gw, gb = self._views(g)
        x2, self._x = self._x, None
        xp.matmul(x2.T, dout, out=gw)
        if gb is not None:
            dout.sum(axis=0, out=gb)
        return (dout @ w.T).reshape((dout.shape[0],) + self.in_shape)


class Dropout(Layer):
    """Inverted dropout with rate ``rate``; its mask is drawn from the counter RNG of
    (seed, step, rank, STREAM_DROPOUT + layer index), so a resumed run draws the very
    same masks. Identity at evaluation."""

    name = "dropout"

    def __init__(self, rate):
        super().__init__()
        self.rate = float(rate)

    def forward(self, p, x, train):
        if not train or self.rate == 0.0:
            self._mask = None
            return x
        xp = get_array_module(x)
        m = self.model
        key = counter_key(m.seed, int(m.step_counter[0]), m.rank, STREAM_DROPOUT + self.index)
        keep = uniform(key, x.size).reshape(x.shape) >= self.rate
        mask = xp.asarray(keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - self.rate)))
        self._mask = mask
        return x * mask

    def backward(self, p, g, dout):
        mask, self._mask = self._mask, None
        return dout if mask is None else dout * mask


class BatchNorm(Layer):
    """Batch normalisation over every axis but the last (channels / features) with local
    batch statistics; running mean/variance (momentum 0.1, unbiased variance as in
    PyTorch) are model state used at evaluation. Parameters: gamma (c), beta (c)."""

    name = "bn"

    def __init__(self, eps=1e-5, momentum=0.1):
        super().__init__()
        self.eps, self.momentum = float(eps), float(momentum)

    def build(self, in_shape):
        self.in_shape = self.out_shape = tuple(in_shape)
        self.c = int(in_shape[-1])
        self.n_params = 2 * self.c
        return self.out_shape

    def param_views(self, p):
        return [("gamma", p[: self.c]), ("beta", p[self.c :])]

    def init(self, rng, p):
        p[: self.c] = 1.0

    def allocate_state(self, xp, dtype):
        self.state = {"running_mean": xp.zeros(self.c, dtype=dtype), "running_var": xp.ones(self.c, dtype=dtype)}

    def forward(self, p, x, train):
        gamma, beta = p[: self.c], p[self.c :]
        axes = tuple(range(x.ndim - 1))
        if train:
            n = x.size // self.c
            mean = x.mean(axis=axes)
            xc = x - mean
            var = (xc * xc).mean(axis=axes)
            inv = 1.0 / (var + self.eps) ** 0.5
            xhat = xc * inv
            rm, rv = self.state["running_mean"], self.state["running_var"]
            mom = self.momentum
            rm *= 1 - mom
            rm += mom * mean.astype(rm.dtype)
            rv *= 1 - mom
            rv += mom * (var * (n / max(n - 1, 1))).astype(rv.dtype)
            self._cache = (xhat, inv)
        else:
            inv = 1.0 / (self.state["running_var"].astype(x.dtype) + self.eps) ** 0.5
            xhat = (x - self.state["running_mean"].astype(x.dtype)) * inv
        return xhat * gamma + beta

    def backward(self, p, g, dout):
        gamma = p[: self.c]
        xhat, inv = self._cache
        self._cache = None
        axes = tuple(range(dout.ndim - 1))
        n = dout.size // self.c
        dbeta = dout.sum(axis=axes)
        dgamma = (dout * xhat).sum(axis=axes)
        g[: self.c] = dgamma
        g[self.c :] = dbeta
        # dx = gamma*inv/n * (n*dout - dbeta - xhat*dgamma)
        return (gamma * inv / n) * (n * dout - dbeta - xhat * dgamma)


class Residual(Layer):
    """out = relu(body(x) + shortcut(x)); shortcut is the identity when empty. Its slice
    of the parameter buffer is the body's layers then the shortcut's, in order."""

    name = "residual"

    def __init__(self, body, shortcut=()):
        super().__init__()
        self.body, self.shortcut = list(body), list(shortcut)

    @property
    def children(self):
        return self.body + self.shortcut

    def build(self, in_shape):
        self.in_shape = tuple(in_shape)
        shape = self.in_shape
        for layer in self.body:
            shape = layer.build(shape)
        sshape = self.in_shape
        for layer in self.shortcut:
            sshape = layer.build(sshape)
        if tuple(shape) != tuple(sshape):
            raise ValueError(f"residual body gives {shape} but the shortcut gives {sshape}")
        self.out_shape = tuple(shape)
        self.offsets, off = [], 0
        for layer in self.children:
            self.offsets.append(off)
            self.decay.extend((off + a, off + b) for a, b in layer.decay)
            off += layer.n_params
        self.n_params = off
        return self.out_shape

    def _slices(self, p):
        return [p[o : o + layer.n_params] for o, layer in zip(self.offsets, self.children)]

    def param_views(self, p):
        return [(f"{i}.{layer.name}.{name}", v) for i, (layer, s) in enumerate(zip(self.children, self._slices(p)))
                for name, v in layer.param_views(s)]

    def init(self, rng, p):
        for layer, s in zip(self.children, self._slices(p)):
            layer.init(rng, s)

    def forward(self, p, x, train):
        sl = self._slices(p)
        nb = len(self.body)
        h = x
        for layer, s in zip(self.body, sl[:nb]):
            h = layer.forward(s, h, train)
        r = x
        for layer, s in zip(self.shortcut, sl[nb:]):
            r = layer.forward(s, r, train)
        out = h + r
        mask = out > 0
        if train:
            self._mask = mask
        return out * mask

    def backward(self, p, g, dout):
        ps, gs = self._slices(p), self._slices(g)
        nb = len(self.body)
        d = dout * self._mask
        self._mask = None
        dh = d
        for layer, s, gsl in reversed(list(zip(self.body, ps[:nb], gs[:nb]))):
            dh = layer.backward(s, gsl, dh)
        dr = d
        for layer, s, gsl in reversed(list(zip(self.shortcut, ps[nb:], gs[nb:]))):
            dr = layer.backward(s, gsl, dr)
        return dh + dr
