"""Step time of a torch CNN with hpctrain.torch and of a native model on ``hpctrain train``'s
path: overlap on vs off, against compute alone, communication alone and PyTorch DDP (gloo),
all in one run, medians.

    mpiexec -n 4 python jobs/bench_overlap.py                      # on one machine
    hpctrain cluster run -N 4 -R 1 --rate 100mbit -- python jobs/bench_overlap.py --ddp
    hpctrain cluster run -N 2 -R 1 --rate 1gbit -- python jobs/bench_overlap.py --ddp
    hpctrain cluster run -N 2 -R 1 --rate 100mbit -- python jobs/bench_overlap.py --ddp --torch-model mlp --native none

Rows (per rank batch --batch, --steps steps per measurement, --repeats rounds, the
configurations interleaved within each round so that drift hits them all alike):

  compute alone      forward + backward, no communication
  comm alone         the bucketed allreduce of the gradient, no compute
  no overlap         DistributedOptimizer(overlap=False): backward, then the buckets
  overlap            DistributedOptimizer(overlap=True): buckets during backward
  gmc s/d            DistributedAlgorithm(algo="gmc", density=--density)
  DDP (gloo)         torch.nn.parallel.DistributedDataParallel, same model and batch (--ddp)
  native MODEL ...   the same four rows for the native cnn or resnet8 (--native; none skips):
                     its backward announces each layer and the buckets serve the gradient's
                     mean allreduce, as in ``hpctrain train --overlap`` (dsgd, dmsgd, adagrad)

--profile FILE writes the overlap rows' per-bucket timelines (Chrome trace JSON; the native
model's to FILE-MODEL.json); --poll-us 0 makes the communication thread wait inside MPI.

and the target ratios: overlap / max(compute, comm) (target <= 1.15),
no overlap / overlap (target >= 1.3 where comm ~ compute), and samples/s against DDP.
The link rate where communication ~ computation without overlap is found by running at a
few --rate values (the "comm alone" and "compute alone" rows say which).
"""

import argparse
import os
import socket
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import hpctrain.torch as ht  # noqa: E402
from hpctrain.overlap import spare_cores  # noqa: E402
from torch_cnn import make_cnn  # noqa: E402


def make_mlp(input_shape=(1, 28, 28), n_classes=10, hidden=1270):
    """The MLP of ``--model mlp --hidden 1270`` in torch (d = 1,009,660 for Fashion-MNIST)."""
    import math

    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(math.prod(input_shape), hidden),
                               torch.nn.ReLU(), torch.nn.Linear(hidden, n_classes))


def my_address():
    """(interface, IPv4 address) of this node for gloo: the first global-scope address of
    ``ip -4 addr`` (the emulated nodes' names do not resolve), else the host name's."""
    import subprocess

    try:
        out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True,
                             text=True, timeout=10).stdout
        for line in out.splitlines():
            return line.split()[1], line.split()[3].split("/")[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        pass
    try:
        return None, socket.gethostbyname(socket.gethostname())
    except OSError:
        return None, "127.0.0.1"


def timed_steps(step, n):
    """Median seconds of ``n`` calls of ``step`` (after one warm-up), synchronised by a barrier."""
    c = ht.comm()
    step()
    out = []
    for _ in range(n):
        c.barrier()
        t0 = time.perf_counter()
        step()
        out.append(time.perf_counter() - t0)
    # the job's step time is its slowest rank's
    import numpy as np

    med = np.array([statistics.median(out)])
    c.native_allreduce(med, op="max")
    return float(med[0])


def write_profile(path, c, engine):
    """The per-bucket timeline of ``engine`` (every rank's), written by rank 0."""
    import json

    from hpctrain.overlap import profile_trace

    doc = profile_trace(c, engine)
    if c.rank == 0:
        with open(path, "w") as f:
            json.dump(doc, f)


def native_rows(args, c, rows):
    """The rows of the native model (``--native``) on ``hpctrain train``'s path: its backward
    announces each layer, :class:`~hpctrain.overlap.BucketedAllreduce` serves the gradient's
    mean allreduce (what dsgd/dmsgd/adagrad call), with and without the thread."""
    import numpy as np

    from hpctrain.collectives import get_allreduce
    from hpctrain.models import build_model
    from hpctrain.overlap import BucketedAllreduce

    shape = (1, 28, 28) if args.native == "cnn" else (3, 32, 32)
    model = build_model(args.native, shape, 10)
    params = model.init_params(np, np.float32, 0)
    grad = np.zeros_like(params)
    rng = np.random.default_rng(c.rank)
    x = rng.standard_normal((args.batch, int(np.prod(shape)))).astype(np.float32)
    y = rng.integers(0, 10, args.batch)
    layers = [(a, b - a) for a, b in model.layer_slices]
    allreduce = get_allreduce("auto")
    name = f"native {args.native}"

    def bucketed(overlap, profile=False):
        return BucketedAllreduce(c, grad, layers, allreduce, args.bucket_size, overlap,
                                 poll_interval=args.poll_us * 1e-6 or None, profile=profile)

    def train_step(b):
        def step():
            b.begin()
            model.loss_grad(params, x, y, grad, on_layer=b.layer_ready)
            b(c, grad, "mean")
        return step

    rows.setdefault(f"{name} compute alone", []).append(timed_steps(lambda: model.loss_grad(params, x, y, grad),
                                                                     args.steps))
    off = bucketed(False)

    def comm_only():
        off.begin()
        off(c, grad, "mean")
    rows.setdefault(f"{name} comm alone", []).append(timed_steps(comm_only, args.steps))
    rows.setdefault(f"{name} no overlap", []).append(timed_steps(train_step(off), args.steps))
    off.close()
    on = bucketed(True, profile=bool(args.profile))
    rows.setdefault(f"{name} overlap" + ("" if on.engine.overlap else " (refused: off)"), []).append(
        timed_steps(train_step(on), args.steps))
    if args.profile:
        write_profile(args.profile.replace(".json", "") + f"-{args.native}.json", c, on.engine)
    on.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--bucket-size", type=float, default=None)
    ap.add_argument("--density", type=float, default=0.01)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads per rank (default 1)")
    ap.add_argument("--poll-us", type=float, default=50.0,
                    help="the communication thread's sleep between polls, microseconds (0: MPI's blocking wait)")
    ap.add_argument("--profile", default=None, metavar="FILE",
                    help="write the overlap run's per-bucket timeline (Chrome trace JSON) to FILE")
    ap.add_argument("--native", default="cnn", choices=("cnn", "resnet8", "none"),
                    help="also the native model through hpctrain train's path (none: skip)")
    ap.add_argument("--torch-model", default="cnn", choices=("cnn", "mlp"),
                    help="the torch model: cnn (jobs/torch_cnn.py) or mlp (784-1270-10, d = 1,009,660: "
                         "communication-bound on a slow link)")
    ap.add_argument("--ddp", action="store_true", help="also PyTorch DDP (gloo) in the same processes")
    ap.add_argument("--ddp-port", type=int, default=29533)
    args = ap.parse_args()

    c = ht.init()
    torch.set_num_threads(args.threads)
    from hpctrain.threads import limit_threads

    blas = limit_threads(args.threads)  # the native model's BLAS pool, kept while referenced
    torch.manual_seed(0)
    make = make_cnn if args.torch_model == "cnn" else make_mlp
    model = make((1, 28, 28), 10)
    ht.broadcast_parameters(model)
    x = torch.randn(args.batch, 1, 28, 28)
    y = torch.randint(0, 10, (args.batch,))
    loss_fn = torch.nn.functional.cross_entropy

    def compute():
        model.zero_grad()
        loss_fn(model(x), y).backward()

    base = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: the model stays the same
    rows = {}

    def grad_mode(overlap, profile=False):
        opt = ht.DistributedOptimizer(base, model=model, bucket_size=args.bucket_size, overlap=overlap,
                                      poll_interval=args.poll_us * 1e-6 or None, profile=profile)

        def step():
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
        return opt, step

    ddp = None
    if args.ddp:
        import numpy as np
        import torch.distributed as dist

        ifname, mine = my_address()
        if ifname:
            os.environ.setdefault("GLOO_SOCKET_IFNAME", ifname)
        addr = c.bcast_bytes(mine.encode() if c.rank == 0 else b"")
        os.environ.setdefault("MASTER_ADDR", addr.decode())
        os.environ.setdefault("MASTER_PORT", str(args.ddp_port))
        dist.init_process_group("gloo", rank=c.rank, world_size=c.size)
        ddp_model = torch.nn.parallel.DistributedDataParallel(make((1, 28, 28), 10))
        ddp_opt = torch.optim.SGD(ddp_model.parameters(), lr=0.0)

        def ddp():
            ddp_opt.zero_grad()
            loss_fn(ddp_model(x), y).backward()
            ddp_opt.step()
        del np

    for _ in range(args.repeats):
        model.zero_grad()
        rows.setdefault("compute alone", []).append(timed_steps(compute, args.steps))
        opt, step = grad_mode(False)
        compute()  # a gradient in the buffer (the hooks start a step: finish it)
        opt.synchronize()
        eng = opt.engine

        def comm_only():
            eng.begin()
            eng.finish()
        rows.setdefault("comm alone", []).append(timed_steps(comm_only, args.steps))
        rows.setdefault("no overlap", []).append(timed_steps(step, args.steps))
        opt.close()
        opt, step = grad_mode(True, profile=bool(args.profile))
        rows.setdefault("overlap" + ("" if opt.overlap else " (refused: off)"), []).append(
            timed_steps(step, args.steps))
        if args.profile:
            write_profile(args.profile, c, opt.engine)
        opt.close()
        if ddp is not None:
            rows.setdefault("DDP (gloo)", []).append(timed_steps(ddp, args.steps))
        if args.native != "none":
            native_rows(args, c, rows)
    # gmc last: algorithm mode makes the parameters views of its own flat buffer
    alg = ht.DistributedAlgorithm(model, algo="gmc", lr=1e-9, momentum=0.9, density=args.density,
                                  compressor="topk")

    def gmc_step():
        alg.zero_grad()
        loss_fn(model(x), y).backward()
        alg.step()
    rows[f"gmc s/d {args.density:g}"] = [timed_steps(gmc_step, args.steps) for _ in range(args.repeats)]
    spare, crowded = spare_cores(c, force=None)  # what overlap="auto" decides here (collective)
    if c.rank == 0:
        n = c.size
        print(f"# torch {args.torch_model}, {n} ranks, batch {args.batch}/rank, {args.steps} steps x {args.repeats} repeats; "
              f"{' '.join(sys.argv)}")
        print(f"# overlap auto (hpctrain train's default) here: {'on' if spare else 'off: ' + crowded}")
        print(f"{'configuration':<24} {'median step ms':>15} {'samples/s':>12}")
        med = {k: statistics.median(v) for k, v in rows.items()}
        for k, v in med.items():
            print(f"{k:<24} {v * 1e3:>15.2f} {n * args.batch / v:>12.0f}")
        for pre in ("", f"native {args.native} "):
            ov = med.get(pre + "overlap")
            if ov:
                print(f"{pre or 'torch '}overlap / max(compute, comm) = "
                      f"{ov / max(med[pre + 'compute alone'], med[pre + 'comm alone']):.2f} (target <= 1.15); "
                      f"no overlap / overlap = {med[pre + 'no overlap'] / ov:.2f} (target >= 1.3)")
        if "DDP (gloo)" in med:
            d = med["DDP (gloo)"]
            print(f"samples/s vs DDP: dense overlap {d / (med.get('overlap') or med['no overlap']):.2f}x, "
                  f"gmc {d / med[f'gmc s/d {args.density:g}']:.2f}x")
    alg.close()
    del blas


if __name__ == "__main__":
    main()
