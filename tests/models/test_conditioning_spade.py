"""Issue 21: conditioning that does not carry the patient (mask / brain / prior), and the
mask-following generator options (SPADE generator, resize up-sampling, pooled discriminator)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from synthmed.config import load_config
from synthmed.models.conditioning import (
    brain_masks,
    coarse_brain,
    extra_condition,
    placed_prior,
    population_prior,
)
from synthmed.models.pix2pix import build_condition, build_pix2pix


def _brains(n=3, size=64):
    """Bright ellipses of different sizes and places on black, with a textured inside."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    out = -torch.ones(n, 1, size, size)
    for k in range(n):
        cy, cx, ry, rx = 28 + 3 * k, 30 + 2 * k, 14 + 4 * k, 10 + 3 * k
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        out[k, 0][inside] = 0.3 + 0.3 * torch.rand(int(inside.sum()))
    return out


def test_brain_mask_coarse_blocks_and_no_intensities():
    img = _brains()
    m = brain_masks(img)
    assert m.shape == (3, 1, 64, 64) and set(m.unique().tolist()) <= {0.0, 1.0}
    c = coarse_brain(img, 8)
    assert set(c.unique().tolist()) == {-1.0, 1.0}
    blocks = c.unfold(2, 8, 8).unfold(3, 8, 8)  # every 8x8 block is one value
    assert (blocks.amax((-1, -2)) == blocks.amin((-1, -2))).all()
    # the same outlines with another texture: (almost) the same channel, no intensities kept
    other = img.clone()
    inside = img > -1
    other[inside] = 0.3 + 0.3 * torch.rand(int(inside.sum()))
    assert (coarse_brain(other, 8) == c).float().mean() > 0.99


def test_prior_is_the_population_shape_placed_in_each_box():
    img = _brains()
    prior = population_prior(img)
    assert prior.shape == (64, 64) and prior.min() >= 0 and prior.max() <= 1
    placed = placed_prior(img, prior)
    m = brain_masks(img)[:, 0] > 0
    for k in range(3):  # inside the box of each brain, -1 outside it
        rows, cols = m[k].any(1).nonzero()[:, 0], m[k].any(0).nonzero()[:, 0]
        outside = torch.ones(64, 64, dtype=torch.bool)
        outside[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] = False
        assert (placed[k, 0][outside] == -1).all() and placed[k, 0].max() > 0.5
    with pytest.raises(ValueError, match="prior"):
        extra_condition(img, "prior", None, None)


@pytest.mark.parametrize("mode,channels", [("mask", 1), ("brain", 2), ("prior", 2),
                                           ("anatomy", 2)])
@pytest.mark.parametrize("gen,disc,up", [("unet", "patchgan", "resize"),
                                         ("spade", "pooled", "transpose")])
def test_shapes_per_conditioning_and_generator(mode, channels, gen, disc, up):
    cfg = load_config(None, ["model.name=pix2pix", "model.base_width=4",
                             f"model.conditioning={mode}", f"model.generator={gen}",
                             f"model.discriminator={disc}", f"model.upsample={up}"])
    G, D = build_pix2pix(cfg.model, image_channels=1, image_size=64)
    assert hasattr(G, "prior") == (mode == "prior")
    img = _brains(2)
    masks = (torch.rand(2, 1, 64, 64) > 0.9).float()
    cond = build_condition(masks, img, 1, None, mode, population_prior(img))
    assert cond.shape == (2, channels, 64, 64) and cond.abs().max() <= 1
    out = G(cond)
    assert out.shape == (2, 1, 64, 64) and out.abs().max() <= 1
    assert D(cond, out).shape[0] == 2


def test_no_transposed_or_strided_convolutions_when_asked():
    cfg = load_config(None, ["model.name=pix2pix", "model.base_width=4", "model.upsample=resize",
                             "model.discriminator=pooled"])
    G, D = build_pix2pix(cfg.model, image_channels=1, image_size=64)
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in G.modules())
    assert all(m.stride == (1, 1) for m in D.modules() if isinstance(m, nn.Conv2d))
    cfg = load_config(None, ["model.name=pix2pix", "model.base_width=4", "model.generator=spade"])
    G, _ = build_pix2pix(cfg.model, image_channels=1, image_size=64)
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in G.modules())


def test_spade_noise_is_seedable_and_the_mask_moves_the_output():
    cfg = load_config(None, ["model.name=pix2pix", "model.base_width=4", "model.generator=spade"])
    G, _ = build_pix2pix(cfg.model, image_channels=1, image_size=64)
    for b in G.blocks:
        nn.init.constant_(b.noise_weight, 0.5)
    G.eval()
    x = -torch.ones(1, 1, 64, 64)
    assert torch.equal(G(x), G(x))
    torch.manual_seed(1)
    a = G(x, noise=True)
    torch.manual_seed(1)
    b = G(x, noise=True)
    torch.manual_seed(2)
    c = G(x, noise=True)
    assert torch.equal(a, b) and not torch.equal(a, c)
    y = x.clone()
    y[..., 40:50, 40:50] = 1  # a lesion: changes the output there more than far away
    d = (G(y) - G(x)).abs()[0, 0]
    assert d[40:50, 40:50].mean() > d[:10, :10].mean()


def test_joint_geometric_keeps_image_and_mask_aligned():
    from synthmed.training.methods.pix2pix import joint_geometric

    torch.manual_seed(0)
    masks = torch.zeros(8, 1, 64, 64)
    masks[:, :, 20:40, 10:30] = 1
    images = masks * 2 - 1  # the image shows exactly the mask
    img, m = joint_geometric(images, masks)
    assert not torch.equal(m, masks)  # something moved
    agree = ((img > 0) == (m > 0.5)).float().mean()
    assert agree > 0.98 and set(m.unique().tolist()) <= {0.0, 1.0}


def test_spade_noise_vector_makes_one_mask_give_different_images():
    """OASIS 3D noise (model.noise_dim): with the default zero-initialised per-pixel noise
    weights (a fresh generator, as at the start of training), two seeds for one mask must give
    different images; without the vector they are the same image (the old one-template-head)."""
    x = -torch.ones(1, 2, 64, 64)
    x[:, 0, 30:40, 30:40] = 1
    for dim, differs in [(0, False), (8, True)]:
        cfg = load_config(None, ["model.name=pix2pix", "model.base_width=4",
                                 "model.generator=spade", f"model.noise_dim={dim}",
                                 "model.conditioning=brain"])
        torch.manual_seed(0)
        G, _ = build_pix2pix(cfg.model, image_channels=1, image_size=64)
        G.eval()
        torch.manual_seed(1)
        a = G(x, noise=True)
        torch.manual_seed(2)
        b = G(x, noise=True)
        torch.manual_seed(1)
        assert torch.equal(a, G(x, noise=True))  # seedable
        assert ((a - b).abs().mean() > 1e-3) == differs, dim
        assert torch.equal(G(x, noise=False), G(x, noise=False))


def test_noise_dim_needs_the_spade_generator():
    from synthmed.errors import ConfigError

    cfg = load_config(None, ["model.name=pix2pix", "model.noise_dim=4"])
    with pytest.raises(ConfigError, match="model.noise_dim"):
        build_pix2pix(cfg.model, image_channels=1, image_size=64)


def test_oasis_discriminator_labels_every_pixel_with_balanced_loss():
    from synthmed.models.oasis import balanced_ce, fake_ce, label_targets

    cfg = load_config(None, ["model.name=pix2pix", "model.base_width=4",
                             "model.discriminator=oasis", "model.generator=spade"])
    _, D = build_pix2pix(cfg.model, image_channels=1, image_size=64)
    assert all(m.stride == (1, 1) for m in D.modules() if isinstance(m, nn.Conv2d))
    img = _brains(2)
    out = D(None, img)
    assert out.shape == (2, 3 - 1 + 1, 64, 64)  # classes 0 (no lesion), 1 (lesion), fake
    masks = torch.zeros(2, 1, 64, 64)
    masks[:, :, 30:34, 30:34] = 1
    target = label_targets(masks, 2)
    assert target.dtype == torch.long and int(target.sum()) == 32
    # balanced: a D that gets only the rare lesion pixels wrong pays as much as one that gets
    # only the background wrong, though the lesion is 0.4 % of the pixels
    good = torch.zeros(2, 3, 64, 64)
    good[:, 0] = 5 * (target == 0)
    good[:, 1] = 5 * (target == 1)
    miss_lesion, miss_bg = good.clone(), good.clone()
    miss_lesion[:, 1] = 0
    miss_bg[:, 0] = 0
    a, b = balanced_ce(miss_lesion, target), balanced_ce(miss_bg, target)
    assert torch.isclose(a, b, rtol=0.05) and a > 2 * balanced_ce(good, target)
    fake = torch.zeros(1, 3, 8, 8)
    fake[:, 2] = 5
    assert fake_ce(fake) < 0.05
