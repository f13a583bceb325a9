"""PyTorch adapter: ``--model torch:PATH_OR_MODULE:FACTORY`` wraps any ``nn.Module``.

The module's parameters and their ``.grad`` become views (``torch.from_numpy``) of
hpctrain's flat NumPy parameter and gradient buffers, in ``named_parameters()`` order;
autograd computes the gradient, and every byte of communication, compression and the
update stays hpctrain's, so every ``--algo`` works. Buffers (batch-norm running
statistics) are model state that checkpoints carry. Each training step reseeds torch's
RNG from (seed, step, rank), so dropout masks are reproducible and a resumed run draws
the same ones. CPU only: CuPy <-> torch buffer sharing is not tested, and
``--device gpu`` is refused with a clear message. torch is optional (extra ``torch``).
"""

import numpy as np

from ..compress.rng import counter_key
from ..errors import ConfigError
from .classic import evaluate_batches
from .external import call_factory, check_output_shape, checkpointable, load_factory, user_call

__all__ = ["TorchModel", "load_torch_model"]

_STREAM_TORCH = 0x200


def _torch():
    try:
        import torch
    except ImportError:
        raise ConfigError("--model torch:...: PyTorch is not installed (pip install 'hpctrain[torch]')") from None
    return torch


def load_torch_model(ref, input_shape, n_classes, seed, rank, dtype, threads=0, device="cpu"):
    """Import the factory, build the module (same initial weights on every rank: torch
    is seeded with ``seed`` first) and wrap it."""
    torch = _torch()
    label = f"--model torch:{ref}"
    if device != "cpu":
        raise ConfigError(f"{label}: the torch adapter runs on the CPU only (CuPy<->torch buffer sharing is "
                          "not tested); use --device cpu, or a native model (cnn, resnet8, a layer spec) on the GPU")
    factory, label = load_factory("torch", ref)
    from ..threads import default_threads

    torch.set_num_threads(int(threads) or default_threads())  # one pool size per rank, as for BLAS
    torch.manual_seed(int(seed))
    module = call_factory(factory, label, input_shape=tuple(input_shape), n_classes=int(n_classes), seed=int(seed),
                          rank=int(rank), dtype=np.dtype(dtype).name, device=device)
    if not isinstance(module, torch.nn.Module):
        raise ConfigError(f"{label}: the factory returned {type(module).__name__}, not a torch.nn.Module")
    _materialize(torch, module, label, input_shape, dtype)
    return TorchModel(module, label, input_shape, n_classes, seed, rank, dtype)


def _materialize(torch, module, label, input_shape, dtype):
    """Give lazy modules (``nn.LazyLinear``, ...) their shapes with one dry batch of zeros
    (evaluation mode, no gradient, the RNG state kept), so that every rank has the same
    parameters before they are flattened."""
    from torch.nn.parameter import is_lazy

    if not any(is_lazy(t) for t in (*module.parameters(), *module.buffers())):
        return
    tdtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[np.dtype(dtype)]
    module.to(tdtype)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng():
            user_call(label, "materialising lazy modules with one dry batch (forward)", module,
                      torch.zeros((2,) + tuple(input_shape), dtype=tdtype))
    finally:
        module.train(was_training)
    if any(is_lazy(t) for t in (*module.parameters(), *module.buffers())):
        raise ConfigError(f"{label}: lazy modules stayed uninitialised after a forward pass; give their sizes "
                          "(e.g. nn.Linear instead of nn.LazyLinear)")


class TorchModel:
    """hpctrain's model interface over an ``nn.Module`` whose parameters live in hpctrain's
    flat buffers."""

    def __init__(self, module, label, input_shape, n_classes, seed, rank, dtype):
        torch = _torch()
        self.torch = torch
        self.name, self.input_shape, self.n_classes = label, tuple(input_shape), int(n_classes)
        self.seed, self.rank = int(seed), int(rank)
        tdtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[np.dtype(dtype)]
        self.module = module.to(tdtype)
        self.named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        if not self.named:
            raise ConfigError(f"{label}: the module has no trainable parameters")
        meta = [n for n, p in self.named if p.is_meta]
        if meta:
            raise ConfigError(f"{label}: parameter {meta[0]} is on the meta device (no data); build the module "
                              "on the CPU")
        self.slices, off = [], 0
        for _, p in self.named:
            self.slices.append((off, off + p.numel(), tuple(p.shape)))
            off += p.numel()
        self.size = off
        self.step_counter = np.zeros(1, dtype=np.int64)
        self._state_names = [n for n, b in module.named_buffers() if b is not None and b.numel()]
        self._bound = (None, None)

    def param_views(self, params=None):
        """(name, view) of every trainable parameter (``named_parameters()`` names and
        shapes) in ``params`` (default: the buffer the module is bound to)."""
        if params is None:
            return [(n, p.detach().numpy()) for n, p in self.named]
        return [(n, params[a:b].reshape(shape)) for (a, b, shape), (n, _) in zip(self.slices, self.named)]

    def init_params(self, xp=np, dtype=np.float32, seed=0):
        """A flat copy of the module's initial weights (the factory ran after torch.manual_seed(seed))."""
        if xp is not np:
            raise ConfigError(f"{self.name}: the torch adapter runs on the CPU only; use --device cpu")
        flat = np.empty(self.size, dtype=dtype)
        with self.torch.no_grad():
            for (a, b, _), (_, p) in zip(self.slices, self.named):
                flat[a:b] = p.detach().reshape(-1).numpy()
        self._bind(flat, None)
        return flat

    def state_dict(self):
        """The step counter and every buffer, read live: a buffer that ``forward``
        reassigned (``self.seen = self.seen + n``) is the new tensor, not the first one.
        Each array shares the buffer's memory, so a resume writes into the module."""
        live = dict(self.module.named_buffers())
        out = {"step": self.step_counter}
        for n in self._state_names:
            b = live.get(n)
            if b is None:
                raise ConfigError(f"{self.name}: buffer {n!r} disappeared during training")
            arr = checkpointable(b.detach().numpy())
            out[f"buffer.{n}"] = arr.reshape(1) if arr.ndim == 0 else arr  # flat names: model/<name>; >= 1 axis
        return out

    def _bind(self, params, grad):
        """Make the parameters (and .grad) views of ``params`` (and ``grad``)."""
        key = (params.__array_interface__["data"][0], None if grad is None else grad.__array_interface__["data"][0])
        if self._bound == key:
            return
        tp = self.torch.from_numpy(params)
        tg = None if grad is None else self.torch.from_numpy(grad)
        for (a, b, shape), (_, p) in zip(self.slices, self.named):
            p.data = tp[a:b].view(shape)
            p.grad = None if tg is None else tg[a:b].view(shape)
        self._bound = key

    def _input(self, x):
        return self.torch.from_numpy(np.ascontiguousarray(x)).reshape((x.shape[0],) + self.input_shape)

    def loss_grad(self, params, x, y, grad, weight_decay=0.0):
        """Mean cross-entropy on the batch in train mode; autograd writes the gradient
        straight into ``grad`` (the parameters' ``.grad`` are views of it)."""
        torch = self.torch
        self._bind(params, grad)
        self.module.train()
        torch.manual_seed(counter_key(self.seed, int(self.step_counter[0]), self.rank, _STREAM_TORCH) >> 1)
        grad[...] = 0
        out = user_call(self.name, "forward()", self.module, self._input(x))
        check_output_shape(self.name, out, x.shape[0], self.n_classes)
        loss = torch.nn.functional.cross_entropy(out, torch.from_numpy(np.asarray(y, dtype=np.int64)))
        user_call(self.name, "backward()", loss.backward)
        tg = torch.from_numpy(grad)
        for (a, b, shape), (_, p) in zip(self.slices, self.named):
            if p.grad is None or p.grad.data_ptr() != tg[a:b].data_ptr():  # autograd replaced it: copy, rebind
                grad[a:b] = 0 if p.grad is None else p.grad.detach().reshape(-1).numpy()
                p.grad = tg[a:b].view(shape)
        value = float(loss.detach())
        if weight_decay:
            grad += weight_decay * params
            value += 0.5 * weight_decay * float((params * params).sum())
        self.step_counter[0] += 1
        return value

    def logits(self, params, x):
        """Class scores in eval mode (``params`` may be another buffer, e.g. averaged weights)."""
        torch = self.torch
        if self._bound[0] != params.__array_interface__["data"][0]:
            self._bind(params, None)  # e.g. averaged weights; the next step rebinds the training buffers
        self.module.eval()
        try:
            with torch.no_grad():
                out = user_call(self.name, "forward()", self.module, self._input(x))
        finally:
            self.module.train()
        check_output_shape(self.name, out, x.shape[0], self.n_classes)
        return out.numpy()

    def evaluate(self, params, x, y, batch=1024):
        return evaluate_batches(lambda xb: self.logits(params, xb), x, y, batch, as_float64=True)
