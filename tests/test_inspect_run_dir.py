"""``hpctrain inspect RUN_DIR`` inspects the run's latest checkpoint; a directory without
checkpoints is one line and exit 2."""

import subprocess

from mpiutil import HPCTRAIN


def test_inspect_takes_a_run_directory(tmp_path):
    run = tmp_path / "run"
    res = subprocess.run([HPCTRAIN, "train", "--dataset", "synthetic", "--epochs", "1", "--max-steps", "4",
                          "--checkpoint-every", "2steps", "--threads", "1", "-q", "--out", run],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    out = subprocess.run([HPCTRAIN, "inspect", run, "--verify"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "ckpt-000000004-" in out.stdout.splitlines()[0] and "verified" in out.stdout


def test_inspect_directory_without_checkpoints(tmp_path):
    out = subprocess.run([HPCTRAIN, "inspect", tmp_path], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and "no checkpoint" in out.stderr
