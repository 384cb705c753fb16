"""A small mask-following generator and a discriminator without strided convolutions (issue 21).

``SpadeGenerator`` (``model.generator: spade``) follows SPADE (Park et al., "Semantic image
synthesis with spatially-adaptive normalization", CVPR 2019): no encoder that could wash the
label map out; the condition, resized to every scale, sets the scale and shift of each
normalization, so a lesion in the mask modulates the features at its place at every resolution.
Written small for CPUs: one 3x3 convolution per scale, a shared 3x3 "mlp" of 16 channels per
SPADE block (MONAI's ``SPADE`` blocks cost ~8x a pix2pix step here). Up-sampling is
resize-then-convolve (no transposed convolutions, no checkerboard; Odena et al. 2016). Noise is
injected per pixel with a learned per-channel weight after each normalization (as StyleGAN,
Karras et al. 2019). That alone gave one template head per mask (the L1 loss pulls every noise
draw to the conditional mean and the learned noise weights stay near their zero start), so
``model.noise_dim`` adds OASIS's 3D noise (Sushko et al., "You only need adversarial supervision
for semantic image synthesis", ICLR 2021): a per-image vector of ``noise_dim`` N(0, 1) values,
replicated over the image and concatenated to the label map that every SPADE block sees, so the
noise changes the modulation of whole regions, not only per-pixel texture. At sampling all noise
comes from the image's seed; with noise off (``noise=False``) the vector is 0.

``PooledDiscriminator`` (``model.discriminator: pooled``) is a PatchGAN whose down-sampling is
average pooling after stride-1 convolutions, the other known checkerboard source removed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from synthmed.errors import ConfigError

SPADE_HIDDEN = 16


class Spade(nn.Module):
    """InstanceNorm without affine, then ``x * (1 + gamma(c)) + beta(c)`` with gamma, beta from
    the condition ``c`` resized (nearest) to ``x``'s size."""

    def __init__(self, channels: int, cond_channels: int, hidden: int = SPADE_HIDDEN) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.shared = nn.Sequential(nn.Conv2d(cond_channels, hidden, 3, 1, 1), nn.ReLU())
        self.gamma_beta = nn.Conv2d(hidden, 2 * channels, 3, 1, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        c = F.interpolate(cond, size=x.shape[-2:], mode="nearest")
        gamma, beta = self.gamma_beta(self.shared(c)).chunk(2, 1)
        return self.norm(x) * (1 + gamma) + beta


class _Block(nn.Module):
    """x2 nearest up-sampling, 3x3 conv, SPADE, noise, LeakyReLU."""

    def __init__(self, cin: int, cout: int, cond_channels: int, up: bool) -> None:
        super().__init__()
        self.up = up
        self.conv = nn.Conv2d(cin, cout, 3, 1, 1)
        self.spade = Spade(cout, cond_channels)
        self.noise_weight = nn.Parameter(torch.zeros(1, cout, 1, 1))

    def forward(self, x: torch.Tensor, cond: torch.Tensor, noise: bool) -> torch.Tensor:
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        h = self.spade(self.conv(x), cond)
        if noise:
            h = h + self.noise_weight * torch.randn(h.shape[0], 1, *h.shape[2:], device=h.device,
                                                    dtype=h.dtype)
        return F.leaky_relu(h, 0.2)


class SpadeGenerator(nn.Module):
    """Condition (N, in_channels, S, S) -> image (N, out_channels, S, S) in [-1, 1].

    Starts from the condition area-down-sampled to 4x4, then one block per scale up to S (two at
    S), widths ``base * min(2**(levels - i), 8)``. ``forward(x, noise=None)``: noise on when
    ``noise`` (default: in training mode), drawn from the global RNG (the sampler seeds it):
    per-pixel injection, plus a ``noise_dim`` vector concatenated to the condition.
    """

    def __init__(self, in_channels: int, out_channels: int, image_size: int,
                 base_width: int = 16, noise_dim: int = 0) -> None:
        super().__init__()
        self.noise_dim = int(noise_dim)
        cond = in_channels + self.noise_dim
        levels = int(math.log2(image_size)) - 2
        if image_size < 8 or 2 ** (levels + 2) != image_size:
            raise ConfigError(f"model.image_size: the spade generator needs a power of two >= 8, "
                              f"got {image_size}; set model.image_size")
        widths = [base_width * min(2 ** (levels - i), 8) for i in range(levels + 1)]
        self.start = nn.Conv2d(cond, widths[0], 3, 1, 1)
        self.blocks = nn.ModuleList(
            [_Block(widths[0], widths[0], cond, up=False)]
            + [_Block(widths[i - 1], widths[i], cond, up=True) for i in range(1, levels + 1)]
            + [_Block(widths[-1], widths[-1], cond, up=False)])
        self.out = nn.Conv2d(widths[-1], out_channels, 3, 1, 1)

    def forward(self, x: torch.Tensor, noise: bool | None = None) -> torch.Tensor:
        noise = self.training if noise is None else noise
        if self.noise_dim:  # OASIS 3D noise: one vector per image, replicated over the pixels
            z = (torch.randn(len(x), self.noise_dim, 1, 1, device=x.device, dtype=x.dtype)
                 if noise else x.new_zeros(len(x), self.noise_dim, 1, 1))
            x = torch.cat([x, z.expand(-1, -1, *x.shape[-2:])], 1)
        h = self.start(F.interpolate(x, size=(4, 4), mode="area"))
        for block in self.blocks:
            h = block(h, x, noise)
        return torch.tanh(self.out(h))


class PooledDiscriminator(nn.Module):
    """PatchGAN on (condition, image) with stride-1 3x3 convolutions and 2x2 average pooling
    (three times, as the 70x70 PatchGAN's strides) -> patch logits (N, P)."""

    def __init__(self, in_channels: int, base_width: int = 16, num_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, base_width, 3, 1, 1), nn.LeakyReLU(0.2)]
        w = base_width
        for i in range(num_layers):
            nxt = base_width * min(2 ** (i + 1), 8)
            layers += [nn.AvgPool2d(2), nn.Conv2d(w, nxt, 3, 1, 1),
                       nn.InstanceNorm2d(nxt, affine=True), nn.LeakyReLU(0.2)]
            w = nxt
        layers.append(nn.Conv2d(w, 1, 3, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, cond: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([cond, image], 1)).flatten(1)
