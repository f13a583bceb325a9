"""hpctrain's PowerSGD against PyTorch's own ``powerSGD_hook`` (DDP, gloo, CPU) on the same
torch CNN (jobs/torch_cnn.py), the same rank, start iteration, epochs, batch, learning rate,
momentum and weight decay; with each side's dense run beside it as the noise floor.

    python jobs/powersgd_vs_torch.py [--ranks 2] [--epochs 3] [--rank 2] [--psgd-start 10] [--seeds 0,1,2] [--out DIR]

Prints a table: final test accuracy (per seed, and the mean over the seeds) and the compressed
side's bytes per step. A seed sets both sides' initialisation, data order and PowerSGD's
random initial Q (DDP's ``random_seed``, hpctrain's ``--seed``); the two frameworks still draw
different numbers from it, so single runs differ by their seeds' spread — compare the means. The DDP
side is launched with ``torch.distributed.run``, the hpctrain side with ``mpiexec`` and
``hpctrain train --model torch:jobs/torch_cnn.py:make_cnn``. Internally the script also
runs itself as the DDP worker (``--ddp-worker``).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from statistics import mean

HERE = os.path.dirname(os.path.abspath(__file__))


def ddp_worker(args):
    """One DDP rank: train the torch CNN with SGD + momentum, PowerSGD hook or plain
    allreduce; rank 0 prints a JSON line with the test accuracy."""
    import numpy as np
    import torch
    import torch.distributed as dist
    from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook as psgd

    sys.path.insert(0, HERE)
    from torch_cnn import make_cnn

    from hpctrain.data import load_dataset

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, size = dist.get_rank(), dist.get_world_size()
    data = load_dataset(args.dataset, rank, size, args.seed)
    x = torch.from_numpy(np.ascontiguousarray(data.x_train)).reshape((-1,) + tuple(data.input_shape))
    y = torch.from_numpy(data.y_train.astype(np.int64))
    torch.manual_seed(args.seed)
    model = torch.nn.parallel.DistributedDataParallel(make_cnn(tuple(data.input_shape), data.n_classes))
    if args.rank > 0:
        state = psgd.PowerSGDState(process_group=None, matrix_approximation_rank=args.rank,
                                   start_powerSGD_iter=args.start, min_compression_rate=2,
                                   use_error_feedback=True, warm_start=True, random_seed=args.seed)
        model.register_comm_hook(state, psgd.powerSGD_hook)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(1000 * args.seed + rank)
    n = int(min(dist_all_min(x.shape[0]), x.shape[0]))
    steps = n // args.batch_size
    for _ in range(args.epochs):
        order = torch.randperm(n, generator=g)
        for i in range(steps):
            idx = order[i * args.batch_size:(i + 1) * args.batch_size]
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()
    xt = torch.from_numpy(np.ascontiguousarray(data.x_test)).reshape((-1,) + tuple(data.input_shape))
    with torch.no_grad():
        correct = torch.tensor([float((model.module(xt).argmax(1).numpy() == data.y_test).sum()),
                                float(len(data.y_test))])
    dist.all_reduce(correct)
    if rank == 0:
        print(json.dumps({"accuracy": float(correct[0] / correct[1])}), flush=True)
    dist.destroy_process_group()


def dist_all_min(n):
    """The smallest shard size over ranks (every DDP rank must take the same step count)."""
    import torch
    import torch.distributed as dist

    t = torch.tensor([n])
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t[0])


def run_ddp(args, rank, seed):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(args.ranks), __file__,
           "--ddp-worker", "--rank", str(rank), "--psgd-start", str(args.start), "--epochs", str(args.epochs),
           "--lr", str(args.lr), "--batch-size", str(args.batch_size), "--dataset", args.dataset,
           "--seed", str(seed)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}).stdout
    return json.loads([line for line in out.splitlines() if line.startswith("{")][-1])["accuracy"]


def run_hpctrain(args, algo, out, seed):
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    cmd = [mpiexec if os.path.exists(mpiexec) else "mpiexec", "-n", str(args.ranks), sys.executable, "-m",
           "hpctrain", "train", "--model", f"torch:{HERE}/torch_cnn.py:make_cnn", "--dataset", args.dataset,
           "--algo", algo, "--epochs", str(args.epochs), "--lr", str(args.lr), "--batch-size",
           str(args.batch_size), "--momentum", "0.9", "--weight-decay", "1e-4", "--threads", "1", "-q",
           "--seed", str(seed), "--out", out, "--overwrite"]
    if algo == "powersgd":
        cmd += ["--rank", str(args.rank), "--powersgd-start", str(args.start)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    with open(os.path.join(out, "summary.json")) as f:
        return json.load(f)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--rank", type=int, default=2, help="PowerSGD rank r (0 in the DDP worker: plain allreduce)")
    ap.add_argument("--psgd-start", dest="start", type=int, default=10, help="PowerSGD start iteration (both sides)")
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)  # the DDP worker's seed
    ap.add_argument("--seeds", default="0", help="comma-separated seeds; each runs all four trainings")
    ap.add_argument("--out", default="")
    ap.add_argument("--ddp-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.ddp_worker:
        return ddp_worker(args)
    seeds = [int(v) for v in args.seeds.split(",") if v.strip()]
    root = args.out or tempfile.mkdtemp(prefix="powersgd-vs-torch-")
    names = ["PyTorch DDP allreduce", f"PyTorch DDP powerSGD_hook r={args.rank}", "hpctrain dmsgd",
             f"hpctrain powersgd --rank {args.rank}"]
    acc = {name: [] for name in names}
    bytes_per_step = {}
    for seed in seeds:
        acc[names[0]].append(run_ddp(args, 0, seed))
        acc[names[1]].append(run_ddp(args, args.rank, seed))
        for name, algo in zip(names[2:], ("dmsgd", "powersgd")):
            s = run_hpctrain(args, algo, os.path.join(root, f"{algo}-seed{seed}"), seed)
            acc[name].append(s["final_test_accuracy"])
            bytes_per_step[name] = s["bytes_sent_per_rank"][0] / max(s["steps"], 1)
    print(f"{args.ranks} ranks, {args.epochs} epochs, lr {args.lr}, batch {args.batch_size}/rank, "
          f"start iteration {args.start}, seeds {','.join(map(str, seeds))}")
    head = "".join(f"{'seed ' + str(v):>9s}" for v in seeds)
    print(f"{'run':40s}{head} {'mean':>8s} {'bytes/step/rank':>16s}")
    for name in names:
        b = bytes_per_step.get(name)
        print(f"{name:40s}" + "".join(f"{a:9.4f}" for a in acc[name])
              + f" {mean(acc[name]):8.4f} {'-' if b is None else f'{b:.0f}':>16s}")
    gap = abs(mean(acc[names[1]]) - mean(acc[names[3]]))
    print(f"|hpctrain powersgd - DDP powerSGD_hook| = {100 * gap:.2f} points (means over {len(seeds)} seeds)")

if __name__ == "__main__":
    main()
