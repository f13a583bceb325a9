"""Point-to-point transport over MPI: the only package of hpctrain that imports mpi4py."""

from .communicator import Communicator, Request, world

__all__ = ["Communicator", "Request", "world"]
