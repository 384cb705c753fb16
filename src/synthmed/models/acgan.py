"""AC-GAN (Odena, Olah & Shlens 2017) on DCGAN bodies.

The generator multiplies z element-wise by a learned class embedding (the common PyTorch/Keras
AC-GAN form) and feeds it to a DCGAN generator. The discriminator is a DCGAN discriminator with a
second head: an auxiliary classifier returning class logits, trained with cross entropy on real and
fake images (``synthmed.training.losses.aux_class_loss``). This is the conditional model of the
liver-lesion study; ``model.per_class: true`` gives that study's other approach (one DCGAN per
class).
"""

from __future__ import annotations

import torch
from torch import nn

from synthmed.generators import ModelSection
from synthmed.models.base import GAN_MODELS, GANPair, dcgan_init_, require_labels
from synthmed.models.dcgan import DCGANDiscriminator, DCGANGenerator, build_per_class_dcgan


class ACGANGenerator(nn.Module):
    """(z (N, latent_dim), y (N,)) -> image (N, out_channels, image_size, image_size)."""

    def __init__(self, *, spatial_dims: int = 2, latent_dim: int = 100, out_channels: int = 1,
                 channels: int = 64, image_size: int = 64, num_classes: int = 2) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.num_classes = num_classes
        self.embed = nn.Embedding(num_classes, latent_dim)  # N(0, 1) init, like z
        self.net = DCGANGenerator(spatial_dims=spatial_dims, latent_dim=latent_dim,
                                  out_channels=out_channels, channels=channels,
                                  image_size=image_size)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """z (N, latent_dim) float32, y (N,) int64 -> (N, C, H, W) float32 in [-1, 1]."""
        if y is None:
            raise ValueError("ACGANGenerator needs class labels y (N,)")
        return self.net(z * self.embed(y))


class ACGANDiscriminator(DCGANDiscriminator):
    """image (N, C, H, W) -> (adv_logits (N,), class_logits (N, num_classes))."""

    def __init__(self, *, spatial_dims: int = 2, in_channels: int = 1, channels: int = 64,
                 image_size: int = 64, num_classes: int = 2) -> None:
        super().__init__(spatial_dims=spatial_dims, in_channels=in_channels, channels=channels,
                         image_size=image_size)
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.num_classes = num_classes
        self.class_head = dcgan_init_(nn.Conv2d(self.feature_channels, num_classes, 4, 1, 0))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """x (N, C, H, W) in [-1, 1]; y ignored (the classifier predicts it) -> (N,), (N, K)."""
        h = self.feature_map(x)
        return self.adv_head(h).flatten(), self.class_head(h).flatten(1)


@GAN_MODELS.register("acgan")
def build_acgan(cfg: ModelSection, *, in_channels: int, image_size: int,
                n_classes: int) -> GANPair:
    """AC-GAN for labelled data, or one DCGAN per class with ``model.per_class``."""
    if cfg.per_class:
        return build_per_class_dcgan(cfg, in_channels=in_channels, image_size=image_size,
                                     n_classes=n_classes)
    require_labels(n_classes, model="'acgan'")
    g = ACGANGenerator(spatial_dims=2, latent_dim=cfg.latent_dim, out_channels=in_channels,
                       channels=cfg.base_width, image_size=image_size, num_classes=n_classes)
    d = ACGANDiscriminator(spatial_dims=2, in_channels=in_channels, channels=cfg.base_width,
                           image_size=image_size, num_classes=n_classes)
    return GANPair(g, d, latent_dim=cfg.latent_dim, n_classes=n_classes, conditional=True,
                   aux_classifier=True, default_loss="bce", default_diffaugment=None,
                   default_ada=False, default_ema=False)
