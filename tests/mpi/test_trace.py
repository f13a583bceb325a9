"""--trace: one merged Chrome trace-event file, valid JSON, one track per rank, the
phases named; the per-epoch split is exclusive time (checked against a hand-made trace)."""

import json
import subprocess

import pytest

from hpctrain.trace import CATEGORIES, summarize
from mpiutil import HPCTRAIN, run_mpi

TRAIN = [HPCTRAIN, "train", "--dataset", "synthetic", "--epochs", "2", "--batch-size", "256", "-q"]


def _check_events(doc, n):
    events = doc["traceEvents"]
    for ev in events:
        assert ev["ph"] in ("X", "i", "M") and isinstance(ev["name"], str) and 0 <= ev["pid"] < n
        if ev["ph"] == "X":
            assert isinstance(ev["ts"], (int, float)) and ev["dur"] >= 0
    names = {r: {ev["name"] for ev in events if ev["pid"] == r and ev["ph"] == "X"} for r in range(n)}
    tracks = {ev["pid"]: ev["args"]["name"] for ev in events if ev["ph"] == "M" and ev["name"] == "process_name"}
    assert tracks == {r: f"rank {r}" for r in range(n)}
    return names


@pytest.mark.mpi
@pytest.mark.parametrize("n,args,phases", [
    (2, ["--collective", "ring", "--checkpoint-every", "1epochs"],
     {"compute", "step", "allreduce ring", "reduce-scatter", "allgather", "mpi sendrecv", "evaluate",
      "checkpoint write"}),
    (3, ["--collective", "ps"], {"compute", "step", "server round", "mpi recv"}),
    (2, ["--algo", "gmc", "--compressor", "topk"], {"compute", "step", "compress", "mpi waitall"}),
])
def test_trace_is_merged_valid_and_names_the_phases(tmp_path, n, args, phases):
    path = tmp_path / "t.json"
    res = run_mpi(n, [*TRAIN, *args, "--out", tmp_path / "run", "--trace", path], timeout=180)
    with open(path) as f:
        doc = json.load(f)  # valid JSON, as Perfetto / chrome://tracing load it
    names = _check_events(doc, n)
    for r in range(n):
        missing = phases - names[r]
        assert not missing, (r, missing)
    rows = summarize(doc)
    assert [r["epoch"] for r in rows] == [1, 2] and all(r["compute"] > 0 and r["comm"] > 0 for r in rows)
    show = subprocess.run([HPCTRAIN, "trace", str(path)], capture_output=True, text=True, timeout=60)
    assert show.returncode == 0 and "compute" in show.stdout and len(show.stdout.splitlines()) == 3
    assert res.stderr.strip() == ""


def test_summary_counts_exclusive_time():
    # rank 0: epoch 1 = step [0, 100) holding compress [10, 30) and mpi [40, 90) holding a nested
    # mpi [50, 60); compute [100, 150). rank 1: epoch 1 = compute [0, 50). Times in microseconds.
    ev = [
        {"ph": "i", "name": "epoch 1", "ts": 0, "pid": 0}, {"ph": "i", "name": "epoch 1", "ts": 0, "pid": 1},
        {"ph": "X", "name": "step", "cat": "other", "ts": 0, "dur": 100, "pid": 0},
        {"ph": "X", "name": "compress", "cat": "compress", "ts": 10, "dur": 20, "pid": 0},
        {"ph": "X", "name": "reduce-scatter", "cat": "comm", "ts": 40, "dur": 50, "pid": 0},
        {"ph": "X", "name": "mpi sendrecv", "cat": "wait", "ts": 50, "dur": 10, "pid": 0},
        {"ph": "X", "name": "compute", "cat": "compute", "ts": 100, "dur": 50, "pid": 0},
        {"ph": "X", "name": "compute", "cat": "compute", "ts": 0, "dur": 50, "pid": 1},
    ]
    (row,) = summarize({"traceEvents": ev})
    # a collective's own exclusive time (its local reductions) is "other", as in metrics.StepClock
    want = {"compute": (50 + 50) / 2, "compress": 20 / 2, "comm": 10 / 2, "io": 0, "other": (30 + 40) / 2}
    assert {c: round(row[c] * 1e6, 6) for c in CATEGORIES} == want


def test_trace_command_bad_file(tmp_path):
    p = tmp_path / "x.json"
    p.write_text("{not json")
    r = subprocess.run([HPCTRAIN, "trace", str(p)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and "not a trace-event JSON file" in r.stderr
