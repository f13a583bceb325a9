"""Every kernels/*.cu compiles (NVRTC via cupy_backends, and nvcc --ptx when present).

Skips only when neither compiler is available on this machine, with the reason.
"""

import shutil

import pytest

from hpctrain.compress import gpu as cuda
from hpctrain.compress import kernel_families

FILES = cuda.kernel_files()
NVRTC_OK, NVRTC_WHY = cuda.nvrtc_available()
NVCC = shutil.which("nvcc")


def test_every_family_present():
    assert {p.stem for p in FILES} == set(kernel_families())
    assert (cuda.kernel_dir() / "common.cuh").is_file()


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_compiles(path):
    if not NVRTC_OK and not NVCC:
        pytest.skip(f"no CUDA compiler: {NVRTC_WHY}; nvcc not on PATH")
    compiled = 0
    if NVRTC_OK:
        ptx = cuda.nvrtc_compile(path)
        assert ".entry" in ptx
        compiled += 1
    if NVCC:
        ptx = cuda.nvcc_compile(path)
        assert ".entry" in ptx
        compiled += 1
    assert compiled


def test_entry_points_exist():
    """The loader asks for these names; each must be an extern "C" entry point."""
    if not NVRTC_OK:
        pytest.skip(NVRTC_WHY)
    wanted = {
        "topk": ["topk_f32_hist", "topk_f64_count", "topk_f32_write"],
        "approx_topk": ["approx_topk_sample_f32", "approx_topk_sample_f64"],
        "randk": ["randk_f32_hist", "randk_f64_count", "randk_f64_write", "randk_keys"],
        "memory": ["ef_add_f32", "ef_residual_f64", "uniform_f64"],
        "scatter": ["scatter_set_f32", "scatter_add_f64", "gather_f32"],
        "pack": ["pack_bits", "unpack_bits"],
        "fp16": ["to_half_f32", "to_half_f64", "from_half_f32", "from_half_f64"],
        "buckets": ["bucket_stats_f32", "bucket_stats_f64"],
        "minmax": ["minmax_encode_f64", "minmax_decode_f32"],
        "sign": ["sign_encode_f64", "sign_decode_f32"],
        "qsgd": ["qsgd_encode_f32", "qsgd_decode_f64"],
    }
    for family, names in wanted.items():
        ptx = cuda.nvrtc_compile(cuda.kernel_dir() / f"{family}.cu")
        for name in names:
            assert f".entry {name}(" in ptx, (family, name)


def test_broken_kernel_fails(tmp_path):
    if not NVRTC_OK:
        pytest.skip(NVRTC_WHY)
    bad = tmp_path / "bad.cu"
    bad.write_text('extern "C" __global__ void k(float* x) { x[0] = undefined_symbol; }\n')
    with pytest.raises(RuntimeError, match="bad.cu"):
        cuda.nvrtc_compile(bad)
