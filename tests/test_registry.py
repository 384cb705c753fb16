"""The validating registry."""

from __future__ import annotations

import pytest

from synthmed.errors import ConfigError
from synthmed.registry import Registry


def test_register_get_build_and_names():
    reg: Registry = Registry("model")

    @reg.register("dcgan")
    def make(width=1):
        return ("dcgan", width)

    reg.register("acgan", lambda: "acgan")
    assert reg.get("dcgan") is make and reg.names() == ["acgan", "dcgan"]
    assert reg.build("dcgan", width=3) == ("dcgan", 3) and "acgan" in reg and len(reg) == 2
    assert list(reg) == ["acgan", "dcgan"]


def test_unknown_name_lists_choices_and_key():
    reg: Registry = Registry("model")
    reg.register("dcgan", 1)
    reg.register("acgan", 2)
    msg = "model.name: unknown model 'dcgn'; choose one of acgan, dcgan"
    with pytest.raises(ConfigError, match=msg):
        reg.get("dcgn", key="model.name")


def test_duplicates_and_bad_names():
    reg: Registry = Registry("loss")
    reg.register("bce", 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("bce", 2)
    reg.register("bce", 3, overwrite=True)
    assert reg.get("bce") == 3
    with pytest.raises(ValueError, match="alphanumeric"):
        reg.register("bad name", 1)
