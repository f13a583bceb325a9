"""The memory pre-flight refuses a run that cannot fit before allocating it: one line,
exit 2, on every rank count from 1 to 4 (oracle: the sizes are computed by hand)."""

import subprocess

import pytest

from memory_oracle import mlp_params
from mpiutil import HPCTRAIN, run_mpi


def _run(ranks, args, tmp_path):
    cmd = [HPCTRAIN, "train", "--dataset", "synthetic", "-q", "--out", str(tmp_path / "run"), *args]
    if ranks == 1:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    return run_mpi(ranks, cmd, timeout=120, cwd=tmp_path, check=False)


@pytest.mark.parametrize("ranks", [1, 2, 3, 4])
def test_oversized_model_is_refused_on_every_rank_count(ranks, tmp_path):
    # 75e9 parameters: 300 GB for the float32 parameters alone, beyond this machine's memory
    r = _run(ranks, ["--model", "mlp", "--hidden", "1000000000"], tmp_path)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"model ({mlp_params(64, 10**9, 10)} parameters, gradient)" in lines[0], lines[0]
    assert "per rank" in lines[0] and "more than" in lines[0]
    assert not (tmp_path / "run").exists()  # nothing left behind


@pytest.mark.parametrize("ranks", [1, 2])
def test_max_memory_sets_the_budget(ranks, tmp_path):
    # 64*20000 + 20000 + 20000*10 + 10 = 1.5M parameters: 6 MB of float32 parameters, beyond 1M
    r = _run(ranks, ["--model", "mlp", "--hidden", "20000", "--max-memory", "1M", "--epochs", "1"], tmp_path)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert "(--max-memory 1M)" in lines[0] and f"{mlp_params(64, 20000, 10)} parameters" in lines[0]
    # the same run fits in 4G and trains
    r = _run(ranks, ["--model", "mlp", "--hidden", "20", "--max-memory", "4G", "--epochs", "1", "--overwrite"],
             tmp_path)
    assert r.returncode == 0, r.stderr


def test_memory_units():
    from hpctrain.errors import ConfigError
    from hpctrain.memory import check_fits, parse_memory

    assert parse_memory("512M") == 512 * 2**20 and parse_memory("1.5G") == 3 * 2**29 and parse_memory("") is None
    for bad in ("12X", "-1G", "0", "G"):
        with pytest.raises(ConfigError):
            parse_memory(bad)
    assert check_fits({"a": 100, "b": 24}, "124") == 124
    with pytest.raises(ConfigError, match=r"needs about .* \(b .*, a .*\), more than"):
        check_fits({"a": 100, "b": 125}, "224")
