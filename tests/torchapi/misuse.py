"""Worker: one misuse of hpctrain.torch per case (argv[1]); each must end the job with one
clear line and exit status 2. Cases ``ok``, ``auto``, ``forced`` and
``overlap-refused`` train one step and print every rank's overlap choice and rank 0's note."""

import sys

import numpy as np
import torch

import hpctrain.torch as ht

case = sys.argv[1]
ht.init()
width = 4 + (ht.rank() if case in ("shapes", "shapes-broadcast") else 0)
model = torch.nn.Sequential(torch.nn.Linear(width, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
if case == "dtype":
    model = model.half()
if case == "device":
    model = model.to("meta")
if case == "mixed-dtype":
    model[2].double()
if case == "shapes-broadcast":
    ht.broadcast_parameters(model)
opts = {"bucket0": {"bucket_size": 0}, "bucket-big": {"bucket_size": 1000}, "bucket-text": {"bucket_size": "big"},
        "bucket-negative": {"bucket_size": -1},
        "overlap-refused": {"bucket_size": 0.0001, "overlap": True},
        "forced": {"bucket_size": 0.0001, "overlap": True}}.get(case, {"bucket_size": 0.0001})
opt = ht.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1), model=model, **opts)
x, y = torch.randn(5, width), torch.tensor([0, 1, 2, 0, 1])
if case != "step-before-backward":
    torch.nn.functional.cross_entropy(model(x), y).backward()
if case == "double-backward":
    torch.nn.functional.cross_entropy(model(x), y).backward()
opt.step(closure=(lambda: 0.0) if case == "closure" else None)
if case.startswith("ckpt-"):
    path = sys.argv[2]
    if case == "ckpt-corrupt":
        if ht.rank() == 0:
            with open(path, "wb") as f:
                f.write(b"not an hdf5 file at all")
        ht.comm().barrier()
        ht.load_checkpoint(path, model, opt)
    else:  # written in gradient mode, loaded by an algorithm
        ht.save_checkpoint(path, model, opt)
        opt.close()
        alg = ht.DistributedAlgorithm(model, algo="dmsgd", lr=0.1)
        ht.load_checkpoint(path, model, alg)
flags = ht.comm().allgather_array(np.array([int(opt.overlap)]))[:, 0].tolist()  # every rank's choice
if ht.rank() == 0:  # one writer: ranks' stdout would interleave
    print("trained one step on", ht.size(), "rank(s), overlap", flags)
    print("note:", opt.overlap_note)
