"""`hpctrain bench compress` drives the compression benchmark from the command line."""

import json
import subprocess

from mpiutil import HPCTRAIN


def test_bench_compress_cli(tmp_path):
    out = tmp_path / "c.json"
    res = subprocess.run([HPCTRAIN, "bench", "compress", "--ops", "topk;minmax:bits=2,scaling=norm", "--sizes", "10K",
                          "--repeats", "1", "--density", "0.05", "--json", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    rows = json.loads(out.read_text())
    assert [r["op"].split(":")[0] for r in rows] == ["topk", "minmax"]
    assert rows[0]["selected_fraction"] == 0.05 and rows[0]["size"] == 10 * 1024  # K = 2^10, as in every bench command
    assert "approx" not in res.stdout and "topk" in res.stdout


def test_bench_compress_bad_size(tmp_path):
    res = subprocess.run([HPCTRAIN, "bench", "compress", "--sizes", "ten"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "invalid size" in res.stderr and "Traceback" not in res.stderr
