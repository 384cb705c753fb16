"""pix2pix networks: shapes for every size and label count, condition encoding, size guard."""

from __future__ import annotations

import pytest
import torch

from synthmed.config import load_config
from synthmed.errors import ConfigError
from synthmed.models.pix2pix import (
    anatomy_channel,
    build_condition,
    build_pix2pix,
    encode_mask,
)


@pytest.mark.parametrize("size", [64, 128, 256])
@pytest.mark.parametrize("labels,anatomy", [(1, None), (3, None), (2, 8)])
def test_shapes_for_each_size_and_label_count(size, labels, anatomy):
    cfg = load_config(None, ["model.name=pix2pix", "model.base_width=4",
                             f"model.mask_labels={labels}"]
                      + ([f"model.anatomy_factor={anatomy}"] if anatomy else []))
    G, D = build_pix2pix(cfg.model, image_channels=1, image_size=size)
    masks = torch.randint(0, labels + 1, (2, 1, size, size)).float()
    images = torch.rand(2, 1, size, size) * 2 - 1
    cond = build_condition(masks, images, labels, anatomy)
    assert cond.shape == (2, labels + (1 if anatomy else 0), size, size)
    out = G(cond)
    assert out.shape == (2, 1, size, size) and out.abs().max() <= 1
    logits = D(cond, out)
    assert logits.shape[0] == 2 and logits.shape[1] > 1  # one logit per patch


def test_one_hot_drops_the_background_and_binary_masks_stay_one_channel():
    m = torch.tensor([[[[0, 1], [2, 3]]]]).float()
    onehot = encode_mask(m, 3)
    assert onehot.shape == (1, 3, 2, 2)
    assert torch.equal((onehot > 0).float().argmax(1)[0], torch.tensor([[0, 0], [1, 2]]))
    assert ((onehot > 0).sum(1) == torch.tensor([[0, 1], [1, 1]])).all()
    binary = encode_mask((m > 0).float(), 1)
    assert binary.shape == (1, 1, 2, 2) and binary.flatten().tolist() == [-1, 1, 1, 1]


def test_anatomy_channel_keeps_the_outline_not_the_texture():
    img = -torch.ones(1, 1, 64, 64)
    img[..., 16:48, 16:48] = torch.rand(32, 32) * 2 - 1  # textured "organ" on black
    a = anatomy_channel(img, 8)
    assert a.shape == img.shape
    inner = (..., slice(24, 40), slice(24, 40))
    assert a[..., :8, :8].max() < -0.99 and a[inner].std() < img[inner].std()


def test_dropout_is_the_noise_and_is_seedable():
    cfg = load_config(None, ["model.name=pix2pix", "model.base_width=4"])
    G, _ = build_pix2pix(cfg.model, image_channels=1, image_size=64)
    G.eval()
    x = torch.randn(1, 1, 64, 64)
    assert torch.equal(G(x), G(x))  # eval, no noise: deterministic
    torch.manual_seed(1)
    a = G(x, noise=True)
    torch.manual_seed(1)
    b = G(x, noise=True)
    torch.manual_seed(2)
    c = G(x, noise=True)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_unsupported_size_is_a_config_error():
    cfg = load_config(None, ["model.name=pix2pix"])
    with pytest.raises(ConfigError, match="model.image_size: pix2pix supports"):
        build_pix2pix(cfg.model, image_channels=1, image_size=32)
