"""How array buffers reach MPI: host, CUDA-aware and staged transports.

A transport turns an array into something MPI can send from or receive into, and back.
NumPy arrays go to MPI as they are (``host``). CuPy arrays either go as device pointers
after a stream sync (``cuda-aware``, needs an MPI built with CUDA support) or are copied
through reusable pinned host buffers (``staged``, works with any MPI). ``auto`` picks
``cuda-aware`` when the MPI library says it supports CUDA, else ``staged``.

Every transport has the same four calls, used by :class:`~hpctrain.comm.Communicator`:
``send_view(arr)`` before a send, ``recv_view(arr)`` before a receive,
``finish_recv(arr, view)`` after a receive completed, and ``release(view)`` when MPI is
done with a view (staging buffers go back to the pool; no-op elsewhere).
"""

import os

import numpy as np

from ..xp import cupy_or_none

__all__ = [
    "HostTransport",
    "CudaAwareTransport",
    "StagedTransport",
    "get_transport",
    "cuda_aware_mpi",
    "TRANSPORTS",
]


def _is_device(arr):
    return hasattr(arr, "__cuda_array_interface__")


def _sync(arr):
    """Wait for the current CUDA stream so that queued kernels writing ``arr`` are done."""
    if _is_device(arr):
        cupy_or_none().cuda.get_current_stream().synchronize()


class HostTransport:
    """NumPy arrays: MPI reads and writes the array's own memory."""

    name = "host"

    def send_view(self, arr):
        """Return a buffer MPI can send ``arr`` from (ready now)."""
        return arr

    def recv_view(self, arr):
        """Return a buffer MPI can receive ``arr``'s contents into."""
        return arr

    def finish_recv(self, arr, view):
        """Copy a completed receive from ``view`` into ``arr`` (no-op on the host)."""

    def release(self, view):
        """MPI no longer uses ``view`` (no-op: nothing was borrowed)."""


class CudaAwareTransport(HostTransport):
    """CuPy arrays handed to a CUDA-aware MPI as device buffers.

    MPI does not know CuPy's streams, so a send first waits for the current stream
    (the kernels that produced the data must be finished). Receives land in device
    memory directly. NumPy arrays pass through unchanged.
    """

    name = "cuda-aware"

    def send_view(self, arr):
        """Synchronize the current stream, then hand ``arr`` itself to MPI."""
        _sync(arr)
        return arr

    def recv_view(self, arr):
        """``arr`` itself (synchronized, so no queued kernel still reads it)."""
        _sync(arr)
        return arr


class StagedTransport(HostTransport):
    """Device buffers copied through reusable (pinned) host buffers.

    A send copies the device array into a host staging buffer and gives MPI that
    buffer; a receive gives MPI a staging buffer and copies it to the device in
    :meth:`finish_recv`. Staging buffers come from a pool (grown, never shrunk) and go
    back to it in :meth:`release`, so a steady training loop allocates nothing. Every
    outstanding non-blocking request holds its own buffer.

    Args:
        stage_host: also stage NumPy arrays (copy through separate host buffers). The
            CPU test double of the GPU path; off by default.
        pinned: allocate pinned (page-locked) memory through CuPy when available.

    Attributes:
        allocations: staging buffers allocated so far (tests check reuse).
        copies: host<->device (or host<->host) staging copies made.
    """

    name = "staged"

    def __init__(self, stage_host=False, pinned=True):
        self.stage_host = stage_host
        self.pinned = pinned
        self._free = []  # list of uint8 host buffers
        self._busy = {}  # id(view) -> base buffer
        self.allocations = 0
        self.copies = 0

    def _staged(self, arr):
        return _is_device(arr) or self.stage_host

    def _alloc(self, nbytes):
        cp = cupy_or_none() if self.pinned else None
        self.allocations += 1
        if cp is not None:
            try:
                mem = cp.cuda.alloc_pinned_memory(nbytes)
                return np.frombuffer(mem, dtype=np.uint8, count=nbytes)
            except Exception:  # no driver: fall back to pageable memory
                pass
        return np.empty(nbytes, dtype=np.uint8)

    def _acquire(self, arr):
        nbytes = int(arr.size) * arr.dtype.itemsize
        best = None
        for i, b in enumerate(self._free):
            if b.size >= nbytes and (best is None or b.size < self._free[best].size):
                best = i
        base = self._free.pop(best) if best is not None else self._alloc(max(nbytes, 1))
        view = base[:nbytes].view(arr.dtype)
        self._busy[id(view)] = (base, view)
        return view

    def send_view(self, arr):
        """Copy ``arr`` into a staging buffer (after the copy is complete) and return it."""
        if not self._staged(arr):
            return arr
        view = self._acquire(arr)
        if _is_device(arr):
            arr.get(out=view)  # synchronous copy on the current stream
        else:
            np.copyto(view, arr)
        self.copies += 1
        return view

    def recv_view(self, arr):
        """A staging buffer of ``arr``'s size and dtype for MPI to receive into."""
        if not self._staged(arr):
            return arr
        return self._acquire(arr)

    def finish_recv(self, arr, view):
        """Copy the received staging buffer ``view`` into ``arr``."""
        if view is arr:
            return
        if _is_device(arr):
            arr.set(view)
            _sync(arr)
        else:
            np.copyto(arr, view)
        self.copies += 1

    def release(self, view):
        """Give ``view``'s staging buffer back to the pool (no-op for unstaged arrays)."""
        entry = self._busy.pop(id(view), None)
        if entry is not None:
            self._free.append(entry[0])


def cuda_aware_mpi():
    """Whether the MPI library can take CUDA device buffers, and how that was decided.

    Order: ``HPCTRAIN_CUDA_AWARE=0|1`` overrides; then ``MPIX_Query_cuda_support`` when
    mpi4py exposes it; then launcher hints (Open MPI ``OMPI_MCA_opal_cuda_support``,
    Cray ``MPICH_GPU_SUPPORT_ENABLED``, MPICH ``MPIR_CVAR_ENABLE_GPU``, MVAPICH
    ``MV2_USE_CUDA``).

    Returns:
        ``(bool, reason)``.
    """
    env = os.environ.get("HPCTRAIN_CUDA_AWARE", "").strip().lower()
    if env in ("0", "1", "true", "false", "yes", "no"):
        return env in ("1", "true", "yes"), f"HPCTRAIN_CUDA_AWARE={env}"
    from mpi4py import MPI

    query = getattr(MPI, "Query_cuda_support", None)
    if query is not None:
        try:
            return bool(query()), "MPIX_Query_cuda_support()"
        except Exception:  # not implemented by this library
            pass
    hints = {
        "OMPI_MCA_opal_cuda_support": ("true", "1"),
        "MPICH_GPU_SUPPORT_ENABLED": ("1",),
        "MPIR_CVAR_ENABLE_GPU": ("1",),
        "MV2_USE_CUDA": ("1",),
    }
    for var, yes in hints.items():
        if os.environ.get(var, "").strip().lower() in yes:
            return True, f"{var}={os.environ[var]}"
    return False, "no CUDA support reported by the MPI library"


TRANSPORTS = {"host": HostTransport, "cuda-aware": CudaAwareTransport, "staged": StagedTransport}


def get_transport(name="host"):
    """Return a new transport by name.

    Args:
        name: ``host``, ``cuda-aware``, ``staged`` or ``auto`` (``cuda-aware`` if
            :func:`cuda_aware_mpi` says so, else ``staged``; both pass NumPy arrays
            through unchanged).

    Returns:
        A transport object.
    """
    if name == "auto":
        ok, _ = cuda_aware_mpi()
        name = "cuda-aware" if ok else "staged"
    try:
        return TRANSPORTS[name]()
    except KeyError:
        from ..errors import ConfigError

        raise ConfigError(
            f"unknown transport {name!r}; choose from auto, {', '.join(sorted(TRANSPORTS))}"
        ) from None
