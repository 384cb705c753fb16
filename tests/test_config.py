"""Typed configs: errors name the key path, --set overrides, the resolved config is saved."""

from __future__ import annotations

import pytest
import yaml

from synthmed.config import (
    ExperimentConfig,
    load_config,
    parse_override,
    save_config,
)
from synthmed.errors import ConfigError


def _yaml(tmp_path, data, name="exp.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_defaults_without_a_file():
    cfg = load_config()
    assert isinstance(cfg, ExperimentConfig) and cfg.train.lr_g == 2e-4


def test_wrong_type_names_the_key_path(tmp_path):
    path = _yaml(tmp_path, {"train": {"lr_g": "fast"}})
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "train.lr_g: expected a number, got 'fast'" in str(err.value)
    assert str(path) in str(err.value)


def test_unknown_key_names_the_key_path(tmp_path):
    with pytest.raises(ConfigError, match=r"model\.laten_dim: unknown key"):
        load_config(_yaml(tmp_path, {"model": {"laten_dim": 10}}))
    with pytest.raises(ConfigError, match=r"trian: unknown key"):
        load_config(_yaml(tmp_path, {"trian": {}}))


def test_int_and_range_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"train\.steps: expected an integer, got 'many'"):
        load_config(overrides=["train.steps=many"])
    with pytest.raises(ConfigError, match=r"train\.batch_size: .*greater than 0"):
        load_config(overrides=["train.batch_size=0"])


@pytest.mark.parametrize(("text", "key", "value"), [
    ("train.lr_g=1e-4", ["train", "lr_g"], 1e-4),
    ("train.steps=10", ["train", "steps"], 10),
    ("model.name=acgan", ["model", "name"], "acgan"),
    ("train.amp=true", ["train", "amp"], True),
    ("model.image_size=null", ["model", "image_size"], None),
])
def test_parse_override(text, key, value):
    assert parse_override(text) == (key, value)


def test_overrides_apply_over_the_file(tmp_path):
    path = _yaml(tmp_path, {"name": "x", "train": {"lr_g": 0.1, "steps": 5}})
    cfg = load_config(path, ["train.lr_g=1e-4", "data.path=/data/ddti"])
    assert cfg.train.lr_g == pytest.approx(1e-4) and cfg.train.steps == 5
    assert cfg.data.path == "/data/ddti"


@pytest.mark.parametrize(("texts", "match"), [
    (["train.lr_g"], "expected key.path=value"), (["=3"], "empty key"),
    (["name=x", "name.sub=1"], "name is not a section"),
])
def test_bad_overrides(texts, match):
    with pytest.raises(ConfigError, match=match):
        load_config(overrides=texts)


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match=r"not valid YAML \(line"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(tmp_path / "list.yaml")


def test_resolved_config_saved_and_reloaded(tmp_path):
    cfg = load_config(overrides=["train.lr_g=1e-4", "name=saved"])
    save_config(cfg, tmp_path / "run" / "config.yaml")
    again = load_config(tmp_path / "run" / "config.yaml")
    assert again == cfg
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["train"]["lr_g"] == 1e-4


def test_assignment_is_validated():
    cfg = load_config()
    with pytest.raises(ValueError):
        cfg.train.steps = "x"  # type: ignore[assignment]


def test_a_quoted_set_value_stays_a_string_and_a_number_is_a_class_name():
    cfg = load_config(None, ['utility.positive_class="4"'])
    assert cfg.utility.positive_class == "4"
    assert load_config(None, ["utility.positive_class=4"]).utility.positive_class == "4"
    assert load_config(None, ["utility.positive_class='1e-4'"]).utility.positive_class == "1e-4"
    assert load_config(None, ["train.lr_g=1e-4"]).train.lr_g == 1e-4  # unquoted: a number


def test_each_model_has_its_own_section_and_a_key_of_another_is_refused():
    from synthmed.errors import ConfigError

    cfg = load_config(None, ["model.name=ddpm", "model.sample_steps=20"])
    assert type(cfg.model).__name__ == "DDPMSection" and not hasattr(cfg.model, "l1_weight")
    with pytest.raises(ConfigError, match=r"^model.l1_weight: not a key of ddpm models \(used by "
                       r"pix2pix\)"):
        load_config(None, ["model.name=ddpm", "model.l1_weight=50"])


def test_an_old_flat_model_section_still_loads():
    """Configs saved before per-method sections hold every model key (at its default where the
    model does not use it): those are dropped; a saved config's other foreign keys too."""
    from synthmed.config import FLAT_MODEL_DEFAULTS, config_from_dict

    flat = {**FLAT_MODEL_DEFAULTS, "name": "ddpm", "channels": [8, 16], "sample_steps": 7}
    cfg = config_from_dict({"model": flat})
    assert cfg.model.channels == [8, 16] and cfg.model.sample_steps == 7
    odd = {**flat, "l1_weight": 5.0}  # accepted (and unused) by the old flat section
    assert config_from_dict({"model": odd}, saved=True).model.sample_steps == 7
    with pytest.raises(Exception, match="model.l1_weight: not a key of ddpm"):
        config_from_dict({"model": odd})
