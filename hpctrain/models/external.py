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
  that checkpoints carry (bool arrays are stored as uint8);
* optionally ``param_shapes``: a list of (name, shape) that splits ``params`` into
  named, shaped views (default: one view ``params``), recorded in checkpoints.

``kw`` holds those of ``input_shape`` (one sample's shape, e.g. (1, 28, 28)),
``n_classes``, ``seed``, ``rank``, ``dtype`` (the run's parameter dtype name, e.g.
``"float32"``) and ``device`` (``"cpu"``) that the factory's signature names (all of them
for ``**kwargs``). An exception (or ``sys.exit``) in the user's code is one line naming
the user's file and line, and ends every rank. Weight decay (``--weight-decay``) is added by hpctrain to every
coordinate of ``params``. Nothing is eval'ed or unpickled: the module is imported.
"""

import importlib
import importlib.util
import inspect
import os
import sys
import sysconfig
import traceback

import numpy as np

from ..errors import ConfigError, HpctrainError
from .classic import evaluate_batches

__all__ = ["load_factory", "call_factory", "PythonModel", "check_output_shape", "user_error", "user_call",
           "checkpointable"]

_HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the hpctrain package
_LIBRARIES = tuple(os.path.realpath(p) for p in {sysconfig.get_paths()[k] for k in ("stdlib", "purelib", "platlib")})


def _user_frame(exc):
    """``FILE:LINE`` of the innermost traceback frame in the user's code (not hpctrain,
    not the standard library or installed packages such as torch), or ``""``."""
    where = ""
    for fr in traceback.extract_tb(exc.__traceback__):
        path = os.path.realpath(fr.filename)
        if path.startswith(_HERE) or path.startswith(_LIBRARIES) or fr.filename.startswith("<"):
            continue
        where = f"{fr.filename}:{fr.lineno}"
    return where


def user_error(label, what, exc):
    """The one-line :class:`ConfigError` for an exception (or ``SystemExit``) raised in the
    user's code during ``what``: it names the user's file and line. It may arise on one rank
    only (a forward pass during training), so the CLI ends every rank with it
    (``abort_job``)."""
    if isinstance(exc, SystemExit):
        desc = f"called sys.exit({exc.code!r})"
    else:
        desc = f"raised {type(exc).__name__}" + (f": {exc}" if str(exc) else "")
    where = _user_frame(exc)
    err = ConfigError(f"{label}: {what} {desc}" + (f" (at {where})" if where else ""))
    err.abort_job = True
    return err


def user_call(label, what, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``: the user's code, whose exceptions and ``sys.exit`` become
    :func:`user_error`'s one line (hpctrain's own errors pass through)."""
    try:
        return fn(*args, **kwargs)
    except HpctrainError:
        raise
    except (Exception, SystemExit) as exc:
        raise user_error(label, what, exc) from None


def checkpointable(arr):
    """A view of ``arr`` that checkpoints can store: bool arrays as uint8 (same memory,
    so a resume writes the values back), others as they are."""
    return arr.view(np.uint8) if arr.dtype == np.bool_ else arr


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
        if spec is None or spec.loader is None:
            raise ConfigError(f"{label}: {where} is not a Python file (give a .py file or an importable module)")
        saved, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # no __pycache__ in the user's folder
        try:
            module = importlib.util.module_from_spec(spec)
            sys.modules[modname] = module
            spec.loader.exec_module(module)
        except (Exception, SystemExit) as exc:  # the user's module raised or exited: one line, exit 2
            sys.modules.pop(modname, None)
            raise user_error(label, f"importing {where}", exc) from None
        finally:
            sys.dont_write_bytecode = saved
    else:
        try:
            module = importlib.import_module(where)
        except ModuleNotFoundError as exc:
            if exc.name and where.startswith(exc.name):
                raise ConfigError(f"{label}: no module named {where!r}") from None
            raise ConfigError(f"{label}: importing {where} raised ModuleNotFoundError: {exc}") from None
        except (Exception, SystemExit) as exc:
            raise user_error(label, f"importing {where}", exc) from None
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
    return user_call(label, "the factory", factory, **kw)


def check_output_shape(label, scores, rows, n_classes):
    """Raise ConfigError unless ``scores`` has shape (rows, n_classes)."""
    shape = tuple(getattr(scores, "shape", ()))
    is_float = getattr(scores, "is_floating_point", None)  # a torch tensor's; NumPy: the dtype's kind
    if not (is_float() if callable(is_float) else np.asarray(scores).dtype.kind == "f"):
        err = ConfigError(f"{label}: the model's output is {getattr(scores, 'dtype', type(scores).__name__)}, not "
                          "floating point; it must return class scores (logits)")
        err.abort_job = True
        raise err
    if shape != (rows, n_classes):
        err = ConfigError(f"{label}: the model's output has shape {shape} for a batch of {rows}, but the labels "
                          f"need ({rows}, {n_classes}) (one score per class)")
        err.abort_job = True  # may happen on one rank only (during training): end every rank
        raise err


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
        if obj.params.size == 0:
            raise ConfigError(f"{label}: the model has no parameters (.params is empty): nothing to train")
        state = getattr(obj, "state", None) or {}
        if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
            raise ConfigError(f"{label}: .state must be a dict of NumPy arrays")
        bad = [k for k in state if not (isinstance(k, str) and k and all(c.isalnum() or c in "._-" for c in k))]
        if bad:
            raise ConfigError(f"{label}: .state name {bad[0]!r} must be letters, digits, '.', '_' or '-'")
        self._state = {k: checkpointable(v) for k, v in state.items()}
        self.size = obj.params.size
        self._shapes = self._param_shapes(label, getattr(obj, "param_shapes", None))

    def _param_shapes(self, label, shapes):
        if shapes is None:
            return [("params", (self.size,))]
        try:
            out = [(str(n), tuple(int(v) for v in s)) for n, s in shapes]
        except (TypeError, ValueError):
            raise ConfigError(f"{label}: .param_shapes must be a list of (name, shape) pairs") from None
        total = sum(int(np.prod(s)) for _, s in out)
        if total != self.size:
            raise ConfigError(f"{label}: .param_shapes cover {total} values but .params has {self.size}")
        return out

    def param_views(self, params=None):
        """(name, view) per entry of the model's ``param_shapes`` (default: one flat view)."""
        p, out, off = self.obj.params if params is None else params, [], 0
        for name, shape in self._shapes:
            n = int(np.prod(shape))
            out.append((name, p[off : off + n].reshape(shape)))
            off += n
        return out

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
        value = self._with_params(params, lambda: user_call(self.name, "loss_and_grad()", self.obj.loss_and_grad, x, y))
        if value is None or np.ndim(value) != 0 or not np.isrealobj(value):
            err = ConfigError(f"{self.name}: loss_and_grad() returned {type(value).__name__}"
                              f"{' of shape ' + str(np.shape(value)) if np.ndim(value) else ''}; it must return "
                              "the mean loss as one real number")
            err.abort_job = True
            raise err
        loss = float(value)
        if grad is not self.obj.grad:
            grad[...] = self.obj.grad
        if weight_decay:
            grad += weight_decay * params
            loss += 0.5 * weight_decay * float((params * params).sum())
        return loss

    def logits(self, params, x):
        scores = self._with_params(params, lambda: np.asarray(user_call(self.name, "predict()", self.obj.predict, x)))
        check_output_shape(self.name, scores, x.shape[0], self.n_classes)
        return scores

    def evaluate(self, params, x, y, batch=1024):
        return evaluate_batches(lambda xb: self.logits(params, xb), x, y, batch, as_float64=True)
