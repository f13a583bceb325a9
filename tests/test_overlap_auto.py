"""The rule of overlap "auto" (a free core per rank for the communication thread) and the
tri-state ``overlap`` setting: TOML true / false / "auto", the --overlap/--no-overlap flags,
bad values one ConfigError line."""

import pytest
from click.testing import CliRunner

from hpctrain.config import TrainConfig, config_to_toml, load_config
from hpctrain.errors import ConfigError
from hpctrain.overlap import overlap_auto


@pytest.mark.parametrize("cores,ranks,ok", [
    (2, 1, True), (1, 1, False), (2, 2, False), (3, 2, False), (4, 2, True),  # 2 cores: 1 rank overlaps, 2 do not
    (16, 8, True), (15, 8, False), (128, 4, True), (64, 64, False),
])
def test_auto_needs_twice_as_many_cores_as_ranks_on_the_node(cores, ranks, ok):
    got, why = overlap_auto(cores, ranks)
    assert got is ok
    assert (why == "") is ok  # a reason exactly when it is off


def test_auto_reason_says_how_the_cores_are_shared_and_how_to_force_it():
    assert overlap_auto(2, 4) == (False, "4 ranks share 2 cores on this machine (overlap needs a free core per rank; "
                                         "--overlap forces it)")
    assert overlap_auto(1, 1, where="the machine of rank 3", force="overlap=True") == (
        False, "1 rank has 1 core on the machine of rank 3 (overlap needs a free core per rank; "
               "overlap=True forces it)")
    assert overlap_auto(3, 2, force=None)[1] == ("2 ranks share 3 cores on this machine (overlap needs a free core "
                                                 "per rank)")


def test_overlap_defaults_to_auto_and_takes_true_false_auto_from_toml(tmp_path):
    assert TrainConfig().overlap == "auto" and load_config(None).overlap == "auto"
    p = tmp_path / "c.toml"
    for text, want in (("true", True), ("false", False), ('"auto"', "auto")):
        p.write_text(f"overlap = {text}\n")
        assert load_config(p).overlap == want
        assert load_config(p, {"overlap": True}).overlap is True  # a flag overrides the file
    cfg = load_config(None, {"overlap": "auto"})
    p.write_text(config_to_toml(cfg))
    assert load_config(p) == cfg  # "auto" round-trips through a written config


@pytest.mark.parametrize("text,shown", [("3", "int 3"), ('"yes"', "str 'yes'"), ('"Auto"', "str 'Auto'"),
                                        ('"true"', "str 'true'"), ("0", "int 0"), ("1.0", "float 1.0"),
                                        ("[true]", "list [True]")])
def test_bad_overlap_is_one_clear_error(tmp_path, text, shown):
    p = tmp_path / "c.toml"
    p.write_text(f"overlap = {text}\n")
    with pytest.raises(ConfigError) as err:
        load_config(p)
    assert str(err.value) == f'overlap must be true, false or "auto", got {shown}'


@pytest.mark.parametrize("flags,want", [([], "auto"), (["--overlap"], True), (["--no-overlap"], False)])
def test_overlap_flags_are_on_off_and_auto_when_not_given(monkeypatch, flags, want):
    import hpctrain.train
    from hpctrain.cli import cli

    seen = {}
    monkeypatch.setattr(hpctrain.train, "catch_stop_signals_early", lambda: None)
    monkeypatch.setattr(hpctrain.train, "run_training", lambda cfg: seen.setdefault("cfg", cfg))
    res = CliRunner().invoke(cli, ["train", "--dataset", "synthetic", *flags])
    assert res.exit_code == 0, res.output
    assert seen["cfg"].overlap == want
