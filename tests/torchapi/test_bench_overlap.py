"""jobs/bench_overlap.py runs on tiny sizes (no speed asserted): every row, the native
model's rows, and the per-bucket profiles as Chrome traces."""

import json
import os

import pytest

pytest.importorskip("torch")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_bench_overlap_runs_with_native_rows_and_profiles(mpirun, tmp_path):
    prof = tmp_path / "prof.json"
    res = mpirun(2, [os.path.join(ROOT, "jobs", "bench_overlap.py"), "--steps", "1", "--repeats", "1", "--batch", "2",
                     "--profile", str(prof)], timeout=180)
    for row in ("compute alone", "comm alone", "no overlap", "overlap", "native cnn compute alone",
                "native cnn comm alone", "native cnn no overlap", "native cnn overlap", "gmc s/d 0.01"):
        assert any(line.startswith(row + " ") for line in res.stdout.splitlines()), (row, res.stdout)
    assert "native cnn overlap / max(compute, comm)" in res.stdout
    auto = "on" if len(os.sched_getaffinity(0)) >= 4 else "off: 2 ranks share "  # 2 unbound ranks
    assert f"# overlap auto (hpctrain train's default) here: {auto}" in res.stdout, res.stdout
    for path in (prof, tmp_path / "prof-cnn.json"):
        events = json.loads(path.read_text())["traceEvents"]
        buckets = [e for e in events if e.get("cat") == "comm"]
        assert {e["pid"] for e in buckets} == {0, 1}
        assert all(e["dur"] >= 0 and e["args"]["wakeup_us"] >= 0 for e in buckets)
