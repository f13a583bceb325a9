"""A complete PyTorch training script using hpctrain for the distributed part.

Run:  mpiexec -n 4 python docs/examples/torch_train.py --mode gradient
      mpiexec -n 4 python docs/examples/torch_train.py --mode algorithm --algo gmc
      srun --mpi=pmi2 python docs/examples/torch_train.py          (inside a Slurm allocation)

Every rank trains on its own shard of a synthetic image set (replace ``make_data`` by your
data loading), a small CNN with batch norm, and either
  * gradient mode: your own torch.optim.Adam; hpctrain averages the gradients bucket by
    bucket while backward runs (``--compression topk`` compresses them, with error
    feedback), or
  * algorithm mode: an hpctrain algorithm (dmsgd, gmc, local-sgd, ...) performs the update.
It checkpoints to --ckpt every --ckpt-every steps and resumes from it with --resume.
"""

import argparse
import os

import torch

import hpctrain.torch as ht


def make_data(n, seed):
    """A synthetic 4-class image set: 1x8x8 images labelled by a fixed random linear map."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 8, 8, generator=g)
    w = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    return x, (x.reshape(n, -1) @ w).argmax(1)


def make_model():
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.BatchNorm2d(32), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(32 * 4 * 4, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=("gradient", "algorithm"), default="gradient")
    ap.add_argument("--algo", default="gmc", help="algorithm mode: dmsgd, gmc, local-sgd, ...")
    ap.add_argument("--compression", default="none", help="gradient mode: none, topk, randk, fp16, qsgd, sign")
    ap.add_argument("--density", type=float, default=0.01)
    ap.add_argument("--bucket-size", type=float, default=None, help="MiB per bucket after the 0.25 MiB first one "
                    "(default 25, or a quarter of a smaller model)")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=32, help="per rank")
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--ckpt", default="")
    ap.add_argument("--ckpt-every", type=int, default=0)
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args()

    ht.init()                                    # one communicator; one error ends every rank
    rank, size = ht.rank(), ht.size()
    x, y = make_data(4096, seed=1 + rank)        # this rank's shard
    model = make_model()
    ht.broadcast_parameters(model, root_rank=0)  # same start everywhere (parameters + BN buffers)

    if args.mode == "gradient":
        opt = torch.optim.Adam(model.parameters(), lr=args.lr or 1e-3)
        opt = ht.DistributedOptimizer(opt, model=model, compression=args.compression, density=args.density,
                                      bucket_size=args.bucket_size)
        ht.broadcast_optimizer_state(opt, root_rank=0)
    else:
        opt = ht.DistributedAlgorithm(model, algo=args.algo, lr=args.lr or 0.05, momentum=0.9,
                                      density=args.density, compressor="topk")

    start = ht.load_checkpoint(args.ckpt, model, opt) if args.resume and os.path.exists(args.ckpt) else 0
    model.train()
    for step in range(start, args.steps):
        i = torch.randint(0, len(x), (args.batch,), generator=torch.Generator().manual_seed(step * size + rank))
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x[i]), y[i])
        loss.backward()                          # buckets are averaged while this runs
        opt.step()                               # waits for the last bucket, then updates
        if rank == 0 and step % 50 == 0:
            print(f"step {step:4d}  loss {loss.item():.4f}", flush=True)
        if args.ckpt and args.ckpt_every and (step + 1) % args.ckpt_every == 0:
            ht.save_checkpoint(args.ckpt, model, opt)
    model.eval()
    with torch.no_grad():
        acc = (model(x[:512]).argmax(1) == y[:512]).float().mean().item()
    if rank == 0:
        print(f"done: {args.steps} steps on {size} rank(s), train accuracy {acc:.3f}")


if __name__ == "__main__":
    main()
