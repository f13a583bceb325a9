"""The compression benchmark returns one well-formed row per (op, size) and a table."""

import pytest

from hpctrain.bench.compress import format_compress_table, run_compress_bench
from hpctrain.errors import ConfigError


def test_rows_and_table():
    ops = ["argpartition", "topk", "approx-topk", "minmax:bits=4,scaling=norm", "qsgd:bits=4", "sign", "fp16"]
    rows = run_compress_bench(ops, [20_000, 5_000], repeats=2, warmup=0)
    assert [(r["op"], r["size"]) for r in rows] == [(o, s) for s in (20_000, 5_000) for o in ops]
    for r in rows:
        assert r["compress_min_s"] <= r["compress_med_s"] and r["compress_gbps"] > 0
        if r["op"] not in ("argpartition",):
            assert r["wire_bytes"] > 32 and r["decompress_min_s"] <= r["decompress_med_s"]
    topk = rows[1]
    assert topk["selected_fraction"] == 200 / 20_000 and topk["wire_bytes"] == 32 + 200 * 8
    assert rows[3]["params"] == {"bits": 4, "scaling": "norm"} and rows[3]["selected_fraction"] is None
    table = format_compress_table(rows).splitlines()
    assert len(table) == 1 + len(rows) and "comp_GB/s" in table[0]


def test_bad_arguments():
    with pytest.raises(ConfigError):
        run_compress_bench(["qsgd:bits=3"], [10])
    with pytest.raises(ConfigError):
        run_compress_bench(["topk"], [10], repeats=0)
    with pytest.raises(ConfigError):
        run_compress_bench(["topk:density"], [10])
