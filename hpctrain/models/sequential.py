"""A sequence of layers on one flat parameter buffer, the model spec parser, cnn and resnet8.

Every layer's parameters (and gradient) are a contiguous slice ``[offset, offset + n)``
of the one flat buffer the collectives reduce, kept in layer order (``layer_slices``).
Backward announces each layer whose gradient is final (``loss_grad(..., on_layer=fn)``), so
a bucket's communication can start while earlier layers are still in backward.
"""

import numpy as np

from ..errors import ConfigError
from .classic import _log_softmax_grad, evaluate_batches
from .layers import (AvgPool, BatchNorm, Conv2d, Dropout, Flatten, GlobalAvgPool, Linear, MaxPool, ReLU,
                     Residual)

__all__ = ["Sequential", "parse_spec", "cnn_layers", "resnet8_layers", "SPEC_TOKENS", "CNN_SPEC"]

#: the ``cnn`` model of --model: two 3x3 convolutions (32, 64), ReLU, 2x2 max-pool, 128 hidden
CNN_SPEC = "conv:32:3,relu,maxpool:2,conv:64:3,relu,maxpool:2,flatten,linear:128,relu,linear:{classes}"

SPEC_TOKENS = {
    "conv": "conv:CHANNELS:KERNEL[:STRIDE[:PADDING]]",
    "maxpool": "maxpool:SIZE",
    "avgpool": "avgpool:SIZE",
    "gap": "gap (global average pool)",
    "relu": "relu",
    "flatten": "flatten",
    "linear": "linear:UNITS",
    "dropout": "dropout:RATE (0 <= RATE < 1)",
    "bn": "bn (batch norm)",
}


def _walk(layers):
    for layer in layers:
        yield layer
        if isinstance(layer, Residual):
            yield from _walk(layer.children)


class Sequential:
    """Layers applied in order, then softmax cross-entropy; parameters on one flat buffer.

    Args:
        layers: the layers (see :mod:`hpctrain.models.layers`).
        input_shape: one sample's shape as the data set gives it: (c, h, w) for images
            (rows arrive flattened in CHW order and are turned into NHWC), or (d,).
        n_classes: number of classes; the last layer must output that many scores.
        name: the --model value.
        seed, rank: the dropout masks' counter-RNG key (with the step counter).
    """

    def __init__(self, layers, input_shape, n_classes, name="sequential", seed=0, rank=0):
        self.name = name
        self.layers = list(layers)
        self.input_shape = tuple(int(v) for v in input_shape)
        self.n_classes = int(n_classes)
        self.seed, self.rank = int(seed), int(rank)
        shape = self._internal_shape(self.input_shape)
        for i, layer in enumerate(self.layers):
            try:
                shape = layer.build(shape)
            except ValueError as exc:
                raise ConfigError(f"model {name}: layer {i + 1} ({layer.name}): {exc}") from None
        if tuple(shape) != (self.n_classes,):
            raise ConfigError(f"model {name} ends with output shape {tuple(shape)}, but the data set has "
                              f"{self.n_classes} classes (end with linear:{self.n_classes})")
        self.layer_slices, off = [], 0
        self.decay, self.layer_decay = [], []
        for layer in self.layers:
            self.layer_slices.append((off, off + layer.n_params))
            self.layer_decay.append([(off + a, off + b) for a, b in layer.decay])
            self.decay.extend(self.layer_decay[-1])
            off += layer.n_params
        self.size = off
        self.step_counter = np.zeros(1, dtype=np.int64)
        # batch norm on flat features normalises over the batch alone: a batch of one sample
        # maps every feature to 0 and trains nothing
        self.min_batch = 2 if any(isinstance(layer, BatchNorm) and len(layer.in_shape) == 1
                                  for layer in _walk(self.layers)) else 1
        self.layers[0].first = True  # its backward may skip d(loss)/d(input)
        for i, layer in enumerate(_walk(self.layers)):
            layer.set_context(self, i)

    @staticmethod
    def _internal_shape(shape):
        if len(shape) == 3:
            c, h, w = shape
            return (h, w, c)
        return tuple(shape)

    # -- the model protocol used by train.py ------------------------------------------
    def init_params(self, xp=np, dtype=np.float32, seed=0):
        """He-normal weights, zero biases, BN gamma 1 / beta 0, drawn from ``seed`` (same on every rank)."""
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5E0C]))
        host = np.zeros(self.size, dtype=np.float64)
        for layer, (a, b) in zip(self.layers, self.layer_slices):
            layer.init(rng, host[a:b])
        for layer in _walk(self.layers):
            if isinstance(layer, BatchNorm):
                layer.allocate_state(xp, np.dtype(dtype))
        self.step_counter[0] = 0
        self.params = xp.asarray(host.astype(dtype))
        return self.params

    def param_views(self, params=None):
        """(name, view) of every layer's shaped parameters, in buffer order, as views of
        ``params`` (default: the buffer :meth:`init_params` returned)."""
        p = self.params if params is None else params
        return [(f"{i}.{layer.name}.{name}", v) for i, (layer, (a, b)) in enumerate(zip(self.layers, self.layer_slices))
                for name, v in layer.param_views(p[a:b])]

    def state_dict(self):
        """Model state that checkpoints carry: batch-norm running statistics and the
        step counter of the dropout masks (name -> array, updated in place)."""
        out = {"step": self.step_counter}
        for i, layer in enumerate(_walk(self.layers)):
            for k, v in layer.state.items():
                out[f"{i}.{layer.name}.{k}"] = v
        return out

    def _to_internal(self, x):
        x = x.reshape((x.shape[0],) + self.input_shape)
        if x.ndim == 4:
            x = x.transpose(0, 2, 3, 1)
        return x

    def forward(self, params, x, train=False):
        """Class scores of the rows of ``x`` (train: batch statistics, dropout on)."""
        h = self._to_internal(x)
        for layer, (a, b) in zip(self.layers, self.layer_slices):
            h = layer.forward(params[a:b], h, train)
        return h

    def logits(self, params, x):
        """Class scores for the rows of ``x`` (evaluation mode)."""
        return self.forward(params, x, train=False)

    #: ``loss_grad`` takes ``on_layer`` (train.py's --overlap asks for it)
    announces_layers = True

    def loss_grad(self, params, x, y, grad, weight_decay=0.0, on_layer=None):
        """Loss on the batch ``(x, y)`` in training mode; writes the gradient into ``grad``
        and advances the step counter (dropout masks).

        Args:
            on_layer: None, or ``on_layer(i)`` called as soon as layer ``i``'s gradient in
                ``grad`` (weight decay included) is final, last layer first.

        Returns:
            The loss as a Python float (data term + weight decay on conv/linear weights).
        """
        logits = self.forward(params, x, train=True)
        loss, d = _log_softmax_grad(logits, y)
        for i in reversed(range(len(self.layers))):
            a, b = self.layer_slices[i]
            d = self.layers[i].backward(params[a:b], grad[a:b], d)
            if on_layer is not None:
                if weight_decay:  # the same additions as below, element for element
                    for a, b in self.layer_decay[i]:
                        grad[a:b] += weight_decay * params[a:b]
                on_layer(i)
        if weight_decay:
            for a, b in self.decay:
                w = params[a:b]
                if on_layer is None:
                    grad[a:b] += weight_decay * w
                loss += 0.5 * weight_decay * float((w * w).sum())
        self.step_counter[0] += 1
        return loss

    def evaluate(self, params, x, y, batch=256):
        """(summed cross-entropy, number correct) over ``(x, y)``, evaluation mode."""
        return evaluate_batches(lambda xb: self.logits(params, xb), x, y, batch)


def _ints(tok, parts, lo, hi, what):
    if not lo <= len(parts) <= hi:
        raise ValueError(f"expected {what}")
    try:
        vals = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"expected {what}") from None
    return vals


def _layer(tok):
    kind, *args = tok.strip().split(":")
    kind = kind.strip().lower()
    if kind not in SPEC_TOKENS:
        raise ValueError(f"unknown layer; known: {', '.join(SPEC_TOKENS)}")
    form = SPEC_TOKENS[kind]
    if kind == "conv":
        v = _ints(tok, args, 2, 4, form)
        if v[0] < 1 or v[1] < 1 or (len(v) > 2 and v[2] < 1) or (len(v) > 3 and v[3] < 0):
            raise ValueError(f"expected {form} with positive sizes")
        return Conv2d(*v)
    if kind in ("maxpool", "avgpool"):
        (size,) = _ints(tok, args, 1, 1, form)
        if size < 1:
            raise ValueError(f"expected {form} with SIZE >= 1")
        return (MaxPool if kind == "maxpool" else AvgPool)(size)
    if kind == "linear":
        (units,) = _ints(tok, args, 1, 1, form)
        if units < 1:
            raise ValueError(f"expected {form} with UNITS >= 1")
        return Linear(units)
    if kind == "dropout":
        try:
            (rate,) = [float(a) for a in args] if len(args) == 1 else (None,)
        except ValueError:
            rate = None
        if rate is None or not 0.0 <= rate < 1.0:
            raise ValueError(f"expected {form}")
        return Dropout(rate)
    if args:
        raise ValueError(f"{kind} takes no arguments")
    return {"relu": ReLU, "flatten": Flatten, "bn": BatchNorm, "gap": GlobalAvgPool}[kind]()


def parse_spec(spec):
    """Layers of a comma-separated layer string such as
    ``conv:32:3,relu,maxpool:2,flatten,linear:10``.

    Raises:
        ConfigError: naming the bad token and its position.
    """
    tokens = [t for t in spec.split(",")]
    layers = []
    for i, tok in enumerate(tokens):
        if not tok.strip():
            raise ConfigError(f"model spec {spec!r}: token {i + 1} is empty")
        try:
            layers.append(_layer(tok))
        except ValueError as exc:
            raise ConfigError(f"model spec {spec!r}: bad token {i + 1} {tok.strip()!r}: {exc}") from None
    return layers


def cnn_layers(n_classes):
    """The ``cnn`` model's layers (:data:`CNN_SPEC`)."""
    return parse_spec(CNN_SPEC.format(classes=n_classes))


def _block(cin, cout, stride):
    body = [Conv2d(cout, 3, stride, 1, bias=False), BatchNorm(), ReLU(), Conv2d(cout, 3, 1, 1, bias=False), BatchNorm()]
    short = [] if (cin == cout and stride == 1) else [Conv2d(cout, 1, stride, 0, bias=False), BatchNorm()]
    return Residual(body, short)


def resnet8_layers(n_classes, width=16):
    """A small ResNet: a 3x3 stem (16 channels, BN, ReLU), three stages of one basic
    block each (16, 32, 64 channels; stride 1, 2, 2), global average pool, linear."""
    return [Conv2d(width, 3, 1, 1, bias=False), BatchNorm(), ReLU(), _block(width, width, 1),
            _block(width, 2 * width, 2), _block(2 * width, 4 * width, 2), GlobalAvgPool(), Linear(n_classes)]
