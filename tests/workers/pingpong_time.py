"""mpiexec worker: seconds of one round trip of NBYTES from rank 0 to rank 1 and 1 byte back.

usage: pingpong_time.py OUT.json NBYTES REPEATS
Rank 0 writes {"seconds": [...]} (every repeat, after a small warm-up exchange).
"""

import json
import sys
import time

import numpy as np

from hpctrain.comm import world

comm = world()
nbytes, reps = int(sys.argv[2]), int(sys.argv[3])
a = np.zeros(nbytes, np.uint8)
one = np.zeros(1, np.uint8)
times = []
for k in range(reps + 1):
    comm.barrier()
    t0 = time.perf_counter()
    if comm.rank == 0:
        comm.send(a if k else a[:1024], 1)
        comm.recv(one, 1)
    elif comm.rank == 1:
        comm.recv(a if k else a[:1024], 0)
        comm.send(one, 0)
    if k:
        times.append(time.perf_counter() - t0)
if comm.rank == 0:
    with open(sys.argv[1], "w") as f:
        json.dump({"seconds": times}, f)
