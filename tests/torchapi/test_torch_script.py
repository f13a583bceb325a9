"""A user's own PyTorch script on 2 and 4 ranks (``mpiexec``): gradient mode equals
single-process training on the concatenated batch; overlap on/off and resume are
bit-identical; algorithm mode with gmc trains."""

import numpy as np
import pytest

pytest.importorskip("torch")


@pytest.mark.parametrize("ranks", [2, 4])
def test_gradient_mode_equals_single_process_on_the_concatenated_batch(user_script, ranks):
    ref, _, _ = user_script(ranks, mode="single")
    got, res, _ = user_script(ranks, mode="grad", overlap=True)
    for r in range(ranks):  # replicated: every rank holds the same model
        np.testing.assert_array_equal(got[r], got[0])
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-9, atol=1e-11)  # float64: rounding only
    assert not np.array_equal(got[0], ref[0] * 0)  # (it trained: parameters are not zero)
    assert all(x["overlap"] for x in res)


def test_gradient_mode_float32_within_float_tolerance(user_script):
    ref, _, _ = user_script(2, mode="single", dtype="float32")
    got, _, _ = user_script(2, mode="grad", dtype="float32")
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-4, atol=1e-5)


def test_overlap_on_equals_off_bit_for_bit(user_script):
    """With overlap, Adam steps bucket by bucket as each lands; without, once after the
    last bucket: the same bits."""
    on, res_on, _ = user_script(4, mode="grad", overlap=True, dtype="float32", collective="ring")
    off, res_off, _ = user_script(4, mode="grad", overlap=False, dtype="float32", collective="ring")
    assert res_on[0]["overlap"] and not res_off[0]["overlap"]
    assert res_on[0]["step_per_bucket"] and not res_off[0]["step_per_bucket"]
    for a, b in zip(on, off):
        np.testing.assert_array_equal(a, b)


def test_step_per_bucket_off_equals_on_bit_for_bit(user_script):
    """Overlap with one step after the last bucket (step_per_bucket=False) equals the
    bucket-by-bucket steps."""
    per, res_per, _ = user_script(2, mode="grad", overlap=True, dtype="float64", collective="ring")
    once, res_once, _ = user_script(2, mode="grad", overlap=True, dtype="float64", collective="ring",
                                    step_per_bucket=False)
    assert res_per[0]["step_per_bucket"] and not res_once[0]["step_per_bucket"]
    for a, b in zip(per, once):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("compression", ["none", "topk"])
def test_resume_with_overlap_is_bit_identical(user_script, tmp_path, compression):
    ckpt = str(tmp_path / "ck.h5")
    opts = {"mode": "grad", "overlap": True, "dtype": "float32", "compression": compression, "density": 0.1}
    full, _, _ = user_script(2, save_at=3, ckpt=ckpt, **opts)
    resumed, res, _ = user_script(2, resume=ckpt, **opts)
    assert len(res[0]["losses"]) == 3  # it did resume at step 3 of 6
    for a, b in zip(full, resumed):
        np.testing.assert_array_equal(a, b)


def test_compressed_reducer_at_full_density_equals_dense(user_script):
    dense, _, _ = user_script(2, mode="grad", dtype="float64")
    full, _, _ = user_script(2, mode="grad", dtype="float64", compression="topk", density=1.0)
    np.testing.assert_allclose(full[0], dense[0], rtol=1e-9, atol=1e-11)


def test_compressed_gradient_mode_with_error_feedback_trains(user_script):
    _, res, _ = user_script(2, mode="grad", compression="topk", density=0.1, steps=30, cycle=3,
                             dtype="float32")
    losses = res[0]["losses"]
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses


@pytest.mark.parametrize("ranks", [2, 4])
def test_algorithm_mode_gmc_trains(user_script, ranks):
    got, res, _ = user_script(ranks, mode="algo", algo="gmc", lr=0.2, steps=30, cycle=3, dtype="float32",
                              options={"momentum": 0.5, "density": 0.1, "compressor": "topk"})
    losses = res[0]["losses"]
    assert np.all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses
    for r in range(ranks):  # gmc is replicated: the ranks agree
        np.testing.assert_array_equal(got[r], got[0])


def test_algorithm_mode_resume_is_bit_identical(user_script, tmp_path):
    ckpt = str(tmp_path / "gmc.h5")
    opts = {"momentum": 0.5, "density": 0.1, "compressor": "topk"}
    full, _, _ = user_script(2, mode="algo", algo="gmc", options=opts, dtype="float32", save_at=3, ckpt=ckpt)
    resumed, _, _ = user_script(2, mode="algo", algo="gmc", options=opts, dtype="float32", resume=ckpt)
    for a, b in zip(full, resumed):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("mode", ["gradient", "algorithm"])
def test_documented_example_runs_and_resumes(mpirun, tmp_path, mode):
    import os

    example = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "examples", "torch_train.py")
    ckpt = str(tmp_path / "ex.h5")
    args = [example, "--mode", mode, "--steps", "20", "--batch", "8", "--ckpt", ckpt, "--ckpt-every", "10"]
    res = mpirun(2, args, timeout=120)
    assert "done: 20 steps on 2 rank(s)" in res.stdout and os.path.exists(ckpt)
    res = mpirun(2, args[:4] + ["30"] + args[5:] + ["--resume"], timeout=120)
    assert "done: 30 steps on 2 rank(s)" in res.stdout
