"""CPU execution harness for kernels/*.cu: build a kernel file with g++ and launch it.

A test double of the GPU, not a GPU: every ``kernels/*.cu`` file compiles *unchanged*
against ``kernels/cpu/cuda_cpu.h`` (shim macros for the CUDA keywords, intrinsics and
atomics) into a shared library, and ``runtime.cpp`` runs a launch's grid of blocks with
every CUDA thread of a block as a fiber, so ``__syncthreads`` and the warp intrinsics are
real barriers, ``__shared__`` memory is per block and atomics are real atomics. Each
launch checks its arguments against the kernel's parameter types and guards every buffer
with red zones: an out-of-bounds load or store raises :class:`KernelError`. A shuffled
schedule (random start/resume order and random switches at loads, stores and atomics,
seeded) exposes races. See docs/gpu.md ("CPU execution harness") for what this can and
cannot catch; :mod:`hpctrain.cudasim.cupy` is the stand-in for the part of CuPy that
hpctrain uses (``HPCTRAIN_CUDASIM=1``).

Environment: ``HPCTRAIN_CUDASIM_CACHE`` (build cache, default ~/.cache/hpctrain/cudasim),
``HPCTRAIN_CUDASIM_SCHEDULE=shuffle``, ``HPCTRAIN_CUDASIM_SEED``,
``HPCTRAIN_CUDASIM_YIELD`` (switch probability, default 0.05),
``HPCTRAIN_CUDASIM_WORKERS`` (OS threads per launch, default 1),
``HPCTRAIN_CUDASIM_STATS=DIR`` (each process writes its launch counts there at exit).

Build flags: ``-O1 -ffp-contract=off`` without fast-math, so float and double arithmetic
is IEEE round-to-nearest like the device's ``__fadd_rn`` & co.
"""

import contextlib
import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np

__all__ = [
    "KernelError",
    "BuildError",
    "harness_dir",
    "compiler",
    "available",
    "build",
    "load_file",
    "Module",
    "Kernel",
    "schedule",
    "settings",
    "launch_log",
    "CXXFLAGS",
]

CXXFLAGS = ("-std=c++17", "-O1", "-fPIC", "-fvisibility=hidden", "-ffp-contract=off", "-fno-fast-math",
            "-fno-exceptions", "-fno-strict-aliasing")
REDZONE = 256  # bytes guarded before and after every buffer argument
_ALIGN = 256  # buffers are 256-byte aligned, like cudaMalloc


class BuildError(RuntimeError):
    """The host compiler rejected a kernel file (message: the compiler's output)."""


class KernelError(RuntimeError):
    """A launch failed: bad arguments, out-of-bounds access, deadlock at a barrier."""


def harness_dir():
    """Directory of cuda_cpu.h and runtime.cpp (``kernels/cpu``)."""
    from ..compress.cuda_build import kernel_dir

    return kernel_dir() / "cpu"


def compiler():
    """The C++ compiler: ``$CXX`` or g++ on PATH (None when there is none)."""
    return os.environ.get("CXX") or shutil.which("g++")


def available():
    """(True, compiler) when a kernel can be built here, else (False, reason)."""
    cxx = compiler()
    if not cxx:
        return False, "no C++ compiler (g++) on PATH"
    if os.uname().machine not in ("x86_64", "AMD64"):
        return False, f"the fiber runtime supports x86-64 only, not {os.uname().machine}"
    return True, cxx


def _cache_dir():
    d = os.environ.get("HPCTRAIN_CUDASIM_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "hpctrain", "cudasim")
    Path(d).mkdir(parents=True, exist_ok=True)
    return Path(d)


def _run(cmd):
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise BuildError(f"{' '.join(cmd[:2])} ... failed:\n{res.stdout}{res.stderr}")
    return res.stdout


_KERNEL_RE = re.compile(r'extern\s+"C"\s+HTCPU_GLOBAL_MARK\s+void\s+(\w+)\s*\(')
_build_lock = threading.Lock()


def build(code, include_dirs=(), name="module"):
    """Compile CUDA source ``code`` for the CPU (cached by content).

    Args:
        code: the .cu text (may ``#include`` headers from ``include_dirs``).
        include_dirs: directories for ``#include "..."``.
        name: a label for error messages and file names.

    Returns:
        (path of the shared library, tuple of the ``extern "C" __global__`` kernel names).

    Raises:
        BuildError: no compiler, or the compiler's output when it fails.
    """
    ok, why = available()
    if not ok:
        raise BuildError(f"cudasim: {why}")
    cxx = why
    hdir = harness_dir()
    header, runtime = hdir / "cuda_cpu.h", hdir / "runtime.cpp"
    includes = [f"-I{d}" for d in include_dirs]
    h = hashlib.sha256()
    for part in (code, header.read_text(), runtime.read_text(), " ".join(CXXFLAGS), cxx, *includes):
        h.update(part.encode())
        h.update(b"\0")
    for d in include_dirs:  # headers the code includes
        for f in sorted(Path(d).glob("*.cuh")):
            h.update(f.read_bytes())
    key = h.hexdigest()[:20]
    cache = _cache_dir()
    lib = cache / f"cudasim-{key}.so"  # by content only: the same code is built once
    names_file = lib.with_suffix(".kernels")
    with _build_lock:
        if lib.is_file() and names_file.is_file():
            return lib, tuple(names_file.read_text().split())
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            src = Path(tmp) / "kernels.cu"
            src.write_text(code)
            pre = _run([cxx, *CXXFLAGS, "-E", "-P", "-DHTCPU_SCAN", "-include", str(header), *includes,
                        "-x", "c++", str(src)])
            names = tuple(dict.fromkeys(_KERNEL_RE.findall(pre)))
            wrap = Path(tmp) / "wrap.cpp"
            wrap.write_text(f'#include "{src}"\n' + "".join(f"HTCPU_EXPORT({k})\n" for k in names))
            _run([cxx, *CXXFLAGS, "-fsanitize=thread", "-include", str(header), *includes, "-c", str(wrap),
                  "-o", f"{tmp}/k.o"])
            _run([cxx, *CXXFLAGS, "-O2", "-c", str(runtime), "-o", f"{tmp}/rt.o"])
            out = Path(tmp) / "lib.so"
            _run([cxx, "-shared", "-Wl,-Bsymbolic", "-Wl,-z,defs", f"{tmp}/k.o", f"{tmp}/rt.o", "-o", str(out),
                  "-lpthread"])
            os.replace(out, lib)  # atomic: ranks building the same module at once agree
            tmpn = Path(tmp) / "names"
            tmpn.write_text(" ".join(names))
            os.replace(tmpn, names_file)
        return lib, names


# ------------------------------------------------------------------ launch settings
class _Settings(threading.local):
    def __init__(self):
        self.shuffle = os.environ.get("HPCTRAIN_CUDASIM_SCHEDULE", "inorder") == "shuffle"
        self.seed = int(os.environ.get("HPCTRAIN_CUDASIM_SEED", "0"))
        self.yield_prob = float(os.environ.get("HPCTRAIN_CUDASIM_YIELD", "0.05"))
        self.workers = int(os.environ.get("HPCTRAIN_CUDASIM_WORKERS", "1"))
        self.redzones = True
        self.log = None


settings = _Settings()


@contextlib.contextmanager
def schedule(shuffle=None, seed=None, yield_prob=None, workers=None, redzones=None):
    """Temporarily change how launches run (this thread only).

    Args:
        shuffle: random start/resume order and random switches at memory accesses.
        seed: seed of the shuffled schedule (each block draws from (seed, block)).
        yield_prob: probability of a switch at each load/store/atomic when shuffled.
        workers: OS threads running blocks concurrently (real parallel atomics).
        redzones: guard every buffer argument (out-of-bounds checks).
    """
    old = dict(vars(settings))
    for k, v in dict(shuffle=shuffle, seed=seed, yield_prob=yield_prob, workers=workers,
                     redzones=redzones).items():
        if v is not None:
            setattr(settings, k, v)
    try:
        yield settings
    finally:
        vars(settings).update(old)


@contextlib.contextmanager
def launch_log():
    """Record every launch as (kernel, grid, block, {argument index: element count})."""
    old = settings.log
    settings.log = []
    try:
        yield settings.log
    finally:
        settings.log = old


# ------------------------------------------------------------------ modules and kernels
class _Cfg(ctypes.Structure):
    _fields_ = [("grid", ctypes.c_uint * 3), ("block", ctypes.c_uint * 3)]


_KINDS = {"f": "f", "i": "iu", "u": "iu"}
_counts = {}  # kernel name -> launches in this process


def _write_stats():
    d = os.environ.get("HPCTRAIN_CUDASIM_STATS")
    if d and _counts:
        import json

        Path(d).mkdir(parents=True, exist_ok=True)
        (Path(d) / f"launches-{os.getpid()}.json").write_text(json.dumps(_counts, sort_keys=True))


if os.environ.get("HPCTRAIN_CUDASIM_STATS"):
    import atexit

    atexit.register(_write_stats)


class Kernel:
    """One ``extern "C" __global__`` function of a :class:`Module`; call it like a CuPy
    RawKernel: ``kernel(grid, block, args)``."""

    def __init__(self, module, name):
        self.module, self.name = module, name
        lib = module._lib
        self._launch = getattr(lib, f"htl_{name}")
        self._launch.restype = ctypes.c_int
        self._launch.argtypes = [ctypes.POINTER(_Cfg), ctypes.c_void_p]
        sigf = getattr(lib, f"hts_{name}")
        sigf.restype = ctypes.c_char_p
        sig = sigf().decode()
        self.params = [sig[i:i + 3] for i in range(0, len(sig), 3)]

    def __repr__(self):
        return f"<cudasim kernel {self.name}({', '.join(self.params)})>"

    def _dims(self, v, what):
        v = (v,) if isinstance(v, (int, np.integer)) else tuple(v)
        if not 1 <= len(v) <= 3 or not all(isinstance(e, (int, np.integer)) and e >= 1 for e in v):
            raise KernelError(f"{self.name}: {what} must be 1-3 positive integers, got {v!r}")
        v = tuple(int(e) for e in v) + (1,) * (3 - len(v))
        limits = (2**31 - 1, 65535, 65535) if what == "grid" else (1024, 1024, 64)
        if any(e > m for e, m in zip(v, limits)) or (what == "block" and v[0] * v[1] * v[2] > 1024):
            raise KernelError(f"{self.name}: {what} {v} exceeds the device limits")
        return v

    def __call__(self, grid, block, args, shared_mem=0, stream=None):
        grid, block = self._dims(grid, "grid"), self._dims(block, "block")
        args = tuple(args)
        if len(args) != len(self.params):
            raise KernelError(f"{self.name}: takes {len(self.params)} arguments, got {len(args)}")
        slots = np.zeros(max(1, len(args)), dtype=np.uint64)
        staged = {}  # (ptr, nbytes) -> (padded buffer, inner view, [arg indices], array)
        arrays = []
        for i, (a, p) in enumerate(zip(args, self.params)):
            if p[0] == "P":
                if isinstance(a, np.ndarray):
                    if a.dtype.kind not in _KINDS[p[1]] or a.dtype.itemsize != int(p[2]):
                        raise KernelError(f"{self.name}: argument {i} is a {a.dtype} array, the kernel takes "
                                          f"{p[1]}{int(p[2]) * 8}*")
                    if not a.flags.c_contiguous:
                        raise KernelError(f"{self.name}: argument {i} is not C-contiguous (the kernel "
                                          "would read it as if it were)")
                    arrays.append((i, a))
                elif isinstance(a, np.integer) and a.dtype.itemsize == 8:
                    slots[i] = np.uint64(int(a) & (2**64 - 1))  # raw address (0 = null)
                else:
                    raise KernelError(f"{self.name}: argument {i} must be an array or a null pointer, got "
                                      f"{type(a).__name__}")
            else:
                if not isinstance(a, np.generic) or a.dtype.itemsize != int(p[2]) or \
                        a.dtype.kind not in _KINDS[p[0]]:
                    got = f"{a.dtype}" if isinstance(a, np.generic) else type(a).__name__
                    raise KernelError(f"{self.name}: argument {i} is {got}, the kernel takes a "
                                      f"{p[0]}{int(p[2]) * 8} (pass a NumPy scalar of that type)")
                slots[i] = np.frombuffer(np.asarray(a).tobytes().ljust(8, b"\0"), dtype=np.uint64)[0]
        zones = []
        for i, a in arrays:
            ptr, nbytes = a.__array_interface__["data"][0], a.nbytes
            if not settings.redzones:
                slots[i] = ptr
                continue
            key = (ptr, nbytes)
            if key not in staged:
                raw = np.empty(nbytes + 2 * REDZONE + _ALIGN, dtype=np.uint8)
                off = REDZONE + (-(raw.ctypes.data + REDZONE)) % _ALIGN
                inner = raw[off:off + nbytes]
                inner[...] = a.reshape(-1).view(np.uint8)
                staged[key] = (raw, inner, [i], a)
                base = inner.ctypes.data
                zones += [base - REDZONE, base, i, 0, base + nbytes, base + nbytes + REDZONE, i, 1]
            else:
                staged[key][2].append(i)
            slots[i] = staged[key][1].ctypes.data
        lib = self.module._lib
        zarr = np.asarray(zones, dtype=np.uint64)
        lib.htcpu_set_redzones(zarr.ctypes.data_as(ctypes.c_void_p), ctypes.c_int(len(zones) // 4))
        lib.htcpu_configure(ctypes.c_int(1 if settings.shuffle else 0), ctypes.c_ulonglong(settings.seed),
                            ctypes.c_uint(int(round(settings.yield_prob * 65536)) if settings.shuffle else 0),
                            ctypes.c_int(settings.workers))
        cfg = _Cfg((ctypes.c_uint * 3)(*grid), (ctypes.c_uint * 3)(*block))
        rc = self._launch(ctypes.byref(cfg), ctypes.c_void_p(slots.ctypes.data))
        lib.htcpu_set_redzones(None, 0)
        for raw, inner, idxs, a in staged.values():  # copy back (a kernel may write any of them)
            a.reshape(-1).view(np.uint8)[...] = inner
        _counts[self.name] = _counts.get(self.name, 0) + 1
        if settings.log is not None:
            settings.log.append((self.name, grid, block, {i: a.size for i, a in arrays}))
        if rc:
            buf = ctypes.create_string_buffer(512)
            n = lib.htcpu_error(buf, 512)
            more = f" (and {n - 1} more)" if n > 1 else ""
            raise KernelError(f"{self.name} grid={grid} block={block}: {buf.value.decode()}{more}")


class Module:
    """A compiled kernel file: ``Module(code).get_function(name)`` (CuPy RawModule-like)."""

    def __init__(self, code, include_dirs=(), name="module"):
        path, self.kernels = build(code, include_dirs, name)
        self.path = path
        self._lib = ctypes.CDLL(str(path))
        for f, args in (("htcpu_set_redzones", [ctypes.c_void_p, ctypes.c_int]),
                        ("htcpu_configure", [ctypes.c_int, ctypes.c_ulonglong, ctypes.c_uint, ctypes.c_int]),
                        ("htcpu_error", [ctypes.c_char_p, ctypes.c_int])):
            getattr(self._lib, f).argtypes = args
        self._fns = {}

    def get_function(self, name):
        """The kernel ``name``.

        Raises:
            KernelError: no ``extern "C" __global__`` kernel of that name.
        """
        if name not in self._fns:
            if name not in self.kernels:
                raise KernelError(f"no kernel {name!r} in this module (has: {', '.join(self.kernels)})")
            self._fns[name] = Kernel(self, name)
        return self._fns[name]


def load_file(path):
    """:class:`Module` of one kernel file, its directory on the include path."""
    path = Path(path)
    return Module(path.read_text(), include_dirs=[path.parent], name=path.stem)
