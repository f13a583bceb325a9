#!/usr/bin/env python3
"""Compile every kernels/*.cu without a GPU; exit non-zero if any fails (or no compiler).

Uses NVRTC through cupy_backends (pip install cupy-cuda13x nvidia-cuda-nvrtc) and, when
``nvcc`` is on PATH, ``nvcc --ptx`` as well. Usage: python .ci/compile_kernels.py [--arch 90]
"""

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hpctrain.compress import gpu as cuda  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="90", help="compute capability, e.g. 80 or 90 (default 90)")
    args = ap.parse_args(argv)
    files = cuda.kernel_files()
    if not files:
        print(f"no kernels found in {cuda.kernel_dir()}", file=sys.stderr)
        return 1
    nvrtc_ok, why = cuda.nvrtc_available()
    nvcc = shutil.which("nvcc")
    if not nvrtc_ok and not nvcc:
        print(f"no CUDA compiler: {why}; nvcc not on PATH", file=sys.stderr)
        return 1
    failures = 0
    for path in files:
        for label, ok, compile_one in (
            (why if nvrtc_ok else "NVRTC", nvrtc_ok, lambda p: cuda.nvrtc_compile(p, arch=f"compute_{args.arch}")),
            ("nvcc", bool(nvcc), lambda p: cuda.nvcc_compile(p, arch=f"sm_{args.arch}")),
        ):
            if not ok:
                continue
            try:
                ptx = compile_one(path)
                entries = ptx.count(".entry ")
                print(f"ok    {path.name:<14} {label:<10} {entries:3d} entry points")
            except Exception as exc:  # report every failure, then fail
                failures += 1
                print(f"FAIL  {path.name:<14} {label}\n{exc}", file=sys.stderr)
    print(f"{len(files)} kernel files, {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
