"""GAN networks: shapes for every model/size/channels, gradients, routing, spectral norm, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from synthmed.errors import ConfigError
from synthmed.models import GAN_MODELS, GANPair, build_gan
from synthmed.models.base import num_stages, render_size
from synthmed.models.perclass import PerClassDiscriminator, PerClassGenerator
from synthmed.training.methods.gan import GANSection

LATENT = 16
WIDTH = 4
K = 3

# variant -> (GANSection kwargs, n_classes in the dataset)
VARIANTS = {
    "dcgan": ({"name": "dcgan"}, 0),
    "acgan": ({"name": "acgan"}, K),
    "cgan": ({"name": "cgan"}, K),
    "cgan-uncond": ({"name": "cgan"}, 0),
    "dcgan-per-class": ({"name": "dcgan", "per_class": True}, K),
    "acgan-per-class": ({"name": "acgan", "per_class": True}, K),
}


def build(variant: str, *, size: int = 32, channels: int = 1, width: int = WIDTH) -> GANPair:
    kwargs, n_classes = VARIANTS[variant]
    cfg = GANSection(latent_dim=LATENT, base_width=width, **kwargs)
    return build_gan(cfg, in_channels=channels, image_size=size, n_classes=n_classes)


def labels(pair: GANPair, n: int = 4) -> torch.Tensor | None:
    return torch.arange(n) % pair.n_classes if pair.conditional else None


def test_registry_names():
    assert GAN_MODELS.names() == ["acgan", "cgan", "dcgan"]


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [32, 64, 128])
@pytest.mark.parametrize("variant", [v for v in VARIANTS if v != "acgan-per-class"])
def test_output_shapes(variant, size, channels):
    torch.manual_seed(0)
    pair = build(variant, size=size, channels=channels)
    y = labels(pair, 3)
    x = pair.generator(torch.randn(3, LATENT), y)
    assert x.shape == (3, channels, size, size) and x.dtype == torch.float32
    assert x.abs().max() <= 1.0
    adv, cls = pair.discriminator(x, y)
    assert adv.shape == (3,) and adv.dtype == torch.float32
    if pair.aux_classifier:
        assert cls.shape == (3, K)
    else:
        assert cls is None


ANY_SIZES = [16, 28, 32, 48, 64, 100, 128, 256, 512]


@pytest.mark.parametrize("size", ANY_SIZES)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_any_size_from_16_to_512(variant, size):
    """MedMNIST's 28 px and other non-powers of two: G writes the data's size, D reads it."""
    torch.manual_seed(0)
    pair = build(variant, size=size, width=2)
    y = labels(pair, 2)
    x = pair.generator(torch.randn(2, LATENT), y)
    assert x.shape == (2, 1, size, size) and x.abs().max() <= 1.0
    adv, _ = pair.discriminator(x, y)
    assert adv.shape == (2,)
    with pytest.raises(ValueError, match=f"built for {size}x{size}"):
        pair.discriminator(torch.zeros(2, 1, size + 1, size + 1), y)


@pytest.mark.parametrize("size, render", [(16, 16), (17, 32), (28, 32), (100, 128), (512, 512)])
def test_render_size_is_the_next_power_of_two(size, render):
    assert render_size(size) == render
    assert num_stages(size) == render.bit_length() - 3


@pytest.mark.parametrize("size", [15, 513])
def test_render_size_range(size):
    with pytest.raises(ValueError, match=r"\[16, 512\]"):
        render_size(size)


@pytest.mark.parametrize("variant", ["dcgan", "acgan", "cgan"])
def test_any_size_under_bf16_autocast(variant):
    """train.amp: the antialiased resize has no bf16 CPU kernel, so it runs in float32."""
    torch.manual_seed(0)
    pair = build(variant, size=28, width=2)
    y = labels(pair, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x = pair.generator(torch.randn(2, LATENT), y)
        adv, _ = pair.discriminator(x, y)
    adv.float().sum().backward()
    assert x.shape == (2, 1, 28, 28) and adv.shape == (2,)


def test_power_of_two_sizes_are_not_resized():
    """The 32/64/128 px networks are unchanged: same layers, output straight from tanh."""
    torch.manual_seed(0)
    pair = build("dcgan", size=32)
    z = torch.randn(2, LATENT)
    torch.testing.assert_close(pair.generator(z), pair.generator.main(z[:, :, None, None]),
                               rtol=0, atol=0)


@pytest.mark.parametrize(
    "variant, flags",
    [
        ("dcgan", (0, False, False, "bce", None, False, True)),  # EMA on: docs/benchmarks.md
        ("acgan", (K, True, True, "bce", None, False, False)),
        ("cgan", (K, True, False, "hinge", "translation,cutout,color", True, True)),
        ("cgan-uncond", (0, False, False, "hinge", "translation,cutout,color", True, True)),
        ("dcgan-per-class", (K, True, False, "bce", None, False, False)),
        ("acgan-per-class", (K, True, False, "bce", None, False, False)),
    ],
)
def test_pair_flags(variant, flags):
    p = build(variant)
    assert (p.n_classes, p.conditional, p.aux_classifier, p.default_loss, p.default_diffaugment,
            p.default_ada, p.default_ema) == flags
    assert p.latent_dim == LATENT


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_gradient_reaches_generator_through_discriminator(variant):
    torch.manual_seed(0)
    pair = build(variant)
    y = labels(pair, 6)
    adv, cls = pair.discriminator(pair.generator(torch.randn(6, LATENT), y), y)
    loss = adv.mean() + (cls.mean() if cls is not None else 0.0)
    loss.backward()
    grads = [p.grad for p in pair.generator.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


def test_dcgan_parameter_counts_match_the_pytorch_example():
    """The canonical PyTorch DCGAN example (nc=3, nz=100, ngf=ndf=64) has these exact counts."""
    pair = build_gan(GANSection(), in_channels=3, image_size=64, n_classes=0)
    assert sum(p.numel() for p in pair.generator.parameters()) == 3_576_704
    assert sum(p.numel() for p in pair.discriminator.parameters()) == 2_765_568


def test_dcgan_init_statistics():
    torch.manual_seed(0)
    pair = build_gan(GANSection(), in_channels=1, image_size=64, n_classes=0)
    for net in (pair.generator, pair.discriminator):
        conv = torch.cat([m.weight.flatten() for m in net.modules()
                          if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
        bn = torch.cat([m.weight.flatten() for m in net.modules() if isinstance(m, nn.BatchNorm2d)])
        assert abs(conv.mean().item()) < 1e-3 and abs(conv.std().item() - 0.02) < 1e-3
        assert abs(bn.mean().item() - 1.0) < 5e-3 and abs(bn.std().item() - 0.02) < 5e-3
        assert all(m.bias is None for m in net.modules() if isinstance(m, nn.Conv2d))


def test_cgan_discriminator_is_spectrally_normalized():
    pair = build("cgan")
    layers = [m for m in pair.discriminator.modules()
              if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding))]
    assert len(layers) > 5
    assert all(parametrize.is_parametrized(m, "weight") for m in layers)
    assert not any(parametrize.is_parametrized(m) for m in pair.generator.modules())


def test_cgan_conditioning_changes_outputs():
    torch.manual_seed(0)
    pair = build("cgan")
    pair.generator.eval()
    pair.discriminator.eval()
    with torch.no_grad():
        nn.init.normal_(pair.generator.blocks[0].bn1.gamma.weight)  # make classes differ
        z = torch.randn(1, LATENT).repeat(2, 1)
        x = pair.generator(z, torch.tensor([0, 1]))
        assert not torch.allclose(x[0], x[1])
        same = x[:1].repeat(2, 1, 1, 1)
        adv, _ = pair.discriminator(same, torch.tensor([0, 2]))
        assert not torch.allclose(adv[0], adv[1])


def _routing_nets():
    torch.manual_seed(0)
    pair = build("dcgan-per-class")
    assert isinstance(pair.generator, PerClassGenerator)
    assert isinstance(pair.discriminator, PerClassDiscriminator)
    return pair


def test_per_class_routes_each_sample_to_its_class_network_only():
    pair = _routing_nets()
    y = torch.tensor([1, 1, 1])
    x = pair.generator(torch.randn(3, LATENT), y)
    adv, _ = pair.discriminator(x, y)
    adv.sum().backward()
    for net in (pair.generator, pair.discriminator):
        touched = [any(p.grad is not None for p in sub.parameters()) for sub in net.networks]
        assert touched == [False, True, False]


def test_per_class_keeps_sample_order():
    pair = _routing_nets()
    pair.generator.eval()
    pair.discriminator.eval()
    z = torch.randn(5, LATENT)
    y = torch.tensor([2, 0, 1, 0, 2])
    with torch.no_grad():
        x = pair.generator(z, y)
        adv, _ = pair.discriminator(x, y)
        for i in range(5):
            xi = pair.generator.networks[y[i]](z[i:i + 1])
            torch.testing.assert_close(x[i:i + 1], xi)
            torch.testing.assert_close(adv[i:i + 1], pair.discriminator.networks[y[i]](xi)[0])


def test_per_class_singleton_subbatch_in_train_mode():
    pair = _routing_nets()
    y = torch.tensor([0, 1, 1, 2])  # classes 0 and 2 have one sample each
    x = pair.generator(torch.randn(4, LATENT), y)
    adv, _ = pair.discriminator(x, y)
    adv.sum().backward()
    assert torch.isfinite(x).all() and torch.isfinite(adv).all()


def test_conditional_networks_require_labels():
    for variant in ("acgan", "cgan", "dcgan-per-class"):
        pair = build(variant)
        with pytest.raises(ValueError, match="labels"):
            pair.generator(torch.randn(2, LATENT))


@pytest.mark.parametrize("variant", ["dcgan", "cgan"])
def test_channels_last(variant):
    torch.manual_seed(0)
    pair = build(variant, channels=3)
    y = labels(pair, 2)
    g = pair.generator.to(memory_format=torch.channels_last)
    d = pair.discriminator.to(memory_format=torch.channels_last)
    x = g(torch.randn(2, LATENT), y).contiguous(memory_format=torch.channels_last)
    adv, _ = d(x, y)
    adv.sum().backward()
    assert adv.shape == (2,)


def test_same_seed_same_networks():
    outs = []
    for _ in range(2):
        torch.manual_seed(3)
        pair = build("cgan")
        torch.manual_seed(4)
        outs.append(pair.generator(torch.randn(2, LATENT), torch.tensor([0, 1])))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)


def test_an_unknown_gan_is_refused_by_the_config_naming_every_model():
    from synthmed.config import load_config

    with pytest.raises(ConfigError, match=r"model\.name: unknown model 'dcgn'; choose one of "
                       r"acgan, cgan, dcgan, ddpm"):
        load_config(None, ["model.name=dcgn"])


@pytest.mark.parametrize(
    "kwargs, build_kw, match",
    [
        ({}, {"image_size": 12}, r"model\.image_size: 12 px .*between 16 and 512"),
        ({}, {"image_size": 513}, r"model\.image_size: 513 px .*between 16 and 512"),
        ({"name": "acgan"}, {"n_classes": 0}, r"model\.name: 'acgan' .*no labels.*dcgan"),
        ({"name": "dcgan", "per_class": True}, {"n_classes": 1}, r"per_class: .*labels.*false"),
        ({"name": "cgan", "per_class": True}, {"n_classes": 3}, r"model\.per_class: only dcgan"),
    ],
)
def test_config_errors_name_the_key(kwargs, build_kw, match):
    cfg = GANSection(base_width=WIDTH, **kwargs)
    args = {"in_channels": 1, "image_size": 32, "n_classes": 0, **build_kw}
    with pytest.raises(ConfigError, match=match) as err:
        build_gan(cfg, **args)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("size", [16, 28, 64])
def test_cgan_bilinear_upsampling_shapes_and_no_pixel_replication(size):
    """model.cgan_upsample: bilinear keeps shapes, changes outputs, and unlike nearest does not
    copy each low-resolution value into a 2x2 block before the convolution."""
    from synthmed.models.cgan import upsample2x

    torch.manual_seed(0)
    cfg = GANSection(name="cgan", latent_dim=LATENT, base_width=WIDTH,
                      cgan_upsample="bilinear")
    pair = build_gan(cfg, in_channels=1, image_size=size, n_classes=K)
    torch.manual_seed(0)
    nearest = build("cgan", size=size)
    nearest.generator.load_state_dict(pair.generator.state_dict())
    z, y = torch.randn(2, LATENT), torch.tensor([0, 1])
    pair.generator.eval()
    nearest.generator.eval()
    with torch.no_grad():
        out, ref = pair.generator(z, y), nearest.generator(z, y)
    assert out.shape == ref.shape == (2, 1, size, size)
    assert not torch.allclose(out, ref)
    x = torch.arange(4.0).reshape(1, 1, 2, 2)
    up = upsample2x(x, "bilinear")
    assert torch.equal(upsample2x(x, "nearest")[0, 0, :2, :2], torch.zeros(2, 2))
    assert up[0, 0, 0, 0] != up[0, 0, 0, 1] and up.mean() == x.mean()


def test_cgan_upsample_mode_is_validated():
    with pytest.raises(ValueError):
        GANSection(name="cgan", cgan_upsample="bicubic")


def test_cgan_bilinear_generation_is_batch_independent():
    torch.manual_seed(0)
    cfg = GANSection(name="cgan", latent_dim=LATENT, base_width=WIDTH, cgan_upsample="bilinear")
    g = build_gan(cfg, in_channels=1, image_size=32, n_classes=K).generator.eval()
    z, y = torch.randn(6, LATENT), torch.arange(6) % K
    with torch.no_grad():
        many = g(z, y)
        for i in (0, 4):
            assert torch.allclose(g(z[i:i + 1], y[i:i + 1])[0], many[i], atol=1e-5)


@pytest.mark.parametrize("size", [28, 32])
def test_cgan_noise_inputs_extend_z_and_act_only_once_learned(size):
    """model.cgan_noise: z carries noise maps at the render size and half of it after the
    latent; the strengths start at 0 (the same image as without noise), and once non-zero the
    noise tail changes the image while the same z always gives the same image, whatever the
    batch."""
    torch.manual_seed(0)
    cfg = GANSection(name="cgan", latent_dim=LATENT, base_width=WIDTH, cgan_noise=True)
    pair = build_gan(cfg, in_channels=1, image_size=size, n_classes=K)
    g = pair.generator.eval()
    r = render_size(size)
    assert pair.latent_dim == LATENT + r * r + (r // 2) ** 2
    plain = build("cgan", size=size).generator.eval()
    plain.load_state_dict({k: v for k, v in g.state_dict().items() if "noise" not in k})
    z, y = torch.randn(4, pair.latent_dim), torch.tensor([0, 1, 2, 0])
    other = torch.cat([z[:, :LATENT], torch.randn(4, pair.latent_dim - LATENT)], dim=1)
    with torch.no_grad():
        assert torch.allclose(g(z, y), plain(z[:, :LATENT], y), atol=1e-6)
        for name, p in g.named_parameters():
            if "noise" in name:
                p.fill_(0.5)
        out = g(z, y)
        assert out.shape == (4, 1, size, size)
        assert not torch.allclose(out, g(other, y), atol=1e-3)
        for i in (0, 3):
            assert torch.allclose(g(z[i:i + 1], y[i:i + 1])[0], out[i], atol=1e-5)


def test_cgan_without_noise_keeps_its_parameters():
    """Checkpoints of cgans trained before model.cgan_noise still load: no new keys by default."""
    g = build("cgan", size=32).generator
    assert not any("noise" in k for k in g.state_dict())
