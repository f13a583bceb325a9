"""Flat buffers behind a torch model's parameters and gradients, and backward hooks.

Every trainable parameter's ``.grad`` becomes a view of one flat gradient tensor (and, in
algorithm mode, every parameter's data a view of one flat parameter tensor), in
``named_parameters()`` order. The array the collectives see is the same memory: on the
CPU ``tensor.numpy()``; with CUDA tensors ``cupy.from_dlpack(tensor)`` (DLPack, zero copy).
A "layer" is the set of parameters of one module (``conv.weight`` + ``conv.bias``), so
buckets are layer-aligned. Per-parameter post-accumulate-grad hooks announce finished
gradients during backward.
"""

import zlib

import numpy as np

from ..errors import ConfigError
from ._runtime import agree_error, torch_module

__all__ = ["FlatModel", "as_array"]


def as_array(t):
    """The NumPy (CPU) or CuPy (CUDA, via DLPack, zero copy) array sharing ``t``'s memory."""
    if t.device.type == "cpu":
        return t.detach().numpy()
    import cupy

    return cupy.from_dlpack(t.detach())


def _named(model, named_parameters):
    torch = torch_module()
    if named_parameters is None:
        if model is None or not isinstance(model, torch.nn.Module):
            raise ConfigError("pass the model (a torch.nn.Module) or named_parameters=model.named_parameters()")
        named_parameters = model.named_parameters()
    named = [(str(n), p) for n, p in named_parameters if p.requires_grad]
    if not named:
        raise ConfigError("the model has no trainable parameters")
    return named


class FlatModel:
    """A model's trainable parameters over flat buffers, checked to agree across ranks.

    Args:
        comm: the communicator.
        model / named_parameters: what to flatten.
        flat_params: also make the parameters' data views of one flat tensor.

    Attributes:
        named: [(name, parameter)]; layers: [(offset, length)] per module;
        grad / params: flat torch tensors; grad_array / params_array: the arrays the
        collectives use (same memory).
    """

    def __init__(self, comm, model=None, named_parameters=None, flat_params=False):
        torch = torch_module()
        self.torch, self.comm = torch, comm
        named = agree_error(comm, lambda: _named(model, named_parameters))
        agree_error(comm, lambda: self._check_kinds(named))
        self.named = named
        self.dtype, self.device = named[0][1].dtype, named[0][1].device
        self.slices, self.layers, self.layer_of = [], [], []
        off, prev = 0, None
        for name, p in named:
            owner = name.rsplit(".", 1)[0] if "." in name else ""
            if owner != prev or not self.layers:
                self.layers.append([off, 0])
                prev = owner
            n = p.numel()
            self.slices.append((off, off + n, tuple(p.shape)))
            self.layers[-1][1] += n
            self.layer_of.append(len(self.layers) - 1)
            off += n
        self.layers = [tuple(x) for x in self.layers]
        self.size = off
        self._per_layer = np.bincount(self.layer_of, minlength=len(self.layers))
        agree_error(comm, self._check_same_everywhere)
        if self.device.type == "cuda":
            import cupy

            cupy.cuda.Device(self.device.index or 0).use()  # CuPy's kernels and buffers on the tensors' GPU
        self.grad = torch.zeros(self.size, dtype=self.dtype, device=self.device)
        self.grad_array = as_array(self.grad)
        self.params = None
        if flat_params:
            self.params = torch.empty(self.size, dtype=self.dtype, device=self.device)
            with torch.no_grad():
                for (a, b, shape), (_, p) in zip(self.slices, named):
                    self.params[a:b].copy_(p.detach().reshape(-1))
                    p.data = self.params[a:b].view(shape)
            self.params_array = as_array(self.params)
        for (a, b, shape), (_, p) in zip(self.slices, named):
            p.grad = self.grad[a:b].view(shape)
        self._hooks = []
        self._seen = np.zeros(len(named), dtype=bool)
        self._left = self._per_layer.copy()
        self.backward_seen = False
        self.repeated = False  # a second backward before step()
        self.on_layer = None

    def _check_kinds(self, named):
        torch = self.torch
        dtypes = {p.dtype for _, p in named}
        devices = {p.device for _, p in named}
        if len(dtypes) > 1 or len(devices) > 1:
            raise ConfigError(f"all parameters must share one dtype and device; found {sorted(map(str, dtypes))} "
                              f"on {sorted(map(str, devices))}")
        dt, dev = next(iter(dtypes)), next(iter(devices))
        if dt not in (torch.float32, torch.float64):
            raise ConfigError(f"parameters are {dt}; hpctrain.torch takes float32 or float64 parameters")
        if dev.type not in ("cpu", "cuda"):
            raise ConfigError(f"parameters are on device {dev}; hpctrain.torch takes cpu or cuda tensors")
        if dev.type == "cuda":
            from ..xp import cupy_or_none

            if cupy_or_none() is None:
                raise ConfigError("parameters are on a CUDA device, and that path needs CuPy "
                                  "(pip install 'hpctrain[gpu]')")

    def _check_same_everywhere(self):
        """Every rank must have the same parameter names, shapes and dtype."""
        text = ";".join(f"{n}:{tuple(p.shape)}" for n, p in self.named) + f"|{self.dtype}"
        mine = np.array([zlib.crc32(text.encode()), self.size], dtype=np.int64)
        allv = self.comm.allgather_array(mine)
        if (allv != allv[0]).any():
            bad = int(np.flatnonzero((allv != allv[0]).any(axis=1))[0])
            raise ConfigError(f"the model differs across ranks: rank 0 has {int(allv[0, 1])} parameters, rank {bad} "
                              f"{int(allv[bad, 1])} (or other shapes/dtype); build the same model on every rank")

    # -- hooks ---------------------------------------------------------------------------
    def install_hooks(self):
        """Register one post-accumulate-grad hook per parameter (idempotent)."""
        if self._hooks:
            return
        for i, (_, p) in enumerate(self.named):
            self._hooks.append(p.register_post_accumulate_grad_hook(self._make_hook(i)))

    def remove_hooks(self):
        for h in self._hooks:
            h.remove()
        self._hooks = []

    def _make_hook(self, i):
        a, b, shape = self.slices[i]
        view = self.grad[a:b].view(shape)

        def hook(p):
            g = p.grad
            if g is None or g.data_ptr() != view.data_ptr():  # zero_grad(set_to_none) or a new tensor
                if g is None:
                    view.zero_()
                else:
                    view.copy_(g)
                p.grad = view
            self._param_ready(i)

        return hook

    def _param_ready(self, i):
        if self._seen[i]:  # step() refuses it on every rank (an error here would end one rank)
            self.repeated = True
            return
        self._seen[i] = True
        self.backward_seen = True
        layer = self.layer_of[i]
        self._left[layer] -= 1
        if self._left[layer] == 0 and self.on_layer is not None:
            self.on_layer(layer)

    def reset_step(self):
        """Forget which gradients arrived (after a step)."""
        self._seen[:] = False
        self._left[:] = self._per_layer
        self.backward_seen = False
        self.repeated = False

    def rebind_grads(self):
        """Point every ``.grad`` at the flat buffer again (after ``zero_grad(set_to_none)``
        or a user assignment): copies any gradient that lives elsewhere."""
        for (a, b, shape), (_, p) in zip(self.slices, self.named):
            view = self.grad[a:b].view(shape)
            if p.grad is None:
                view.zero_()
                p.grad = view
            elif p.grad.data_ptr() != view.data_ptr():
                view.copy_(p.grad)
                p.grad = view

    def param_array(self):
        """A flat copy of the parameters (NumPy/CuPy) in the flat order."""
        if self.params is not None:
            return self.params_array
        out = self.torch.empty(self.size, dtype=self.dtype, device=self.device)
        with self.torch.no_grad():
            for (a, b, _), (_, p) in zip(self.slices, self.named):
                out[a:b].copy_(p.detach().reshape(-1))
        return as_array(out)

    def load_params(self, flat):
        """Copy the flat NumPy array ``flat`` into the parameters."""
        t = self.torch.from_numpy(np.ascontiguousarray(flat)).to(self.device, self.dtype)
        with self.torch.no_grad():
            for (a, b, shape), (_, p) in zip(self.slices, self.named):
                p.copy_(t[a:b].view(shape))
