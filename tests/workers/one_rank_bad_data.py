"""mpiexec worker: the hpctrain CLI where only rank RANK finds its data file bad.

usage: one_rank_bad_data.py RANK -- hpctrain-args...
"""

import os
import sys

import hpctrain.train as train
from hpctrain.cli import main
from hpctrain.errors import DataError

bad = int(sys.argv[1])
me = int(os.environ.get("PMI_RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0")))
orig = train.load_dataset


def load_dataset(*args, **kwargs):
    if me == bad:
        raise DataError(f"/scratch/node{bad}/train.h5: truncated (only on this node)")
    return orig(*args, **kwargs)


train.load_dataset = load_dataset
main(sys.argv[sys.argv.index("--") + 1 :])
