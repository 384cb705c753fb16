"""Denoising diffusion: a class-conditional U-Net trained to undo Gaussian noise, sampled by
DPM-Solver++(2M) (default) or DDIM.

- Network: MONAI's ``DiffusionModelUNet`` (Pinaya et al. 2022, after Rombach et al. 2022) with a
  class embedding added to the timestep embedding (``num_class_embeds``). One extra embedding,
  index ``num_classes``, means "no class": training drops the label to it with probability
  ``cond_drop`` so one network learns both the conditional and the unconditional model, which is
  what classifier-free guidance needs (Ho & Salimans 2022).
- Training: the DDPM objective of Ho et al. 2020, the mean squared error of the predicted noise
  (epsilon) at a uniformly drawn timestep, or of the velocity v (Salimans & Ho 2022); noise
  levels from MONAI's ``DDPMScheduler`` with a linear (Ho et al.) or cosine (Nichol & Dhariwal
  2021) schedule.
- Sampling: DPM-Solver++(2M) with the clean-image prediction clipped to [-1, 1] (Lu et al.
  2022; :mod:`synthmed.models.dpm_solver`), or MONAI's ``DDIMScheduler`` with eta = 0 (Song et
  al. 2021). Both solve the probability-flow ODE deterministically from the starting noise, so an
  image is a function of (weights, class, starting noise, sampler, steps, guidance) alone; at
  20 network evaluations DPM-Solver++ is far closer to the ODE's solution than DDIM. Guided
  prediction ``u + s (c - u)``: s = 0 is the unconditional model, s = 1 the conditional one,
  s > 1 trades diversity for class fidelity.
- Mask conditioning: optional extra input channels (a segmentation mask) concatenated to the
  noisy image at every step, as in SegGuidedDiff (Konz et al. 2024).

MONAI is imported inside the functions: it takes seconds to import, and GAN-only commands
should not pay for it.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import einops  # noqa: F401  (MONAI's DiffusionModelUNet attention needs it: fail at import)
import torch
import torch.nn.functional as F
from torch import nn

#: ``model.noise_schedule`` -> MONAI's schedule name.
SCHEDULES = {"linear": "linear_beta", "cosine": "cosine"}
#: ``model.prediction`` -> MONAI's prediction type.
PREDICTIONS = {"epsilon": "epsilon", "v": "v_prediction"}
#: ``model.sampler`` values: the ODE solver used to sample.
SAMPLERS = ("dpm-solver++", "ddim")
DEFAULT_CHANNELS = (32, 64, 64)


def build_unet(*, spatial_dims: int = 2, in_channels: int, out_channels: int,
               channels: tuple[int, ...] | list[int] = DEFAULT_CHANNELS,
               attention_levels: tuple[bool, ...] | list[bool] | None = None,
               num_res_blocks: int = 1, num_classes: int = 0) -> nn.Module:
    """MONAI ``DiffusionModelUNet``: (x (N, in_channels, H, W), t (N,) int64, class_labels (N,)
    int64 in 0..num_classes, num_classes meaning "no class") -> (N, out_channels, H, W).

    ``num_classes == 0``: unconditional (no class embedding). H and W must be divisible by
    2 ** (len(channels) - 1). Self-attention only in the middle block by default (MONAI always
    puts one there; its attention blocks need ``einops``): at 32-64 px attention at the higher
    levels costs more CPU time than it buys; ``attention_levels`` turns it on per level.
    """
    from monai.networks.nets import DiffusionModelUNet

    channels = tuple(int(c) for c in channels)
    levels = (tuple(attention_levels) if attention_levels is not None
              else (False,) * len(channels))
    if len(levels) != len(channels):
        raise ValueError(f"attention_levels has {len(levels)} entries for {len(channels)} levels")
    groups = math.gcd(*channels, 32)
    return DiffusionModelUNet(
        spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels,
        channels=channels, attention_levels=levels, num_res_blocks=num_res_blocks,
        norm_num_groups=groups, num_head_channels=min(channels),
        num_class_embeds=num_classes + 1 if num_classes else None)


@dataclass(frozen=True)
class Diffusion:
    """The noise process: T training timesteps, a beta schedule and what the network predicts."""

    num_train_timesteps: int = 1000
    schedule: str = "cosine"  # key of SCHEDULES
    prediction: str = "epsilon"  # key of PREDICTIONS

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {sorted(SCHEDULES)}, got {self.schedule!r}")
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {sorted(PREDICTIONS)}, "
                             f"got {self.prediction!r}")

    def train_scheduler(self):
        """MONAI ``DDPMScheduler`` for ``add_noise`` / ``get_velocity`` during training."""
        from monai.networks.schedulers import DDPMScheduler

        return DDPMScheduler(num_train_timesteps=self.num_train_timesteps,
                             schedule=SCHEDULES[self.schedule],
                             prediction_type=PREDICTIONS[self.prediction])

    def ddim(self, steps: int):
        """MONAI ``DDIMScheduler`` set to ``steps`` inference steps (x0 clipped to [-1, 1])."""
        from monai.networks.schedulers import DDIMScheduler

        if not 1 <= steps <= self.num_train_timesteps:
            raise ValueError(f"steps must be in 1..{self.num_train_timesteps}, got {steps}")
        s = DDIMScheduler(num_train_timesteps=self.num_train_timesteps,
                          schedule=SCHEDULES[self.schedule], clip_sample=True,
                          prediction_type=PREDICTIONS[self.prediction])
        s.set_timesteps(steps)
        return s


def _inputs(x: torch.Tensor, extra: torch.Tensor | None) -> torch.Tensor:
    return x if extra is None else torch.cat([x, extra.to(x.dtype)], dim=1)


def min_snr_weight(alphas_cumprod: torch.Tensor, t: torch.Tensor, *, gamma: float,
                   prediction: str) -> torch.Tensor:
    """Per-sample loss weight of Min-SNR-gamma (Hang et al. 2023): the x0-space weight
    ``min(SNR, gamma)`` expressed for the target the network predicts, ``min(SNR, gamma) / SNR``
    for epsilon and ``min(SNR, gamma) / (SNR + 1)`` for v. It stops the many low-noise steps,
    which are nearly free to denoise, from dominating the gradient (3.4x faster convergence in
    the paper; gamma = 5)."""
    a = alphas_cumprod.to(t.device)[t].double()
    snr = a / (1 - a)
    clipped = snr.clamp(max=gamma)
    w = clipped / snr if prediction == "epsilon" else clipped / (snr + 1)
    return w.float()


def diffusion_loss(unet: nn.Module, x0: torch.Tensor, y: torch.Tensor | None, *, scheduler,
                   num_classes: int, cond_drop: float, extra: torch.Tensor | None = None,
                   autocast=contextlib.nullcontext,
                   min_snr_gamma: float | None = None) -> torch.Tensor:
    """The DDPM loss on a batch x0 (N, C, H, W) in [-1, 1]: MSE of the predicted noise (or v),
    optionally weighted per sample by Min-SNR-gamma (:func:`min_snr_weight`).

    Noise, timesteps and label dropout come from the global torch RNG, which the trainer
    checkpoints, so a resumed run draws the same ones. ``extra`` (N, E, H, W) is concatenated
    to the noisy image (mask conditioning).
    """
    n = x0.shape[0]
    noise = torch.randn_like(x0)
    t = torch.randint(0, scheduler.num_train_timesteps, (n,), device=x0.device)
    xt = scheduler.add_noise(original_samples=x0, noise=noise, timesteps=t)
    target = noise if scheduler.prediction_type == "epsilon" else \
        scheduler.get_velocity(sample=x0, noise=noise, timesteps=t)
    labels = None
    if num_classes:
        labels = y
        if cond_drop > 0:
            drop = torch.rand(n, device=x0.device) < cond_drop
            labels = torch.where(drop, torch.full_like(y, num_classes), y)
    with autocast():
        pred = unet(_inputs(xt, extra), t, class_labels=labels)
    if min_snr_gamma is None:
        return F.mse_loss(pred.float(), target)
    per_sample = (pred.float() - target).square().flatten(1).mean(1)
    w = min_snr_weight(scheduler.alphas_cumprod, t, gamma=min_snr_gamma,
                       prediction="epsilon" if scheduler.prediction_type == "epsilon" else "v")
    return (w * per_sample).mean()


def guided_prediction(unet: nn.Module, x: torch.Tensor, t: torch.Tensor,
                      y: torch.Tensor | None, *, guidance: float, num_classes: int,
                      extra: torch.Tensor | None = None) -> torch.Tensor:
    """Classifier-free guided output ``u + s (c - u)`` (Ho & Salimans 2022).

    s = 1 runs the conditional model only and s = 0 the unconditional one only (one forward
    pass each); other scales run both halves in one batch. Unconditional networks ignore ``y``.
    """
    inp = _inputs(x, extra)
    if not num_classes or y is None:
        return unet(inp, t) if not num_classes else \
            unet(inp, t, class_labels=torch.full_like(t, num_classes))
    null = torch.full_like(y, num_classes)
    if guidance == 1.0:
        return unet(inp, t, class_labels=y)
    if guidance == 0.0:
        return unet(inp, t, class_labels=null)
    out = unet(torch.cat([inp, inp]), torch.cat([t, t]), class_labels=torch.cat([y, null]))
    cond, uncond = out.chunk(2)
    return uncond + guidance * (cond - uncond)


@torch.no_grad()
def sample(unet: nn.Module, noise: torch.Tensor, y: torch.Tensor | None, *,
           diffusion: Diffusion, steps: int, guidance: float, num_classes: int,
           sampler: str = "dpm-solver++", extra: torch.Tensor | None = None,
           bf16: bool = False) -> torch.Tensor:
    """``noise`` (N, C, H, W) -> images in [-1, 1] with ``sampler`` (a key of SAMPLERS) in
    ``steps`` network evaluations (each one batch of guided predictions).

    Each image depends only on its own row of ``noise``, ``y`` and ``extra`` (the network is in
    eval mode, GroupNorm and attention act per image). ``bf16`` runs the network under bf16
    autocast; the solver update stays float32.
    """
    if sampler == "ddim":
        return ddim_sample(unet, noise, y, diffusion=diffusion, steps=steps, guidance=guidance,
                           num_classes=num_classes, extra=extra, bf16=bf16)
    if sampler != "dpm-solver++":
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    from synthmed.models.dpm_solver import DPMSolverPP

    solver = DPMSolverPP(diffusion.train_scheduler().alphas_cumprod, steps,
                         prediction=diffusion.prediction, clip=True, keep_noise=True)
    ctx = (torch.autocast(noise.device.type, dtype=torch.bfloat16) if bf16
           else contextlib.nullcontext())

    def model(x: torch.Tensor, t: int) -> torch.Tensor:
        tt = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
        with ctx:
            out = guided_prediction(unet, x, tt, y, guidance=guidance, num_classes=num_classes,
                                    extra=extra)
        return out.float()

    return solver.sample(model, noise.float()).clamp_(-1, 1)


@torch.no_grad()
def ddim_sample(unet: nn.Module, noise: torch.Tensor, y: torch.Tensor | None, *,
                diffusion: Diffusion, steps: int, guidance: float, num_classes: int,
                extra: torch.Tensor | None = None, bf16: bool = False) -> torch.Tensor:
    """Deterministic DDIM (eta = 0) from ``noise`` (N, C, H, W) -> images in [-1, 1].

    Each image depends only on its own row of ``noise``, ``y`` and ``extra`` (the network is in
    eval mode, GroupNorm and attention act per image). ``bf16`` runs the network under bf16
    autocast; the scheduler update stays float32.
    """
    scheduler = diffusion.ddim(steps)
    x = noise.float()
    ctx = (torch.autocast(x.device.type, dtype=torch.bfloat16) if bf16
           else contextlib.nullcontext())
    for t in scheduler.timesteps:
        tt = torch.full((x.shape[0],), int(t), device=x.device, dtype=torch.long)
        with ctx:
            out = guided_prediction(unet, x, tt, y, guidance=guidance, num_classes=num_classes,
                                    extra=extra)
        x, _ = scheduler.step(out.float(), int(t), x)
    return x.clamp_(-1, 1)


def seeded_noise(seeds: list[int], shape: tuple[int, ...]) -> torch.Tensor:
    """Starting noise (N, *shape): row i from ``torch.Generator().manual_seed(seeds[i])`` alone,
    so an image never depends on which other images share its batch."""
    return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(s)))
                        for s in seeds])
