"""The optional Inception path: clear errors without the extra or the weights; wiring."""

from __future__ import annotations

import importlib.util
import sys
import types

import numpy as np
import pytest
import torch
from torch import nn

from synthmed.errors import SynthmedError
from synthmed.metrics import inception
from synthmed.metrics.inception import EXPECTED_SHAPES, load_inception


def _fake_weights(path, **override):
    state = {k: torch.randn(shape) for k, shape in EXPECTED_SHAPES.items()}
    state.update(override)
    torch.save(state, path)
    return path


@pytest.fixture
def no_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))


def test_missing_weights_say_how_to_get_them(no_hub_cache):
    with pytest.raises(SynthmedError) as err:
        load_inception(None)
    msg = str(err.value)
    assert "pip install 'synthmed[inception]'" in msg and "--inception-weights PATH" in msg
    assert "\n" not in msg


def test_missing_weights_file_is_named(tmp_path):
    with pytest.raises(SynthmedError, match="nope.pth: file not found"):
        load_inception(tmp_path / "nope.pth")


def test_wrong_weights_are_refused_before_building(tmp_path):
    path = _fake_weights(tmp_path / "w.pth", **{"fc.weight": torch.zeros(10, 2048)})
    with pytest.raises(SynthmedError, match=r"fc.weight: expected \(1008, 2048\)"):
        load_inception(path)
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(SynthmedError, match="not a readable"):
        load_inception(tmp_path / "junk.pth")


@pytest.mark.skipif(importlib.util.find_spec("torch_fidelity") is not None,
                    reason="torch-fidelity is installed")
def test_right_shaped_random_weights_without_the_extra_name_the_extra(tmp_path):
    path = _fake_weights(tmp_path / "weights-inception-2015-12-05-6726825d.pth")
    with pytest.raises(SynthmedError, match=r"need torch-fidelity.*pip install"):
        load_inception(path)


def test_weights_found_in_the_torch_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    cached = _fake_weights(tmp_path / "checkpoints" / inception.WEIGHT_FILES[0])
    assert inception.find_inception_weights(None) == cached


class _FakeInception(nn.Module):
    """Stands in for torch-fidelity's network: checks the input contract, returns 2048 + 1008."""

    def __init__(self, name, features_list, feature_extractor_weights_path=None):
        super().__init__()
        assert features_list == ["2048", "logits_unbiased"]
        self.path = feature_extractor_weights_path
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        assert x.dtype == torch.uint8 and x.shape[1] == 3
        assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])
        f = x.float().mean(dim=(1, 2, 3))[:, None].repeat(1, 2048)
        return f, torch.zeros(len(x), 1008)


def test_inception_wiring_repeats_gray_and_feeds_uint8(tmp_path, monkeypatch):
    mod = types.ModuleType("torch_fidelity.feature_extractor_inceptionv3")
    mod.FeatureExtractorInceptionV3 = _FakeInception
    monkeypatch.setitem(sys.modules, "torch_fidelity", types.ModuleType("torch_fidelity"))
    monkeypatch.setitem(sys.modules, "torch_fidelity.feature_extractor_inceptionv3", mod)
    ex = load_inception(_fake_weights(tmp_path / "w.pth"))
    out = ex.extract(np.full((4, 1, 28, 28), 10, np.uint8))
    assert out.features.shape == (4, 2048) and np.allclose(out.features, 10.0)
    assert out.probs.shape == (4, 1008) and np.allclose(out.probs, 1 / 1008)
    assert ex.name == "inception" and len(ex.weights_sha256) == 64
