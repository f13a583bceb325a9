"""Bring-your-own models: ``python:PATH_OR_MODULE:FACTORY`` (the flat-buffer protocol)
and ``torch:PATH_OR_MODULE:FACTORY`` (any ``torch.nn.Module``), loaded through importlib.

The bring-your-own protocol (see docs/models.md): ``FACTORY(**kw)`` returns an object with

* ``params``: a flat, contiguous 1-D NumPy array of the run's dtype; hpctrain's
  algorithms update it in place, so the model must read its weights from it;
* ``grad``: a flat array of the same shape and dtype;
* ``loss_and_grad(x, y) -> float``: mean loss on the batch; writes d(loss)/d(params)
  into ``grad``; ``x`` holds one flattened sample per row (float), ``y`` integer labels;
* ``predict(x) -> scores`` of shape (rows, n_classes) (logits: the test loss is their
  softmax cross-entropy);
* optionally ``state``: a dict name -> NumPy array of model state (updated in place)
  that checkpoints carry.

``kw`` holds those of ``input_shape`` (one sample's shape, e.g. (1, 28, 28)),
``n_classes``, ``seed`` and ``rank`` that the factory's signature names (all of them
for ``**kwargs``). Weight decay (``--weight-decay``) is added by hpctrain to every
coordinate of ``params``. Nothing is eval'ed or unpickled: the module is imported.
"""

import importlib
import importlib.util
import inspect
import os
import sys

import numpy as np

from ..errors import ConfigError
from .classic import evaluate_batches

__all__ = ["load_factory", "call_factory", "PythonModel", "check_output_shape"]


def load_factory(kind, ref):
    """The callable named by ``PATH_OR_MODULE:FACTORY`` (``kind`` is python or torch).

    Raises:
        ConfigError: malformed reference, missing file or module, a module that raises
            on import, a missing or non-callable factory.
    """
    where, sep, name = ref.rpartition(":")
    if not sep or not where or not name:
        raise ConfigError(f"--model {kind}:{ref}: expected {kind}:PATH_OR_MODULE:FACTORY")
    label = f"--model {kind}:{ref}"
    if where.endswith(".py") or os.sep in where:
        if not os.path.isfile(where):
            raise ConfigError(f"{label}: model file not found: {where}")
        modname = f"hpctrain_user_model_{abs(hash(os.path.abspath(where)))}"
        spec = importlib.util.spec_from_file_location(modname, where)
        saved, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # no __pycache__ in the user's folder
        try:
            module = importlib.util.module_from_spec(spec)
            sys.modules[modname] = module
            spec.loader.exec_module(module)
        except Exception as exc:  # the user's module raised: one line, exit 2
            sys.modules.pop(modname, None)
            raise ConfigError(f"{label}: importing {where} raised {type(exc).__name__}: {exc}") from None
        finally:
            sys.dont_write_bytecode = saved
    else:
        try:
            module = importlib.import_module(where)
        except ModuleNotFoundError as exc:
            if exc.name and where.startswith(exc.name):
                raise ConfigError(f"{label}: no module named {where!r}") from None
            raise ConfigError(f"{label}: importing {where} raised ModuleNotFoundError: {exc}") from None
        except Exception as exc:
            raise ConfigError(f"{label}: importing {where} raised {type(exc).__name__}: {exc}") from None
    factory = getattr(module, name, None)
    if factory is None:
        raise ConfigError(f"{label}: {where} has no factory {name!r}")
    if not callable(factory):
        raise ConfigError(f"{label}: {where}.{name} is not callable")
    return factory, label


def call_factory(factory, label, **available):
    """Call ``factory`` with the keyword arguments its signature names."""
    try:
        sig = inspect.signature(factory)
        params = sig.parameters.values()
        if any(p.kind == p.VAR_KEYWORD for p in params):
            kw = dict(available)
        else:
            kw = {k: v for k, v in available.items() if k in sig.parameters}
    except (TypeError, ValueError):
        kw = {}
    try:
        return factory(**kw)
    except Exception as exc:
        raise ConfigError(f"{label}: the factory raised {type(exc).__name__}: {exc}") from None


def check_output_shape(label, scores, rows, n_classes):
    """Raise ConfigError unless ``scores`` has shape (rows, n_classes)."""
    shape = tuple(getattr(scores, "shape", ()))
    if shape != (rows, n_classes):
        raise ConfigError(f"{label}: the model's output has shape {shape} for a batch of {rows}, but the labels "
                          f"need ({rows}, {n_classes}) (one score per class)")


class PythonModel:
    """Adapter from the bring-your-own protocol to hpctrain's model interface."""

    def __init__(self, obj, label, input_shape, n_classes, dtype):
        self.obj, self.name, self.n_classes = obj, label, int(n_classes)
        self.input_shape = tuple(input_shape)
        for attr in ("params", "grad"):
            arr = getattr(obj, attr, None)
            if not isinstance(arr, np.ndarray) or arr.ndim != 1 or not arr.flags.c_contiguous:
                raise ConfigError(f"{label}: the model needs a flat contiguous NumPy array .{attr}")
            if arr.dtype != np.dtype(dtype):
                raise ConfigError(f"{label}: .{attr} is {arr.dtype}, but this run uses --dtype {np.dtype(dtype)}")
        if obj.grad.shape != obj.params.shape:
            raise ConfigError(f"{label}: .grad has shape {obj.grad.shape} but .params has {obj.params.shape}")
        for meth in ("loss_and_grad", "predict"):
            if not callable(getattr(obj, meth, None)):
                raise ConfigError(f"{label}: the model has no method {meth}()")
        state = getattr(obj, "state", None) or {}
        if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
            raise ConfigError(f"{label}: .state must be a dict of NumPy arrays")
        bad = [k for k in state if not (isinstance(k, str) and k and all(c.isalnum() or c in "._-" for c in k))]
        if bad:
            raise ConfigError(f"{label}: .state name {bad[0]!r} must be letters, digits, '.', '_' or '-'")
        self._state = state
        self.size = obj.params.size

    def init_params(self, xp=np, dtype=np.float32, seed=0):
        """The model's own ``params`` buffer (the algorithms update it in place)."""
        if xp is not np:
            raise ConfigError(f"{self.name}: bring-your-own models run on the CPU (--device cpu)")
        return self.obj.params

    def state_dict(self):
        return dict(self._state)

    def _with_params(self, params, fn):
        own = self.obj.params
        if params is own:
            return fn()
        saved = own.copy()
        own[...] = params
        try:
            return fn()
        finally:
            own[...] = saved

    def loss_grad(self, params, x, y, grad, weight_decay=0.0):
        """The user's ``loss_and_grad`` on ``params``; the gradient is copied into ``grad``."""
        loss = float(self._with_params(params, lambda: self.obj.loss_and_grad(x, y)))
        if grad is not self.obj.grad:
            grad[...] = self.obj.grad
        if weight_decay:
            grad += weight_decay * params
            loss += 0.5 * weight_decay * float((params * params).sum())
        return loss

    def logits(self, params, x):
        scores = self._with_params(params, lambda: np.asarray(self.obj.predict(x)))
        check_output_shape(self.name, scores, x.shape[0], self.n_classes)
        return scores

    def evaluate(self, params, x, y, batch=1024):
        return evaluate_batches(lambda xb: self.logits(params, xb), x, y, batch, as_float64=True)
