"""The pix2pix training method: mask -> image with a U-Net G and a PatchGAN D (Isola et al. 2017).

With ``model.discriminator: oasis`` D is OASIS's per-pixel (N+1)-class segmenter instead and the
adversarial losses are its class-balanced cross-entropies (:mod:`synthmed.models.oasis`).

Losses as in the paper: D minimises the BCE of real and fake (condition, image) pairs, halved;
G minimises the non-saturating adversarial loss plus ``model.l1_weight`` (lambda = 100) times the
L1 distance to the real image, which carries the low frequencies while D judges local texture.
The noise is dropout, on in training and, under a per-image seed, at sampling: image i depends
only on (checkpoint, its condition, seed i). The loop, EMA, checkpoints and DDP are the
trainer's.
"""

from __future__ import annotations

import contextlib
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from synthmed.generators import (
    Capabilities,
    Descriptor,
    ModelSection,
    Recipe,
    register_generator,
    setting,
)
from synthmed.models.conditioning import conditioning_of, population_prior
from synthmed.models.oasis import balanced_ce, fake_ce, label_targets
from synthmed.models.pix2pix import build_condition, build_pix2pix, encode_mask
from synthmed.training import distributed as ddp
from synthmed.training.method import (
    Batch,
    MaskSampler,
    TrainingMethod,
    sampling_weights,
    unwrap,
)
from synthmed.training.optim import build_adam
from synthmed.training.precision import Precision, add_scalers


class Pix2PixSection(ModelSection):
    """``model:`` keys of pix2pix (Isola et al. 2017)."""

    name: Literal["pix2pix"] = setting("pix2pix", role="trained", description="pix2pix "
                                       "(mask-to-image)")
    image_size: int | None = setting(None, role="trained", gt=0, description="64, 128 or 256 "
                                     "px; default: the data's")
    base_width: int = setting(64, role="trained", gt=0, description="channels of the first "
                              "U-Net and PatchGAN layer")
    mask_labels: int = setting(1, role="trained", gt=0, description="foreground labels in the "
                               "masks (1: binary mask channel; more: one-hot, one channel per "
                               "label)")
    anatomy_factor: int | None = setting(None, role="trained", gt=1, description="extra "
                                         "conditioning channel, the image down-sampled by this "
                                         "factor")
    dropout: float = setting(0.5, role="trained", ge=0, lt=1, description="decoder dropout "
                             "(the noise)")
    l1_weight: float = setting(100.0, role="trained", ge=0, description="weight of the L1 loss")
    conditioning: Literal["mask", "anatomy", "brain", "prior"] | None = setting(
        None, role="trained", description="what G sees beside the mask: mask only | anatomy (the "
        "slice down-sampled by anatomy_factor) | brain (its brain mask in blocks of "
        "anatomy_factor, default 8) | prior (the population's mean brain mask in the slice's "
        "brain box); default anatomy when anatomy_factor is set, else mask "
        "(models/conditioning.py)")
    generator: Literal["unet", "spade"] = setting(
        "unet", role="trained", description="unet (Isola et al. 2017) | spade (SPADE "
        "normalization, noise injection, resize-convolve up-sampling; models/spade.py)")
    upsample: Literal["transpose", "resize"] = setting(
        "transpose", role="trained", description="unet: transposed conv | nearest resize then "
        "3x3 conv")
    discriminator: Literal["patchgan", "pooled", "oasis"] = setting(
        "patchgan", role="trained", description="strided PatchGAN | pooled (stride-1 convs, avg "
        "pool) | oasis (per-pixel label-or-fake segmenter, class-balanced CE; models/oasis.py)")
    pair_augment: bool = setting(False, role="trained", description="random flip, rotation, "
                                 "scale and shift applied jointly to image and mask in training")
    noise_dim: int = setting(0, role="trained", ge=0, description="spade: length of the "
                             "per-image noise vector concatenated to the label map (OASIS 3D "
                             "noise; 0: per-pixel noise injection only)")
    diversity_weight: float = setting(0.0, role="trained", ge=0, description="weight of the "
                                      "diversity-sensitive loss (two noise draws for the same "
                                      "mask pushed apart; DSGAN, Yang et al. 2019); 0: off")


PIX2PIX = Descriptor(names=("pix2pix",), section=Pix2PixSection,
                     kinds={"pix2pix": "mask-to-image GAN (pix2pix)"},
                     capabilities=Capabilities(needs_masks=True),
                     recipe=Recipe(losses={"d": "discriminator", "g": "generator",
                                           "l1": "L1 (pix2pix)"}))

DIVERSITY_TAU = 0.2  # cap of the rewarded mean |G(c, z1) - G(c, z2)| per image (DSGAN's tau)
GRID_PAIRS = 16  # mask | real | synthetic triplets in a training sample grid
GRID_COLS = 6  # two triplets per grid row
AUGMENT = {"rotate_deg": 10.0, "scale": 0.1, "translate": 0.06}  # model.pair_augment ranges


def joint_geometric(images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random flip, rotation, scale and shift for each image and its mask (bilinear for
    the image, nearest for the label map), so a pair stays a pair; the conditioning channels are
    computed afterwards from the moved image. Draws from the global RNG (the trainer's)."""
    n, dev = len(images), images.device
    a = torch.deg2rad((torch.rand(n, device=dev) * 2 - 1) * AUGMENT["rotate_deg"])
    s = 1 + (torch.rand(n, device=dev) * 2 - 1) * AUGMENT["scale"]
    t = (torch.rand(n, 2, device=dev) * 2 - 1) * AUGMENT["translate"] * 2
    flip = torch.where(torch.rand(n, device=dev) < 0.5, -1.0, 1.0)
    theta = torch.stack([torch.stack([torch.cos(a) / s * flip, -torch.sin(a) / s, t[:, 0]], 1),
                         torch.stack([torch.sin(a) / s * flip, torch.cos(a) / s, t[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    img = F.grid_sample(images + 1, grid, mode="bilinear", padding_mode="zeros",
                        align_corners=False) - 1  # outside the frame: background (-1)
    m = F.grid_sample(masks.float(), grid, mode="nearest", padding_mode="zeros",
                      align_corners=False)
    return img, m


@contextlib.contextmanager
def seeded(seed: int, device: torch.device):
    """The global RNG seeded with ``seed`` inside, restored after (training is unaffected)."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        yield


def translate(G: nn.Module, cond: torch.Tensor, seeds: list[int]) -> torch.Tensor:
    """One image per condition row, each with dropout noise from its own seed (one forward pass
    per image, so an image never depends on the others in the batch)."""
    out = []
    for i, s in enumerate(seeds):
        with seeded(s, cond.device):
            out.append(G(cond[i:i + 1], noise=True))
    return torch.cat(out)


class Pix2PixSampler(MaskSampler):
    """pix2pix's :class:`~synthmed.training.method.MaskSampler`: the encoded mask (and the
    anatomy of ``images`` with an anatomy channel) through G, dropout noise from each seed."""

    model = "pix2pix"

    def __init__(self, G: nn.Module, meta: dict[str, Any], device: torch.device) -> None:
        self.G, self.meta, self.device = G, meta, device
        self.mode = meta.get("conditioning") or ("anatomy" if meta.get("anatomy_factor")
                                                 else "mask")
        self.anatomy = self.mode != "mask"  # a brain to keep edited lesions in
        self.uses_heads = self.mode in ("brain", "prior")  # synthetic label maps' heads

    @torch.no_grad()
    def from_masks(self, seeds: list[int], masks: torch.Tensor,
                   images: torch.Tensor | None = None,
                   labels: torch.Tensor | None = None,
                   heads: torch.Tensor | None = None) -> torch.Tensor:
        """As :meth:`MaskSampler.from_masks`; ``heads`` (N, 1, H, W) {0, 1}: head masks of
        synthetic label maps for brain/prior conditioning, in place of ``images``."""
        del labels  # pix2pix is not class-conditional
        cond = build_condition(masks.to(self.device), None if images is None else
                               images.to(self.device), self.meta["mask_labels"],
                               self.meta["anatomy_factor"], self.mode,
                               getattr(self.G, "prior", None), heads)
        return translate(self.G, cond, seeds)


@register_generator(PIX2PIX)
class Pix2PixMethod(TrainingMethod):
    """``model.name: pix2pix``: needs a prepared dataset with masks."""

    default_ema = True

    def __init__(self, G, D, opt_g, opt_d, cfg, data, device) -> None:
        self.G, self.D, self.opt_g, self.opt_d = G, D, opt_g, opt_d
        self.m, self.amp, self.device = cfg.model, bool(cfg.train.amp), device
        self.data = data
        self.mode = conditioning_of(cfg.model)
        self.oasis = cfg.model.discriminator == "oasis"
        self.precision = Precision(device, self.amp, ("g", "d"))

    @classmethod
    def build(cls, cfg, data, device: torch.device, info: ddp.DistInfo) -> Pix2PixMethod:
        channels, size = int(data.images.shape[1]), int(data.images.shape[-1])
        G, D = build_pix2pix(cfg.model, image_channels=channels, image_size=size)
        fmt = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
        if hasattr(G, "prior"):  # conditioning prior: from the training images only
            G.prior.copy_(population_prior(data.images.float().cpu()))
        G, D = G.to(device, memory_format=fmt), D.to(device, memory_format=fmt)
        t = cfg.train
        opt_g = build_adam(G.parameters(), lr=t.lr_g, betas=t.betas, device=device)
        opt_d = build_adam(D.parameters(), lr=t.lr_d, betas=t.betas, device=device)
        return cls(ddp.wrap(G, device, info), ddp.wrap(D, device, info), opt_g, opt_d, cfg,
                   data, device)

    def meta(self) -> dict[str, Any]:
        return {"conditional": False, "mask_conditional": True,
                "mask_labels": self.m.mask_labels, "anatomy_factor": self.m.anatomy_factor,
                "l1_weight": self.m.l1_weight, "dropout": self.m.dropout,
                "conditioning": self.mode, "generator": self.m.generator,
                "upsample": self.m.upsample, "discriminator": self.m.discriminator,
                "pair_augment": self.m.pair_augment, "noise_dim": self.m.noise_dim,
                "diversity_weight": self.m.diversity_weight}

    def _condition(self, masks, images, network: nn.Module) -> torch.Tensor:
        return build_condition(masks, images, self.m.mask_labels, self.m.anatomy_factor,
                               self.mode, getattr(unwrap(network), "prior", None))

    def _autocast(self):
        return self.precision.autocast()

    def train_step(self, batches: list[Batch]) -> dict[str, torch.Tensor]:
        b = batches[0]
        real, masks = b.images, b.masks
        if self.m.pair_augment:
            real, masks = joint_geometric(real, masks)
        cond = self._condition(masks, real, self.G)
        n = len(real)
        with self._autocast():
            fake = self.G(cond)
            # real and fake pairs in one D pass (one DDP forward per backward); instance norm
            # keeps the two halves independent
            d_out = self.D(torch.cat([cond, cond]), torch.cat([real, fake.detach()])).float()
        if self.oasis:  # per pixel: real -> its label (class-balanced), fake -> "fake"
            target = label_targets(masks, self.m.mask_labels + 1)
            loss_d = 0.5 * (balanced_ce(d_out[:n], target) + fake_ce(d_out[n:]))
        else:
            loss_d = 0.5 * (F.softplus(-d_out[:n]).mean() + F.softplus(d_out[n:]).mean())
        self.opt_d.zero_grad(set_to_none=True)
        self.precision.backward(loss_d, "d")
        self.precision.step(self.opt_d, "d")
        self.D.requires_grad_(False)  # G's step: no gradients (or all-reduces) for D
        with self._autocast():
            g_logits = self.D(cond, fake).float()
        self.D.requires_grad_(True)
        loss_adv = (balanced_ce(g_logits, target) if self.oasis
                    else F.softplus(-g_logits).mean())
        loss_l1 = (fake.float() - real).abs().mean()
        loss_g = loss_adv + self.m.l1_weight * loss_l1
        logs = {"loss_d": loss_d.detach(), "loss_g": loss_adv.detach(),
                "loss_l1": loss_l1.detach()}
        if self.m.diversity_weight:
            spread = self._spread(cond, fake)
            loss_g = loss_g - self.m.diversity_weight * spread
            logs["spread"] = spread.detach()
        self.opt_g.zero_grad(set_to_none=True)
        self.precision.backward(loss_g, "g")
        self.precision.step(self.opt_g, "g")
        return logs

    def _spread(self, cond: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """The diversity-sensitive term (Yang et al., "Diversity-sensitive conditional GANs",
        ICLR 2019): a second noise draw for the first half of the batch, and the mean absolute
        difference of the two images per pair, each capped at :data:`DIVERSITY_TAU` so it cannot
        outgrow realism. Without it the L1 loss maps every noise draw to the conditional mean."""
        h = max(len(cond) // 2, 1)
        with self._autocast():
            other = self.G(cond[:h]).float()
        diff = (fake[:h].float() - other).abs().flatten(1).mean(1)
        return diff.clamp(max=DIVERSITY_TAU).mean()

    def ema_network(self) -> nn.Module:
        return unwrap(self.G)

    def state_dict(self) -> dict[str, Any]:
        return add_scalers({"generator": unwrap(self.G).state_dict(),
                            "discriminator": unwrap(self.D).state_dict(),
                            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict()},
                           self.precision)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        unwrap(self.G).load_state_dict(state["generator"])
        unwrap(self.D).load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.precision.load_state_dict(state.get("grad_scalers"))

    def grid_inputs(self, seed: int, n: int) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """Fixed training pairs (preferring ones with a lesion) and their dropout seeds."""
        gen = torch.Generator().manual_seed(int(seed) + 7919)
        masks = self.data.masks
        has = (masks.flatten(1).amax(1) > 0).cpu()
        order = torch.randperm(len(masks), generator=gen)
        order = torch.cat([order[has[order]], order[~has[order]]])[:GRID_PAIRS]
        rows = order.to(masks.device)
        seeds = [int(seed) * 1000 + k for k in range(len(rows))]
        return masks[rows], self.data.rows(rows), seeds

    def render_grid(self, inputs, network: nn.Module) -> tuple[torch.Tensor, int | None]:
        masks, real, seeds = inputs
        cond = self._condition(masks, real, network)
        fake = translate(network, cond, seeds).float()
        shown = encode_mask(masks, self.m.mask_labels).amax(1, keepdim=True)
        shown = shown.expand(-1, real.shape[1], -1, -1)
        return torch.stack([shown, real, fake], 1).flatten(0, 1), GRID_COLS

    @classmethod
    def build_sampler(cls, state: dict[str, Any], cfg, device: torch.device,
                      **options: Any) -> tuple[Pix2PixSampler, nn.Module]:
        del options  # none (the registry refuses any)
        meta = state["meta"]
        G, _ = build_pix2pix(cfg.model, image_channels=meta["in_channels"],
                             image_size=meta["image_size"])
        G.load_state_dict(sampling_weights(state, "generator"))
        # NHWC, as the GAN sampler: oneDNN on CPUs, tensor cores on GPUs.
        G.to(device, memory_format=torch.channels_last).eval()
        return Pix2PixSampler(G, meta, device), G
