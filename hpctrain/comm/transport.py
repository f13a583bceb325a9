"""How array buffers reach MPI.

A transport turns an array into something MPI can send from or receive into, and back.
NumPy arrays go to MPI as they are. CuPy arrays either go as device pointers (CUDA-aware
MPI, after a stream sync) or are staged through reusable pinned host buffers; those
transports live here too so callers never change.
"""

__all__ = ["HostTransport", "get_transport"]


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


_TRANSPORTS = {"host": HostTransport}


def get_transport(name="host"):
    """Return a transport by name (``host``; GPU transports register here)."""
    try:
        return _TRANSPORTS[name]()
    except KeyError:
        from ..errors import ConfigError

        raise ConfigError(
            f"unknown transport {name!r}; choose from {', '.join(sorted(_TRANSPORTS))}"
        ) from None
