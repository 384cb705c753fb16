"""The diffusion training method: ``model.name: ddpm`` (and ``ddpm-mask``, mask-conditioned).

Wires :mod:`synthmed.models.ddpm` (MONAI ``DiffusionModelUNet``, ``DDPMScheduler`` for training,
DPM-Solver++(2M) or DDIM for sampling, classifier-free guidance) into the one engine: the
trainer owns the loop, EMA (on by default: diffusion samples from the raw weights are visibly
worse, Ho et al. 2020 use decay 0.9999), checkpoints, exact resume and DDP. the generation options
(:class:`DDPMOptions`: ``synthmed generate --steps N --sampler dpm-solver++|ddim --guidance S
[--bf16]`` or ``--option KEY=VALUE``) reach
:meth:`DDPMMethod.build_sampler`; for ``ddpm-mask`` it returns a :class:`DDPMMaskSampler`, which
``generate --masks-from`` drives like pix2pix's.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import nn

from synthmed.errors import ConfigError, SynthmedError
from synthmed.generators import (
    Capabilities,
    Descriptor,
    GenerationOptions,
    ModelSection,
    Recipe,
    register_generator,
    setting,
)
from synthmed.models.ddpm import (
    DEFAULT_CHANNELS,
    SAMPLERS,
    Diffusion,
    build_unet,
    diffusion_loss,
    sample,
    seeded_noise,
)
from synthmed.training import distributed as ddp
from synthmed.training.method import (
    Batch,
    MaskSampler,
    Sampler,
    TrainingMethod,
    sampling_weights,
    unwrap,
)
from synthmed.training.optim import build_adam
from synthmed.training.precision import Precision, add_scalers


class DDPMSection(ModelSection):
    """``model:`` keys of ddpm and ddpm-mask."""

    name: Literal["ddpm", "ddpm-mask"] = setting(
        "ddpm", role="trained", description="ddpm (class-conditional) | ddpm-mask (the "
        "segmentation mask as an extra input channel: mask-to-image)")
    channels: list[int] | None = setting(None, role="trained", description="U-Net widths per "
                                         "resolution level (default [32, 64, 64])")
    num_res_blocks: int = setting(1, role="trained", gt=0, description="residual blocks per "
                                  "U-Net level")
    attention_levels: list[bool] | None = setting(
        None, role="trained", description="self-attention per level; default none (the middle "
        "block always has it)")
    diffusion_steps: int = setting(1000, role="trained", gt=1, description="training noise "
                                   "levels T")
    noise_schedule: Literal["linear", "cosine"] = setting(
        "cosine", role="trained", description="linear (Ho et al. 2020) or cosine (Nichol & "
        "Dhariwal 2021)")
    prediction: Literal["epsilon", "v"] = setting(
        "epsilon", role="trained", description="predict the noise, or v (Salimans & Ho 2022)")
    min_snr_gamma: float | None = setting(
        None, role="trained", gt=0, description="Min-SNR-gamma loss weighting (Hang et al. "
        "2023; 5 in the paper); null: the plain noise (or v) MSE")
    cond_drop: float = setting(0.1, role="trained", ge=0, lt=1, description="label dropout for "
                               "classifier-free guidance (Ho & Salimans 2022)")
    sampler: Literal["dpm-solver++", "ddim"] = setting(
        "dpm-solver++", role="generation", description="ODE solver for sample grids and the "
        "default of generate --sampler: DPM-Solver++(2M) with clean-image clipping (Lu et al. "
        "2022), or DDIM")
    sample_steps: int = setting(20, role="generation", gt=0, description="network evaluations "
                                "(solver steps) for sample grids and the default of generate "
                                "--steps")
    guidance: float = setting(1.0, role="generation", ge=0, description="CFG scale for grids "
                              "and the default of generate --guidance (0 unconditional, 1 "
                              "conditional)")


class DDPMOptions(GenerationOptions):
    """``synthmed generate`` options of diffusion runs (None: the run's ``model.*`` value)."""

    steps: int | None = setting(None, role="generation", description="DDIM steps (default: the "
                                "run's model.sample_steps)", extra={
                                    "flag": "--steps", "config_key": "sample_steps"})
    guidance: float | None = setting(None, role="generation", description="classifier-free "
                                     "guidance scale (0 unconditional, 1 conditional; default: "
                                     "the run's model.guidance)", extra={
                                         "flag": "--guidance", "config_key": "guidance"})
    sampler: str | None = setting(None, role="generation", description="dpm-solver++ (about 20 "
                                  "steps) or ddim (50-200); default: the run's model.sampler",
                                  extra={"flag": "--sampler", "config_key": "sampler"})
    bf16: bool | None = setting(None, role="runtime", description="bf16 network on devices with "
                                "native bf16 (faster; images differ slightly from float32)",
                                extra={"flag": "--bf16"})


# usable samples (recognisable tissue layout, no noise-grain or saturated tiles) on BreastMNIST
# at 32 px after ~500 steps of the shipped recipe (v-prediction, Min-SNR-5, [16, 32, 64], batch
# 32, lr 2e-3: 466 steps measured; [32, 64, 64] at batch 64 got there in 90; docs/benchmarks.md,
# issue 20); larger images not measured
_DDPM_RECIPE = Recipe(steps=lambda size: 500 if size <= 32 else None,
                      losses={"diffusion": "diffusion (noise or v MSE)"})
DDPM = Descriptor(names=("ddpm",), section=DDPMSection, options=DDPMOptions,
                  kinds={"ddpm": "diffusion model (DDPM)"},
                  capabilities=Capabilities(conditional=True), recipe=_DDPM_RECIPE)
DDPM_MASK = Descriptor(names=("ddpm-mask",), section=DDPMSection, options=DDPMOptions,
                       kinds={"ddpm-mask": "mask-to-image diffusion model (DDPM, mask channel)"},
                       capabilities=Capabilities(needs_masks=True, conditional=True),
                       recipe=_DDPM_RECIPE)


def diffusion_of(model_cfg) -> Diffusion:
    return Diffusion(num_train_timesteps=model_cfg.diffusion_steps,
                     schedule=model_cfg.noise_schedule, prediction=model_cfg.prediction)


def make_unet(model_cfg, *, in_channels: int, image_size: int, n_classes: int,
              mask_channels: int) -> nn.Module:
    """The U-Net for ``model.*`` on images of ``in_channels`` x ``image_size``^2."""
    channels = list(model_cfg.channels or DEFAULT_CHANNELS)
    step = 2 ** (len(channels) - 1)
    if image_size % step:
        raise ConfigError(f"model.channels: {len(channels)} levels need an image size divisible "
                          f"by {step}, got {image_size}; use fewer levels or another size")
    levels = model_cfg.attention_levels
    if levels is not None and len(levels) != len(channels):
        raise ConfigError(f"model.attention_levels: {len(levels)} entries for "
                          f"{len(channels)} levels in model.channels; give one per level")
    return build_unet(in_channels=in_channels + mask_channels, out_channels=in_channels,
                      channels=channels, attention_levels=levels,
                      num_res_blocks=model_cfg.num_res_blocks, num_classes=n_classes)


def mask_input(masks: torch.Tensor) -> torch.Tensor:
    """The extra input channel of ``ddpm-mask``: the mask (N, 1, H, W) in {0, 1} -> {-1, 1},
    the model range (the same map in training, grids and ``generate --masks-from``)."""
    return masks.float() * 2 - 1


def native_bf16(device: torch.device) -> bool:
    """bf16 in hardware (:func:`synthmed.device.native_bf16`)."""
    from synthmed.device import native_bf16 as native

    return native(device)


def check_sampler(sampler, model_cfg) -> str:
    """Validate ``--sampler`` (None: the run's ``model.sampler``)."""
    sampler = getattr(model_cfg, "sampler", "dpm-solver++") if sampler is None else sampler
    if sampler not in SAMPLERS:
        raise SynthmedError(f"--sampler {sampler!r}: use one of {', '.join(SAMPLERS)} "
                            "(dpm-solver++: about 20 steps; ddim: 50-200)")
    return sampler


def check_generation_options(steps, guidance, bf16, *, model_cfg, conditional: bool,
                             device: torch.device) -> tuple[int, float, bool]:
    """Validate ``--steps``, ``--guidance`` and ``--bf16`` (None: the run's defaults)."""
    steps = model_cfg.sample_steps if steps is None else steps
    if isinstance(steps, bool) or not isinstance(steps, int) or \
            not 1 <= steps <= model_cfg.diffusion_steps:
        raise SynthmedError(f"--steps {steps!r}: solver steps must be an integer from 1 to "
                            f"{model_cfg.diffusion_steps} (the run's diffusion_steps); 20 is "
                            "usual with dpm-solver++, 50-200 with ddim")
    if guidance is not None and not conditional:
        raise SynthmedError("--guidance: this run's ddpm is unconditional (no class labels); "
                            "drop the option")
    guidance = model_cfg.guidance if guidance is None else guidance
    if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) or \
            not math.isfinite(guidance) or guidance < 0:
        raise SynthmedError(f"--guidance {guidance!r}: the guidance scale must be a finite "
                            "number >= 0 (0 unconditional, 1 conditional, 2-3 stronger class "
                            "fidelity)")
    if bf16 and not native_bf16(device):
        raise SynthmedError(f"--bf16: {device} has no native bf16 (bf16 would be slower than "
                            "float32 here); drop the option")
    return int(steps), float(guidance), bool(bf16)


@register_generator(DDPM)
class DDPMMethod(TrainingMethod):
    """Class-conditional DDPM (unconditional when the data have fewer than two classes)."""

    default_ema = True
    mask_channels = 0  # ddpm-mask: 1

    def __init__(self, unet: nn.Module, opt, *, cfg, n_classes: int, device: torch.device,
                 shape: tuple[int, int, int], grid_masks: torch.Tensor | None = None) -> None:
        self.unet, self.opt, self.cfg, self.device = unet, opt, cfg, device
        self.n_classes, self.shape, self.grid_masks = n_classes, shape, grid_masks
        self.diffusion = diffusion_of(cfg.model)
        self.scheduler = self.diffusion.train_scheduler()
        self.precision = Precision(device, bool(cfg.train.amp), ("unet",))

    @classmethod
    def build(cls, cfg, data, device: torch.device, info: ddp.DistInfo) -> DDPMMethod:
        m, t = cfg.model, cfg.train
        k = len(data.class_names) if data.labelled and len(data.class_names) >= 2 else 0
        unet = make_unet(m, in_channels=int(data.images.shape[1]),
                         image_size=int(data.images.shape[-1]), n_classes=k,
                         mask_channels=cls.mask_channels)
        fmt = torch.channels_last if t.channels_last else torch.contiguous_format
        unet = unet.to(device, memory_format=fmt)
        opt = build_adam(unet.parameters(), lr=t.lr_g, betas=t.betas, device=device)
        shape = tuple(int(v) for v in data.images.shape[1:])
        masks = data.masks[:8] if cls.mask_channels and data.masks is not None else None
        return cls(ddp.wrap(unet, device, info), opt, cfg=cfg, n_classes=k, device=device,
                   shape=shape, grid_masks=masks)

    def meta(self) -> dict[str, Any]:
        return {"conditional": self.n_classes > 0, "mask_channels": self.mask_channels,
                "diffusion_steps": self.diffusion.num_train_timesteps}

    def _autocast(self):
        return self.precision.autocast()

    def train_step(self, batches: list[Batch]) -> dict[str, torch.Tensor]:
        """One Adam step on the DDPM loss of one batch."""
        b = batches[0]
        self.opt.zero_grad(set_to_none=True)
        extra = mask_input(b.masks) if self.mask_channels else None
        loss = diffusion_loss(self.unet, b.images, b.labels if self.n_classes else None,
                              scheduler=self.scheduler, num_classes=self.n_classes,
                              cond_drop=self.cfg.model.cond_drop, extra=extra,
                              autocast=self._autocast,
                              min_snr_gamma=self.cfg.model.min_snr_gamma)
        self.precision.backward(loss, "unet")
        self.precision.step(self.opt, "unet")
        return {"loss_diffusion": loss.detach()}

    def ema_network(self) -> nn.Module:
        return unwrap(self.unet)

    def state_dict(self) -> dict[str, Any]:
        return add_scalers({"unet": unwrap(self.unet).state_dict(),
                            "opt_unet": self.opt.state_dict()}, self.precision)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        unwrap(self.unet).load_state_dict(state["unet"])
        self.opt.load_state_dict(state["opt_unet"])
        self.precision.load_state_dict(state.get("grad_scalers"))

    def grid_inputs(self, seed: int, n: int):
        """Starting noise from its own generator, one class per row band (as the GAN grids);
        mask-conditioned grids use the first training masks."""
        noise = seeded_noise([int(seed) * 1000 + 7919 + i for i in range(n)], self.shape)
        y = None
        if self.n_classes:
            y = (torch.arange(n) // int(math.sqrt(n)) % self.n_classes).to(self.device)
        return noise.to(self.device), y

    def render_grid(self, inputs, network: nn.Module) -> tuple[torch.Tensor, int | None]:
        noise, y = inputs
        m = self.cfg.model
        extra = None
        if self.grid_masks is not None:  # the first training masks, repeated
            reps = -(-len(noise) // len(self.grid_masks))
            extra = mask_input(self.grid_masks.repeat(reps, 1, 1, 1)[:len(noise)]).to(self.device)
        return sample(network, noise, y, diffusion=self.diffusion, steps=m.sample_steps,
                      guidance=m.guidance, num_classes=self.n_classes, sampler=m.sampler,
                      extra=extra), None

    @classmethod
    def resolve_options(cls, options: dict[str, Any], cfg, state: dict[str, Any],
                        device: torch.device) -> dict[str, Any]:
        """steps, guidance and bf16 in effect: the run's defaults filled in, checked."""
        meta = state["meta"]
        steps, guidance, bf16 = check_generation_options(
            options.get("steps"), options.get("guidance"), options.get("bf16"),
            model_cfg=cfg.model, conditional=bool(meta["conditional"]) and
            int(meta["n_classes"]) > 0, device=device)
        return {"sampler": check_sampler(options.get("sampler"), cfg.model), "steps": steps,
                "guidance": guidance, "bf16": bf16}

    @classmethod
    def build_sampler(cls, state: dict[str, Any], cfg, device: torch.device, *,
                      steps: int | None = None, guidance: float | None = None,
                      bf16: bool | None = None, sampler: str | None = None,
                      **options: Any) -> tuple[Sampler, nn.Module]:
        """DPM-Solver++ or DDIM from per-seed noise; for a mask-conditioned run a
        :class:`DDPMMaskSampler` (``generate --masks-from``), which refuses to sample without
        masks."""
        del options  # the registry refused any other
        solver = check_sampler(sampler, cfg.model)
        meta = state["meta"]
        k = int(meta["n_classes"]) if meta["conditional"] else 0
        mask_channels = int(meta.get("mask_channels", 0))
        steps, guidance, bf16 = check_generation_options(
            steps, guidance, bf16, model_cfg=cfg.model, conditional=k > 0, device=device)
        unet = make_unet(cfg.model, in_channels=meta["in_channels"],
                         image_size=meta["image_size"], n_classes=k, mask_channels=mask_channels)
        unet.load_state_dict(sampling_weights(state, "unet"))
        # NHWC, as the GAN sampler: oneDNN on CPUs, tensor cores on GPUs.
        unet.to(device, memory_format=torch.channels_last).eval()
        diffusion = diffusion_of(cfg.model)
        shape = (int(meta["in_channels"]), int(meta["image_size"]), int(meta["image_size"]))

        def run(seeds: list[int], labels: torch.Tensor | None,
                extra: torch.Tensor | None = None) -> torch.Tensor:
            noise = seeded_noise(seeds, shape).to(device)
            y = labels.to(device) if k and labels is not None else None
            return sample(unet, noise, y, diffusion=diffusion, steps=steps, guidance=guidance,
                          num_classes=k, sampler=solver, bf16=bf16,
                          extra=None if extra is None else extra.to(device))

        if mask_channels:
            return DDPMMaskSampler(run, cfg.model.name), unet

        def sampler(seeds: list[int], labels: torch.Tensor | None) -> torch.Tensor:
            return run(seeds, labels)

        return sampler, unet


class DDPMMaskSampler(MaskSampler):
    """``ddpm-mask``'s :class:`~synthmed.training.method.MaskSampler`: the run's solver from the
    seed's noise with the mask concatenated at every step, in the source case's class (CFG
    applies to the class; the mask is always given, as in training). Anatomy images are not used."""

    def __init__(self, run, model: str) -> None:
        self.run, self.model = run, model

    def from_masks(self, seeds: list[int], masks: torch.Tensor,
                   images: torch.Tensor | None = None,
                   labels: torch.Tensor | None = None) -> torch.Tensor:
        del images  # no anatomy channel
        return self.run(seeds, labels, mask_input(masks))


@register_generator(DDPM_MASK)
class MaskDDPMMethod(DDPMMethod):
    """DDPM with the segmentation mask as an extra input channel at every step (mask-to-image).

    Trained by the same engine on a dataset imported with its masks; grids use training masks;
    ``synthmed generate --masks-from DATASET [--edit ...]`` samples image+mask pairs.
    """

    mask_channels = 1
