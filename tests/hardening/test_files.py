"""Outputs never overwrite inputs, run files or special files; inputs are regular files."""

import os
import stat

import pytest

from hpctrain.errors import ConfigError, DataError, OutputError
from hpctrain.files import check_input, check_output, check_run_files, write_atomic


def test_output_naming_an_input_through_a_symlink_is_refused(tmp_path):
    data = tmp_path / "a.svm"
    data.write_text("1 1:1\n")
    link = tmp_path / "trace.json"
    link.symlink_to(data)
    with pytest.raises(ConfigError, match="would overwrite the input"):
        check_output(str(link), "--trace", [str(data)])
    assert data.read_text() == "1 1:1\n"


def test_output_in_an_input_directory_may_be_new_but_not_an_existing_file(tmp_path):
    d = tmp_path / "idx"
    d.mkdir()
    (d / "train-images").write_bytes(b"x")
    check_output(str(d / "new.json"), "--trace", [str(d)])
    with pytest.raises(ConfigError, match="would overwrite the input"):
        check_output(str(d / "train-images"), "--trace", [str(d)])


def test_run_files_and_checkpoints_are_off_limits(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    for name in ("metrics.jsonl", "summary.json", "config.toml", "checkpoints/ckpt-1.h5"):
        with pytest.raises(ConfigError, match="a file the run writes itself"):
            check_output(str(run / name), "--trace", (), str(run))


def test_devices_are_refused_and_left_alone(tmp_path):
    dev = tmp_path / "null"  # a copy of /dev/null: a regression replaces it, not the machine's
    os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    with pytest.raises(ConfigError, match="a character device"):
        check_output(str(dev), "--trace")
    with pytest.raises(OutputError, match="it is a character device"):
        write_atomic(str(dev), "x")
    assert stat.S_ISCHR(os.stat(dev).st_mode)
    with pytest.raises(DataError, match="a character device"):
        check_input(str(dev))


def test_fifo_input_is_refused_without_opening_it(tmp_path):
    fifo = tmp_path / "p"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="FIFO"):
        check_input(str(fifo))  # would block forever in open()
    run = tmp_path / "run"
    run.mkdir()
    os.mkfifo(run / "metrics.jsonl")
    with pytest.raises(ConfigError, match="metrics.jsonl is a FIFO"):
        check_run_files(str(run))


def test_write_atomic_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    write_atomic(str(target), "new")
    assert target.read_text() == "new"
    assert sorted(os.listdir(tmp_path)) == ["out.json"]
    with pytest.raises(OutputError, match="cannot write"):
        write_atomic(str(tmp_path / "nowhere" / "x.json"), "x")
    assert target.read_text() == "new"


def test_nul_byte_paths_are_one_error(tmp_path):
    with pytest.raises(ConfigError, match="NUL byte"):
        check_output("a\0b", "--trace")
    with pytest.raises(DataError, match="NUL byte"):
        check_input("a\0b")
