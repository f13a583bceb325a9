"""What ``--collective auto`` chose is shown in the banner, summary.json, config.toml and
plot labels; an algorithm that uses no allreduce shows none."""

import json
import subprocess

from hpctrain.collectives.auto import describe
from hpctrain.plot import load_run
from mpiutil import HPCTRAIN


def _train(tmp_path, name, *args):
    res = subprocess.run([HPCTRAIN, "train", "--dataset", "synthetic", "--epochs", "1", "--max-steps", "2",
                          "--threads", "1", "--out", tmp_path / name, *args], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    return res.stdout.splitlines()[0], json.loads((tmp_path / name / "summary.json").read_text())


def test_auto_choice_is_shown(tmp_path):
    banner, summary = _train(tmp_path, "a", "--algo", "dmsgd", "--collective", "auto")
    # softmax on synthetic: d = 65 x 10 float32 = 2600 bytes, below the 64 KiB threshold
    assert "dmsgd over auto (recursive for 2.5 KiB)" in banner, banner
    assert summary["allreduce_choice"] == {"2600": "recursive"}
    assert summary["collective_used"] == "auto (recursive for 2.5 KiB)"
    assert "# --collective auto chose: recursive for 2.5 KiB" in (tmp_path / "a" / "config.toml").read_text()
    label, _ = load_run(tmp_path / "a")
    assert label == "a (dmsgd, auto (recursive for 2.5 KiB))"


def test_gossip_shows_no_allreduce(tmp_path):
    banner, summary = _train(tmp_path, "g", "--algo", "dpsgd")
    assert " over " not in banner and "dpsgd on 1 rank" in banner, banner
    assert summary["collective_used"] == "" and summary["allreduce_choice"] == {}
    assert "uses no allreduce" in (tmp_path / "g" / "config.toml").read_text()
    assert load_run(tmp_path / "g")[0] == "g (dpsgd)"


def test_describe():
    assert describe("ring", {100: "ring"}) == "ring"
    assert describe("auto", {}) == ""
    assert describe("auto", {2 << 20: "ring", 100: "recursive"}) == "auto (recursive for 100 B, ring for 2.0 MiB)"
