"""mpiexec worker: each algorithm's declared communication (``comm_pattern``) moves the
bytes its step really sends.

usage: comm_pattern.py OUT.json

Every algorithm, aggregation and compressor (random-k and the first other one), d = 1000
float32, ``sync_period`` 1 (every step communicates), the ring allreduce. One step; rank 0
writes {case: {"declared": bytes, "observed": bytes, "kinds": [...]}}, bytes summed over
all ranks (the communicator's ``bytes_sent``), and the messages (``messages_sent``).
"""

import json
import sys

import numpy as np

from allreduce_sizes import D, build, cases  # the same cases, built the same way
from hpctrain.collectives import get_allreduce
from hpctrain.collectives.cost import exchange_bytes, exchange_messages
from hpctrain.comm import world


def main():
    comm = world()
    n = comm.size
    out = {}
    for name, agg, comp in cases():
        alg, params = build(comm, name, agg, comp, get_allreduce("ring"))
        pattern = alg.comm_pattern()
        declared = sum(ex.per_step * exchange_bytes(ex.kind, n, ex.nbytes, collective="ring", **ex.options())
                       for ex in pattern)
        messages = sum(ex.per_step * exchange_messages(ex.kind, n, ex.nbytes, collective="ring", **ex.options())
                       for ex in pattern)
        grad = np.random.default_rng(comm.rank + 1).normal(size=D).astype(np.float32)
        comm.reset_counters()
        alg.step(params, grad, 0.01, 0)
        sent = comm.allgather_array(np.array([comm.bytes_sent, comm.messages_sent], dtype=np.int64)).sum(axis=0)
        out[f"{name}/{agg}/{comp}"] = {"declared": declared, "observed": int(sent[0]),
                                       "declared_messages": messages, "observed_messages": int(sent[1]),
                                       "kinds": [ex.kind for ex in pattern]}
    if comm.rank == 0:
        with open(sys.argv[1], "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
