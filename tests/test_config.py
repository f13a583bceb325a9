"""TOML config: loading, overrides, unknown keys with suggestions, types and ranges."""

import pytest

from hpctrain.config import config_to_toml, load_config
from hpctrain.errors import ConfigError


def test_toml_then_flags_override(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[train]\nlr = 0.2\nepochs = 3\ndataset = "synthetic"\n')
    cfg = load_config(p, {"epochs": 7, "lr": None})
    assert (cfg.lr, cfg.epochs, cfg.dataset) == (0.2, 7, "synthetic")


def test_resolved_config_roundtrips_through_toml(tmp_path):
    cfg = load_config(None, {"lr": 0.3, "seed": 9})
    p = tmp_path / "r.toml"
    p.write_text(config_to_toml(cfg))
    assert load_config(p) == cfg


@pytest.mark.parametrize(
    "text, match",
    [
        ("lrr = 0.1", "unknown config key 'lrr' \\(did you mean 'lr'\\?\\)"),
        ("epochs = 'ten'", "epochs must be int"),
        ("lr = -1", "lr must be > 0"),
        ("momentum = 1.0", "momentum must be in \\[0, 1\\)"),
        ("collective = 'tree'", "unknown collective 'tree'"),
        ("lr = = 3", "invalid TOML"),
        ("batch_size = true", "batch_size must be int"),
    ],
)
def test_bad_config_is_one_clear_error(tmp_path, text, match):
    p = tmp_path / "bad.toml"
    p.write_text(text + "\n")
    with pytest.raises(ConfigError, match=match):
        load_config(p)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")
