"""PowerSGD against a NumPy re-implementation written from the paper (float64), its
matrix plan, rank checks and wire size."""

import os

import numpy as np
import pytest

from hpctrain.algorithms.powersgd import matrix_plan, orthogonalise
from hpctrain.errors import ConfigError
from mpiutil import WORKERS


def _layout():
    import importlib.util
    spec = importlib.util.spec_from_file_location("psw", os.path.join(WORKERS, "powersgd_steps.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.layout()


def oracle(params, grads_per_rank, q0, lay, rank, start, lr=0.1, momentum=0.9):
    """Algorithm 2 of the paper with the rank-r compressor of Algorithm 1, every worker
    simulated in float64; orthogonalisation by QR (sign-invariant in P^ P^T M)."""
    n_workers, steps, d = grads_per_rank.shape
    w, v = params.astype(np.float64).copy(), np.zeros(d)
    err = np.zeros((n_workers, d))
    mats, dense = [], []
    for name, shape, off in lay:
        size = int(np.prod(shape))
        if len(shape) >= 2:
            n, m = shape[0], size // shape[0]
            r = min(n, m, rank)
            if (n + m) * r * 2 < n * m:
                mats.append((off, n, m, r))
                continue
        dense.append((off, size))
    qs, qo = {}, 0
    for off, n, m, r in mats:
        qs[off] = q0[qo:qo + m * r].reshape(m, r).astype(np.float64)
        qo += m * r
    for t in range(steps):
        g = grads_per_rank[:, t, :].astype(np.float64)
        avg = g.mean(axis=0)
        if t >= start:
            for off, n, m, r in mats:
                M = [(g[k, off:off + n * m] + err[k, off:off + n * m]).reshape(n, m) for k in range(n_workers)]
                P = np.mean([Mk @ qs[off] for Mk in M], axis=0)
                P_hat = np.linalg.qr(P)[0]
                Q = np.mean([Mk.T @ P_hat for Mk in M], axis=0)
                approx = P_hat @ Q.T
                for k in range(n_workers):
                    err[k, off:off + n * m] = (M[k] - approx).ravel()
                avg[off:off + n * m] = approx.ravel()
                qs[off] = Q
        v = momentum * v + avg
        w -= lr * v
    return w, err, mats, dense


@pytest.mark.parametrize("n,rank,start", [(2, 2, 0), (3, 1, 2), (2, 4, 1)])
def test_powersgd_equals_the_paper_in_float64(mpirun, tmp_path, n, rank, start):
    steps = 4
    mpirun(n, [os.path.join(WORKERS, "powersgd_steps.py"), str(tmp_path), str(rank), str(steps), str(start),
               "float64"], timeout=120)
    runs = [np.load(tmp_path / f"rank{r}.npz") for r in range(n)]
    lay, d = _layout()
    params0 = np.random.default_rng(99).normal(size=d)
    grads = np.stack([r["grads"] for r in runs])
    want, err, mats, dense = oracle(params0, grads, runs[0]["q0"], lay, rank, start)
    for r, run in enumerate(runs):
        np.testing.assert_allclose(run["params"], want, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(run["memory"], err[r], rtol=1e-6, atol=1e-9)
    # error feedback conserves: sum of memories + n * average applied = sum of fed gradients
    assert mats, "the layout must compress something"
    expect_wire = sum((nn + m) * r for _, nn, m, r in mats) + sum(s for _, s in dense)
    assert int(runs[0]["wire"]) == expect_wire
    # on the wire: exactly the ring allreduces of P, Q and the dense remainder
    for run in runs:
        assert int(run["step_bytes"]) == int(run["ring_bytes"]) > 0


def test_matrix_plan_clamps_rank_and_keeps_vectors_dense():
    lay, d = _layout()
    mats, dense = matrix_plan(lay, 100)
    assert [(name, r) for name, _, _, _, r in mats] == [] or all(r == min(n, m) for _, _, n, m, r in mats)
    mats, dense = matrix_plan(lay, 2)
    assert [m[0] for m in mats] == ["fc.w", "conv.w"]
    assert [(n, m, r) for _, _, n, m, r in mats] == [(20, 12, 2), (16, 18, 2)]
    assert sum(n * m for _, _, n, m, _ in mats) + sum(s for _, s in dense) == d
    with pytest.raises(ConfigError):
        matrix_plan(lay, 0)


def test_orthogonalise_gives_orthonormal_columns_and_keeps_zero_columns():
    rng = np.random.default_rng(1)
    p = rng.normal(size=(30, 4))
    span = np.linalg.qr(p.copy())[0]
    q = orthogonalise(p.copy())
    np.testing.assert_allclose(q.T @ q, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(q @ q.T, span @ span.T, atol=1e-12)  # same column space
    z = np.zeros((5, 2))
    assert not np.isnan(orthogonalise(z)).any()


def test_resume_with_another_rank_is_refused_in_one_line(tmp_path):
    from mpiutil import HPCTRAIN, run_mpi
    from hpctrain.checkpoint import list_checkpoints

    common = ["train", "--algo", "powersgd", "--dataset", "synthetic", "--epochs", "1", "-q",
              "--checkpoint-every", "1epochs"]
    run_mpi(2, [HPCTRAIN, *common, "--rank", "2", "--out", tmp_path / "a"], timeout=120)
    (ck,) = list_checkpoints(tmp_path / "a")
    before = ck.read_bytes() if hasattr(ck, "read_bytes") else open(ck, "rb").read()
    res = run_mpi(2, [HPCTRAIN, *common, "--epochs", "2", "--rank", "3", "--out", tmp_path / "b", "--resume", ck],
                  timeout=120, check=False)
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(set(lines)) == 1 and "qs" in lines[0] and "Traceback" not in res.stderr, res.stderr
    assert open(ck, "rb").read() == before  # the checkpoint is untouched


@pytest.mark.parametrize("flags,needle", [(["--rank", "0"], "rank"), (["--aggregation", "ps"], "aggregation")])
def test_bad_powersgd_options_get_one_line(tmp_path, flags, needle):
    from mpiutil import HPCTRAIN, run_mpi

    res = run_mpi(1, [HPCTRAIN, "train", "--algo", "powersgd", "--dataset", "synthetic", "--epochs", "1", "-q",
                      "--out", tmp_path / "r", *flags], timeout=60, check=False)
    assert res.returncode == 2 and needle in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert len([ln for ln in res.stderr.splitlines() if ln.strip()]) == 1, res.stderr
