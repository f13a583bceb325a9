"""mpiexec worker: short training trajectories of every algorithm, hashed per rank.

usage: pin_trajectories.py OUT.json [NAME ...]

Each case trains 46 steps (2 ranks) (synthetic data, batch 256) and records the SHA-256 of every
rank's final parameters; rank 0 writes {case: [hash per rank]} to OUT.json. The cases
cover every algorithm with each compressor and aggregation it accepts, every allreduce
under dmsgd, and the mlp model. Used to pin trajectories across refactors
(tests/test_trajectories.py).
"""

import hashlib
import json
import os
import sys
import tempfile

import numpy as np

from hpctrain.algorithms import ALGORITHMS
from hpctrain.collectives import ALLREDUCE
from hpctrain.comm import world
from hpctrain.config import load_config
from hpctrain.train import run_training
from hpctrain.xp import to_numpy



def cases():
    """Case name -> config overrides: every algorithm with each compressor and aggregation
    its class declares (``topk`` stands for "none" where it takes no compressor)."""
    out = {}
    for algo, cls in ALGORITHMS.items():
        for comp in cls.compressors or ("topk",):
            for agg in cls.aggregations:
                out[f"{algo}/{comp}/{agg}"] = {"algo": algo, "compressor": comp, "aggregation": agg}
    for coll in ALLREDUCE:
        out[f"dmsgd/collective={coll}"] = {"algo": "dmsgd", "collective": coll}
    out["dmsgd/mlp"] = {"algo": "dmsgd", "model": "mlp", "hidden": 32}
    out["gmc/topk/allreduce/float64"] = {"algo": "gmc", "compressor": "topk", "dtype": "float64"}
    out["csgd/qsgd/allreduce/bits4"] = {"algo": "csgd", "compressor": "qsgd", "bits": 4}
    out["dgc/topk/allreduce/clip"] = {"algo": "dgc", "compressor": "topk", "clip": 1.0}
    return out


def main():
    comm = world()
    only = set(sys.argv[2:])
    result = {}
    tmp = tempfile.mkdtemp(prefix="pin-") if comm.rank == 0 else ""
    tmp = comm.bcast_bytes(tmp.encode()).decode()
    for name, o in sorted(cases().items()):
        if only and name not in only:
            continue
        cfg = load_config(None, {"dataset": "synthetic", "epochs": 2, "batch_size": 256, "quiet": True,
                                 "density": 0.05, "bits": 8, "sync_period": 4, "lr": 0.05,
                                 "out": os.path.join(tmp, name.replace("/", "_")), **o})
        params = to_numpy(run_training(cfg, comm)["params"])
        h = np.frombuffer(hashlib.sha256(np.ascontiguousarray(params).tobytes()).digest()[:8], dtype=np.uint8)
        result[name] = [row.tobytes().hex() for row in comm.allgather_array(h.copy())]
    if comm.rank == 0:
        with open(sys.argv[1], "w") as f:
            json.dump(result, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
