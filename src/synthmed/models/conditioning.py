"""What a mask-to-image generator sees beside the lesion mask (``model.conditioning``, issue 21).

The brain-MRI pix2pix study conditioned on full label maps; synthmed's first LGG runs added an
"anatomy channel", the source slice down-sampled to 8x8. That channel carries the patient (its
membership AUC in features reached 0.97) and the source's own tumour as a blurred blob, which
contradicts an edited mask. The choices, from most to least identifying:

- ``anatomy``: the slice area-down-sampled by ``model.anatomy_factor`` (the old default);
- ``brain``: the slice's binary brain (head) mask, coarsened to blocks of ``anatomy_factor``
  (default 8) px: an outline, no intensities, no tumour;
- ``prior``: a population prior, the mean brain mask of the training slices (each first
  stretched to its bounding box), placed into the source slice's brain bounding box: four
  numbers per slice (centre and extent) instead of an outline;
- ``mask``: the lesion mask only; the generator invents the whole brain.

Every extra channel is in [-1, 1] like the mask channels and is computed from the image with the
same code in training, sample grids and ``generate --masks-from`` (the source case's image).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

CONDITIONINGS = ("mask", "anatomy", "brain", "prior")
DEFAULT_FACTOR = 8
BRAIN_LEVEL = 0.1  # of the intensity range, after smoothing (as sampling.pairs.organ_mask)


def conditioning_of(model_cfg) -> str:
    """``model.conditioning``, or for configs that predate it: ``anatomy`` when
    ``model.anatomy_factor`` is set, else ``mask``."""
    mode = getattr(model_cfg, "conditioning", None)
    return mode or ("anatomy" if model_cfg.anatomy_factor else "mask")


def extra_channels(mode: str) -> int:
    return 0 if mode == "mask" else 1


def brain_masks(images: torch.Tensor) -> torch.Tensor:
    """Binary brain (organ) masks (N, 1, H, W) float {0, 1} of images (N, C, H, W) in [-1, 1]:
    smoothed intensity above :data:`BRAIN_LEVEL` of the range, holes filled."""
    x = (images.detach().float().mean(1).cpu().numpy() + 1) / 2
    out = np.stack([ndimage.binary_fill_holes(ndimage.gaussian_filter(im, 2) > BRAIN_LEVEL)
                    for im in x]) if len(x) else np.zeros(x.shape, bool)
    return torch.from_numpy(out.astype(np.float32))[:, None].to(images.device)


def anatomy_channel(images: torch.Tensor, factor: int) -> torch.Tensor:
    """The coarse anatomy of an image: area-down-sampled by ``factor`` and bilinearly
    up-sampled back (the organ outline without the fine texture the generator should invent)."""
    size = images.shape[-2:]
    small = F.interpolate(images.float().mean(1, keepdim=True), scale_factor=1 / factor,
                          mode="area")
    return F.interpolate(small, size=size, mode="bilinear", align_corners=False)


def coarse_brain(images: torch.Tensor, factor: int,
                 heads: torch.Tensor | None = None) -> torch.Tensor:
    """The brain mask in blocks of ``factor`` px (a block is brain when half of it is), {-1, 1};
    ``heads`` (N, 1, H, W) {0, 1}: given brain masks (a synthetic label map's) instead."""
    m = brain_masks(images) if heads is None else heads.float()
    small = F.avg_pool2d(m, factor, ceil_mode=True) >= 0.5
    up = F.interpolate(small.float(), scale_factor=factor, mode="nearest")
    return up[..., :m.shape[-2], :m.shape[-1]] * 2 - 1


def _bbox(m: np.ndarray) -> tuple[int, int, int, int] | None:
    rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
    if not len(rows):
        return None
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def population_prior(images: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """(H, W) in [0, 1]: the mean brain mask of ``images``, each stretched from its bounding box
    to the whole frame first (so the prior holds the population's shape, not its positions)."""
    size = images.shape[-2:]
    total, n = torch.zeros(size), 0
    for i in range(0, len(images), batch):
        for m in brain_masks(images[i:i + batch].cpu())[:, 0]:
            box = _bbox(m.numpy() > 0)
            if box is None:
                continue
            y0, y1, x0, x1 = box
            total += F.interpolate(m[None, None, y0:y1, x0:x1], size=size, mode="bilinear",
                                   align_corners=False)[0, 0]
            n += 1
    return total / max(n, 1)


def placed_prior(images: torch.Tensor | None, prior: torch.Tensor,
                 heads: torch.Tensor | None = None) -> torch.Tensor:
    """The prior (H, W) squeezed into each image's brain bounding box, (N, 1, H, W) in [-1, 1]
    (all -1 where an image has no brain); ``heads``: given brain masks instead of images."""
    m_all = brain_masks(images) if heads is None else heads
    out = torch.full((len(m_all), 1, *m_all.shape[-2:]), -1.0, device=m_all.device)
    for k, m in enumerate(m_all[:, 0].cpu().numpy() > 0):
        box = _bbox(m)
        if box is None:
            continue
        y0, y1, x0, x1 = box
        out[k, 0, y0:y1, x0:x1] = F.interpolate(prior[None, None].float(), size=(y1 - y0, x1 - x0),
                                                mode="bilinear", align_corners=False)[0, 0] * 2 - 1
    return out


def extra_condition(images: torch.Tensor | None, mode: str, factor: int | None,
                    prior: torch.Tensor | None = None,
                    heads: torch.Tensor | None = None) -> torch.Tensor | None:
    """The channel added to the encoded mask for ``mode`` (None for ``mask``). ``brain`` and
    ``prior`` take the head from ``heads`` (N, 1, H, W) {0, 1} when given (synthetic label maps,
    :mod:`synthmed.sampling.labelmaps`), else from the source ``images``."""
    if mode == "mask":
        return None
    if images is None and (heads is None or mode == "anatomy"):
        raise ValueError(f"conditioning {mode!r} needs the source images")
    factor = factor or DEFAULT_FACTOR
    if mode == "anatomy":
        return anatomy_channel(images, factor)
    if mode == "brain":
        return coarse_brain(images, factor, heads)
    if prior is None:
        raise ValueError("conditioning 'prior' needs the population prior")
    return placed_prior(images, prior.to((images if heads is None else heads).device), heads)
