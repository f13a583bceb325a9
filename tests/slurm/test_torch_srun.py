"""A user's own PyTorch script with hpctrain.torch under ``srun`` on the emulated
multi-node Slurm (one slurmd per network namespace, TCP between nodes): gradient mode on 2
and 4 ranks equals single-process training on the concatenated batch; algorithm mode with
gmc trains. (The same script under ``mpiexec``: tests/torchapi/test_torch_script.py.)"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "torchapi"))

from jobutil import REPO  # noqa: E402
from scripts import USER_SCRIPT  # noqa: E402

pytestmark = pytest.mark.mpi


def _srun(cluster, tmp_path, nodes, per_node, name, **cfg):
    script = tmp_path / "train_user.py"
    script.write_text(USER_SCRIPT)
    out = tmp_path / name
    out.mkdir()
    ranks = nodes * per_node
    cfg = {"out": str(out), "ranks": ranks, "steps": 6, "batch": 4, **cfg}
    env = {"HPCTRAIN_THREADS": "1", "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get(
        "PYTHONPATH", "")) if p), "MPIR_CVAR_CH4_NETMOD": "ofi", "FI_PROVIDER": "tcp"}
    res = cluster.run(["srun", "--mpi=pmi2", "-N", str(nodes), f"--ntasks-per-node={per_node}", sys.executable,
                       str(script), json.dumps(cfg)], timeout=240, cwd=REPO, env=env)
    assert res.returncode == 0, f"srun failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
    return [np.load(out / f"params-{r}.npy") for r in range(ranks)], \
        [json.loads((out / f"result-{r}.json").read_text()) for r in range(ranks)]


def _single(tmp_path, ranks, name, **cfg):
    script = tmp_path / "train_user.py"
    script.write_text(USER_SCRIPT)
    out = tmp_path / name
    out.mkdir()
    cfg = {"out": str(out), "ranks": ranks, "steps": 6, "batch": 4, "mode": "single", **cfg}
    subprocess.run([sys.executable, str(script), json.dumps(cfg)], check=True, timeout=120, cwd=tmp_path,
                   capture_output=True)
    return np.load(out / "params-0.npy")


@pytest.mark.parametrize("nodes,per_node", [(2, 1), (2, 2)])
def test_gradient_mode_under_srun_equals_single_process(slurm_nodes, tmp_path, nodes, per_node):
    ranks = nodes * per_node
    ref = _single(tmp_path, ranks, "single")
    got, res = _srun(slurm_nodes, tmp_path, nodes, per_node, "grad", mode="grad", overlap=True)
    for p in got:
        np.testing.assert_array_equal(p, got[0])
    np.testing.assert_allclose(got[0], ref, rtol=1e-9, atol=1e-11)
    assert res[0]["overlap"]


def test_algorithm_mode_gmc_trains_under_srun(slurm_nodes, tmp_path):
    _, res = _srun(slurm_nodes, tmp_path, 2, 1, "gmc", mode="algo", algo="gmc", lr=0.2, steps=30, cycle=3,
                   dtype="float32", options={"momentum": 0.5, "density": 0.1, "compressor": "topk"})
    losses = res[0]["losses"]
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses
