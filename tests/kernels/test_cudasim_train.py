"""``mpiexec -n 2 hpctrain train --device gpu`` end to end on a CPU machine: CuPy is the
harness's stand-in (HPCTRAIN_CUDASIM=1), so the GPU branches of the algorithms, the
compressors' CUDA twins, the kernels and the staged transport all run. The weights must
equal those of ``--device cpu`` bit for bit: the stand-in's array math is NumPy's, so the
only place the two runs could differ is the kernels, which are bit-identical twins. (On a
real GPU, tests/gpu/test_gpu_train.py compares to rounding instead: cuBLAS sums in a
different order.)
"""

import json

import h5py
import numpy as np
import pytest

from hpctrain import cudasim

_OK, _WHY = cudasim.available()
pytestmark = [pytest.mark.mpi, pytest.mark.skipif(not _OK, reason=f"CPU harness unavailable: {_WHY}")]

ARGS = ["--dataset", "synthetic", "--dtype", "float64", "--epochs", "1", "--batch-size", "200", "--lr", "0.1",
        "--checkpoint-every", "1epochs", "-q"]
CASES = [  # algorithm, compressor flags, kernels that must have run on the "GPU"
    ("dmsgd", [], set()),
    ("gmc", ["--compressor", "topk", "--density", "0.05"], {"topk_f64_hist", "topk_f64_write"}),
    ("gmc", ["--compressor", "approx-topk", "--density", "0.05"], {"approx_topk_sample_f64", "topk_f64_count"}),
    ("csgd", ["--compressor", "qsgd", "--bits", "4"], {"bucket_stats_f64", "qsgd_encode_f64", "pack_bits",
                                                       "qsgd_decode_f64"}),
    ("csgd", ["--compressor", "minmax", "--bits", "4"], {"minmax_encode_f64", "pack_bits", "minmax_decode_f64"}),
    ("ecsgd", ["--compressor", "sign"], {"sign_encode_f64", "sign_decode_f64", "ef_residual_f64"}),
]


def _params(run):
    ckpts = sorted((run / "checkpoints").glob("*.h5"))
    with h5py.File(ckpts[-1], "r") as f:
        return f["params"][...]


@pytest.mark.parametrize("algo,flags,kernels", CASES, ids=[f"{c[0]}-{c[1][1] if c[1] else 'dense'}" for c in CASES])
def test_gpu_path_matches_cpu(mpirun, tmp_path, algo, flags, kernels):
    stats = tmp_path / "stats"
    env = {"HPCTRAIN_CUDASIM": "1", "HPCTRAIN_CUDASIM_STATS": str(stats), "HPCTRAIN_CUDASIM_CACHE": None}
    for dev in ("cpu", "gpu"):
        mpirun(2, ["-m", "hpctrain", "train", *ARGS, "--algo", algo, *flags, "--device", dev,
                   "--out", tmp_path / dev], timeout=300, env=env)
    summary = json.loads((tmp_path / "gpu" / "summary.json").read_text())
    assert summary["config"]["device"] == "gpu"
    ran = {}
    for f in stats.glob("launches-*.json"):
        for k, v in json.loads(f.read_text()).items():
            ran[k] = ran.get(k, 0) + v
    assert kernels <= set(ran), f"kernels not launched: {sorted(kernels - set(ran))}"
    a, b = _params(tmp_path / "cpu"), _params(tmp_path / "gpu")
    assert a.dtype == b.dtype == np.float64
    assert np.array_equal(a.view(np.uint64), b.view(np.uint64)), f"max |diff| {np.abs(a - b).max()}"
