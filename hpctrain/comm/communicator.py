"""Communicator: rank/size, buffer point-to-point messages, byte counters and comm timers.

Every hot-path message goes through the capitalised (buffer) mpi4py methods on contiguous
arrays; nothing here pickles. The counters are exact: bytes sent are the sizes of the
buffers handed to MPI, bytes received are read from each completed receive's status.
"""

import sys
import time

import numpy as np
from mpi4py import MPI

from .buffers import Buffers
from .transport import get_transport

__all__ = ["Communicator", "Request", "world", "exit_together", "abort_world", "abort_now", "finalize"]

_OPS = {"sum": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN, "prod": MPI.PROD}
_SEND_STATUS = MPI.Status()  # sends' statuses are never read: one object serves them all


def _nbytes(arr):
    return int(arr.size) * arr.dtype.itemsize


class Request:
    """A pending non-blocking send or receive; complete it with :meth:`wait` or
    :meth:`Communicator.waitall`."""

    __slots__ = ("_req", "_status", "_arr", "_view", "_kind")

    def __init__(self, req, kind, arr=None, view=None):
        self._req = req
        self._kind = kind
        self._arr = arr
        self._view = view
        self._status = MPI.Status() if kind == "recv" else None


class Communicator:
    """A thin wrapper of an MPI communicator used by every hand-made collective.

    Args:
        mpi_comm: an ``mpi4py.MPI.Comm`` (default ``MPI.COMM_WORLD``).
        transport: name of the buffer transport (``host``, ``cuda-aware``, ``staged``,
            ``auto``: see :mod:`hpctrain.comm.transport`) or a transport object.

    Attributes:
        bytes_sent, bytes_recv: exact payload bytes this rank sent/received.
        messages_sent: number of point-to-point sends.
        comm_time: seconds spent inside communication calls.
        poll_interval: None (default): blocking calls wait inside MPI, which busy-polls a
            core. Seconds: :meth:`sendrecv` and :meth:`waitall` poll with ``MPI_Testall``
            and sleep this long between polls after a short spin, leaving the core to
            other threads (a communication thread that runs beside backward sets it).
    """

    #: polls without sleeping before a polite wait starts sleeping (small messages finish here)
    SPIN_POLLS = 32

    def __init__(self, mpi_comm=None, transport="host"):
        self._comm = MPI.COMM_WORLD if mpi_comm is None else mpi_comm
        self.rank = self._comm.Get_rank()
        self.size = self._comm.Get_size()
        self.transport = get_transport(transport) if isinstance(transport, str) else transport
        self._status = MPI.Status()  # reused by blocking calls (one thread drives a rank)
        self.buffers = Buffers()  # collectives' scratch and per-communicator caches
        self.poll_interval = None
        self.reset_counters()

    # -- bookkeeping ---------------------------------------------------------------
    def reset_counters(self):
        """Zero the byte counters and the communication timer."""
        self.bytes_sent = 0
        self.bytes_recv = 0
        self.messages_sent = 0
        self.comm_time = 0.0

    def counters(self):
        """Return the counters as a dict (for metrics)."""
        return {
            "bytes_sent": self.bytes_sent,
            "bytes_recv": self.bytes_recv,
            "messages_sent": self.messages_sent,
            "comm_time": self.comm_time,
        }

    @property
    def mpi_comm(self):
        """The underlying ``mpi4py`` communicator (for code inside ``hpctrain.comm``)."""
        return self._comm

    # -- blocking point-to-point ---------------------------------------------------
    def send(self, buf, dest, tag=0):
        """Send the contiguous array ``buf`` to rank ``dest``."""
        t0 = time.perf_counter()
        tr = self.transport
        view = tr.send_view(buf)
        self._comm.Send(view, dest=dest, tag=tag)
        tr.release(view)
        self.bytes_sent += _nbytes(buf)
        self.messages_sent += 1
        self.comm_time += time.perf_counter() - t0

    def recv(self, buf, source, tag=0):
        """Receive into the contiguous array ``buf`` from rank ``source``.

        Returns:
            The number of bytes received.
        """
        t0 = time.perf_counter()
        status = MPI.Status()
        tr = self.transport
        view = tr.recv_view(buf)
        self._comm.Recv(view, source=source, tag=tag, status=status)
        tr.finish_recv(buf, view)
        tr.release(view)
        n = status.Get_count(MPI.BYTE)
        self.bytes_recv += n
        self.comm_time += time.perf_counter() - t0
        return n

    def sendrecv(self, sendbuf, dest, recvbuf, source, sendtag=0, recvtag=None):
        """Send ``sendbuf`` to ``dest`` while receiving ``recvbuf`` from ``source``.

        Returns:
            The number of bytes received.
        """
        if self.poll_interval:  # polite: non-blocking pair completed by polling
            rreq = self.irecv(recvbuf, source, sendtag if recvtag is None else recvtag)
            return self.waitall([rreq, self.isend(sendbuf, dest, sendtag)])[0]
        t0 = time.perf_counter()
        status = self._status
        tr = self.transport
        if tr.name == "host":  # the hot path of every CPU collective: no views to manage
            self._comm.Sendrecv(sendbuf, dest, sendtag, recvbuf, source,
                                sendtag if recvtag is None else recvtag, status)
            n = status.Get_count(MPI.BYTE)
            self.bytes_sent += sendbuf.nbytes
            self.messages_sent += 1
            self.bytes_recv += n
            self.comm_time += time.perf_counter() - t0
            return n
        view = tr.recv_view(recvbuf)
        sview = tr.send_view(sendbuf)
        self._comm.Sendrecv(
            sview,
            dest=dest,
            sendtag=sendtag,
            recvbuf=view,
            source=source,
            recvtag=sendtag if recvtag is None else recvtag,
            status=status,
        )
        tr.finish_recv(recvbuf, view)
        tr.release(view)
        tr.release(sview)
        n = status.Get_count(MPI.BYTE)
        self.bytes_sent += _nbytes(sendbuf)
        self.messages_sent += 1
        self.bytes_recv += n
        self.comm_time += time.perf_counter() - t0
        return n

    # -- non-blocking point-to-point -----------------------------------------------
    def isend(self, buf, dest, tag=0):
        """Start sending ``buf`` to ``dest``; returns a :class:`Request`."""
        t0 = time.perf_counter()
        view = buf if self.transport.name == "host" else self.transport.send_view(buf)
        req = self._comm.Isend(view, dest, tag)
        self.bytes_sent += buf.nbytes
        self.messages_sent += 1
        self.comm_time += time.perf_counter() - t0
        return Request(req, "send", buf, view)

    def irecv(self, buf, source, tag=0):
        """Start receiving into ``buf`` from ``source``; returns a :class:`Request`."""
        t0 = time.perf_counter()
        view = buf if self.transport.name == "host" else self.transport.recv_view(buf)
        req = self._comm.Irecv(view, source, tag)
        self.comm_time += time.perf_counter() - t0
        return Request(req, "recv", buf, view)

    def waitall(self, requests):
        """Complete every request in ``requests``.

        Returns:
            Bytes received by the receive requests among them, in order (0 for sends).
        """
        t0 = time.perf_counter()
        statuses = [_SEND_STATUS if r._status is None else r._status for r in requests]
        if self.poll_interval:
            self._poll(requests, statuses)
        else:
            MPI.Request.Waitall([r._req for r in requests], statuses)
        counts = []
        tr = self.transport
        host = tr.name == "host"  # host buffers: no views to finish or release
        for r, st in zip(requests, statuses):
            if r._kind == "recv":
                if not host:
                    tr.finish_recv(r._arr, r._view)
                n = st.Get_count(MPI.BYTE)
                self.bytes_recv += n
                counts.append(n)
            else:
                counts.append(0)
            if not host:
                tr.release(r._view)
        self.comm_time += time.perf_counter() - t0
        return counts

    def _poll(self, requests, statuses):
        """Complete ``requests`` by ``MPI_Testall``: spin a little, then sleep
        :attr:`poll_interval` between polls (no core busy while a long message flows)."""
        reqs = [r._req for r in requests]
        polls = 0
        while not MPI.Request.Testall(reqs, statuses):
            polls += 1
            if polls > self.SPIN_POLLS:
                time.sleep(self.poll_interval)

    def wait(self, request):
        """Complete one request; returns bytes received (0 for a send)."""
        return self.waitall([request])[0]

    # -- MPI's own collectives (baselines, oracles, small control messages) -----------
    def native_allreduce(self, buf, op="sum", count=False):
        """MPI's ``Allreduce`` in place on ``buf`` (the baseline and test oracle).

        Args:
            count: add the call to the counters (for the ``mpi`` collective in training;
                off for control messages). MPI's internal traffic is invisible here, so
                ``bytes_sent`` grows by the buffer size, the data this rank contributes.
        """
        t0 = time.perf_counter()
        if self.size > 1:
            tr = self.transport
            view = tr.send_view(buf)
            self._comm.Allreduce(MPI.IN_PLACE, view, op=_OPS[op])
            tr.finish_recv(buf, view)
            tr.release(view)
            if count:
                self.bytes_sent += _nbytes(buf)
                self.messages_sent += 1
                self.comm_time += time.perf_counter() - t0
        return buf

    def native_allgatherv(self, sendbuf, recvbuf, counts):
        """MPI's ``Allgatherv``: ``recvbuf`` receives every rank's ``sendbuf``, rank order.

        Args:
            counts: number of elements contributed by each rank.
        """
        t0 = time.perf_counter()
        counts = [int(c) for c in counts]
        self.messages_sent += 1
        displs = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(int).tolist()
        tr = self.transport
        sview, rview = tr.send_view(sendbuf), tr.recv_view(recvbuf)
        self._comm.Allgatherv(sview, [rview, (counts, displs)])
        tr.finish_recv(recvbuf, rview)
        tr.release(sview)
        tr.release(rview)
        self.bytes_sent += _nbytes(sendbuf)
        self.comm_time += time.perf_counter() - t0
        return recvbuf

    def allgather_array(self, arr):
        """Gather a small 1-D array of equal length from every rank; returns (size, len)."""
        arr = np.ascontiguousarray(arr)
        out = np.empty((self.size,) + arr.shape, dtype=arr.dtype)
        self._comm.Allgather(arr, out)
        return out

    def hostnames(self):
        """Every rank's host name (``socket.gethostname()``, up to 64 bytes), in rank order."""
        import socket

        host = socket.gethostname().encode("utf-8", "replace")[:64]
        mine = np.zeros(65, dtype=np.int64)
        mine[0] = len(host)
        mine[1 : 1 + len(host)] = np.frombuffer(host, dtype=np.uint8)
        return [bytes(row[1 : 1 + row[0]].astype(np.uint8)).decode("utf-8", "replace")
                for row in self.allgather_array(mine)]

    def gather_array(self, arr, root=0):
        """Gather equal-shaped arrays to ``root``; returns (size, *shape) there, None elsewhere."""
        arr = np.ascontiguousarray(arr)
        out = np.empty((self.size,) + arr.shape, dtype=arr.dtype) if self.rank == root else None
        self._comm.Gather(arr, out, root=root)
        return out

    def scatter_array(self, stacked, out, root=0):
        """Scatter ``stacked[r]`` (on ``root``, shape (size, *out.shape)) into ``out`` on rank r."""
        self._comm.Scatter(np.ascontiguousarray(stacked) if self.rank == root else None, out, root=root)
        return out

    def bcast_array(self, arr, root=0):
        """Broadcast a small array in place from ``root``."""
        self._comm.Bcast(arr, root=root)
        return arr

    def bcast_bytes(self, data, root=0):
        """Broadcast a byte string from ``root`` (length first; no pickle)."""
        n = np.array([len(data) if self.rank == root else 0], dtype=np.int64)
        self._comm.Bcast(n, root=root)
        buf = np.frombuffer(data, dtype=np.uint8).copy() if self.rank == root else np.empty(int(n[0]), np.uint8)
        self._comm.Bcast(buf, root=root)
        return buf.tobytes()

    def barrier(self):
        """Block until every rank arrives."""
        self._comm.Barrier()

    def split(self, color, key=None):
        """A new :class:`Communicator` over the ranks with the same ``color``.

        ``color`` None: this rank joins none (MPI_UNDEFINED) and gets None back.
        """
        sub = self._comm.Split(MPI.UNDEFINED if color is None else color, self.rank if key is None else key)
        if sub == MPI.COMM_NULL:
            return None
        return Communicator(sub, transport=self.transport.name)

    def dup(self):
        """A new :class:`Communicator` over the same ranks with its own message space
        (``MPI_Comm_dup``; collective): traffic on it never matches this one's, so a
        communication thread can own it while the main thread keeps using this one."""
        return Communicator(self._comm.Dup(), transport=self.transport)

    def split_shared(self):
        """A new :class:`Communicator` over the ranks that share memory with this one (its
        node: ``MPI_Comm_split_type(MPI_COMM_TYPE_SHARED)``), ordered by rank."""
        sub = self._comm.Split_type(MPI.COMM_TYPE_SHARED, self.rank)
        return Communicator(sub, transport=self.transport.name)

    def abort(self, code=1):
        """Abort every process of the job (use when one rank cannot continue)."""
        abort_now(code)


#: a duplicate of COMM_WORLD for the exit agreement only (made by the first world() call,
#: collectively), so that it can never match a collective that other ranks are in
_CONTROL = []


def world(transport="host"):
    """A :class:`Communicator` over ``MPI.COMM_WORLD``."""
    if not _CONTROL and MPI.COMM_WORLD.Get_size() > 1:
        _CONTROL.append(MPI.COMM_WORLD.Dup())
    return Communicator(MPI.COMM_WORLD, transport=transport)


def exit_together(timeout):
    """Wait up to ``timeout`` seconds for every rank to reach this call (a non-blocking
    barrier on a private communicator).

    An error that every rank raised (or agreed on) reaches it on every rank at once; an
    error on one rank only, while the others wait in a collective, does not: the caller
    then ends its process without MPI_Finalize, which makes the launcher end the job.

    Returns:
        True when every rank arrived (or MPI runs one rank, or never started), False on
        timeout.
    """
    if not _CONTROL or MPI.Is_finalized():
        return True
    req = _CONTROL[0].Ibarrier()
    deadline = time.monotonic() + timeout
    while not req.Test():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def thread_multiple():
    """(ok, level name): whether MPI was initialised with ``MPI_THREAD_MULTIPLE``
    (mpi4py requests it at import unless ``mpi4py.rc.thread_level`` says otherwise), so
    that a second thread may call MPI while the main thread does too."""
    level = MPI.Query_thread()
    names = {MPI.THREAD_SINGLE: "single", MPI.THREAD_FUNNELED: "funneled",
             MPI.THREAD_SERIALIZED: "serialized", MPI.THREAD_MULTIPLE: "multiple"}
    return level == MPI.THREAD_MULTIPLE, names.get(level, str(level))


def launched_by_mpi():
    """True when a process manager (mpiexec/hydra, Open MPI's, Slurm's srun) started this
    process; False for a plain ``python script.py`` (a singleton MPI world of one rank)."""
    import os

    keys = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_RANK", "MPI_LOCALRANKID", "SLURM_STEP_ID",
            "HYDI_CONTROL_FD", "PMI_FD")
    return MPI.COMM_WORLD.Get_size() > 1 or any(k in os.environ for k in keys)


def mpi_library_info():
    """MPI standard version, library version string, vendor and mpi4py's version (for
    ``hpctrain info`` and checkpoint provenance)."""
    import mpi4py

    version = "%d.%d" % MPI.Get_version()
    lib = MPI.Get_library_version().strip().splitlines()[0]
    vendor, vver = MPI.get_vendor()
    return {"mpi_standard": version, "mpi_library": lib, "mpi_vendor": f"{vendor} {'.'.join(map(str, vver))}",
            "mpi4py": mpi4py.__version__}


def finalize():
    """MPI_Finalize now, when MPI runs (for an exit that skips the interpreter's shutdown)."""
    if MPI.Is_initialized() and not MPI.Is_finalized():
        MPI.Finalize()


#: seconds a rank waits between writing its last line and MPI_Abort: the abort makes the
#: launcher tear the job down, and on a loaded machine its forwarder had not yet passed the
#: rank's last stderr line on (the job ended with the right status but without its message)
ABORT_GRACE = 1.5


def abort_now(code):
    """Flush this rank's output, wait :data:`ABORT_GRACE`, then ``MPI_Abort`` the job."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    time.sleep(ABORT_GRACE)
    MPI.COMM_WORLD.Abort(code)


def abort_world(code=1):
    """End every rank of the job (``MPI_Abort`` on COMM_WORLD, after :data:`ABORT_GRACE`
    seconds for the launcher to forward what this rank has written) when MPI is running
    with more than one rank; a no-op otherwise (one rank just exits)."""
    if MPI.Is_initialized() and not MPI.Is_finalized() and MPI.COMM_WORLD.Get_size() > 1:
        abort_now(code)
