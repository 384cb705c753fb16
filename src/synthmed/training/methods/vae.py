"""The VAE training method: ``model.name: vae``, the baseline every generator is compared with.

Wires :class:`synthmed.models.vae.ConditionalVAE` (MONAI ``VarAutoEncoder``, class-conditional
when the data have two or more classes) into the one engine. Sampling decodes z ~ N(0, I) drawn
from ``torch.Generator().manual_seed(seed)`` alone, so an image is a function of (checkpoint,
class, seed). EMA is off by default (the ELBO optimum is not sharpened by averaging; turn it on
with ``model.ema: true``).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import nn

from synthmed.errors import ConfigError
from synthmed.generators import (
    Capabilities,
    Descriptor,
    ModelSection,
    Recipe,
    register_generator,
    setting,
)
from synthmed.models.vae import DEFAULT_CHANNELS, ConditionalVAE, vae_loss
from synthmed.training import distributed as ddp
from synthmed.training.method import (
    Batch,
    Sampler,
    TrainingMethod,
    sampling_weights,
    unwrap,
)
from synthmed.training.optim import build_adam
from synthmed.training.precision import Precision, add_scalers


class VAESection(ModelSection):
    """``model:`` keys of the (conditional) VAE (Kingma & Welling 2014; beta-VAE: Higgins et al.
    2017)."""

    name: Literal["vae"] = setting("vae", role="trained", description="vae")
    latent_dim: int = setting(100, role="trained", gt=0, description="length of the latent z")
    channels: list[int] | None = setting(None, role="trained", description="encoder widths per "
                                         "stride-2 level (default [32, 64, 128])")
    kl_weight: float = setting(1.0, role="trained", gt=0, description="weight of the KL term "
                               "(beta-VAE)")


VAE = Descriptor(names=("vae",), section=VAESection, kinds={"vae": "variational autoencoder"},
                 capabilities=Capabilities(conditional=True),
                 recipe=Recipe(losses={"rec": "reconstruction", "recon": "reconstruction",
                                       "kl": "KL divergence"}))


def make_vae(model_cfg, *, in_channels: int, image_size: int, n_classes: int) -> ConditionalVAE:
    channels = list(model_cfg.channels or DEFAULT_CHANNELS)
    if image_size % (2 ** len(channels)):
        raise ConfigError(f"model.channels: {len(channels)} stride-2 levels need an image size "
                          f"divisible by {2 ** len(channels)}, got {image_size}")
    return ConditionalVAE(in_channels=in_channels, image_size=image_size,
                          latent_size=model_cfg.latent_dim, channels=channels,
                          num_classes=n_classes)


def latent_noise(seeds: list[int], latent: int) -> torch.Tensor:
    """z (N, latent) for each seed from its own generator (batch-independent)."""
    return torch.stack([torch.randn(latent, generator=torch.Generator().manual_seed(int(s)))
                        for s in seeds])


@register_generator(VAE)
class VAEMethod(TrainingMethod):
    """Convolutional (C)VAE trained on the negative ELBO."""

    default_ema = False

    def __init__(self, vae: nn.Module, opt, *, cfg, n_classes: int, device: torch.device) -> None:
        self.vae, self.opt, self.cfg, self.device = vae, opt, cfg, device
        self.n_classes = n_classes
        self.precision = Precision(device, bool(cfg.train.amp), ("vae",))

    @classmethod
    def build(cls, cfg, data, device: torch.device, info: ddp.DistInfo) -> VAEMethod:
        m, t = cfg.model, cfg.train
        k = len(data.class_names) if data.labelled and len(data.class_names) >= 2 else 0
        vae = make_vae(m, in_channels=int(data.images.shape[1]),
                       image_size=int(data.images.shape[-1]), n_classes=k)
        fmt = torch.channels_last if t.channels_last else torch.contiguous_format
        vae = vae.to(device, memory_format=fmt)
        opt = build_adam(vae.parameters(), lr=t.lr_g, betas=t.betas, device=device)
        return cls(ddp.wrap(vae, device, info), opt, cfg=cfg, n_classes=k, device=device)

    def meta(self) -> dict[str, Any]:
        return {"conditional": self.n_classes > 0, "latent_dim": self.cfg.model.latent_dim}

    def _autocast(self):
        return self.precision.autocast()

    def train_step(self, batches: list[Batch]) -> dict[str, torch.Tensor]:
        """One Adam step on ``rec + kl_weight * kl`` of one batch."""
        b = batches[0]
        self.opt.zero_grad(set_to_none=True)
        with self._autocast():
            recon, mu, logvar = self.vae(b.images, b.labels if self.n_classes else None)
        rec, kl = vae_loss(recon, b.images, mu.float(), logvar.float(),
                           kl_weight=self.cfg.model.kl_weight)
        loss = rec + self.cfg.model.kl_weight * kl
        self.precision.backward(loss, "vae")
        self.precision.step(self.opt, "vae")
        return {"loss_rec": rec.detach(), "loss_kl": kl.detach()}

    def ema_network(self) -> nn.Module:
        return unwrap(self.vae)

    def state_dict(self) -> dict[str, Any]:
        return add_scalers({"vae": unwrap(self.vae).state_dict(),
                            "opt_vae": self.opt.state_dict()}, self.precision)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        unwrap(self.vae).load_state_dict(state["vae"])
        self.opt.load_state_dict(state["opt_vae"])
        self.precision.load_state_dict(state.get("grad_scalers"))

    def grid_inputs(self, seed: int, n: int):
        z = latent_noise([int(seed) * 1000 + 7919 + i for i in range(n)],
                         self.cfg.model.latent_dim).to(self.device)
        y = None
        if self.n_classes:
            y = (torch.arange(n) // int(math.sqrt(n)) % self.n_classes).to(self.device)
        return z, y

    def render_grid(self, inputs, network: nn.Module) -> tuple[torch.Tensor, int | None]:
        z, y = inputs
        return network.decode(z, y), None

    @classmethod
    def build_sampler(cls, state: dict[str, Any], cfg, device: torch.device,
                      **options: Any) -> tuple[Sampler, nn.Module]:
        del options  # none (the registry refuses any)
        meta = state["meta"]
        k = int(meta["n_classes"]) if meta["conditional"] else 0
        vae = make_vae(cfg.model, in_channels=meta["in_channels"], image_size=meta["image_size"],
                       n_classes=k)
        vae.load_state_dict(sampling_weights(state, "vae"))
        # NHWC, as the GAN sampler: oneDNN on CPUs, tensor cores on GPUs.
        vae.to(device, memory_format=torch.channels_last).eval()
        latent = int(meta["latent_dim"])

        def sampler(seeds: list[int], labels: torch.Tensor | None) -> torch.Tensor:
            return vae.decode(latent_noise(seeds, latent).to(device), labels if k else None)

        return sampler, vae
