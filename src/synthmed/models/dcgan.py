"""DCGAN (Radford, Metz & Chintala 2016), as in the canonical PyTorch DCGAN example.

Generator: a 4x4 transposed convolution from z, then stride-2 4x4 transposed convolutions with
BatchNorm + ReLU halving the width each stage, tanh output. Discriminator: the mirror image with
LeakyReLU(0.2), BatchNorm from the second layer on, and a 4x4 valid convolution to one logit (no
sigmoid: the loss takes logits). Weights ~ N(0, 0.02). 16 to 512 px differ only by the number of
stages; widths are ``channels * 2**k`` capped at 8x so 128 px stays the size of the 64 px net.
Sizes that are not a power of two are rendered one power of two up and resized at the network's
boundary (:func:`synthmed.models.base.render_size`). The two image-end layers are the CPU-fast
variants of :mod:`synthmed.models.thin` (same parameters and checkpoints).
This is also the model of the thyroid-ultrasound (64x64) and liver-lesion studies.
"""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn

from synthmed.generators import ModelSection
from synthmed.models.base import (
    GAN_MODELS,
    GANPair,
    check_spatial_dims,
    dcgan_init_,
    num_stages,
    require_labels,
    to_data_size,
    to_render_size,
)
from synthmed.models.perclass import PerClassDiscriminator, PerClassGenerator
from synthmed.models.thin import THIN_CHANNELS, ThinInputConv2d, ThinOutputConvTranspose2d

#: Width multiplier cap (ngf * 8 in the reference at 64 px).
MAX_MULT = 8


def stage_widths(channels: int, image_size: int) -> list[int]:
    """Feature widths from the 4x4 end to the full-resolution end, e.g. [512, 256, 128, 64]."""
    n = num_stages(image_size)
    return [channels * min(2 ** (n - 1 - i), MAX_MULT) for i in range(n)]


class DCGANGenerator(nn.Module):
    """z (N, latent_dim) -> image (N, out_channels, image_size, image_size) in [-1, 1]."""

    def __init__(self, *, spatial_dims: int = 2, latent_dim: int = 100, out_channels: int = 1,
                 channels: int = 64, image_size: int = 64) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        self.latent_dim, self.image_size = latent_dim, image_size
        widths = stage_widths(channels, image_size)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, widths[0], 4, 1, 0, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        ]
        for w_in, w_out in pairwise(widths):
            layers += [nn.ConvTranspose2d(w_in, w_out, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(w_out), nn.ReLU(inplace=True)]
        last = ThinOutputConvTranspose2d if out_channels <= THIN_CHANNELS else nn.ConvTranspose2d
        layers += [last(widths[-1], out_channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        dcgan_init_(self)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """z (N, latent_dim) float32; y ignored -> (N, C, H, W) float32 in [-1, 1]."""
        return to_data_size(self.main(z.reshape(z.shape[0], self.latent_dim, 1, 1)),
                            self.image_size)


class DCGANDiscriminator(nn.Module):
    """image (N, in_channels, H, W) -> (adv_logits (N,), None)."""

    def __init__(self, *, spatial_dims: int = 2, in_channels: int = 1, channels: int = 64,
                 image_size: int = 64) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        self.image_size = image_size
        widths = stage_widths(channels, image_size)[::-1]
        first = ThinInputConv2d if in_channels <= THIN_CHANNELS else nn.Conv2d
        layers: list[nn.Module] = [first(in_channels, widths[0], 4, 2, 1, bias=False),
                                   nn.LeakyReLU(0.2, inplace=True)]
        for w_in, w_out in pairwise(widths):
            layers += [nn.Conv2d(w_in, w_out, 4, 2, 1, bias=False), nn.BatchNorm2d(w_out),
                       nn.LeakyReLU(0.2, inplace=True)]
        self.features = nn.Sequential(*layers)  # render-size input -> (N, widths[-1], 4, 4)
        self.feature_channels = widths[-1]
        self.adv_head = nn.Conv2d(widths[-1], 1, 4, 1, 0, bias=False)
        dcgan_init_(self)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C, image_size, image_size) -> (N, feature_channels, 4, 4)."""
        return self.features(to_render_size(x, self.image_size))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (N, C, image_size, image_size) in [-1, 1]; y ignored -> (adv_logits (N,), None)."""
        return self.adv_head(self.feature_map(x)).flatten(), None


def build_per_class_dcgan(cfg: ModelSection, *, in_channels: int, image_size: int,
                          n_classes: int) -> GANPair:
    """K independent DCGANs in one conditional pair (``model.per_class: true``)."""
    require_labels(n_classes, model="one network per class", key="model.per_class",
                   fix="set model.per_class: false")
    gens = [DCGANGenerator(spatial_dims=2, latent_dim=cfg.latent_dim, out_channels=in_channels,
                           channels=cfg.base_width, image_size=image_size)
            for _ in range(n_classes)]
    discs = [DCGANDiscriminator(spatial_dims=2, in_channels=in_channels,
                                channels=cfg.base_width, image_size=image_size)
             for _ in range(n_classes)]
    return GANPair(PerClassGenerator(gens), PerClassDiscriminator(discs),
                   latent_dim=cfg.latent_dim, n_classes=n_classes, conditional=True,
                   aux_classifier=False, default_loss="bce", default_diffaugment=None,
                   default_ada=False, default_ema=False)


@GAN_MODELS.register("dcgan")
def build_dcgan(cfg: ModelSection, *, in_channels: int, image_size: int,
                n_classes: int) -> GANPair:
    """Unconditional DCGAN (labels ignored), or K of them with ``model.per_class``."""
    if cfg.per_class:
        return build_per_class_dcgan(cfg, in_channels=in_channels, image_size=image_size,
                                     n_classes=n_classes)
    g = DCGANGenerator(spatial_dims=2, latent_dim=cfg.latent_dim, out_channels=in_channels,
                       channels=cfg.base_width, image_size=image_size)
    d = DCGANDiscriminator(spatial_dims=2, in_channels=in_channels, channels=cfg.base_width,
                           image_size=image_size)
    # EMA of the generator (Yazici et al. 2019) by default: on BreastMNIST 32 px at 3 CPU-min,
    # 3 generator seeds, C2ST AUC 0.69-0.76 with it vs 0.87-1.00 without, and no checkerboard
    # (docs/benchmarks.md); the study's plain recipe sets model.ema: false
    return GANPair(g, d, latent_dim=cfg.latent_dim, n_classes=0, conditional=False,
                   aux_classifier=False, default_loss="bce", default_diffaugment=None,
                   default_ada=False, default_ema=True)
