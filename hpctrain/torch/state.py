"""Broadcasts from rank 0 and HDF5 checkpoints of a torch model with its optimizer.

Nothing is pickled: tensors travel as raw buffers, the optimizer's structure (parameter
groups, hyperparameters, which state tensors exist) as JSON, and checkpoints use
hpctrain's HDF5 format (docs/checkpoint-format.md) with the same validation as
``hpctrain train --resume``.
"""

import json

import numpy as np

from ..errors import CheckpointError, ConfigError
from ..xp import get_array_module, to_numpy
from ._runtime import agree_error, comm as _world, torch_module

__all__ = ["broadcast_parameters", "broadcast_optimizer_state", "save_checkpoint", "load_checkpoint"]


def _tensors(params):
    torch = torch_module()
    if isinstance(params, torch.nn.Module):
        params = params.state_dict()
    items = list(params.items()) if isinstance(params, dict) else list(params)
    out = []
    for item in items:
        name, t = item if isinstance(item, tuple) else (str(len(out)), item)
        if not isinstance(t, torch.Tensor):
            raise ConfigError(f"broadcast_parameters: {name} is {type(t).__name__}, not a tensor")
        out.append((name, t))
    return out


def _bcast_tensor(c, t, root):
    """Broadcast tensor ``t`` in place from ``root`` (CPU buffer; CUDA through a host copy)."""
    torch = torch_module()
    if t.device.type == "cpu" and t.is_contiguous():
        arr = t.detach().numpy() if t.dim() else t.detach().reshape(1).numpy()
        c.bcast_array(arr.view(np.uint8).reshape(-1), root=root)
        return
    host = t.detach().to("cpu").contiguous().reshape(-1)
    c.bcast_array(host.numpy().view(np.uint8), root=root)
    with torch.no_grad():
        t.copy_(host.view(t.shape).to(t.device))


def broadcast_parameters(params, root_rank=0):
    """Copy rank ``root_rank``'s values into every rank's tensors, in place.

    Args:
        params: a ``torch.nn.Module`` (its ``state_dict()``: parameters and buffers), a
            ``state_dict()``, or ``named_parameters()``.
        root_rank: the rank whose values win.

    Raises:
        ConfigError (on every rank): the tensors' names, shapes or dtypes differ across ranks.
    """
    c = _world()
    items = _tensors(params)
    sig = json.dumps([[n, list(t.shape), str(t.dtype)] for n, t in items]).encode()
    root_sig = c.bcast_bytes(sig, root=root_rank)
    agree_error(c, lambda: _same(root_sig, sig, "the model's tensors"))
    for _, t in items:
        if t.numel():
            _bcast_tensor(c, t, root_rank)


def _same(a, b, what):
    if a != b:
        raise ConfigError(f"{what} differ from rank 0's (names, shapes or dtypes); build the same model on every rank")


def _opt_layout(optimizer):
    """(JSON-able structure, [tensors]) of an optimizer's state_dict: tensors replaced by
    their index in the list."""
    torch = torch_module()
    sd = optimizer.state_dict()
    tensors = []
    state = {}
    for pid, st in sd["state"].items():
        entry = {}
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                entry[k] = {"tensor": len(tensors), "shape": list(v.shape),
                            "dtype": str(v.dtype).removeprefix("torch.")}
                tensors.append(v)
            elif isinstance(v, (int, float, bool)) or v is None:
                entry[k] = {"value": v}
            else:
                raise ConfigError(f"optimizer state {k!r} is {type(v).__name__}; only tensors and numbers "
                                  "are supported")
        state[str(pid)] = entry
    groups = []
    for g in sd["param_groups"]:
        clean = {}
        for k, v in g.items():
            if isinstance(v, tuple):
                v = list(v)
            try:
                json.dumps(v)
            except TypeError:
                raise ConfigError(f"optimizer setting {k!r} = {v!r} cannot be broadcast or saved") from None
            clean[k] = v
        groups.append(clean)
    return {"state": state, "param_groups": groups}, tensors


def _opt_rebuild(layout, tensors):
    state = {}
    for pid, entry in layout["state"].items():
        st = {}
        for k, v in entry.items():
            st[k] = tensors[v["tensor"]] if "tensor" in v else v["value"]
        state[int(pid)] = st
    groups = []
    for g in layout["param_groups"]:
        g = dict(g)
        for k in ("betas",):
            if isinstance(g.get(k), list):
                g[k] = tuple(g[k])
        groups.append(g)
    return {"state": state, "param_groups": groups}


def _empty_like_spec(spec, device):
    torch = torch_module()
    return torch.zeros(spec["shape"], dtype=getattr(torch, spec["dtype"]), device=device)


def _device_of(optimizer):
    for g in optimizer.param_groups:
        for p in g["params"]:
            return p.device
    return "cpu"


def _inner(optimizer):
    return getattr(optimizer, "optimizer", optimizer) if type(optimizer).__name__ == "DistributedOptimizer" \
        else optimizer


def broadcast_optimizer_state(optimizer, root_rank=0):
    """Give every rank rank ``root_rank``'s optimizer state and hyperparameters.

    Args:
        optimizer: a ``torch.optim.Optimizer`` or a :class:`DistributedOptimizer`.
    """
    c = _world()
    opt = _inner(optimizer)
    layout, tensors = agree_error(c, lambda: _opt_layout(opt))
    text = c.bcast_bytes(json.dumps(layout).encode(), root=root_rank).decode()
    root = json.loads(text)
    if c.rank != root_rank:
        device = _device_of(opt)
        specs = [None] * sum(1 for e in root["state"].values() for v in e.values() if "tensor" in v)
        for e in root["state"].values():
            for v in e.values():
                if "tensor" in v:
                    specs[v["tensor"]] = v
        tensors = [_empty_like_spec(s, device) for s in specs]
    for t in tensors:
        if t.numel():
            _bcast_tensor(c, t, root_rank)
    if c.rank != root_rank:
        opt.load_state_dict(_opt_rebuild(root, tensors))


# -- checkpoints ------------------------------------------------------------------------------
def _wrapper_parts(model, optimizer):
    """(algo label, flat params, {state name: per-rank array}, optimizer layout or None)."""
    from .optimizer import DistributedAlgorithm, DistributedOptimizer

    if isinstance(optimizer, DistributedAlgorithm):
        state = {k: to_numpy(v) for k, v in optimizer.state_arrays().items()}
        return optimizer.cfg.algo, optimizer.flat, state, None, optimizer
    if isinstance(optimizer, DistributedOptimizer):
        layout, tensors = _opt_layout(optimizer.optimizer)
        state = {f"optim.{i}": t.detach().to("cpu").reshape(-1).numpy() for i, t in enumerate(tensors)}
        state.update({k: to_numpy(v) for k, v in optimizer.state_arrays().items()})
        return "torch-gradient", optimizer.flat, state, layout, optimizer
    raise ConfigError("save_checkpoint/load_checkpoint take a DistributedOptimizer or a DistributedAlgorithm")


def _model_buffers(model):
    return {f"buffer.{n}": b for n, b in model.named_buffers() if b is not None and b.numel()}


def save_checkpoint(path, model, optimizer, step=None, extra_meta=None):
    """Write an HDF5 checkpoint of the model, its buffers and the optimizer/algorithm state.

    Collective: every rank calls it; rank 0 writes (atomically, verified after writing).

    Args:
        path: the ``.h5`` file to write.
        model: the ``torch.nn.Module``.
        optimizer: the :class:`DistributedOptimizer` or :class:`DistributedAlgorithm`.
        step: the step counter stored (default: the wrapper's step count).

    Raises:
        OutputError / CheckpointError (on every rank): it could not be written.
    """
    from ..checkpoint import Snapshot, write_checkpoint
    from ..config import TrainConfig, config_to_toml

    c = _world()
    algo, flat, state, layout, wrapper = _wrapper_parts(model, optimizer)
    arrays = {"params": to_numpy(flat.param_array())}
    arrays.update({f"state/{k}": v for k, v in state.items()})
    arrays.update({f"model/{k}": b.detach().to("cpu").reshape(-1).numpy() for k, b in _model_buffers(model).items()})
    arrays = {k: (v.astype(np.float64) if v.dtype == np.bool_ else v) for k, v in arrays.items()}
    gathered = {k: c.gather_array(np.ascontiguousarray(v)) for k, v in arrays.items()}
    step = wrapper.steps if step is None else int(step)
    cfg = getattr(wrapper, "cfg", None) or TrainConfig(algo="dmsgd", dtype=str(flat.dtype).removeprefix("torch."))

    def write():
        if c.rank != 0:
            return
        meta = {"world_size": c.size, "step": step, "epoch": 1, "step_in_epoch": 0, "steps_per_epoch": 1,
                "n_params": flat.size, "algo": algo, "model": type(model).__name__,
                "torch_optimizer": json.dumps(layout) if layout is not None else "",
                "torch_optimizer_class": type(_inner(optimizer)).__name__ if layout is not None else "",
                **(extra_meta or {})}
        write_checkpoint(path, Snapshot(meta, config_to_toml(cfg), gathered))

    agree_error(c, write)


def load_checkpoint(path, model, optimizer):
    """Restore what :func:`save_checkpoint` wrote, on the same number of ranks.

    Collective. The file is verified (checksums, layout, attribute signature) and must
    match this model (parameter count, buffers), this wrapper (algorithm, its state
    arrays and dtype) and the world size; any mismatch raises CheckpointError on every
    rank and changes nothing.

    Returns:
        The stored step counter (the wrapper's step count is set to it as well).
    """
    from ..checkpoint import read_checkpoint

    c = _world()
    algo, flat, state, layout, wrapper = _wrapper_parts(model, optimizer)
    buffers = _model_buffers(model)
    expected = {"params": ((flat.size,), np.dtype(str(flat.dtype).removeprefix("torch.")))}
    expected.update({f"state/{k}": (v.shape, v.dtype) for k, v in state.items()})
    expected.update({f"model/{k}": ((b.numel(),), np.float64 if b.dtype == torch_module().bool
                                    else b.detach().cpu().numpy().dtype) for k, b in buffers.items()})

    def accept(meta):
        if meta["algo"] != algo:
            raise CheckpointError(f"{path} was written by {meta['algo']}, this run uses {algo}")
        if meta["n_params"] != flat.size:
            raise CheckpointError(f"{path} holds {meta['n_params']} parameters, this model has {flat.size}")
        if meta["world_size"] != c.size:
            raise CheckpointError(f"{path} was written by {meta['world_size']} ranks; resume with the same number "
                                  f"(this run has {c.size})")
        if layout is not None and "torch_optimizer" in meta:
            stored = json.loads(meta["torch_optimizer"] or "{}")
            if sorted(stored.get("state", {})) != sorted(layout["state"]) and layout["state"]:
                raise CheckpointError(f"{path}: the optimizer state does not match this optimizer")

    box = {}

    def read():
        if c.rank == 0:
            # an optimizer that has not stepped yet has no state tensors: expect the file's
            snap = read_checkpoint(path, expected=None if layout is not None else expected, accept=accept)
            if layout is not None:
                names = set(snap.arrays)
                want = {k for k in expected if not k.startswith("state/optim.")}
                missing = sorted(want - names)
                if missing:
                    raise CheckpointError(f"{path} lacks {missing[0]}; it was not written for this model")
            box["snap"] = snap

    agree_error(c, read)
    snap = box.get("snap")
    # rank 0 sends the names, the optimizer layout and the step, then every array row by row
    head = {} if c.rank else {"names": sorted(snap.arrays), "opt": snap.meta.get("torch_optimizer", ""),
                              "step": snap.meta["step"],
                              "shapes": {k: [list(v.shape[1:]), v.dtype.str] for k, v in snap.arrays.items()}}
    head = json.loads(c.bcast_bytes(json.dumps(head).encode(), root=0).decode())
    rows = {}
    for name in head["names"]:
        shape, dt = head["shapes"][name]
        out = np.empty(shape, dtype=np.dtype(dt))
        c.scatter_array(snap.arrays[name] if c.rank == 0 else None, out, root=0)
        rows[name] = out
    torch = torch_module()
    flat.load_params(rows["params"])
    for k, b in buffers.items():
        with torch.no_grad():
            b.copy_(torch.from_numpy(rows[f"model/{k}"]).view(b.shape).to(b.device, b.dtype))
    for k, v in state.items():
        if not k.startswith("optim."):
            target = wrapper.state_arrays()[k]
            target[...] = get_array_module(target).asarray(rows[f"state/{k}"])
    if layout is not None and head["opt"]:
        stored = json.loads(head["opt"])
        specs = sorted(((v["tensor"], v) for e in stored["state"].values() for v in e.values() if "tensor" in v),
                       key=lambda x: x[0])
        device = _device_of(wrapper.optimizer)
        tensors = [torch.from_numpy(rows[f"state/optim.{i}"]).view(s["shape"]).to(device) for i, s in specs]
        wrapper.optimizer.load_state_dict(_opt_rebuild(stored, tensors))
    wrapper.steps = int(head["step"])
    return wrapper.steps
