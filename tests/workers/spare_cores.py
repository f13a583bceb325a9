"""mpiexec worker: :func:`hpctrain.overlap.spare_cores`, the collective verdict of overlap
auto, with each rank's affinity mask given (every rank of this job runs on one machine).

usage: spare_cores.py OUTDIR
Writes OUTDIR/rank{r}.json: scenario -> [ok, reason] as this rank got it.
"""

import json
import sys

from hpctrain.comm import world
from hpctrain.overlap import spare_cores

comm = world()
r, n = comm.rank, comm.size
res = {
    "own 2 cores each": spare_cores(comm, mask={2 * r, 2 * r + 1}),
    "own 1 core each": spare_cores(comm, mask={r}),
    "one mask of 2n cores": spare_cores(comm, mask=set(range(2 * n))),
    "one mask of 2n-1 cores": spare_cores(comm, mask=set(range(2 * n - 1)), force=None),
    "masks overlapping in one core": spare_cores(comm, mask={r, r + 1}),
    "rank 1 short, rank 0 plenty": spare_cores(comm, mask={7} if r == 1 else set(range(8, 16))),
}
with open(f"{sys.argv[1]}/rank{r}.json", "w") as f:
    json.dump(res, f)
