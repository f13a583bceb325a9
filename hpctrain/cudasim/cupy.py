"""Stand-in for the part of CuPy that hpctrain uses, backed by NumPy and the CPU harness.

Selected by ``HPCTRAIN_CUDASIM=1`` (see :func:`hpctrain.xp.cupy_or_none`). Device arrays
are :class:`ndarray`, a NumPy subclass in host memory that carries
``__cuda_array_interface__`` (so hpctrain's dispatch takes its GPU branches) and CuPy's
``get``/``set``; ``RawModule`` compiles kernel source with :mod:`hpctrain.cudasim` and
launches through the harness. Like CuPy, a ufunc that mixes a host NumPy array with a
device array raises ``TypeError``, and ``empty`` returns memory filled with a garbage
pattern (0xA5 bytes) rather than zeros, so reading never-written device memory shows.
What this cannot reproduce (streams, asynchrony, device memory, speed) is listed in
docs/gpu.md.
"""

import numpy as _np

from . import Module

__version__ = "cudasim"
_GARBAGE = 0xA5


class ndarray(_np.ndarray):  # noqa: N801 (CuPy's name)
    """A "device" array: host memory, CuPy's interface."""

    @property
    def __cuda_array_interface__(self):
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (self.__array_interface__["data"][0], False),
                "strides": None if self.flags.c_contiguous else self.strides, "version": 3}

    def get(self, stream=None, out=None):
        """Copy to a host NumPy array (into ``out`` when given)."""
        if out is not None:
            _np.copyto(out, self.view(_np.ndarray))
            return out
        return _np.array(self.view(_np.ndarray))

    def set(self, arr, stream=None):
        """Copy host array ``arr`` into this device array."""
        if isinstance(arr, ndarray):
            raise TypeError("ndarray.set takes a host (NumPy) array")
        _np.copyto(self.view(_np.ndarray), arr)

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        for a in inputs + (out or ()):
            if isinstance(a, _np.ndarray) and not isinstance(a, ndarray):
                raise TypeError(f"cudasim: {ufunc.__name__}.{method} mixes a host numpy.ndarray with a device "
                                "array (CuPy raises here too; copy with cupy.asarray or .get())")
        args = [a.view(_np.ndarray) if isinstance(a, ndarray) else a for a in inputs]
        if out is not None:
            kwargs["out"] = tuple(o.view(_np.ndarray) for o in out)
        res = getattr(ufunc, method)(*args, **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _wrap(res)


def _wrap(res):
    if isinstance(res, _np.ndarray) and not isinstance(res, ndarray):
        return res.view(ndarray)
    if isinstance(res, tuple):
        return tuple(_wrap(r) for r in res)
    return res


def asarray(a, dtype=None, order=None):
    """Device copy of a host array (the array itself when already on the "device")."""
    if isinstance(a, ndarray) and (dtype is None or _np.dtype(dtype) == a.dtype):
        return a
    return _np.array(a.view(_np.ndarray) if isinstance(a, ndarray) else a, dtype=dtype, order=order or "K").view(
        ndarray)


def array(a, dtype=None, copy=True, order="K"):
    """Device copy of ``a``."""
    return _np.array(a.view(_np.ndarray) if isinstance(a, ndarray) else a, dtype=dtype, order=order).view(ndarray)


def ascontiguousarray(a, dtype=None):
    """``a`` when already contiguous with that dtype, else a contiguous device copy."""
    if isinstance(a, ndarray) and a.flags.c_contiguous and (dtype is None or _np.dtype(dtype) == a.dtype):
        return a
    return _np.ascontiguousarray(a.view(_np.ndarray) if isinstance(a, ndarray) else a, dtype=dtype).view(ndarray)


def asnumpy(a, stream=None, out=None):
    """Host copy of ``a``."""
    return a.get(out=out) if isinstance(a, ndarray) else _np.asarray(a)


def empty(shape, dtype=float, order="C"):
    """Uninitialized device memory: filled with 0xA5 bytes, not zeros."""
    a = _np.empty(shape, dtype=dtype, order=order)
    a.view(_np.uint8).reshape(-1)[...] = _GARBAGE if a.size else 0
    return a.view(ndarray)


def empty_like(a, dtype=None, order="K", shape=None):
    """Uninitialized device memory of ``a``'s shape (0xA5 bytes)."""
    return empty(a.shape if shape is None else shape, dtype=a.dtype if dtype is None else dtype)


def get_array_module(*args):
    """This module for device arrays, else numpy."""
    import sys

    return sys.modules[__name__] if any(isinstance(a, ndarray) for a in args) else _np


def __getattr__(name):
    obj = getattr(_np, name)  # AttributeError for names NumPy lacks too
    if callable(obj) and not isinstance(obj, (type, _np.ufunc)):
        def fn(*args, **kwargs):
            return _wrap(obj(*args, **kwargs))

        fn.__name__ = name
        fn.__doc__ = f"numpy.{name}, returning device arrays."
        return fn
    return obj


# ------------------------------------------------------------------ kernels
class RawModule:
    """``cupy.RawModule(code=..., options=...)`` built for the CPU by the harness.

    ``options`` are accepted and not used: the harness compiles with its own fixed flags
    (:data:`hpctrain.cudasim.CXXFLAGS`, no contraction, no fast-math).
    """

    def __init__(self, code=None, path=None, options=(), backend="nvrtc", name_expressions=None, **_):
        if code is None:
            with open(path) as f:
                code = f.read()
        self.options = tuple(options)
        self._mod = Module(code, name="rawmodule")

    def get_function(self, name):
        """The kernel ``name`` (a :class:`hpctrain.cudasim.Kernel`)."""
        return self._mod.get_function(name)


class RawKernel:
    """``cupy.RawKernel(code, name)``."""

    def __init__(self, code, name, options=(), **_):
        self._fn = Module(code, name=name).get_function(name)

    def __call__(self, grid, block, args, **kwargs):
        return self._fn(grid, block, args, **kwargs)


# ------------------------------------------------------------------ cupy.cuda
class _Stream:
    def synchronize(self):
        """Launches are synchronous in the harness: nothing to wait for."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _Device:
    def __init__(self, device=0):
        self.id = int(device)

    def use(self):
        """Select this device (the harness has one)."""
        if self.id != 0:
            raise RuntimeError(f"cudasim has one device, not {self.id}")

    def synchronize(self):
        """Nothing to wait for."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _Runtime:
    @staticmethod
    def getDeviceCount():  # noqa: N802 (CuPy's name)
        return 1

    @staticmethod
    def getDeviceProperties(i):  # noqa: N802
        return {"name": b"cudasim (CPU execution harness)", "totalGlobalMem": 0, "major": 0, "minor": 0}

    @staticmethod
    def runtimeGetVersion():  # noqa: N802
        return 0


class _Cuda:
    runtime = _Runtime()
    Device = _Device
    Stream = _Stream

    @staticmethod
    def get_current_stream():
        return _Stream()

    @staticmethod
    def alloc_pinned_memory(nbytes):
        """Host memory (the harness has no pinned memory; pageable serves)."""
        return bytearray(nbytes)


cuda = _Cuda()
