"""mpiexec -n 2 worker: rank 0 sends each operator's payload bytes to rank 1.

Writes <out>/rank<r>.json (byte counters and payload sizes per operator) and
<out>/rank<r>.npz (decompressed vectors, random-k indices) for the test to compare.
"""

import json
import os
import sys

import numpy as np

from hpctrain.comm.communicator import world
from hpctrain.compress import Payload, get_compressor

OPS = [
    ("none", {}), ("fp16", {}), ("topk", {"density": 0.01}), ("approx-topk", {"density": 0.01}),
    ("threshold", {"threshold": 2.0}), ("randk", {"density": 0.01, "seed": 5}), ("qsgd", {"bits": 4}),
    ("minmax", {"bits": 1, "scaling": "norm"}), ("minmax", {"bits": 4}), ("sign", {}),
]


def main(out_dir):
    comm = world()
    d, step = 30_011, 3
    x = np.random.default_rng(100 + comm.rank).standard_normal(d).astype(np.float32)
    report, arrays = {}, {}
    for i, (name, params) in enumerate(OPS):
        tag = f"{i}-{name}"
        comp = get_compressor(name, **params)
        comm.reset_counters()
        if comm.rank == 0:
            payload = comp.compress(x, step=step, rank=0)
            comm.send(payload.to_bytes(), dest=1, tag=i)
            out = np.empty(d, np.float32)
            comp.decompress(payload, out)
            report[tag] = {"nbytes": payload.nbytes, "bytes_sent": comm.bytes_sent}
        else:
            buf = np.empty(d * 8 + 4096, np.uint8)
            n = comm.recv(buf, source=0, tag=i)
            payload = Payload.from_bytes(buf[:n])
            out = np.empty(d, np.float32)
            comp.decompress(payload, out)
            report[tag] = {"nbytes": payload.nbytes, "bytes_recv": comm.bytes_recv, "n": n}
        arrays[f"dec_{tag}"] = out
        if name == "randk":
            arrays[f"randk_idx_{tag}"] = comp.indices(step, d)
            arrays[f"randk_vals_{tag}"] = comp.compress(np.arange(d, dtype=np.float32), step=step, rank=comm.rank)["values"]
    np.savez(os.path.join(out_dir, f"rank{comm.rank}.npz"), **arrays)
    with open(os.path.join(out_dir, f"rank{comm.rank}.json"), "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main(sys.argv[1])
