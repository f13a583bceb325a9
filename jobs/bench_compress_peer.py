"""hpctrain's compressors against what a GRACE user writes in plain PyTorch ops, in one run.

For each operator and size (float32, one thread): compress + decompress time of hpctrain's
host operator (NumPy, or its loops compiled by Numba: the first line printed says which)
and of a PyTorch peer (``torch.topk``, ``randperm``, stochastic rounding
with ``torch.rand`` into int8/uint8 codes, ``x >= 0`` packed with ``np.packbits``,
``x.half()``), each side's GB/s (4 d bytes / time) and a memcpy of the same buffer as the
memory-speed floor. Minimum and median of ``--repeats`` runs after three warm-up runs.

    python jobs/bench_compress_peer.py [--sizes 1M,8M] [--repeats 9] [--json OUT]
"""

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from hpctrain import jit  # noqa: E402
from hpctrain.compress import get_compressor  # noqa: E402

DENSITY, BITS = 0.01, 4


def _torch_peers(torch):
    """name -> (compress(x), decompress(msg, out)) in plain torch ops."""
    def topk(x):
        k = max(1, int(DENSITY * x.numel()))
        _, idx = torch.topk(x.abs(), k, sorted=False)
        return idx, x[idx]

    def sparse_out(msg, out):
        out.zero_()
        out.index_put_((msg[0],), msg[1])

    def approx_topk(x):  # DGC's sampled threshold: top-k of a 1 % sample, then a mask
        k = max(1, int(DENSITY * x.numel()))
        sample = x[torch.randint(0, x.numel(), (max(1, x.numel() // 100),))].abs()
        thr = torch.topk(sample, max(1, int(DENSITY * sample.numel())), sorted=False)[0].min()
        idx = (x.abs() >= thr).nonzero().squeeze(1)[: 2 * k]
        return idx, x[idx]

    def randk(x):
        idx = torch.randperm(x.numel())[: max(1, int(DENSITY * x.numel()))]
        return idx, x[idx]

    def qsgd(x):
        s = 2 ** (BITS - 1) - 1
        norm = x.norm()
        level = x.abs() / norm * s
        low = level.floor()
        level = low + (torch.rand_like(level) < level - low).float()
        return (level * x.sign()).to(torch.int8), norm

    def qsgd_out(msg, out):
        out.copy_(msg[0].float() * (msg[1] / (2 ** (BITS - 1) - 1)))

    def minmax(x):
        lo, hi = x.min(), x.max()
        scale = (hi - lo) / (2 ** BITS - 1)
        return ((x - lo) / scale + torch.rand_like(x)).floor().to(torch.uint8), lo, scale

    def minmax_out(msg, out):
        out.copy_(msg[0].float() * msg[2] + msg[1])

    def sign(x):
        return np.packbits((x >= 0).numpy()), x.abs().mean()

    def sign_out(msg, out):
        bits = torch.from_numpy(np.unpackbits(msg[0])[: out.numel()])
        out.copy_(bits.float() * (2 * msg[1]) - msg[1])

    def fp16(x):
        return x.half()

    def fp16_out(msg, out):
        out.copy_(msg)

    return {"topk": (topk, sparse_out), "approx-topk": (approx_topk, sparse_out), "randk": (randk, sparse_out),
            "qsgd": (qsgd, qsgd_out), "minmax": (minmax, minmax_out), "sign": (sign, sign_out),
            "fp16": (fp16, fp16_out)}


def _time(fn, repeats, warmup=3):
    for _ in range(warmup):  # compiled loops load, allocators and page tables settle (both sides)
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return min(out), float(np.median(out))


def _ours(name, x, out):
    params = {"density": DENSITY} if name in ("topk", "approx-topk", "randk") else {}
    if name in ("qsgd", "minmax"):
        params["bits"] = BITS
    comp = get_compressor(name, **params)
    step = [0]

    def run():
        step[0] += 1
        comp.decompress(comp.compress(x, step=step[0], rank=0), out)
    return run


def parse_size(s):
    s = s.strip().upper()
    mult = {"K": 1 << 10, "M": 1 << 20}.get(s[-1], 1)
    return int(float(s[:-1] if s[-1] in "KM" else s) * mult)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1M,8M")
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--ops", default="topk,approx-topk,randk,qsgd,minmax,sign,fp16")
    ap.add_argument("--json", default="")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="standard deviation of the test vector (1e-5: a gradient divided by the ranks, whose "
                         "float16 values are mostly subnormal)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    peers = _torch_peers(torch)
    rows = []
    print(jit.describe())
    print(f"one thread, {args.repeats} repeats; density {DENSITY}, {BITS}-bit qsgd/minmax; "
          f"compress + decompress, ms (min / median), GB/s = 4 d bytes / median")
    print(f"{'operator':12s} {'d':>9s} {'hpctrain ms':>15s} {'torch ms':>15s} {'hpctrain GB/s':>14s} "
          f"{'torch GB/s':>11s} {'speed ratio':>12s} {'memcpy GB/s':>12s}")
    for size in args.sizes.split(","):
        d = parse_size(size)
        x = (np.random.default_rng(0).standard_normal(d) * args.scale).astype(np.float32)
        out = np.empty_like(x)
        cp = _time(lambda: np.copyto(out, x), args.repeats)
        xt, outt = torch.from_numpy(x.copy()), torch.empty(d)
        for name in args.ops.split(","):
            ours = _time(_ours(name, x, out), args.repeats)
            comp_fn, dec_fn = peers[name]
            peer = _time(lambda: dec_fn(comp_fn(xt), outt), args.repeats)
            gbs = lambda t: 4 * d / t / 1e9  # noqa: E731
            row = {"operator": name, "d": d, "ours_ms": [1e3 * ours[0], 1e3 * ours[1]],
                   "peer_ms": [1e3 * peer[0], 1e3 * peer[1]], "ours_gbs": gbs(ours[1]), "peer_gbs": gbs(peer[1]),
                   "ratio": peer[1] / ours[1], "memcpy_gbs": gbs(cp[1])}
            rows.append(row)
            print(f"{name:12s} {d:9d} {row['ours_ms'][0]:7.2f}/{row['ours_ms'][1]:7.2f} "
                  f"{row['peer_ms'][0]:7.2f}/{row['peer_ms'][1]:7.2f} {row['ours_gbs']:14.2f} "
                  f"{row['peer_gbs']:11.2f} {row['ratio']:12.2f} {row['memcpy_gbs']:12.1f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
