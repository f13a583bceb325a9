"""mpiexec worker: train with the given CLI-style overrides, save each rank's weights.

usage: train_params.py OUTDIR key=value [key=value ...]
"""

import sys

import numpy as np

from hpctrain.comm import world
from hpctrain.config import load_config
from hpctrain.train import run_training
from hpctrain.xp import to_numpy

out = sys.argv[1]
overrides = {}
for kv in sys.argv[2:]:
    k, v = kv.split("=", 1)
    if v in ("true", "false"):
        overrides[k] = v == "true"
        continue
    for conv in (int, float):
        try:
            v = conv(v)
            break
        except ValueError:
            pass
    overrides[k] = v
comm = world()
overrides.setdefault("out", f"{out}/run")
overrides.setdefault("quiet", True)
summary = run_training(load_config(None, overrides), comm)
np.save(f"{out}/params{comm.rank}.npy", to_numpy(summary["params"]))
if comm.rank == 0:
    import json

    with open(f"{out}/summary.json", "w") as f:
        json.dump({k: v for k, v in summary.items() if k != "params"}, f, default=str)
