"""Downstream models: shapes, the registry, transfer-learning weights and their error paths."""

from __future__ import annotations

import pytest
import torch

from synthmed.errors import ConfigError, SynthmedError
from synthmed.tasks.models import CLASSIFIERS, build_classifier, build_segmenter, load_weights


def test_registry_names():
    assert CLASSIFIERS.names() == ["fridadar-cnn", "resnet18", "small-resnet"]
    with pytest.raises(ConfigError, match="utility.model: unknown classifier 'resnet-18'"):
        build_classifier("resnet-18", in_channels=1, num_classes=2, image_size=32)


@pytest.mark.parametrize("name", ["fridadar-cnn", "small-resnet", "resnet18"])
@pytest.mark.parametrize("size,channels,classes", [(28, 1, 2), (32, 3, 3), (64, 1, 5)])
def test_classifier_shapes(name, size, channels, classes):
    torch.manual_seed(0)
    model = build_classifier(name, in_channels=channels, num_classes=classes, image_size=size)
    out = model.eval()(torch.rand(2, channels, size, size) * 2 - 1)
    assert out.shape == (2, classes) and torch.isfinite(out).all()


@pytest.mark.parametrize("size", [28, 32, 48])
def test_segmenter_shape(size):
    model = build_segmenter("unet", in_channels=1, image_size=size)
    assert model.eval()(torch.zeros(2, 1, size, size)).shape == (2, 2, size, size)
    with pytest.raises(SynthmedError, match="unknown segmenter"):
        build_segmenter("segformer")


def test_resnet18_transfer_weights_other_head_and_rgb(tmp_path):
    """ImageNet-style weights: 3-channel stem, 1000-way head -> 1-channel, 2-way model."""
    torch.manual_seed(0)
    src = build_classifier("resnet18", in_channels=3, num_classes=1000, image_size=64)
    path = tmp_path / "resnet18.pt"
    torch.save(src.state_dict(), path)
    model = build_classifier("resnet18", in_channels=1, num_classes=2, image_size=64,
                             weights=path)
    info = model.weights_info
    assert set(info["skipped"]) == {"fc.weight", "fc.bias"}
    assert torch.allclose(model.conv1.weight, src.conv1.weight.sum(1, keepdim=True))
    assert torch.equal(model.layer4[1].conv2.weight, src.layer4[1].conv2.weight)


def test_weights_errors_are_one_line(tmp_path):
    model = build_classifier("resnet18", in_channels=1, num_classes=2, image_size=32)
    with pytest.raises(SynthmedError, match="weights file not found"):
        load_weights(model, tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(SynthmedError, match="cannot read weights"):
        load_weights(model, junk)
    other = tmp_path / "other.pt"
    torch.save(build_classifier("fridadar-cnn", in_channels=1, num_classes=2,
                                image_size=32).state_dict(), other)
    with pytest.raises(SynthmedError, match="do not fit") as e:
        load_weights(model, other)
    assert "\n" not in str(e.value)
