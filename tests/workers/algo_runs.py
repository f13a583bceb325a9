"""mpiexec worker: run several training configurations in one launch (saves launches).

usage: algo_runs.py OUTDIR SPEC.json

SPEC is a JSON list of {"name": str, "overrides": {...}, "resume": bool}. For each entry
every rank saves ``OUTDIR/<name>.<rank>.npy`` (final params); rank 0 writes
``OUTDIR/<name>.json`` (final train loss, test accuracy, per-rank asgd staleness stats).
With ``resume``, the run (which must checkpoint every epoch) is then continued from its
epoch-1 checkpoint in a copy of its run directory, saved as ``<name>.resumed.<rank>.npy``.
"""

import json
import os
import shutil
import sys

import numpy as np

import hpctrain.algorithms.asgd as asgd_mod
from hpctrain.checkpoint import list_checkpoints
from hpctrain.comm import world
from hpctrain.config import load_config
from hpctrain.train import run_training

INSTANCES = []
_orig_init = asgd_mod.ASGD.__init__


def _init(self, ctx, params):
    _orig_init(self, ctx, params)
    INSTANCES.append(self)


asgd_mod.ASGD.__init__ = _init

out = sys.argv[1]
with open(sys.argv[2], encoding="utf-8") as f:
    spec = json.load(f)
comm = world()
base = {"dataset": "synthetic", "dtype": "float64", "quiet": True, "batch_size": 200, "seed": 3}
for entry in spec:
    name = entry["name"]
    ov = {**base, **entry["overrides"], "out": os.path.join(out, "runs", name)}
    INSTANCES.clear()
    summary = run_training(load_config(None, ov), comm)
    np.save(os.path.join(out, f"{name}.{comm.rank}.npy"), summary["params"])
    stale = comm.allgather_array(np.array(
        [INSTANCES[0].max_applied_staleness, INSTANCES[0].rejected] if INSTANCES else [0, 0], dtype=np.int64))
    if comm.rank == 0:
        with open(os.path.join(out, f"{name}.json"), "w", encoding="utf-8") as f:
            json.dump({"final_train_loss": summary["final_train_loss"],
                       "final_test_accuracy": summary["final_test_accuracy"],
                       "max_applied_staleness": int(stale[:, 0].max()), "rejected": int(stale[:, 1].sum())}, f)
    if entry.get("resume"):
        src, dst = ov["out"], ov["out"] + "-resumed"
        if comm.rank == 0:
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(src, dst)
        comm.barrier()
        first = list_checkpoints(dst)[0]
        ov2 = {**ov, "out": dst, "resume": first}
        summary = run_training(load_config(None, ov2), comm)
        np.save(os.path.join(out, f"{name}.resumed.{comm.rank}.npy"), summary["params"])
