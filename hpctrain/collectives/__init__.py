"""Hand-made collectives, one algorithm per module, all with the same signature
``allreduce(comm, buf, op="sum") -> buf`` (in place).

==========  =====  ===========================================================
name        where  when to pick it
==========  =====  ===========================================================
``ring``    CPU    bandwidth-optimal: 2(n-1)/n S bytes per rank; large messages
``mpi``     CPU    the MPI library's own Allreduce: baseline and oracle
==========  =====  ===========================================================
"""

from ..errors import ConfigError
from .native import mpi_allreduce
from .ring import ring_allreduce

__all__ = ["ALLREDUCE", "get_allreduce"]

ALLREDUCE = {
    "ring": ring_allreduce,
    "mpi": mpi_allreduce,
}


def get_allreduce(name):
    """The allreduce function registered as ``name`` (raises ConfigError if unknown)."""
    try:
        return ALLREDUCE[name]
    except KeyError:
        raise ConfigError(
            f"unknown collective {name!r}; choose from {', '.join(ALLREDUCE)}"
        ) from None
