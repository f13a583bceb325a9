"""CLI checks that happen before any work: --plot without matplotlib, config-key synonyms,
a missing -n, the position of a checkpoint in inspect, $HPCTRAIN_DATA without fallback."""

import os
import subprocess

import pytest

from hpctrain.config import load_config
from hpctrain.errors import ConfigError
from mpiutil import HPCTRAIN, run_mpi

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_plot_without_matplotlib_fails_before_the_sweep(tmp_path):
    fake = tmp_path / "fake" / "matplotlib"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('hidden for the test')\n")
    env = {"PYTHONPATH": f"{tmp_path / 'fake'}:{ROOT}"}
    res = run_mpi(2, [HPCTRAIN, "bench", "collective", "--algo", "ring", "--min-bytes", "1K", "--max-bytes", "1K",
                      "--plot", tmp_path / "p.png"], timeout=60, env=env, check=False)
    assert res.returncode == 2 and res.stderr.strip().splitlines() == [
        "hpctrain: error: --plot needs matplotlib: pip install 'hpctrain[plot]'"], res.stderr
    assert "busbw" not in res.stdout  # the sweep never ran


@pytest.mark.parametrize("key,want", [("learning_rate", "lr"), ("num_epochs", "epochs"), ("batchsize", "batch_size")])
def test_config_key_suggestions(tmp_path, key, want):
    p = tmp_path / "c.toml"
    p.write_text(f"{key} = 1\n")
    with pytest.raises(ConfigError, match=f"did you mean '{want}'"):
        load_config(str(p))


def test_topology_without_n():
    r = subprocess.run([HPCTRAIN, "topology", "ring"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "add -n N" in r.stderr and "None" not in r.stderr


def test_inspect_says_end_of_epoch(tmp_path):
    out = tmp_path / "r"
    subprocess.run([HPCTRAIN, "train", "--dataset", "synthetic", "--epochs", "2", "--checkpoint-every", "1epochs",
                    "-q", "--out", str(out)], check=True, timeout=120)
    ck = sorted((out / "checkpoints").glob("ckpt-*.h5"))
    r = subprocess.run([HPCTRAIN, "inspect", str(ck[0])], capture_output=True, text=True, timeout=60)
    assert "end of epoch 1 (step 93); a resume starts epoch 2" in r.stdout, r.stdout


def test_hpctrain_data_that_does_not_exist_is_an_error(tmp_path):
    r = subprocess.run([HPCTRAIN, "train", "--epochs", "1", "--out", str(tmp_path / "r")], capture_output=True,
                       text=True, timeout=60, env={**os.environ, "HPCTRAIN_DATA": str(tmp_path / "nowhere")})
    assert r.returncode == 2 and r.stderr.strip() == \
        f"hpctrain: error: HPCTRAIN_DATA {tmp_path / 'nowhere'} is not a directory"
    assert not (tmp_path / "r").exists()


def test_divergence_is_one_line_without_runtime_warnings(tmp_path):
    res = run_mpi(2, [HPCTRAIN, "train", "--dataset", "synthetic", "--epochs", "1", "--lr", "1e30", "-q", "--out",
                      tmp_path / "r"], timeout=120, check=False)
    assert res.returncode == 3 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "RuntimeWarning" not in res.stderr and "NaN/Inf at step" in res.stderr
