"""Conditional ResNet GAN with a projection discriminator: the default for labelled data.

Generator: SNGAN-style residual generator (Miyato et al. 2018) whose BatchNorm layers take their
scale and shift from a class embedding (conditional BatchNorm, de Vries et al. 2017; Miyato &
Koyama 2018). Discriminator: residual blocks with spectral normalization on every weight (Miyato
et al. 2018) and the projection head of Miyato & Koyama 2018,
``D(x, y) = w . phi(x) + <embed(y), phi(x)>``. Trained with the hinge loss, DiffAugment (Zhao et
al. 2020) and adaptive augmentation probability (Karras et al. 2020) by default, which is what
makes GANs usable on the few hundred images medical datasets have. With ``num_classes == 0`` both
networks are unconditional.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from synthmed.errors import ConfigError
from synthmed.generators import ModelSection
from synthmed.models.base import (
    GAN_MODELS,
    GANPair,
    check_spatial_dims,
    num_stages,
    to_data_size,
    to_render_size,
)

MAX_MULT = 8


def _xavier(module: nn.Module, gain: float = 1.0) -> nn.Module:
    nn.init.xavier_uniform_(module.weight, gain)
    if getattr(module, "bias", None) is not None:
        nn.init.zeros_(module.bias)
    return module


def _sn(module: nn.Module, gain: float = 1.0) -> nn.Module:
    """Xavier-initialize then spectrally normalize (the SNGAN recipe)."""
    return spectral_norm(_xavier(module, gain))


#: ``model.cgan_upsample`` values (the cgan generator)
NOISE_GAIN = 10.0  # noise-input strengths' learning-rate multiplier
NOISE_BLOCKS = 2  # the generator's last blocks with noise inputs (full and half resolution)
UPSAMPLE_MODES = ("nearest", "bilinear")


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm with per-class scale and shift; plain affine BatchNorm when num_classes == 0."""

    def __init__(self, num_features: int, num_classes: int = 0) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.bn = nn.BatchNorm2d(num_features, affine=num_classes == 0)
        if num_classes:
            self.gamma = nn.Embedding(num_classes, num_features)
            self.beta = nn.Embedding(num_classes, num_features)
            nn.init.ones_(self.gamma.weight)
            nn.init.zeros_(self.beta.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """x (N, C, H, W), y (N,) int64 (required when conditional) -> (N, C, H, W)."""
        h = self.bn(x)
        if not self.num_classes:
            return h
        if y is None:
            raise ValueError("this conditional network needs class labels y (N,)")
        return h * self.gamma(y)[:, :, None, None] + self.beta(y)[:, :, None, None]


def upsample2x(x: torch.Tensor, mode: str) -> torch.Tensor:
    """Double H and W: ``nearest`` (SNGAN's) or ``bilinear`` (a fixed low-pass before the 3x3
    convolution: resize-convolution without the pixel-replication pattern, Odena et al. 2016)."""
    if mode == "nearest":
        return F.interpolate(x, scale_factor=2.0, mode="nearest")
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class GenBlock(nn.Module):
    """Pre-activation residual block that doubles the resolution (nearest or bilinear
    upsampling); with ``noise``, a per-pixel noise map is added after each convolution with
    learned per-channel strengths (StyleGAN's noise inputs, Karras et al. 2019), starting at 0.
    The strengths are stored divided by :data:`NOISE_GAIN` (a learning-rate multiplier: Adam moves
    a parameter by about lr per step, which held them below 0.1 after 1,000 steps while their
    gradient still pushed them up)."""

    def __init__(self, in_ch: int, out_ch: int, num_classes: int,
                 upsample: str = "nearest", noise: bool = False) -> None:
        super().__init__()
        if upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {upsample!r}")
        self.upsample = upsample
        if noise:
            self.noise1 = nn.Parameter(torch.zeros(out_ch))
            self.noise2 = nn.Parameter(torch.zeros(out_ch))
        self.bn1 = ConditionalBatchNorm2d(in_ch, num_classes)
        self.conv1 = _xavier(nn.Conv2d(in_ch, out_ch, 3, 1, 1), 2**0.5)
        self.bn2 = ConditionalBatchNorm2d(out_ch, num_classes)
        self.conv2 = _xavier(nn.Conv2d(out_ch, out_ch, 3, 1, 1), 2**0.5)
        self.shortcut = _xavier(nn.Conv2d(in_ch, out_ch, 1))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None,
                noise: torch.Tensor | None = None) -> torch.Tensor:
        """x (N, in_ch, H, W), noise (N, 1, 2H, 2W) | None -> (N, out_ch, 2H, 2W)."""
        h = self.conv1(upsample2x(F.relu(self.bn1(x, y)), self.upsample))
        if noise is not None:
            h = h + NOISE_GAIN * self.noise1[None, :, None, None] * noise
        h = self.conv2(F.relu(self.bn2(h, y)))
        if noise is not None:
            h = h + NOISE_GAIN * self.noise2[None, :, None, None] * noise
        return h + self.shortcut(upsample2x(x, self.upsample))


class ResNetGenerator(nn.Module):
    """(z (N, input_dim), y (N,) | None) -> image (N, out_channels, image_size, image_size).

    With ``noise`` the last :data:`NOISE_BLOCKS` blocks (full and half resolution) add per-pixel
    noise maps, so fine stochastic texture such as ultrasound speckle (1-4 px grain) need not be
    computed from the few numbers of z. The maps are the tail of z (``input_dim = latent_dim +
    R**2 + (R/2)**2`` at render size R), so an image stays a function of its own z alone: one
    seed, one image, whatever the batch.
    """

    def __init__(self, *, spatial_dims: int = 2, latent_dim: int = 128, out_channels: int = 1,
                 channels: int = 64, image_size: int = 64, num_classes: int = 0,
                 upsample: str = "nearest", noise: bool = False) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        n = num_stages(image_size)
        widths = [channels * min(2 ** (n - 1 - i), MAX_MULT) for i in range(n)] + [channels]
        self.num_classes = num_classes
        self.latent_dim, self.image_size = latent_dim, image_size
        noisy = range(max(n - NOISE_BLOCKS, 0), n) if noise else range(0)
        self.noise_sides = {i: 8 * 2**i for i in noisy}  # block i outputs 8 * 2^i px
        self.input_dim = latent_dim + sum(s * s for s in self.noise_sides.values())
        self.base_shape = (widths[0], 4, 4)
        self.fc = _xavier(nn.Linear(latent_dim, widths[0] * 16))
        self.blocks = nn.ModuleList(
            GenBlock(widths[i], widths[i + 1], num_classes, upsample, noise=i in noisy)
            for i in range(n)
        )
        self.bn_out = nn.BatchNorm2d(widths[-1])
        self.conv_out = _xavier(nn.Conv2d(widths[-1], out_channels, 3, 1, 1))

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """z (N, input_dim) float32, y (N,) int64 (ignored when unconditional) -> (N, C, H, W)
        float32 in [-1, 1]."""
        if not self.num_classes:
            y = None
        noise, at = {}, self.latent_dim
        for i, side in self.noise_sides.items():
            noise[i] = z[:, at:at + side * side].reshape(-1, 1, side, side)
            at += side * side
        h = self.fc(z[:, :self.latent_dim]).reshape(z.shape[0], *self.base_shape)
        for i, block in enumerate(self.blocks):
            h = block(h, y, noise.get(i))
        return to_data_size(torch.tanh(self.conv_out(F.relu(self.bn_out(h)))), self.image_size)


class DiscBlock(nn.Module):
    """Spectrally normalized residual block, optionally halving the resolution (average pool).

    The first block of the network ("optimized block" in SNGAN) takes raw pixels: no leading
    ReLU, and its shortcut pools before the 1x1 convolution.
    """

    def __init__(self, in_ch: int, out_ch: int, *, downsample: bool, first: bool = False) -> None:
        super().__init__()
        self.downsample, self.first = downsample, first
        self.conv1 = _sn(nn.Conv2d(in_ch, out_ch, 3, 1, 1), 2**0.5)
        self.conv2 = _sn(nn.Conv2d(out_ch, out_ch, 3, 1, 1), 2**0.5)
        self.shortcut = _sn(nn.Conv2d(in_ch, out_ch, 1)) if in_ch != out_ch or downsample else None

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 2) if self.downsample else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, in_ch, H, W) -> (N, out_ch, H/2, W/2) (or H, W without downsampling)."""
        h = x if self.first else F.relu(x)
        h = self._pool(self.conv2(F.relu(self.conv1(h))))
        if self.shortcut is None:
            return h + x
        s = self.shortcut(self._pool(x)) if self.first else self._pool(self.shortcut(x))
        return h + s


class ProjectionDiscriminator(nn.Module):
    """image (N, C, H, W), y (N,) | None -> (adv_logits (N,), None)."""

    def __init__(self, *, spatial_dims: int = 2, in_channels: int = 1, channels: int = 64,
                 image_size: int = 64, num_classes: int = 0) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        n = num_stages(image_size)
        widths = [channels * min(2**i, MAX_MULT) for i in range(n)]
        blocks = [DiscBlock(in_channels, widths[0], downsample=True, first=True)]
        blocks += [DiscBlock(widths[i - 1], widths[i], downsample=True) for i in range(1, n)]
        blocks += [DiscBlock(widths[-1], widths[-1], downsample=False)]
        self.blocks = nn.Sequential(*blocks)  # render-size input -> (N, widths[-1], 4, 4)
        self.num_classes, self.image_size = num_classes, image_size
        self.linear = _sn(nn.Linear(widths[-1], 1))
        self.embed = _sn(nn.Embedding(num_classes, widths[-1])) if num_classes else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, None]:
        """x (N, C, H, W) in [-1, 1], y (N,) int64 (required when conditional) ->
        (adv_logits (N,), None)."""
        h = self.blocks(to_render_size(x, self.image_size))
        h = F.relu(h).sum(dim=(2, 3))  # global sum pooling, (N, C)
        out = self.linear(h).flatten()
        if self.embed is not None:
            if y is None:
                raise ValueError("this conditional discriminator needs class labels y (N,)")
            out = out + (self.embed(y) * h).sum(dim=1)
        return out, None


@GAN_MODELS.register("cgan")
def build_cgan(cfg: ModelSection, *, in_channels: int, image_size: int,
               n_classes: int) -> GANPair:
    """Projection cGAN for labelled data; unconditional when the data have fewer than 2 classes."""
    if cfg.per_class:
        raise ConfigError(
            "model.per_class: only dcgan and acgan train one network per class; "
            "cgan shares one network across classes, so set model.per_class: false"
        )
    k = n_classes if n_classes >= 2 else 0
    g = ResNetGenerator(spatial_dims=2, latent_dim=cfg.latent_dim, out_channels=in_channels,
                        channels=cfg.base_width, image_size=image_size, num_classes=k,
                        upsample=cfg.cgan_upsample, noise=cfg.cgan_noise)
    d = ProjectionDiscriminator(spatial_dims=2, in_channels=in_channels, channels=cfg.base_width,
                                image_size=image_size, num_classes=k)
    return GANPair(g, d, latent_dim=g.input_dim, n_classes=k, conditional=k > 0,
                   aux_classifier=False, default_loss="hinge",
                   default_diffaugment="translation,cutout,color", default_ada=True,
                   default_ema=True)
