"""Feature-extractor registry, preprocessing and custom extractors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from synthmed.errors import ConfigError, SynthmedError
from synthmed.metrics.features import (
    FEATURE_EXTRACTORS,
    FeatureExtractor,
    build_extractor,
    load_torchscript,
    prepare_images,
    register_extractor,
    state_dict_sha256,
)


class _Pool(nn.Module):
    """A tiny custom extractor: channel means and maxima, plus 'logits'."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 3)

    def forward(self, x: torch.Tensor):
        f = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)
        return f, self.lin(f)


@pytest.mark.parametrize("shape,size,channels,expect", [
    ((2, 1, 32, 32), (64, 64), 1, (2, 1, 64, 64)),
    ((2, 1, 28, 28), None, 3, (2, 3, 28, 28)),
    ((2, 3, 16, 16), (8, 8), 1, (2, 1, 8, 8)),
])
def test_prepare_images_shapes(shape, size, channels, expect):
    x = np.zeros(shape, np.uint8)
    assert tuple(prepare_images(x, size=size, channels=channels).shape) == expect


def test_prepare_images_ranges_and_gray_repeat():
    x = np.array([[[[0, 255]]]], np.uint8)
    assert prepare_images(x).flatten().tolist() == [-1.0, 1.0]
    assert prepare_images(x, input_range="unit").flatten().tolist() == [0.0, 1.0]
    rgb = prepare_images(x, channels=3, input_range="uint8")
    assert rgb.dtype == torch.uint8 and rgb.shape == (1, 3, 1, 2) and (rgb[:, 0] == rgb[:, 2]).all()
    x16 = np.array([[[[0, 65535]]]], np.uint16)
    assert prepare_images(x16).flatten().tolist() == [-1.0, 1.0]


def test_registry_errors_name_the_key_and_the_choices():
    with pytest.raises(ConfigError, match=r"--features: unknown feature extractor 'incepton'.*"
                                          r"domain.*inception"):
        build_extractor("incepton", key="--features")


def test_register_a_custom_module_and_extract():
    register_extractor("test-pool", _Pool(), input_size=8, in_channels=1, overwrite=True)
    assert "test-pool" in FEATURE_EXTRACTORS
    ex = build_extractor("test-pool")
    out = ex.extract(np.full((5, 1, 16, 16), 255, np.uint8), batch_size=2)
    assert out.features.shape == (5, 2) and np.allclose(out.features, 1.0)
    assert out.probs.shape == (5, 3) and np.allclose(out.probs.sum(1), 1.0)
    assert ex.describe((16, 16))["resized_from"] == [16, 16]
    with pytest.raises(ValueError, match="already registered"):
        register_extractor("test-pool", _Pool())


def test_weights_hash_changes_with_the_weights():
    a, b = _Pool(), _Pool()
    assert state_dict_sha256(a.state_dict()) == state_dict_sha256(a.state_dict())
    assert state_dict_sha256(a.state_dict()) != state_dict_sha256(b.state_dict())
    assert FeatureExtractor(a, name="x").weights_sha256 == state_dict_sha256(a.state_dict())


def test_torchscript_extractor_round_trip(tmp_path):
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.trace(net, torch.zeros(1, 1, 8, 8)).save(str(tmp_path / "f.pt"))
    ex = build_extractor("torchscript", path=tmp_path / "f.pt", input_size=8)
    assert ex.extract(np.zeros((3, 1, 12, 12), np.uint8)).features.shape == (3, 4)
    assert len(ex.weights_sha256) == 64


def test_torchscript_errors_are_one_line(tmp_path):
    with pytest.raises(SynthmedError, match="not found"):
        load_torchscript(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(SynthmedError, match="not a TorchScript"):
        load_torchscript(tmp_path / "junk.pt")


CUSTOM_MODULE = '''
import torch
from synthmed.metrics import FeatureExtractor


class Stats(torch.nn.Module):
    def forward(self, x):
        side = torch.full((len(x),), float(x.shape[-1]))
        return torch.stack([x.mean(dim=(1, 2, 3)), x.std(dim=(1, 2, 3)), side], 1)


def stats_net():
    return Stats()


def stats_extractor():
    return FeatureExtractor(Stats(), name="my-stats", input_size=(4, 4))


def builtin_name():
    return FeatureExtractor(Stats(), name="domain")


def not_a_network():
    return 42
'''


@pytest.fixture
def custom_module(tmp_path, monkeypatch):
    """An importable module of extractor factories; the registry is restored afterwards."""
    import uuid

    name = f"smx_custom_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(CUSTOM_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(FEATURE_EXTRACTORS, "_items", dict(FEATURE_EXTRACTORS._items))
    return name


def test_import_extractor_registers_a_module_factory(custom_module):
    from synthmed.metrics import import_extractor

    assert import_extractor(f"{custom_module}:stats_net", input_size=8, in_channels=3) == \
        "stats_net"
    ex = build_extractor("stats_net", key="--features", path=None)
    assert ex.input_size == (8, 8) and ex.in_channels == 3
    assert ex.describe()["module"] == f"{custom_module}:stats_net"
    f = ex.extract(np.zeros((2, 1, 16, 16), np.uint8)).features
    assert f.shape == (2, 3) and np.allclose(f[:, 2], 8)  # resized to the given input size
    assert import_extractor(f"{custom_module}:stats_extractor") == "my-stats"
    assert build_extractor("my-stats").input_size == (4, 4)
    assert import_extractor(custom_module) is None  # import only (its own registrations)


@pytest.mark.parametrize("spec,needle", [
    ("smx_no_such_module_1234:f", "no module named 'smx_no_such_module_1234'"),
    ("{mod}:missing", "has no callable 'missing'"),
    ("{mod}:not_a_network", "returned int; return a torch.nn.Module"),
    ("{mod}:builtin_name", "'domain' is built in"),
    ("not a module", "expected pkg.module or pkg.module:factory"),
])
def test_import_extractor_errors_are_one_line(custom_module, spec, needle):
    from synthmed.metrics import import_extractor

    with pytest.raises(SynthmedError, match="--extractor-module") as err:
        import_extractor(spec.format(mod=custom_module))
    assert needle in str(err.value) and "\n" not in str(err.value)
    assert FEATURE_EXTRACTORS.get("domain").__name__ == "_domain_factory"  # never replaced
