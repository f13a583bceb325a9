"""mpiexec worker: what MPI and hpctrain see of the nodes, and what ``auto`` picks.

usage: node_layout.py OUTDIR
Writes OUTDIR/rank{r}.json: hostname, processor name, the shared-memory group's size and
world ranks, hierarchical's layout and auto's choice at 1 KiB and 4 MiB.
"""

import json
import socket
import sys

import numpy as np

from hpctrain.collectives import auto
from hpctrain.collectives.hierarchical import layout
from hpctrain.comm import world

comm = world()
local = comm.split_shared()
members = local.allgather_array(np.array([comm.rank]))[:, 0].tolist()
lay = layout(comm)
res = {"rank": comm.rank, "hostname": socket.gethostname(), "local_size": local.size, "local_members": members,
       "layout": lay.describe(), "auto_1k": auto.choose(comm, 1 << 10), "auto_4m": auto.choose(comm, 4 << 20)}
with open(f"{sys.argv[1]}/rank{comm.rank}.json", "w") as f:
    json.dump(res, f)
