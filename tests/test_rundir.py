"""Run directories: lineages (no path deletes or overwrites another line's checkpoint or
the one resumed from; --resume latest follows the newest line), a full disk at any point
(tmpfs), stale temporary files of dead writers, half-written metrics lines."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from hpctrain.checkpoint import checkpoint_lineage, list_checkpoints, read_checkpoint, resolve_resume, verify_checkpoint
from mpiutil import HPCTRAIN

TRAIN = ["train", "--dataset", "synthetic", "-q"]


def run(*args, ok=True, cwd=None):
    r = subprocess.run([HPCTRAIN, *map(str, args)], capture_output=True, text=True, timeout=120, cwd=cwd,
                       env={**os.environ, "HPCTRAIN_THREADS": "1"})
    if ok:
        assert r.returncode == 0, r.stderr
    return r


def names(run_dir):
    return [os.path.basename(p) for p in list_checkpoints(run_dir)]


def test_resuming_an_older_checkpoint_starts_a_lineage_that_latest_follows(tmp_path):
    a = tmp_path / "a"
    run(*TRAIN, "--epochs", "2", "--checkpoint-every", "20steps", "--keep", "3", "--out", a)
    first = list_checkpoints(a)
    assert len(first) == 3 and len({checkpoint_lineage(p) for p in first}) == 1
    old_line = {p: open(p, "rb").read() for p in first}
    older = first[0]  # not the newest: resuming it branches
    run(*TRAIN, "--epochs", "2", "--checkpoint-every", "20steps", "--keep", "1", "--lr", "0.01",
        "--out", a, "--resume", older)
    # every checkpoint of the old line is intact, the resumed-from one included
    assert all(os.path.exists(p) and open(p, "rb").read() == b for p, b in old_line.items())
    new = [p for p in list_checkpoints(a) if p not in old_line]
    assert len(new) == 1 and checkpoint_lineage(new[0]) != checkpoint_lineage(older)  # keep 1 of the new line
    latest = resolve_resume("latest", str(a))
    assert latest == new[0]
    assert "lr = 0.01" in read_checkpoint(latest).config_toml
    # continuing latest keeps the new lineage (pruning goes on within it)
    run(*TRAIN, "--epochs", "3", "--checkpoint-every", "20steps", "--keep", "1", "--lr", "0.01",
        "--out", a, "--resume", "latest")
    after = [p for p in list_checkpoints(a) if p not in old_line]
    assert {checkpoint_lineage(p) for p in after} == {checkpoint_lineage(new[0])}
    assert resolve_resume("latest", str(a)) == max(after)
    assert all(verify_checkpoint(p) == [] for p in list_checkpoints(a))


def test_overwrite_and_resume_into_another_run_keep_its_checkpoints(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    run(*TRAIN, "--epochs", "1", "--checkpoint-every", "1epochs", "--out", a)
    run(*TRAIN, "--epochs", "1", "--checkpoint-every", "1epochs", "--out", b)
    b_files = {p: open(p, "rb").read() for p in list_checkpoints(b)}
    src = list_checkpoints(a)[-1]
    r = run(*TRAIN, "--epochs", "2", "--checkpoint-every", "1epochs", "--out", b, "--resume", src, ok=False)
    assert r.returncode == 2 and "already holds another run" in r.stderr
    run(*TRAIN, "--epochs", "2", "--checkpoint-every", "1epochs", "--keep", "1", "--out", b, "--resume", src,
        "--overwrite")
    assert all(open(p, "rb").read() == data for p, data in b_files.items())  # b's own line untouched
    assert os.path.exists(src)
    run(*TRAIN, "--epochs", "1", "--checkpoint-every", "1epochs", "--keep", "1", "--out", b, "--overwrite")
    assert all(open(p, "rb").read() == data for p, data in b_files.items())


def test_half_written_metrics_line_and_empty_metrics(tmp_path):
    a = tmp_path / "a"
    run(*TRAIN, "--epochs", "2", "--checkpoint-every", "1epochs", "--out", a)
    with open(a / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 3, "train_lo')  # what a full disk or a kill leaves
    run(*TRAIN, "--epochs", "3", "--checkpoint-every", "1epochs", "--out", a, "--resume", "latest")
    recs = [json.loads(x) for x in open(a / "metrics.jsonl")]
    assert [r["epoch"] for r in recs] == [1, 2, 3]
    e = tmp_path / "e"
    e.mkdir()
    (e / "metrics.jsonl").write_text("")  # a failed run's leftovers do not block a rerun
    run(*TRAIN, "--epochs", "1", "--out", e)


def test_stale_temp_files_of_dead_writers_are_removed(tmp_path):
    a = tmp_path / "a"
    run(*TRAIN, "--epochs", "1", "--checkpoint-every", "1epochs", "--out", a)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    ck = a / "checkpoints"
    stale = ck / f".ckpt-000000093-deadbeef.h5.tmp-{dead.pid}"
    live = ck / f".ckpt-000000093-deadbeef.h5.tmp-{os.getpid()}"  # a writer that is still running
    stale.write_bytes(b"\0" * 4096)
    live.write_bytes(b"\0" * 4096)
    run(*TRAIN, "--epochs", "2", "--checkpoint-every", "1epochs", "--out", a, "--resume", "latest")
    assert not stale.exists() and live.exists()


def _mount_tmpfs(path, size):
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    return r.returncode == 0


@pytest.mark.parametrize("size", ["4k", "12k", "24k", "40k", "64k", "96k"])
def test_disk_full_at_any_point(tmp_path, size):
    """A tiny tmpfs as --out: the run ends with exit 0, or exit 2 and one line naming the
    path; never a segfault or traceback, no temporary file left, every checkpoint sound."""
    mnt = tmp_path / "mnt"
    if os.geteuid() != 0 or not _mount_tmpfs(mnt, size):
        pytest.skip("needs root to mount a tmpfs")
    try:
        out = mnt / "run"
        r = run(*TRAIN, "--epochs", "3", "--checkpoint-every", "30steps", "--keep", "0", "--out", out, ok=False)
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        assert r.returncode in (0, 2), (r.returncode, r.stderr)
        assert "Traceback" not in r.stderr
        if r.returncode == 2:
            assert len(lines) == 1 and "No space left on device" in lines[0] and str(mnt) in lines[0], r.stderr
        left = [n for _, _, fs in os.walk(mnt) for n in fs if ".tmp-" in n]
        assert not left, left
        assert all(verify_checkpoint(p) == [] for p in list_checkpoints(out))
        if os.path.exists(out / "summary.json"):
            json.loads((out / "summary.json").read_text())  # never a 0-byte or partial summary
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
