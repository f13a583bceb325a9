"""The NVRTC/nvcc toolchain for kernels/*.cu: find the sources, compile them, load them.

:func:`kernel_dir`, :func:`kernel_files`, :func:`nvrtc_compile` and :func:`nvcc_compile`
need no GPU: CI uses them to prove that every kernel compiles (see
.ci/compile_kernels.py). :func:`get_function` compiles a family once per process with
``cupy.RawModule`` (or the CPU harness's stand-in, see :mod:`hpctrain.cudasim`) and
caches its kernels. The CuPy paths that launch them live in each operator's module and in
:mod:`hpctrain.compress.gpu`.

Floating-point contraction is off everywhere: ``--fmad=false`` for NVRTC and nvcc, and
the kernels themselves use explicit ``__fadd_rn``/``__fmul_rn`` intrinsics (never fused)
for every rounded operation, so a device and the CPU harness (``-ffp-contract=off``) give
the same bits.
"""

import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..xp import cupy_or_none

__all__ = [
    "KERNEL_FAMILIES",
    "FMAD_OPTION",
    "kernel_dir",
    "kernel_files",
    "compile_options",
    "nvrtc_available",
    "inline_headers",
    "nvrtc_compile",
    "nvcc_compile",
    "get_function",
]

#: kernel files of the shared GPU helpers (compress/gpu.py); each operator declares its own in ``kernels``
KERNEL_FAMILIES = ("buckets", "memory", "pack", "scatter")
FMAD_OPTION = "--fmad=false"


# ------------------------------------------------------------------------- sources
def kernel_dir():
    """The directory holding the .cu files: ``$HPCTRAIN_KERNEL_DIR`` when set; else
    ``<repo>/kernels`` beside this package (a source checkout, so a worktree uses its own
    kernels even when another checkout is installed editable); else the installed
    package ``hpctrain.kernels``."""
    env = os.environ.get("HPCTRAIN_KERNEL_DIR")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[2] / "kernels"
    if (repo / "common.cuh").is_file():
        return repo
    try:
        from importlib.resources import files

        d = files("hpctrain.kernels")
        p = Path(str(d))
        if (p / "common.cuh").is_file():
            return p
    except (ImportError, ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parents[2] / "kernels"


def kernel_files():
    """Every ``*.cu`` file of :func:`kernel_dir`, sorted."""
    return sorted(kernel_dir().glob("*.cu"))


def compile_options(arch=None):
    """NVRTC options used for every kernel (include path for common.cuh/select.cuh)."""
    opts = ["-std=c++17", FMAD_OPTION, f"-I{kernel_dir()}"]
    if arch:
        opts.append(f"-arch={arch}")
    return opts


def nvrtc_available():
    """(True, version) when NVRTC can be loaded through cupy_backends, else (False, reason)."""
    try:
        from cupy_backends.cuda.libs import nvrtc

        return True, "NVRTC %d.%d" % nvrtc.getVersion()
    except Exception as exc:  # not installed, or libnvrtc missing
        return False, f"NVRTC unavailable: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"


def inline_headers(src, seen=None):
    """Source with ``#include "x.cuh"`` expanded (NVRTC gets one self-contained string)."""
    seen = set() if seen is None else seen
    out = []
    for line in src.splitlines():
        s = line.strip()
        if s.startswith("#include \"") and s.endswith("\""):
            name = s[len("#include \""):-1]
            if name not in seen:
                seen.add(name)
                out.append(inline_headers((kernel_dir() / name).read_text(), seen))
            continue
        if s == "#pragma once":
            continue
        out.append(line)
    return "\n".join(out)


def nvrtc_compile(path, arch="compute_90"):
    """Compile one .cu file to PTX with NVRTC (no GPU needed).

    Args:
        path: path of the .cu file.
        arch: virtual architecture.

    Returns:
        The PTX text.

    Raises:
        RuntimeError: with the compiler log, when compilation fails.
    """
    from cupy_backends.cuda.libs import nvrtc

    path = Path(path)
    src = inline_headers(path.read_text())
    prog = nvrtc.createProgram(src, path.name, [], [])
    try:
        try:
            nvrtc.compileProgram(prog, ["-std=c++17", FMAD_OPTION, f"-arch={arch}"])
        except Exception as exc:
            try:
                log = nvrtc.getProgramLog(prog)
            except Exception:
                log = ""
            raise RuntimeError(f"NVRTC failed on {path.name}: {exc}\n{log}") from None
        ptx = nvrtc.getPTX(prog)
    finally:
        nvrtc.destroyProgram(prog)
    return ptx.decode() if isinstance(ptx, bytes) else ptx


def nvcc_compile(path, arch="sm_90"):
    """Compile one .cu file to PTX with ``nvcc --ptx`` (when nvcc is on PATH).

    Returns:
        The PTX text.

    Raises:
        RuntimeError: nvcc missing or compilation failed (with its output).
    """
    nvcc = shutil.which("nvcc")
    if not nvcc:
        raise RuntimeError("nvcc not found on PATH")
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, path.stem + ".ptx")
        res = subprocess.run([nvcc, "--ptx", f"-arch={arch}", "-std=c++17", "--fmad=false", f"-I{path.parent}", "-o", out, str(path)],
                             capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"nvcc failed on {path.name}:\n{res.stdout}{res.stderr}")
        return Path(out).read_text()


# ------------------------------------------------------------------------- modules
def _cupy():
    cp = cupy_or_none()
    if cp is None:
        raise RuntimeError("CuPy is not installed (pip install 'hpctrain[gpu]')")
    return cp


@functools.lru_cache(maxsize=None)
def _module(cp, family):
    src = inline_headers((kernel_dir() / f"{family}.cu").read_text())
    return cp.RawModule(code=src, options=("-std=c++17", FMAD_OPTION))


@functools.lru_cache(maxsize=None)
def _function(cp, family, name):
    return _module(cp, family).get_function(name)


def get_function(family, name):
    """The compiled kernel ``name`` of ``kernels/<family>.cu`` (compiled once per array
    module, cached: CuPy, or the CPU harness's stand-in under ``HPCTRAIN_CUDASIM=1``)."""
    return _function(_cupy(), family, name)
