"""Progress: a live tqdm bar when mpiexec runs from a terminal (a pseudo-terminal made by
``script``), plain periodic lines with rate and ETA in batch logs, nothing with -q."""

import os
import re
import shutil
import subprocess

import pytest

from mpiutil import HPCTRAIN, kill_group, mpiexec_cmd, run_mpi

TRAIN = [HPCTRAIN, "train", "--dataset", "synthetic", "--epochs", "2", "--batch-size", "16"]


@pytest.mark.mpi
@pytest.mark.skipif(not shutil.which("script"), reason="needs script(1) (util-linux) for a pseudo-terminal")
def test_bar_shows_under_mpiexec_from_a_terminal(tmp_path):
    cmd = " ".join(mpiexec_cmd(2) + TRAIN + ["--out", str(tmp_path / "run")])
    log = tmp_path / "typescript"
    proc = subprocess.Popen(["script", "-qec", cmd, str(log)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True,
                            env={**os.environ, "HPCTRAIN_THREADS": "1", "HPCTRAIN_PROGRESS": ""})
    try:
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            kill_group(proc)
    text = log.read_bytes().decode(errors="replace")  # keep the carriage returns
    assert proc.returncode == 0, text[-3000:]
    # tqdm's live bar: carriage returns redrawing "epoch 1/2:  NN% k/375 [...step/s, loss ...]"
    frames = re.findall(r"\repoch 1/2:\s+\d+%\|?[^\r]*?\d+/375 \[[^\]]*step/s", text)
    assert frames, text[-3000:]
    assert "epoch   2  train_loss" in text  # the epoch summaries still print


@pytest.mark.mpi
def test_batch_logs_get_periodic_plain_lines(tmp_path):
    res = run_mpi(2, [*TRAIN, "--out", tmp_path / "run"], timeout=120,
                  env={"HPCTRAIN_PROGRESS": None, "HPCTRAIN_PROGRESS_EVERY": "0"})
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    pat = re.compile(r"epoch [12]/2: step \d+/375 \(\d+%\), [\d.]+k? samples/s, loss [\d.]+, ETA \d+:\d\d:\d\d")
    assert lines and all(pat.fullmatch(x) for x in lines), res.stderr[-2000:]
    assert "\r" not in res.stderr
    quiet = run_mpi(2, [*TRAIN, "-q", "--out", tmp_path / "q"], timeout=120, env={"HPCTRAIN_PROGRESS_EVERY": "0"})
    # -q: no progress, no epoch lines; only the final accuracy line
    assert quiet.stderr.strip() == "" and quiet.stdout.strip().startswith("final test accuracy:")
    assert len(quiet.stdout.strip().splitlines()) == 1
