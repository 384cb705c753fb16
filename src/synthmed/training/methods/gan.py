"""The GAN training method: DCGAN, AC-GAN, projection cGAN and one DCGAN per class.

Wires a :class:`~synthmed.models.GANPair` to :class:`~synthmed.training.steps.GANSteps` (the
D and G updates), DiffAugment/ADA (Zhao et al. 2020; Karras et al. 2020) and the GAN part of the
checkpoint. The loop, EMA, checkpoints and DDP process group belong to the trainer.
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
from synthmed.models import build_gan
from synthmed.models.perclass import PerClassGenerator
from synthmed.training import distributed as ddp
from synthmed.training.augment import AdaptiveAugment
from synthmed.training.losses import build_loss
from synthmed.training.method import (
    Batch,
    Sampler,
    TrainingMethod,
    sampling_weights,
    unwrap,
)
from synthmed.training.optim import build_adam
from synthmed.training.precision import add_scalers
from synthmed.training.steps import GANSteps, StepConfig

DEFAULT_POLICY = "translation,cutout,color"


class GANSection(ModelSection):
    """``model:`` keys of dcgan, acgan and cgan (Radford et al. 2016; Odena et al. 2017; Miyato &
    Koyama 2018)."""

    name: Literal["dcgan", "acgan", "cgan"] = setting(
        "dcgan", role="trained", description="dcgan (unconditional) | acgan (auxiliary "
        "classifier) | cgan (projection discriminator)")
    latent_dim: int = setting(100, role="trained", gt=0, description="length of the noise z")
    base_width: int = setting(64, role="trained", gt=0, description="channels of the widest "
                              "layer / 8 (network width)")
    per_class: bool = setting(False, role="trained", description="one unconditional generator "
                              "per class")
    loss: str | None = setting(None, role="trained", description="bce | hinge | wgan-gp; "
                               "default per model")
    r1_gamma: float = setting(0.0, role="trained", ge=0, description="R1 gradient penalty "
                              "weight on real images (Mescheder et al. 2018)")
    gp_weight: float = setting(10.0, ge=0, role="trained", description="wgan-gp: gradient "
                               "penalty weight")
    aux_weight: float = setting(1.0, ge=0, role="trained", description="ACGAN auxiliary "
                                "classifier weight")
    diffaugment: str | None = setting(
        "auto", role="trained", description="comma list of translation,cutout,color; 'auto' "
        "(on for cgan) or none")
    ada: bool | None = setting(None, role="trained", description="adaptive augmentation "
                               "probability (Karras et al. 2020); default per model")
    ada_target: float = setting(0.6, role="trained", gt=0, lt=1, description="ADA: target sign "
                                "of D's outputs on real images")
    ada_interval: int = setting(4, role="trained", gt=0, description="ADA: steps between "
                                "updates of p")
    ada_speed_img: int = setting(20_000, role="trained", gt=0, description="ADA: images for p "
                                 "to move by 1")
    cr_weight: float = setting(0.0, role="trained", ge=0, description="balanced consistency "
                               "regularization (bCR, Zhao et al. 2021): weight of D's squared "
                               "change under a random shift, on reals and fakes; 0 = off")
    cgan_noise: bool = setting(False, role="trained", description="cgan: per-pixel noise "
                               "inputs in the generator's last block (StyleGAN's, for speckle "
                               "and other fine random texture); z grows by the image's pixels")
    cgan_upsample: Literal["nearest", "bilinear"] = setting(
        "nearest", role="trained", description="cgan: generator up-sampling before each 3x3 "
        "convolution (nearest as SNGAN; bilinear low-passes first)")


GAN = Descriptor(
    names=("dcgan", "acgan", "cgan"), section=GANSection,
    kinds={"dcgan": "unconditional GAN (DCGAN)", "cgan": "class-conditional GAN",
           "acgan": "class-conditional GAN with auxiliary classifier (AC-GAN)"},
    capabilities={"dcgan": Capabilities(), "acgan": Capabilities(conditional=True),
                  "cgan": Capabilities(conditional=True)},
    # usable samples (class structure, no checkerboard) on the phantom and 64 px ultrasound
    # after ~2,000 steps (docs/training.md, "Steps you need")
    recipe=Recipe(steps=lambda size: 2000,
                  losses={"d": "discriminator", "g": "generator"}))


def build_augment(cfg, default_policy: str | None, default_ada: bool) -> AdaptiveAugment | None:
    """DiffAugment with a fixed policy, or ADA's adaptive probability, or nothing."""
    m = cfg.model
    policy = default_policy if m.diffaugment == "auto" else m.diffaugment
    if policy in (None, "", "none"):
        policy = None
    ada = default_ada if m.ada is None else m.ada
    if ada and policy is None:
        policy = DEFAULT_POLICY
    if policy is None:
        return None
    return AdaptiveAugment(policy, target=m.ada_target, interval=m.ada_interval,
                           speed_img=m.ada_speed_img, p=0.0 if ada else 1.0, adaptive=ada)


def _noise(seeds: list[int], latent_dim: int) -> torch.Tensor:
    """z for each seed from ``torch.Generator().manual_seed(seed)`` alone (batch-independent)."""
    return torch.stack([torch.randn(latent_dim, generator=torch.Generator().manual_seed(int(s)))
                        for s in seeds])


@register_generator(GAN)
class GANMethod(TrainingMethod):
    """``model.name`` in dcgan | acgan | cgan (``model.per_class`` too)."""

    def __init__(self, steps: GANSteps, pair, loss_name: str, d_steps: int) -> None:
        self.steps = steps
        self.pair = pair
        self.loss_name = loss_name
        self.batches_per_step = d_steps
        self.default_ema = pair.default_ema

    @classmethod
    def build(cls, cfg, data, device: torch.device, info: ddp.DistInfo) -> GANMethod:
        if cfg.model.cr_weight > 0 and cfg.model.per_class:
            raise ConfigError("model.cr_weight: bCR runs D on a batch and its shifted copy "
                              "together, which one-network-per-class routing cannot; set "
                              "model.cr_weight: 0 or model.per_class: false")
        n_classes = len(data.class_names) if data.labelled else 0
        channels, size = int(data.images.shape[1]), int(data.images.shape[-1])
        pair = build_gan(cfg.model, in_channels=channels, image_size=size, n_classes=n_classes)
        fmt = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
        routed = isinstance(pair.generator, PerClassGenerator)
        G = pair.generator.to(device, memory_format=fmt)
        D = pair.discriminator.to(device, memory_format=fmt)
        t = cfg.train
        opt_g = build_adam(G.parameters(), lr=t.lr_g, betas=t.betas, device=device)
        opt_d = build_adam(D.parameters(), lr=t.lr_d, betas=t.betas, device=device)
        unused = bool(cfg.model.per_class)
        G = ddp.wrap(G, device, info, find_unused_parameters=unused)
        D = ddp.wrap(D, device, info, find_unused_parameters=unused)
        loss_name = cfg.model.loss or pair.default_loss
        augment = build_augment(cfg, pair.default_diffaugment, pair.default_ada)
        if augment is not None and info.enabled:
            augment.distribute(info.world_size, device)
        steps = GANSteps(
            generator=G, discriminator=D, opt_g=opt_g, opt_d=opt_d,
            loss=build_loss(loss_name, key="model.loss"),
            augment=augment, ema=None,
            latent_dim=pair.latent_dim, conditional=pair.conditional,
            aux_classifier=pair.aux_classifier,
            settings=StepConfig(r1_gamma=cfg.model.r1_gamma, gp_weight=cfg.model.gp_weight,
                                aux_weight=cfg.model.aux_weight, amp=t.amp,
                                cr_weight=cfg.model.cr_weight),
            device=device, routed=routed)
        return cls(steps, pair, loss_name, t.d_steps)

    def meta(self) -> dict[str, Any]:
        return {"latent_dim": self.pair.latent_dim, "conditional": self.pair.conditional,
                "loss": self.loss_name}

    def train_step(self, batches: list[Batch]) -> dict[str, torch.Tensor]:
        """``d_steps`` D updates (one per batch), then one G update on the last D step's fakes."""
        s, k = self.steps, len(batches)
        loss_d = None
        for i, b in enumerate(batches):
            y = b.labels if s.conditional else None
            s.counts = b.class_counts
            d = s.d_step(b.images, y, reuse_fake_for_g=i == k - 1)
            loss_d = d if loss_d is None else loss_d + d
        loss_g = s.g_step(len(batches[-1].images), y)
        return {"loss_d": loss_d / k, "loss_g": loss_g}

    def log_values(self) -> dict[str, float | None]:
        aug = self.steps.augment
        return {"aug_p": aug.p if aug is not None else None}

    def ema_network(self) -> nn.Module:
        return unwrap(self.steps.G)

    def state_dict(self) -> dict[str, Any]:
        s = self.steps
        return add_scalers({"generator": unwrap(s.G).state_dict(),
                            "discriminator": unwrap(s.D).state_dict(),
                            "opt_g": s.opt_g.state_dict(), "opt_d": s.opt_d.state_dict(),
                            "augment": s.augment.state_dict() if s.augment is not None else None},
                           s.precision)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        s = self.steps
        unwrap(s.G).load_state_dict(state["generator"])
        unwrap(s.D).load_state_dict(state["discriminator"])
        s.opt_g.load_state_dict(state["opt_g"])
        s.opt_d.load_state_dict(state["opt_d"])
        s.precision.load_state_dict(state.get("grad_scalers"))
        if s.augment is not None and state.get("augment") is not None:
            s.augment.load_state_dict(state["augment"])

    def rank_state(self) -> dict[str, Any]:
        aug = self.steps.augment
        return {"augment": aug.partial_state()} if aug is not None else {}

    def load_rank_state(self, state: dict[str, Any] | None) -> None:
        aug = self.steps.augment
        if aug is not None:
            aug.load_partial_state((state or {}).get("augment"))

    def grid_inputs(self, seed: int, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Noise from its own generator and cycling labels (one class per row band)."""
        gen = torch.Generator().manual_seed(int(seed) + 7919)
        device = self.steps.device
        z = torch.randn(n, self.pair.latent_dim, generator=gen).to(device)
        y = None
        if self.pair.conditional:
            k = max(int(self.pair.n_classes), 1)
            y = (torch.arange(n) // int(math.sqrt(n)) % k).to(device)
        return z, y

    def render_grid(self, inputs, network: nn.Module) -> tuple[torch.Tensor, int | None]:
        z, y = inputs
        return network(z, y), None

    @classmethod
    def build_sampler(cls, state: dict[str, Any], cfg, device: torch.device,
                      **options: Any) -> tuple[Sampler, nn.Module]:
        del options  # none (the registry refuses any)
        meta = state["meta"]
        pair = build_gan(cfg.model, in_channels=meta["in_channels"],
                         image_size=meta["image_size"], n_classes=meta["n_classes"])
        G = pair.generator
        G.load_state_dict(sampling_weights(state, "generator"))
        # NHWC: +30% img/s for the DCGAN generator on 2 CPU cores (benchmarks/train_speed.py).
        G.to(device, memory_format=torch.channels_last).eval()
        latent = int(meta["latent_dim"])

        def sampler(seeds: list[int], labels: torch.Tensor | None) -> torch.Tensor:
            return G(_noise(seeds, latent).to(device), labels)

        return sampler, G
