"""Point-to-point transfer of compressed messages: wire codecs for payloads, sparse pairs
and dense arrays, and the ring allgather of payloads.

A codec sends one message with ``send(comm, msg, dest, tag)`` and receives one with
``recv(comm, source, tag)``; lengths travel first, so the receiver needs no prior
knowledge of the message's size. Only communicator calls are used (no MPI import).
"""

import numpy as np

from ..compress import Payload
from .sparse import ring_allgatherv

__all__ = ["PAYLOAD", "Pairs", "Dense", "send_payload", "recv_payload", "send_pairs", "recv_pairs",
           "allgather_payloads"]


def send_payload(comm, payload, dest, tag):
    """Send a :class:`Payload` as its exact wire bytes (length first, tags tag and tag + 1)."""
    buf = payload.to_bytes()
    comm.send(np.array([buf.size], dtype=np.int64), dest, tag=tag)
    comm.send(buf, dest, tag=tag + 1)


def recv_payload(comm, source, tag):
    """Receive a payload sent by :func:`send_payload`."""
    n = np.zeros(1, dtype=np.int64)
    comm.recv(n, source, tag=tag)
    buf = np.empty(int(n[0]), dtype=np.uint8)
    comm.recv(buf, source, tag=tag + 1)
    return Payload.from_bytes(buf)


def send_pairs(comm, idx, val, dest, tag):
    """Send a sparse vector (count, indices as int64, values; tags tag .. tag + 2)."""
    comm.send(np.array([idx.size], dtype=np.int64), dest, tag=tag)
    if idx.size:
        comm.send(np.ascontiguousarray(idx, dtype=np.int64), dest, tag=tag + 1)
        comm.send(np.ascontiguousarray(val), dest, tag=tag + 2)


def recv_pairs(comm, source, dtype, tag):
    """Receive a sparse vector sent by :func:`send_pairs`; returns (indices, values)."""
    n = np.zeros(1, dtype=np.int64)
    comm.recv(n, source, tag=tag)
    idx = np.empty(int(n[0]), dtype=np.int64)
    val = np.empty(int(n[0]), dtype=dtype)
    if idx.size:
        comm.recv(idx, source, tag=tag + 1)
        comm.recv(val, source, tag=tag + 2)
    return idx, val


class _PayloadCodec:
    """A :class:`Payload` as its wire bytes."""

    send = staticmethod(send_payload)
    recv = staticmethod(recv_payload)


#: codec of compressed payloads
PAYLOAD = _PayloadCodec()


class Pairs:
    """Codec of sparse vectors ``(indices, values)`` with values of ``dtype``."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)

    def send(self, comm, msg, dest, tag):
        send_pairs(comm, msg[0], msg[1], dest, tag)

    def recv(self, comm, source, tag):
        return recv_pairs(comm, source, self.dtype, tag)


class Dense:
    """Codec of a dense array received into ``out`` (its size known to both sides)."""

    def __init__(self, out):
        self.out = out

    def send(self, comm, msg, dest, tag):
        comm.send(msg, dest, tag=tag)

    def recv(self, comm, source, tag):
        comm.recv(self.out, source, tag=tag)
        return self.out


def allgather_payloads(comm, payload):
    """Every rank's payload, in rank order, via the hand-made ring allgatherv of wire bytes."""
    buf = payload.to_bytes()
    counts = comm.allgather_array(np.array([buf.size], dtype=np.int64))[:, 0]
    gathered = np.empty(int(counts.sum()), dtype=np.uint8)
    ring_allgatherv(comm, (buf,), (gathered,), counts)
    off = np.concatenate([[0], np.cumsum(counts)])
    return [Payload.from_bytes(gathered[off[r]:off[r + 1]]) for r in range(comm.size)]
