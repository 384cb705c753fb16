"""pix2pix networks (Isola et al., "Image-to-image translation with conditional adversarial
networks", CVPR 2017): a U-Net generator from a label map (plus optional anatomy channel) to an
image, and a PatchGAN discriminator on (condition, image) pairs.

The generator is written out rather than taken from MONAI's ``UNet``/``BasicUNet`` because the
paper's noise source is dropout in the three innermost decoder blocks only, kept on at sampling
time; MONAI's U-Nets apply one dropout rate to every block. Deviation from the paper: the encoder
stops at 4x4 (not 1x1), so instance normalisation always has more than one pixel to normalise.
The discriminator is MONAI's :class:`~monai.networks.nets.PatchDiscriminator` (the 70x70 PatchGAN
with three strided layers), with instance norm so no batch statistics couple the images.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from synthmed.errors import ConfigError
from synthmed.models.conditioning import anatomy_channel, extra_channels, extra_condition

__all__ = ["anatomy_channel", "build_condition", "build_pix2pix", "condition_channels",
           "encode_mask"]

PIX2PIX_SIZES = (64, 128, 256)
NOISY_BLOCKS = 3  # innermost decoder blocks with dropout (Isola et al. 2017, section 6.1.1)


def condition_channels(mask_labels: int, anatomy_factor: int | None,
                       mode: str | None = None) -> int:
    """Channels of the generator's condition: the label map (one per foreground label, or one
    for a binary mask) plus one for any conditioning but ``mask`` (:mod:`.conditioning`)."""
    mode = mode or ("anatomy" if anatomy_factor else "mask")
    return int(mask_labels) + extra_channels(mode)


def encode_mask(mask: torch.Tensor, mask_labels: int) -> torch.Tensor:
    """(N, 1, H, W) label map with values 0..K -> (N, K, H, W) in {-1, 1} (one-hot without the
    background channel; K = 1 is the binary mask itself)."""
    m = mask.round().clamp(0, mask_labels).long()[:, 0]
    if mask_labels == 1:
        onehot = (m > 0).float()[:, None]
    else:
        onehot = F.one_hot(m, mask_labels + 1)[..., 1:].permute(0, 3, 1, 2).float()
    return onehot * 2 - 1


def build_condition(masks: torch.Tensor, images: torch.Tensor | None, mask_labels: int,
                    anatomy_factor: int | None, mode: str | None = None,
                    prior: torch.Tensor | None = None,
                    heads: torch.Tensor | None = None) -> torch.Tensor:
    """The generator input: encoded mask, plus the channel of the conditioning ``mode``
    (default: ``anatomy`` when ``anatomy_factor`` is set, else the mask alone); ``heads``: the
    head masks of synthetic label maps instead of the source images' (brain, prior)."""
    cond = encode_mask(masks, mask_labels)
    mode = mode or ("anatomy" if anatomy_factor else "mask")
    if mode == "anatomy" and images is None:
        raise ValueError("the anatomy channel needs the source images")
    extra = extra_condition(images, mode, anatomy_factor, prior,
                            None if heads is None else heads.to(cond.device))
    return cond if extra is None else torch.cat([cond, extra.to(cond)], 1)


def _down(cin: int, cout: int, norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 4, 2, 1, bias=not norm)]
    if norm:
        layers.append(nn.InstanceNorm2d(cout, affine=True))
    layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers)


def up_conv(cin: int, cout: int, upsample: str, bias: bool) -> nn.Module:
    """x2 up-sampling: a transposed 4x4 convolution (the paper's), or nearest resize then a 3x3
    convolution, which has no uneven kernel overlap and so no checkerboard (Odena et al. 2016)."""
    if upsample == "resize":
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                             nn.Conv2d(cin, cout, 3, 1, 1, bias=bias))
    return nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=bias)


class _Up(nn.Module):
    def __init__(self, cin: int, cout: int, dropout: float, upsample: str = "transpose") -> None:
        super().__init__()
        self.conv = up_conv(cin, cout, upsample, bias=False)
        self.norm = nn.InstanceNorm2d(cout, affine=True)
        self.p = dropout

    def forward(self, x: torch.Tensor, noise: bool) -> torch.Tensor:
        h = self.norm(self.conv(x))
        if self.p > 0:
            h = F.dropout(h, self.p, training=noise)
        return F.relu(h)


class UNetGenerator(nn.Module):
    """Condition (N, in_channels, S, S) -> image (N, out_channels, S, S) in [-1, 1].

    Encoder widths ``base * min(2**i, 8)`` down to 4x4, decoder mirrored with skip connections.
    ``forward(x, noise=None)``: dropout is on when ``noise`` (default: in training mode); the
    sampler turns it on in eval mode under a per-image seed, as the paper does at test time.
    """

    def __init__(self, in_channels: int, out_channels: int, image_size: int,
                 base_width: int = 64, dropout: float = 0.5,
                 upsample: str = "transpose") -> None:
        super().__init__()
        if image_size not in PIX2PIX_SIZES:
            raise ConfigError(f"model.image_size: pix2pix supports {PIX2PIX_SIZES}, got "
                              f"{image_size}; set model.image_size")
        depth = int(math.log2(image_size)) - 2
        widths = [base_width * min(2 ** i, 8) for i in range(depth)]
        self.downs = nn.ModuleList(
            _down(in_channels if i == 0 else widths[i - 1], widths[i], norm=i > 0)
            for i in range(depth))
        ups = []
        for j, i in enumerate(reversed(range(1, depth))):  # from the innermost outwards
            cin = widths[i] * (1 if j == 0 else 2)
            ups.append(_Up(cin, widths[i - 1], dropout if j < NOISY_BLOCKS else 0.0, upsample))
        self.ups = nn.ModuleList(ups)
        self.out = up_conv(widths[0] * 2, out_channels, upsample, bias=True)

    def forward(self, x: torch.Tensor, noise: bool | None = None) -> torch.Tensor:
        noise = self.training if noise is None else noise
        skips = []
        for down in self.downs:
            x = down(x)
            skips.append(x)
        h = skips.pop()
        for up in self.ups:
            h = torch.cat([up(h, noise), skips.pop()], 1)
        return torch.tanh(self.out(h))


class PairDiscriminator(nn.Module):
    """PatchGAN on the channel-wise concatenation of condition and image -> patch logits (N, P)."""

    def __init__(self, in_channels: int, base_width: int = 64, num_layers: int = 3) -> None:
        super().__init__()
        # Imported here: MONAI costs ~2.5 s of start-up that GAN and VAE runs do not need.
        from monai.networks.nets import PatchDiscriminator

        self.net = PatchDiscriminator(spatial_dims=2, channels=base_width, in_channels=in_channels,
                                      out_channels=1, num_layers_d=num_layers, norm="INSTANCE",
                                      bias=True)

    def forward(self, cond: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([cond, image], 1))[-1].flatten(1)


def build_pix2pix(model_cfg, *, image_channels: int, image_size: int
                  ) -> tuple[nn.Module, nn.Module]:
    """(G, D) for ``model.name: pix2pix`` from the model config section: ``model.generator``
    unet (Isola et al. 2017) or spade (:mod:`.spade`), ``model.upsample``, ``model.discriminator``
    patchgan (strided), pooled (no strided convolutions) or oasis (per-pixel N+1 classes,
    :mod:`.oasis`)."""
    from synthmed.models.conditioning import conditioning_of
    from synthmed.models.spade import PooledDiscriminator, SpadeGenerator

    mode = conditioning_of(model_cfg)
    if getattr(model_cfg, "noise_dim", 0) and getattr(model_cfg, "generator", "unet") != "spade":
        raise ConfigError("model.noise_dim: only the spade generator takes a noise vector (the "
                          "unet's noise is its dropout); set model.generator=spade or "
                          "model.noise_dim=0")
    cond = condition_channels(model_cfg.mask_labels, model_cfg.anatomy_factor, mode)
    if getattr(model_cfg, "generator", "unet") == "spade":
        G: nn.Module = SpadeGenerator(cond, image_channels, image_size,
                                      base_width=model_cfg.base_width,
                                      noise_dim=getattr(model_cfg, "noise_dim", 0))
    else:
        G = UNetGenerator(cond, image_channels, image_size, base_width=model_cfg.base_width,
                          dropout=model_cfg.dropout,
                          upsample=getattr(model_cfg, "upsample", "transpose"))
    if mode == "prior":  # the population prior travels with the generator's weights
        G.register_buffer("prior", torch.zeros(image_size, image_size))
    disc = getattr(model_cfg, "discriminator", "patchgan")
    if disc == "oasis":
        from synthmed.models.oasis import OasisDiscriminator

        D: nn.Module = OasisDiscriminator(image_channels, int(model_cfg.mask_labels) + 1,
                                          base_width=model_cfg.base_width)
    elif disc == "pooled":
        D = PooledDiscriminator(cond + image_channels, base_width=model_cfg.base_width)
    else:
        D = PairDiscriminator(cond + image_channels, base_width=model_cfg.base_width)
    return G, D
