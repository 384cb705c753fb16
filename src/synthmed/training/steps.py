"""The GAN family's training step: one discriminator step and one generator step, for every GAN
model, loss and augmentation (other generators' steps are in their methods, training/methods/).

The loss object (``synthmed.training.losses``) decides what is minimized; the augmenter
(DiffAugment / ADA) transforms real and fake images before D; this module only wires them. Under
DistributedDataParallel the real half of the D step runs inside ``no_sync`` so D's gradients are
all-reduced once per step, after the fake half (the documented gradient-accumulation pattern).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from synthmed.training.augment import translation
from synthmed.training.losses import (
    aux_class_loss,
    consistency_penalty,
    gradient_penalty,
    r1_penalty,
)
from synthmed.training.precision import Precision


@dataclass
class StepConfig:
    r1_gamma: float = 0.0
    gp_weight: float = 10.0
    aux_weight: float = 1.0
    amp: bool = False
    cr_weight: float = 0.0


class GANSteps:
    """Holds G, D, their optimizers, the loss, the augmenter (and, outside the trainer, an EMA
    of G; the trainer keeps the EMA itself)."""

    def __init__(self, *, generator: nn.Module, discriminator: nn.Module, opt_g, opt_d, loss,
                 augment, ema=None, latent_dim: int, conditional: bool, aux_classifier: bool,
                 settings: StepConfig, device: torch.device, routed: bool = False) -> None:
        self.G, self.D = generator, discriminator
        self.opt_g, self.opt_d = opt_g, opt_d
        self.loss, self.augment, self.ema = loss, augment, ema
        self.latent_dim = latent_dim
        self.conditional, self.aux = conditional, aux_classifier
        self.s = settings
        self.device = device
        self.precision = Precision(device, settings.amp, ("g", "d"))
        # bCR's T (Zhao et al. 2021 use flips and a few pixels' shift): a random shift of up to
        # 1/8 of the side, applied after DiffAugment/ADA to what D sees
        self.cr_transform = translation
        self._fake_for_g: tuple[torch.Tensor, torch.Tensor | None] | None = None
        # Per-class (routed) models: samples per class of the current batch, host ints, so
        # routing needs no host sync (set by the caller before each step; None: read from y).
        self.routed = routed
        self.counts: list[int] | None = None

    def _route_kw(self) -> dict:
        return {"counts": self.counts} if self.routed and self.counts is not None else {}

    # -- helpers ---------------------------------------------------------------------------
    def _autocast(self):
        return self.precision.autocast()

    def _d(self, x: torch.Tensor, y: torch.Tensor | None, *, through_ddp: bool = True,
           with_transformed: bool = False):
        """D's (logits, class logits | None) on the augmented ``x``; ``with_transformed``: on
        the augmented batch and bCR's ``T`` of it in one forward, (2N,) outputs."""
        net = self.D if through_ddp else getattr(self.D, "module", self.D)
        x = self.augment(x) if self.augment is not None else x
        if with_transformed:
            x = torch.cat([x, self.cr_transform(x)])
            y = torch.cat([y, y]) if y is not None else None
        with self._autocast():
            logits, cls = net(x, y if self.conditional else None, **self._route_kw())
        return logits.float(), (cls.float() if cls is not None else None)

    def _d_consistent(self, x: torch.Tensor, y: torch.Tensor | None):
        """:meth:`_d` plus bCR's penalty: D sees the augmented batch and ``T`` of it in one
        forward (same weights, one spectral-norm iteration), so an identity ``T`` gives exactly
        0. Returns (logits (N,), class logits (N, K) | None, penalty ())."""
        n = x.shape[0]
        logits, cls = self._d(x, y, with_transformed=True)
        cls = cls[:n] if cls is not None else None
        return logits[:n], cls, consistency_penalty(logits[:n], logits[n:])

    def _d_loss_input(self, x: torch.Tensor, y: torch.Tensor | None):
        """(logits, class logits, bCR penalty or None) of the D step's forward."""
        if self.s.cr_weight > 0:
            return self._d_consistent(x, y)
        return (*self._d(x, y), None)

    def _fake(self, n: int, y: torch.Tensor | None) -> torch.Tensor:
        z = torch.randn(n, self.latent_dim, device=self.device)
        with self._autocast():
            return self.G(z, y if self.conditional else None, **self._route_kw()).float()

    # -- the two steps -----------------------------------------------------------------------
    def d_step(self, real: torch.Tensor, y: torch.Tensor | None, *,
               reuse_fake_for_g: bool = False) -> torch.Tensor:
        """One D update on a real batch (N, C, H, W) and as many fakes; returns the D loss.

        With ``reuse_fake_for_g`` the fakes keep their graph and the next :meth:`g_step` trains G
        on them, as the DCGAN reference does: one G forward per iteration instead of two.
        """
        self.D.requires_grad_(True)
        self.opt_d.zero_grad(set_to_none=True)
        if reuse_fake_for_g:
            fake = self._fake(real.shape[0], y)
            self._fake_for_g = (fake, y)
            fake = fake.detach()
        else:
            with torch.no_grad():
                fake = self._fake(real.shape[0], y)
        sync_later = getattr(self.D, "no_sync", contextlib.nullcontext)
        with sync_later():
            if self.s.r1_gamma > 0:
                real = real.detach().requires_grad_(True)
            real_logits, real_cls, cr = self._d_loss_input(real, y)
            loss_real = self.loss.d_real(real_logits)
            if cr is not None:
                loss_real = loss_real + self.s.cr_weight * cr
            if self.aux and y is not None:
                loss_real = loss_real + self.s.aux_weight * aux_class_loss(real_cls, y)
            if self.s.r1_gamma > 0:
                loss_real = loss_real + 0.5 * self.s.r1_gamma * r1_penalty(real_logits, real)
            if self.loss.gradient_penalty:
                gp = gradient_penalty(lambda x, yy: self._d(x, yy, through_ddp=False)[0],
                                      real.detach(), fake, y)
                loss_real = loss_real + self.s.gp_weight * gp
            self.precision.backward(loss_real, "d")
        fake_logits, fake_cls, cr = self._d_loss_input(fake, y)
        loss_fake = self.loss.d_fake(fake_logits)
        if cr is not None:
            loss_fake = loss_fake + self.s.cr_weight * cr
        if self.aux and y is not None:
            loss_fake = loss_fake + self.s.aux_weight * aux_class_loss(fake_cls, y)
        self.precision.backward(loss_fake, "d")
        self.precision.step(self.opt_d, "d")
        if self.augment is not None:
            self.augment.observe(real_logits.detach())
            self.augment.update(real.shape[0])
        return (loss_real + loss_fake).detach()

    def g_step(self, n: int, y: torch.Tensor | None) -> torch.Tensor:
        """One G update on ``n`` fakes (labels ``y`` for conditional models); returns the G loss.

        D's parameters are frozen here, so no time is spent on gradients that would be discarded.
        """
        self.D.requires_grad_(False)
        self.opt_g.zero_grad(set_to_none=True)
        if self._fake_for_g is not None:
            (fake, y), self._fake_for_g = self._fake_for_g, None
        else:
            fake = self._fake(n, y)
        logits, cls = self._d(fake, y, through_ddp=False)
        loss = self.loss.g_loss(logits)
        if self.aux and y is not None:
            loss = loss + self.s.aux_weight * aux_class_loss(cls, y)
        self.precision.backward(loss, "g")
        self.precision.step(self.opt_g, "g")
        if self.ema is not None:
            self.ema.update_parameters(getattr(self.G, "module", self.G))
        self.D.requires_grad_(True)
        return loss.detach()

    def sampling_generator(self) -> nn.Module:
        """The network used for samples and evaluation: the EMA weights when EMA is on."""
        return self.ema.module if self.ema is not None else getattr(self.G, "module", self.G)
