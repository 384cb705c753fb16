"""A small OASIS discriminator (``model.discriminator: oasis``, issue 21).

OASIS (Sushko et al., "You only need adversarial supervision for semantic image synthesis", ICLR
2021) replaces the real/fake PatchGAN by a segmentation network: for every pixel of an image
(the label map is not an input) it predicts one of the N label classes or an extra "fake" class.
D learns the real image's pixels as their label and the generated image's pixels as fake; G is
rewarded when D reads its pixels as the label the mask gives them. The loss is cross-entropy
with class-balanced weights (rare classes, here the lesion, weigh as much as the background),
so every lesion pixel has to look like a lesion: label-faithfulness is the adversarial loss
itself. The paper needs no L1/perceptual loss (``model.l1_weight`` still applies; set it low).

Written small for CPUs: a U-Net of stride-1 3x3 convolutions with average pooling down and
nearest resize up (no strided or transposed convolutions), 3 levels, widths ``base, 2 base,
4 base``; the paper's is a ResNet U-Net with spectral norm and LabelMix, both left out here.
Classes are the label map's values 0..K (0: no lesion), so N = K + 1 and "fake" is class N.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1), nn.InstanceNorm2d(cout, affine=True),
                         nn.LeakyReLU(0.2))


class OasisDiscriminator(nn.Module):
    """Image (N, C, H, W) -> per-pixel logits (N, classes + 1, H, W); the last class is fake."""

    def __init__(self, image_channels: int, classes: int, base_width: int = 16) -> None:
        super().__init__()
        w = [base_width, base_width * 2, base_width * 4]
        self.classes = int(classes)
        self.d0, self.d1 = _conv(image_channels, w[0]), _conv(w[0], w[1])
        self.d2 = _conv(w[1], w[2])
        self.u1, self.u0 = _conv(w[2] + w[1], w[1]), _conv(w[1] + w[0], w[0])
        self.out = nn.Conv2d(w[0], self.classes + 1, 1)

    def forward(self, cond: torch.Tensor | None, image: torch.Tensor) -> torch.Tensor:
        del cond  # OASIS's D sees the image only; the label map is its target
        h0 = self.d0(image)
        h1 = self.d1(F.avg_pool2d(h0, 2))
        h2 = self.d2(F.avg_pool2d(h1, 2))
        u1 = self.u1(torch.cat([F.interpolate(h2, scale_factor=2, mode="nearest"), h1], 1))
        u0 = self.u0(torch.cat([F.interpolate(u1, scale_factor=2, mode="nearest"), h0], 1))
        return self.out(u0)


def label_targets(masks: torch.Tensor, classes: int) -> torch.Tensor:
    """(N, 1, H, W) label maps -> (N, H, W) int64 class ids in 0..classes-1."""
    return masks.round().clamp(0, classes - 1).long()[:, 0]


def balanced_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """OASIS's class-balanced cross-entropy: each pixel weighted by the inverse frequency of its
    class in the batch, normalised so the weights average 1 over the classes present."""
    counts = torch.bincount(target.flatten(), minlength=logits.shape[1]).float()
    present = (counts > 0).sum()
    coef = torch.where(counts > 0, target.numel() / (counts.clamp(min=1) * present),
                       torch.zeros_like(counts))
    loss = F.cross_entropy(logits.float(), target, reduction="none")
    return (loss * coef[target]).mean()


def fake_ce(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of every pixel against the fake class (the last one)."""
    target = torch.full((logits.shape[0], *logits.shape[2:]), logits.shape[1] - 1,
                        dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits.float(), target)
