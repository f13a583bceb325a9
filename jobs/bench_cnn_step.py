"""One process, one thread: the native ``cnn`` training step against PyTorch CPU on the
same architecture (jobs/torch_cnn.py), batch and optimiser (momentum SGD).

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python jobs/bench_cnn_step.py --batch-size 128 --repeats 7

Each repeat times ``--steps`` steps of each, alternating (forward, backward, update; the
same random batch every step); prints min/median samples/s and the ratio of medians.
"""

import argparse
import os
import statistics
import sys
import time

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    import torch
    from threadpoolctl import threadpool_limits

    from hpctrain.models import build_model
    from torch_cnn import make_cnn

    threads = int(os.environ["OMP_NUM_THREADS"])
    torch.set_num_threads(threads)
    _limit = threadpool_limits(limits=threads)  # noqa: F841
    b = args.batch_size
    rng = np.random.default_rng(0)
    x = rng.random((b, 784), dtype=np.float32)
    y = rng.integers(0, 10, b)
    model = build_model("cnn", (1, 28, 28), 10)
    p = model.init_params(np, np.float32, 0)
    g, v = np.zeros_like(p), np.zeros_like(p)

    def native():
        model.loss_grad(p, x, y, g, 1e-4)
        v[...] = 0.9 * v + g
        p[...] -= 0.05 * v

    net = make_cnn()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    xt, yt = torch.from_numpy(x.reshape(b, 1, 28, 28)), torch.from_numpy(y)

    def torch_step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(xt), yt).backward()
        opt.step()

    assert model.size == sum(q.numel() for q in net.parameters())
    rates = {"hpctrain native cnn (NumPy)": [], "PyTorch CPU": []}
    for fn in (native, torch_step):
        fn()  # warm-up
    for _ in range(args.repeats):
        for name, fn in zip(rates, (native, torch_step)):
            t0 = time.perf_counter()
            for _ in range(args.steps):
                fn()
            rates[name].append(args.steps * b / (time.perf_counter() - t0))
    print(f"batch={b} steps/repeat={args.steps} repeats={args.repeats} threads={threads} params={model.size}")
    print(f"{'step':<30} {'min samples/s':>14} {'median samples/s':>17}")
    for name, r in rates.items():
        print(f"{name:<30} {min(r):>14.0f} {statistics.median(r):>17.0f}")
    med = [statistics.median(r) for r in rates.values()]
    print(f"ratio native/PyTorch (medians): {med[0] / med[1]:.2f}")


if __name__ == "__main__":
    main()
