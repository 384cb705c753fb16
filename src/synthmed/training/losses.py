"""GAN objectives, kept apart from the training loop so a new loss never touches it.

Each loss is a small class with ``d_real(real_logits)`` and ``d_fake(fake_logits)`` (the two
halves of the discriminator loss, so the loop can backpropagate them separately),
``d_loss(real_logits, fake_logits) = d_real + d_fake``, ``g_loss(fake_logits)``, and
``gradient_penalty: bool`` telling the loop to add :func:`gradient_penalty`. Logits are raw
discriminator outputs of shape (N,). ``GAN_LOSSES`` maps the ``model.loss`` names to the classes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from synthmed.registry import Registry

GAN_LOSSES: Registry[type] = Registry("loss")


class GANLoss:
    """Base class: subclasses define the two discriminator halves and the generator loss."""

    gradient_penalty: bool = False

    def d_real(self, real_logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def d_fake(self, fake_logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        """Discriminator loss (scalar) for real logits (N,) and fake logits (M,)."""
        return self.d_real(real_logits) + self.d_fake(fake_logits)

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        """Generator loss (scalar) for the discriminator's logits (N,) on fakes."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


@GAN_LOSSES.register("bce")
class BCELoss(GANLoss):
    """Non-saturating GAN loss (Goodfellow et al. 2014): D minimizes
    ``-log sigmoid(D(x)) - log(1 - sigmoid(D(G(z))))``, G minimizes ``-log sigmoid(D(G(z)))``.
    Written with softplus on logits, which is the numerically stable BCE-with-logits."""

    def d_real(self, real_logits: torch.Tensor) -> torch.Tensor:
        return F.softplus(-real_logits).mean()

    def d_fake(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.softplus(fake_logits).mean()

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.softplus(-fake_logits).mean()


@GAN_LOSSES.register("hinge")
class HingeLoss(GANLoss):
    """Hinge loss (Lim & Ye 2017; Miyato et al. 2018): D minimizes
    ``relu(1 - D(x)) + relu(1 + D(G(z)))``, G minimizes ``-D(G(z))``."""

    def d_real(self, real_logits: torch.Tensor) -> torch.Tensor:
        return F.relu(1.0 - real_logits).mean()

    def d_fake(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.relu(1.0 + fake_logits).mean()

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return -fake_logits.mean()


@GAN_LOSSES.register("wgan-gp")
class WGANGPLoss(GANLoss):
    """Wasserstein loss with gradient penalty (Gulrajani et al. 2017): the critic minimizes
    ``D(G(z)) - D(x)``, G minimizes ``-D(G(z))``; the loop adds ``gp_weight *``
    :func:`gradient_penalty`. The paper's critic has no BatchNorm; with DCGAN's BatchNorm
    discriminator the penalty is only approximate."""

    gradient_penalty = True

    def d_real(self, real_logits: torch.Tensor) -> torch.Tensor:
        return -real_logits.mean()

    def d_fake(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return fake_logits.mean()

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return -fake_logits.mean()


def build_loss(name: str, *, key: str = "model.loss") -> GANLoss:
    """The loss registered as ``name``; unknown names raise a ConfigError naming ``key``."""
    return GAN_LOSSES.get(name, key=key)()


def _logits(out) -> torch.Tensor:
    """Accept a discriminator returning logits or ``(logits, class_logits)``."""
    return out[0] if isinstance(out, (tuple, list)) else out


def gradient_penalty(discriminator: Callable, real: torch.Tensor, fake: torch.Tensor,
                     y: torch.Tensor | None = None) -> torch.Tensor:
    """WGAN-GP penalty ``E[(||grad_x D(x_hat)||_2 - 1)^2]`` (Gulrajani et al. 2017).

    ``x_hat`` interpolates each real/fake pair at a uniform random point (torch's global RNG).
    ``discriminator(x, y)`` may return logits (N,) or ``(logits, class_logits)``. The result is
    differentiable w.r.t. D's parameters (``create_graph``); the caller multiplies it by
    ``model.gp_weight``.
    """
    real, fake = real.detach(), fake.detach()
    alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device,
                       dtype=real.dtype)
    x_hat = (alpha * real + (1.0 - alpha) * fake).requires_grad_(True)
    out = _logits(discriminator(x_hat, y))
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    norm = (grad.flatten(1).pow(2).sum(dim=1) + 1e-12).sqrt()
    return (norm - 1.0).pow(2).mean()


def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
    """R1 penalty ``E[||grad_x D(x)||^2]`` on real data (Mescheder, Geiger & Nowozin 2018).

    ``real_images`` must have ``requires_grad`` set by the caller *before* the forward pass that
    produced ``real_logits`` (``real = real.detach().requires_grad_(True)``), through any
    differentiable augmentation. The result is differentiable w.r.t. D's parameters; the caller
    multiplies it by ``model.r1_gamma / 2``. A discriminator that ignores its input gives 0.
    """
    if not real_images.requires_grad:
        raise ValueError("r1_penalty: call real_images.requires_grad_(True) before running D")
    if not real_logits.requires_grad:
        return real_logits.new_zeros(())
    (grad,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True,
                                  allow_unused=True)
    if grad is None:
        return real_logits.new_zeros(())
    return grad.flatten(1).pow(2).sum(dim=1).mean()


def consistency_penalty(logits: torch.Tensor, transformed_logits: torch.Tensor) -> torch.Tensor:
    """Balanced consistency regularization (bCR, Zhao et al. 2021, "Improved consistency
    regularization for GANs", AAAI): ``E[(D(x) - D(T(x)))^2]`` for logits (N,) of a batch and of
    its augmented copy ``T(x)``. The trainer adds it for the real and the fake batch alike (the
    "balanced" part: only reals lets D put the augmentation's artefacts on the fakes); the
    caller multiplies it by ``model.cr_weight``. An identity ``T`` gives 0."""
    return (logits - transformed_logits).pow(2).mean()


def aux_class_loss(class_logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """AC-GAN auxiliary classifier loss (Odena et al. 2017): cross entropy of logits (N, K)
    against labels (N,) int64, for real and fake images alike."""
    return F.cross_entropy(class_logits, y.long())
