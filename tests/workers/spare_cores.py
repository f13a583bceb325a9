"""mpiexec worker: :func:`hpctrain.overlap.spare_cores`, the collective verdict of overlap
auto, with nodes declared per rank (assign_nodes) and cores given per rank.

usage: spare_cores.py OUTDIR
Writes OUTDIR/rank{r}.json: scenario -> [ok, reason] as this rank got it.
"""

import json
import sys

from hpctrain.collectives.hierarchical import assign_nodes
from hpctrain.comm import world
from hpctrain.overlap import spare_cores

comm = world()


def fresh(own_nodes):
    c = comm.dup()  # each scenario its own communicator: the node layout is memoised per communicator
    if own_nodes:
        assign_nodes(c, c.rank)
    return c


n = comm.size
res = {
    "own-node, 2 cores": spare_cores(fresh(True), cores=2),
    "own-node, rank 1 has 1 core": spare_cores(fresh(True), cores=1 if comm.rank == 1 else 8),
    "one node, 2 per rank": spare_cores(fresh(False), cores=2 * n),
    "one node, one short": spare_cores(fresh(False), cores=2 * n - 1, force=None),
}
with open(f"{sys.argv[1]}/rank{comm.rank}.json", "w") as f:
    json.dump(res, f)
