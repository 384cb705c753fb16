"""SimCLR's pieces for the domain extractor (Chen et al., 2020, "A simple framework for contrastive
learning of visual representations"): grey-level views of an image and the NT-Xent loss that makes
each view find its partner in the batch. Used by :mod:`synthmed.metrics.domain`."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def augment(x: torch.Tensor, gen: torch.Generator, *, strong: bool) -> torch.Tensor:
    """Random flip, affine (zoom/rotate/shift), gamma, contrast/brightness and noise on [-1, 1].

    ``strong`` is SimCLR's "crop and distort" regime adapted to grey-level images: a zoom of up to
    1/0.7 (random resized crop), horizontal flip, +-10 degrees, gamma 0.7-1.4, contrast and
    brightness, faint noise; no colour jitter (one channel) and *no blur*: views must not teach the
    network that blurred or noisy images are the same as sharp ones, or blurred GAN samples would
    look real in its feature space. The weak regime only regularizes supervision.
    """
    n = len(x)

    def u(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(n, generator=gen) * (hi - lo) + lo

    scale = u(0.7, 1.0) if strong else u(0.9, 1.1)
    angle = u(-10, 10) * (math.pi / 180) if strong else u(-5, 5) * (math.pi / 180)
    shift = 0.1 if strong else 0.06
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack([torch.stack([flip * cos, -sin, u(-shift, shift)], 1),
                         torch.stack([flip * sin, cos, u(-shift, shift)], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if strong:
        gamma = torch.exp(u(math.log(0.7), math.log(1.4))).view(n, 1, 1, 1)
        x = ((x + 1) / 2).clamp(0.0, 1.0).pow(gamma) * 2 - 1
    contrast = (u(0.7, 1.3) if strong else u(0.9, 1.1)).view(n, 1, 1, 1)
    bright = (u(-0.15, 0.15) if strong else u(-0.05, 0.05)).view(n, 1, 1, 1)
    noise = torch.randn(x.shape, generator=gen) * 0.02
    return (x * contrast + bright + noise).clamp(-1.0, 1.0)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """SimCLR's normalized-temperature cross-entropy: each view must find its partner."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    n = len(z1)
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(sim, target)
