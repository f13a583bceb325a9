"""MPI's own ``Allreduce``: the baseline every hand-made collective is measured against and
the oracle the tests compare with."""

from .ring import reduce_op

__all__ = ["mpi_allreduce"]


def mpi_allreduce(comm, buf, op="sum"):
    """AllReduce ``buf`` in place with the MPI library's ``MPI_Allreduce``.

    Args:
        comm: a :class:`~hpctrain.comm.Communicator`.
        buf: contiguous 1-D array.
        op: ``sum``, ``mean``, ``max`` or ``min``.

    Returns:
        ``buf``.
    """
    reduce_op(op, buf)
    comm.native_allreduce(buf, "sum" if op == "mean" else op, count=True)
    if op == "mean" and comm.size > 1:
        buf /= comm.size
    return buf
