"""``hpctrain train --overlap``: the gradient's buckets reduced during the native model's
backward equal the same buckets reduced after backward bit for bit, and the unbucketed
allreduce to 1e-6 relative (float32) / 1e-12 (float64); resume with overlap on is
bit-identical; algorithms and models that cannot bucket say so and run as before; the
default auto overlaps only with a free core per rank (ranks pinned to one core: off, and an
explicit --overlap runs and says how the cores are shared), one decision on every rank."""

import json
import os
import shutil
import sys

import numpy as np
import pytest

from mpiutil import HPCTRAIN, WORKERS
from test_models_train import _ckpt_arrays, image_h5

SPEC = "conv:8:3,relu,maxpool:2,conv:8:3,relu,maxpool:2,flatten,linear:16,relu,linear:4"


def _run(mpirun, out, n, **kw):
    args = [os.path.join(WORKERS, "train_params.py"), str(out)] + [
        f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in kw.items()]
    mpirun(n, args, timeout=240)
    summary = json.loads((out / "summary.json").read_text())
    return [np.load(out / f"params{r}.npy") for r in range(n)], summary


@pytest.mark.mpi
@pytest.mark.parametrize("dtype,tol", [("float32", 1e-6), ("float64", 1e-12)])
@pytest.mark.parametrize("algo,model", [("dmsgd", SPEC), ("adagrad", "resnet8")])
def test_overlap_equals_bucketed_bit_for_bit_and_unbucketed_closely(mpirun, tmp_path, dtype, tol, algo, model):
    data = image_h5(tmp_path / "img.h5", n=160, n_test=32)
    common = dict(model=model, dataset=data, algo=algo, dtype=dtype, epochs=1, max_steps=4, batch_size=10,
                  lr=0.05, weight_decay=1e-3, collective="ring", seed=3)
    on, s_on = _run(mpirun, tmp_path / "on", 3, overlap=True, bucket_size=0.002, **common)
    off, s_off = _run(mpirun, tmp_path / "off", 3, overlap=False, bucket_size=0.002, **common)
    whole, s_whole = _run(mpirun, tmp_path / "whole", 3, overlap=False, **common)
    assert s_on["overlap"] and s_on["buckets"] > 2 and s_on["overlap_note"].startswith("overlap on")
    assert not s_off["overlap"] and s_off["buckets"] == s_on["buckets"]
    assert not s_whole["overlap"] and s_whole["buckets"] == 0
    for r in range(3):
        np.testing.assert_array_equal(on[r], off[r])
        np.testing.assert_array_equal(on[r], on[0])
        rel = np.abs(on[r].astype(np.float64) - whole[r]).max() / np.abs(whole[r]).max()
        assert rel <= tol, rel
    assert not np.array_equal(on[0], whole[0]) or dtype == "float64"  # 3 ranks: the sums' order differs
    assert s_on["bytes_sent_per_rank"] == s_off["bytes_sent_per_rank"]  # the buckets' traffic is counted
    assert s_on["bytes_sent_per_rank"][0] > 0


@pytest.mark.mpi
def test_resume_with_overlap_is_bit_identical(mpirun, tmp_path):
    data = image_h5(tmp_path / "img.h5", n=240, n_test=40)
    common = ["--model", SPEC, "--dataset", data, "--epochs", "2", "--batch-size", "20", "--lr", "0.05",
              "--seed", "2", "-q", "--overlap", "--bucket-size", "0.002", "--collective", "ring",
              "--checkpoint-every", "4steps", "--keep", "0"]
    full, part = tmp_path / "full", tmp_path / "part"
    mpirun(3, [HPCTRAIN, "train", *common, "--out", full], timeout=240)
    assert json.loads((full / "summary.json").read_text())["overlap"]
    mid = [c for c in sorted((full / "checkpoints").glob("ckpt-*.h5")) if c.name.startswith("ckpt-000000004")][0]
    mpirun(3, [HPCTRAIN, "train", *common, "--out", part, "--resume", mid], timeout=240)
    (a,) = (full / "checkpoints").glob("ckpt-000000008*.h5")
    (b,) = (part / "checkpoints").glob("ckpt-000000008*.h5")
    a, b = _ckpt_arrays(a), _ckpt_arrays(b)
    for k in a:
        assert np.array_equal(a[k], b[k]), f"{k} differs after resume"


@pytest.mark.mpi
@pytest.mark.parametrize("algo,model,why", [
    ("gmc", SPEC, "algo gmc needs the whole gradient at once"),
    ("local-sgd", SPEC, "algo local-sgd averages the parameters after its local update"),
    ("dgc", SPEC, "algo dgc compresses layer by layer"),
    ("dmsgd", "mlp", "model mlp computes its gradient in one call"),
])
def test_overlap_refused_with_one_line_and_the_run_unchanged(mpirun, tmp_path, algo, model, why):
    data = image_h5(tmp_path / "img.h5", n=80, n_test=16)
    common = dict(model=model, dataset=data, algo=algo, epochs=1, max_steps=2, batch_size=10, lr=0.05)
    on, s_on = _run(mpirun, tmp_path / "on", 2, overlap=True, **common)
    off, s_off = _run(mpirun, tmp_path / "off", 2, overlap=False, **common)
    assert not s_on["overlap"] and s_on["buckets"] == 0
    assert s_on["overlap_note"].startswith(f"overlap off: {why}"), s_on["overlap_note"]
    assert s_off["overlap_note"] == "overlap off"
    for a, b in zip(on, off):
        np.testing.assert_array_equal(a, b)


@pytest.mark.mpi
@pytest.mark.parametrize("size,message", [("50", "bucket size 50 MiB is larger than the model"),
                                          ("-1", "bucket_size must be >= 0")])
def test_bad_bucket_size_is_one_line_and_status_2(mpirun, tmp_path, size, message):
    data = image_h5(tmp_path / "img.h5", n=40, n_test=8)
    res = mpirun(2, [HPCTRAIN, "train", "--model", SPEC, "--dataset", data, "--epochs", "1", "--max-steps", "1", "--batch-size", "8",
                     "--bucket-size", size, "-q", "--out", tmp_path / "run"], timeout=120, check=False)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 2 and len(lines) == 1 and message in lines[0], res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.mpi
def test_without_thread_multiple_overlap_is_off_and_the_banner_says_why(mpirun, tmp_path):
    data = image_h5(tmp_path / "img.h5", n=40, n_test=8)
    res = mpirun(2, [HPCTRAIN, "train", "--model", SPEC, "--dataset", data, "--epochs", "1", "--max-steps", "2", "--batch-size", "8",
                     "--out", tmp_path / "run"], timeout=120, env={"MPI4PY_RC_THREAD_LEVEL": "serialized"})
    why = "overlap off: MPI granted thread level 'serialized', not 'multiple'"
    assert why in res.stdout.splitlines()[0], res.stdout
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["overlap"] is False and summary["buckets"] == 0 and summary["overlap_note"] == why


TASKSET = shutil.which("taskset")
AUTO_OFF = "2 ranks share 1 core on this machine (overlap needs a free core per rank{})"


@pytest.mark.mpi
@pytest.mark.skipif(TASKSET is None, reason="taskset (util-linux) is not installed")
def test_auto_is_off_where_the_ranks_fill_the_cores_and_an_explicit_overlap_runs_and_says_so(mpirun, tmp_path):
    data = image_h5(tmp_path / "img.h5", n=40, n_test=8)
    # every rank pinned to one core: 2 ranks on 1 core, whatever the machine has
    cmd = [TASKSET, "-c", "0", HPCTRAIN, "train", "--model", SPEC, "--dataset", data, "--epochs", "1",
           "--max-steps", "2", "--batch-size", "8"]
    res = mpirun(2, cmd + ["--out", tmp_path / "auto"], timeout=120)
    why = "overlap off: " + AUTO_OFF.format("; --overlap forces it")
    assert why in res.stdout.splitlines()[0], res.stdout
    summary = json.loads((tmp_path / "auto" / "summary.json").read_text())
    assert summary["overlap"] is False and summary["buckets"] == 0 and summary["overlap_note"] == why
    assert summary["config"]["overlap"] is False  # what auto chose, recorded
    toml = (tmp_path / "auto" / "config.toml").read_text()
    assert "overlap = false" in toml and f"# --overlap auto: {why}" in toml

    res = mpirun(2, cmd + ["--overlap", "--bucket-size", "0.002", "--out", tmp_path / "forced"], timeout=120)
    banner = res.stdout.splitlines()[0]
    assert "overlap on, " in banner and "although " + AUTO_OFF.format("") in banner, banner
    summary = json.loads((tmp_path / "forced" / "summary.json").read_text())
    assert summary["overlap"] is True and summary["buckets"] > 1
    toml = (tmp_path / "forced" / "config.toml").read_text()
    assert "overlap = true" in toml and "# --overlap auto" not in toml


def _bound_run(mpirun, out, per_rank, **kw):
    """2 ranks of train_params.py, rank r bound to cores [r*per_rank, (r+1)*per_rank) (as
    ``srun --cpu-bind=cores -c per_rank`` would)."""
    bind = f'exec {TASKSET} -c $((PMI_RANK*{per_rank}))-$((PMI_RANK*{per_rank}+{per_rank}-1)) "$0" "$@"'
    args = ["sh", "-c", bind, sys.executable, os.path.join(WORKERS, "train_params.py"), str(out)] + [
        f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in kw.items()]
    mpirun(2, args, timeout=240)
    summary = json.loads((out / "summary.json").read_text())
    return [np.load(out / f"params{r}.npy") for r in range(2)], summary


@pytest.mark.mpi
@pytest.mark.skipif(TASKSET is None, reason="taskset (util-linux) is not installed")
@pytest.mark.parametrize("per_rank", [1, 2])
def test_auto_counts_the_cores_each_rank_is_bound_to(mpirun, tmp_path, per_rank):
    """Ranks bound to cores of their own: one core each leaves none for the thread (off),
    two each do (on, and the same bits as a forced --overlap)."""
    if not set(range(2 * per_rank)) <= os.sched_getaffinity(0):
        pytest.skip(f"needs cores 0-{2 * per_rank - 1}")
    data = image_h5(tmp_path / "img.h5", n=80, n_test=16)
    common = dict(model=SPEC, dataset=data, algo="dmsgd", epochs=1, max_steps=3, batch_size=10, lr=0.05,
                  collective="ring", bucket_size=0.002)
    auto, s_auto = _bound_run(mpirun, tmp_path / "auto", per_rank, **common)
    if per_rank == 1:
        assert s_auto["overlap"] is False
        assert s_auto["overlap_note"].startswith("overlap off: 1 rank has 1 core on this machine (overlap needs a free "
                                                 "core per rank; --overlap forces it), ")
        return
    on, s_on = _bound_run(mpirun, tmp_path / "on", per_rank, overlap=True, **common)
    assert s_auto["overlap"] and s_auto["overlap_note"].startswith("overlap on, ") and "although" not in \
        s_auto["overlap_note"]
    assert s_auto["config"]["overlap"] is True and s_on["config"]["overlap"] is True
    for a, b in zip(auto, on):
        np.testing.assert_array_equal(a, b)


@pytest.mark.mpi
def test_spare_cores_is_one_verdict_on_every_rank(mpirun, tmp_path):
    mpirun(2, [os.path.join(WORKERS, "spare_cores.py"), str(tmp_path)], timeout=120)
    got = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert got[0] == got[1]  # rank-divergent inputs, one decision: a divergent one would hang the job
    res, need = got[0], "(overlap needs a free core per rank; --overlap forces it)"
    assert res["own 2 cores each"] == [True, ""]  # bound to cores of its own: nobody shares them
    assert res["own 1 core each"] == [False, f"1 rank has 1 core on this machine {need}"]
    assert res["one mask of 2n cores"] == [True, ""]  # unbound: cores >= 2 x ranks on the node
    assert res["one mask of 2n-1 cores"] == [False, "2 ranks share 3 cores on this machine "
                                                    "(overlap needs a free core per rank)"]
    assert res["masks overlapping in one core"] == [False, f"2 ranks share 3 cores on this machine {need}"]
    assert res["rank 1 short, rank 0 plenty"] == [False, f"1 rank has 1 core on this machine {need}"]
