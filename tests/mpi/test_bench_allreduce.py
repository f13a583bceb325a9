"""`hpctrain bench allreduce` runs, checks every result and writes a JSON table."""

import json

import pytest

from mpiutil import HPCTRAIN
from hpctrain.bench.common import parse_size, size_sweep
from hpctrain.errors import ConfigError


@pytest.mark.mpi
@pytest.mark.parametrize("n", [2, 3])
def test_bench_allreduce_table(mpirun, tmp_path, n):
    out = tmp_path / "b.json"
    res = mpirun(n, [HPCTRAIN, "bench", "allreduce", "--algo", "ring,mpi", "--min-bytes", "4",
                     "--max-bytes", "256K", "--step-factor", "8", "--iters", "3", "--warmup", "1", "--json", out],
                 timeout=120)
    rows = json.loads(out.read_text())
    assert {r["algo"] for r in rows} == {"ring", "mpi"}
    assert [r["size"] for r in rows if r["algo"] == "ring"] == [4, 32, 256, 2048, 16384, 131072, 262144]
    assert all(r["wrong"] == 0 and r["time_us"] > 0 and r["ranks"] == n for r in rows)
    assert "Avg bus bandwidth" in res.stdout and "busbw" in res.stdout


def test_size_parsing_and_sweep():
    assert parse_size("1K") == 1024 and parse_size("64M") == 64 << 20 and parse_size("100") == 100
    assert size_sweep(1024, 16384, 4) == [1024, 4096, 16384]
    assert size_sweep(1000, 5000, 4) == [1000, 4000, 5000]
    with pytest.raises(ConfigError):
        parse_size("12Q")
    with pytest.raises(ConfigError):
        size_sweep(10, 5, 2)
