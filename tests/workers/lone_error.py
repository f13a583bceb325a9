"""A user-facing error on one rank only, outside any agreement, while the other ranks
wait in a collective (``python lone_error.py RANK KIND``): the job must end promptly.

KIND ``config`` raises a ConfigError on RANK; ``alike`` raises it on every rank (the job
must end at once, with one line from rank 0); ``onroot`` raises on rank 0 inside
``on_root`` (agreed: one line, no waiting).
"""

import sys

import numpy as np

from hpctrain.cli import cli, main
from hpctrain.errors import ConfigError

BAD_RANK, KIND = int(sys.argv[1]), sys.argv[2]


@cli.command("lone-error")
def lone_error():
    from hpctrain.comm import world
    from hpctrain.train import on_root

    comm = world()
    if KIND == "alike":
        raise ConfigError(f"alike on rank {comm.rank}")
    if KIND == "onroot":
        def fail():
            raise ConfigError("on root")
        on_root(comm, fail)
    if comm.rank == BAD_RANK:
        raise ConfigError(f"lone error on rank {comm.rank}")
    buf = np.zeros(4)
    comm.native_allreduce(buf)  # the other ranks wait here forever without the exit agreement


main(["lone-error"])
