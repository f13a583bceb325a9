"""PyTorch DDP (gloo, CPU) softmax regression or CNN: the peer baseline for throughput.

Same model (784 -> 10 linear + cross-entropy; ``--model cnn``: jobs/torch_cnn.py, the twin
of hpctrain's cnn and the module hpctrain's torch adapter trains), optimiser (SGD, momentum 0.9, weight decay
1e-4), batch per rank and data shards as `hpctrain train`. Launch with
    python -m torch.distributed.run --nproc_per_node N jobs/ddp_softmax.py [--epochs 2]
Prints one line `DDP samples/s <value>` on rank 0 (training steps only, evaluation excluded).
"""

import argparse
import os
import sys
import time

import hpctrain  # noqa: F401  (sizes BLAS pools like hpctrain does)
import numpy as np
import torch
import torch.distributed as dist

from hpctrain.data import load_dataset


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", default="softmax", choices=("softmax", "cnn"))
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    dist.init_process_group("gloo")
    rank, size = dist.get_rank(), dist.get_world_size()
    data = load_dataset(args.dataset, rank, size, 0)
    n = data.n_train_total // size
    x = torch.from_numpy(np.ascontiguousarray(data.x_train[:n]))
    if args.model == "cnn":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from torch_cnn import make_cnn

        x = x.reshape((n,) + tuple(data.input_shape))
    y = torch.from_numpy(data.y_train[:n])
    rates = []
    for _ in range(args.repeats):
        torch.manual_seed(0)
        net = (torch.nn.Linear(x.shape[1], data.n_classes) if args.model == "softmax"
               else make_cnn(tuple(data.input_shape), data.n_classes))
        model = torch.nn.parallel.DistributedDataParallel(net)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
        loss_fn = torch.nn.CrossEntropyLoss()
        g = torch.Generator().manual_seed(rank)
        steps = n // args.batch_size
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(args.epochs):
            order = torch.randperm(n, generator=g)
            for i in range(steps):
                idx = order[i * args.batch_size:(i + 1) * args.batch_size]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(x[idx]), y[idx])
                loss.backward()
                opt.step()
        dist.barrier()
        rates.append(steps * args.epochs * args.batch_size * size / (time.perf_counter() - t0))
    if rank == 0:
        print(f"DDP samples/s min {min(rates):.0f} median {float(np.median(rates)):.0f}", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
