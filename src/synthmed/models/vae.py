"""Convolutional (conditional) variational autoencoder: the cheap baseline generator.

Kingma & Welling 2014; class conditioning as in Sohn et al. 2015 (CVAE): the encoder sees the
class as one-hot planes beside the image and the decoder sees it beside the latent code. The
network is MONAI's ``VarAutoEncoder`` (strided convolutions down to a small map, linear layers to
mu and log-variance, the mirror image up), with its latent-to-decoder layer widened by the class
one-hot. Samples decode z ~ N(0, I); they are blurry, as VAE samples trained with a pixel loss
are, and the benchmark shows that rather than hiding it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_CHANNELS = (32, 64, 128)


class ConditionalVAE(nn.Module):
    """(x (N, C, S, S) in [-1, 1], y (N,) int64 | None) -> (reconstruction, mu, logvar).

    ``decode(z, y)``: z (N, latent_size), y (N,) -> (N, C, S, S) in [-1, 1] (tanh). S must be
    divisible by 2 ** len(channels). ``num_classes == 0``: unconditional.
    """

    def __init__(self, *, spatial_dims: int = 2, in_channels: int = 1, image_size: int = 32,
                 latent_size: int = 64, channels: tuple[int, ...] | list[int] = DEFAULT_CHANNELS,
                 num_classes: int = 0) -> None:
        super().__init__()
        from monai.networks.nets import VarAutoEncoder

        channels = tuple(int(c) for c in channels)
        if image_size % (2 ** len(channels)):
            raise ValueError(f"image_size {image_size} is not divisible by 2**{len(channels)}")
        self.num_classes, self.latent_size = num_classes, latent_size
        self.net = VarAutoEncoder(
            spatial_dims=spatial_dims, in_shape=(in_channels + num_classes, image_size, image_size),
            out_channels=in_channels, latent_size=latent_size, channels=channels,
            strides=(2,) * len(channels), num_res_units=1, use_sigmoid=False)
        if num_classes:  # the decoder sees [z, one_hot(y)]
            lin = self.net.decodeL
            self.net.decodeL = nn.Linear(latent_size + num_classes, lin.out_features)

    def _onehot(self, y: torch.Tensor | None, n: int, device) -> torch.Tensor | None:
        if not self.num_classes:
            return None
        if y is None:
            raise ValueError("this conditional VAE needs class labels y (N,)")
        return F.one_hot(y.to(device), self.num_classes).float()

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """x (N, C, S, S) -> (mu, logvar), each (N, latent_size)."""
        oh = self._onehot(y, len(x), x.device)
        if oh is not None:
            x = torch.cat([x, oh[:, :, None, None].expand(-1, -1, *x.shape[2:])], dim=1)
        return self.net.encode_forward(x)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """z (N, latent_size), y (N,) -> images (N, C, S, S) in [-1, 1]."""
        oh = self._onehot(y, len(z), z.device)
        if oh is not None:
            z = torch.cat([z, oh.to(z.dtype)], dim=1)
        return torch.tanh(self.net.decode_forward(z, use_sigmoid=False))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reparameterized pass (z = mu + sigma * eps, eps from the global RNG)."""
        mu, logvar = self.encode(x, y)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decode(z, y), mu, logvar


def vae_loss(recon: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, *,
             kl_weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(reconstruction, KL) per image, averaged over the batch: the negative ELBO is
    ``rec + kl_weight * kl`` (Higgins et al. 2017 for kl_weight != 1).

    The reconstruction term is the summed squared error, a Gaussian likelihood with variance 1/2
    on the [-1, 1] scale; KL(N(mu, sigma^2) || N(0, I)) in closed form.
    """
    rec = (recon.float() - x).pow(2).flatten(1).sum(1).mean()
    kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()
    return rec, kl
