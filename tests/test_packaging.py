"""A built wheel ships the CUDA kernels and the console script."""

import glob
import os
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_wheel_contains_kernels(tmp_path):
    kernels = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "kernels", "*.cu")))
    assert kernels, "no kernels/*.cu in the source tree"
    res = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), ROOT],
        capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    (wheel,) = glob.glob(str(tmp_path / "hpctrain-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(os.path.basename(n) for n in names if n.startswith("hpctrain/kernels/") and n.endswith(".cu"))
    assert shipped == kernels
    assert {"hpctrain/kernels/cpu/cuda_cpu.h", "hpctrain/kernels/cpu/runtime.cpp"} <= set(names)  # CPU harness
    assert "hpctrain/cudasim/cupy.py" in names
    entry = [n for n in names if n.endswith("entry_points.txt")]
    assert entry and "hpctrain = hpctrain.cli:main" in zipfile.ZipFile(wheel).read(entry[0]).decode()


def test_installed_package_finds_kernels():
    from importlib.resources import files

    found = sorted(p.name for p in files("hpctrain.kernels").iterdir() if p.name.endswith(".cu"))
    expect = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "kernels", "*.cu")))
    assert found == expect and found
