"""Point-to-point transport over MPI: the only package of hpctrain that imports mpi4py."""

from .communicator import Communicator, Request, launched_by_mpi, thread_multiple, world

__all__ = ["Communicator", "Request", "world", "thread_multiple", "launched_by_mpi"]
