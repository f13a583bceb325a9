"""Array-module choice: NumPy on the CPU, CuPy on a GPU. The one place (with the kernel
loader) that imports cupy."""

import os

import numpy as np

__all__ = ["get_array_module", "cupy_or_none", "gpu_available", "to_numpy", "synchronize", "resolve_device"]


def cupy_or_none():
    """Return the ``cupy`` module, or None when it is not installed.

    With ``HPCTRAIN_CUDASIM=1`` in the environment this is the CPU execution harness's
    stand-in (:mod:`hpctrain.cudasim.cupy`: NumPy arrays posing as device arrays, kernels
    launched through the harness), so ``--device gpu`` runs on a machine without a GPU
    for testing; see docs/gpu.md.
    """
    if os.environ.get("HPCTRAIN_CUDASIM", "") not in ("", "0"):
        from .cudasim import cupy as sim

        return sim
    try:
        import cupy
    except Exception:  # ImportError, or a broken CUDA install raising at import
        return None
    return cupy


def gpu_available():
    """(True, description) if CuPy sees a usable GPU, else (False, reason)."""
    cp = cupy_or_none()
    if cp is None:
        return False, "CuPy is not installed (pip install 'hpctrain[gpu]')"
    try:
        n = cp.cuda.runtime.getDeviceCount()
    except Exception as exc:  # no driver / no device
        return False, f"CuPy cannot reach a GPU: {str(exc).splitlines()[0]}"
    if n < 1:
        return False, "no CUDA device visible"
    props = cp.cuda.runtime.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    return True, f"{n} x {name}"


def get_array_module(arr):
    """``cupy`` for CuPy arrays (anything with ``__cuda_array_interface__``), else numpy."""
    if hasattr(arr, "__cuda_array_interface__"):
        return cupy_or_none()
    return np


def to_numpy(arr):
    """A NumPy array with the contents of ``arr`` (copied off the GPU if needed)."""
    if hasattr(arr, "__cuda_array_interface__"):
        return arr.get()
    return np.asarray(arr)


def synchronize(arr=None):
    """Wait for queued GPU work (no-op for NumPy)."""
    if arr is None or hasattr(arr, "__cuda_array_interface__"):
        cp = cupy_or_none()
        if cp is not None and arr is not None:
            cp.cuda.get_current_stream().synchronize()


def resolve_device(device, local_rank=0):
    """Array module for ``device`` in {'cpu', 'gpu'}; for 'gpu', also selects this rank's
    GPU: ``local_rank`` modulo the visible devices (one GPU per rank on a node).

    Raises:
        ConfigError: 'gpu' without CuPy or without a usable GPU.
    """
    if device == "cpu":
        return np
    from .errors import ConfigError

    ok, why = gpu_available()
    if not ok:
        raise ConfigError(f"--device gpu: {why}")
    cp = cupy_or_none()
    cp.cuda.Device(local_rank % cp.cuda.runtime.getDeviceCount()).use()
    return cp
