"""Label-map edits for mask-conditioned generation: new lesion layouts from real masks.

Following the label-map editing of the brain-MRI pix2pix study (moved, resized, re-shaped
tumours), an edit is a set of parameter *ranges*; each image draws its own parameters from a
generator seeded by its seed, so a pair is reproducible from (checkpoint, source mask, edit,
seed). Edits act on the lesion (the mask's foreground) about its centroid:

- ``translate=F`` or ``LO:HI``: shift by a fraction of the side, x and y drawn independently
  (``F`` means ``-F:F``), rounded to whole pixels;
- ``rotate=DEG`` or ``LO:HI``: rotation about the lesion centroid, degrees;
- ``scale=LO:HI`` (or ``S`` for ``1/S:S``): linear size factor about the centroid (area x s^2);
- ``flip=h|v|hv``: mirror the whole map left-right / up-down, each with probability 1/2;
- ``elastic=ALPHA[:SIGMA]``: random displacement field smoothed by a Gaussian of SIGMA px
  (default 4), ALPHA px strong (Simard et al. 2003);
- ``transplant``: the anatomy channel comes from another source case (a lesion placed into
  another patient's anatomy); only for runs with an anatomy channel.

An edit is rejected and redrawn (up to :data:`MAX_TRIES` times) when the lesion leaves the image
(any foreground pixel would fall outside it), shrinks to zero area, or, with an anatomy channel,
has less than :data:`ORGAN_FRACTION` of its area inside the organ (or, when the source lesion
already lay partly outside the estimated organ, less than it had). Warps use nearest-neighbour
interpolation (``scipy.ndimage``), so label values are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from synthmed.errors import SynthmedError

EDITS = ("translate", "rotate", "scale", "flip", "elastic", "transplant")
MAX_TRIES = 100
ORGAN_FRACTION = 0.9  # of the lesion's area that must lie in the organ (anatomy runs)


@dataclass
class EditSpec:
    """Parameter ranges of an edit; None means the edit is not applied."""

    translate: tuple[float, float] | None = None
    rotate: tuple[float, float] | None = None
    scale: tuple[float, float] | None = None
    flip: str | None = None
    elastic: tuple[float, float] | None = None
    transplant: bool = False

    @property
    def active(self) -> bool:
        return any(v not in (None, False) for v in self.__dict__.values())

    def describe(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()
                if v not in (None, False)}


def _range(name: str, text: str, *, symmetric: bool = False, reciprocal: bool = False
           ) -> tuple[float, float]:
    try:
        parts = [float(x) for x in text.split(":")]
    except ValueError:
        raise SynthmedError(f"--edit {name}={text}: expected a number or LO:HI") from None
    if len(parts) == 1:
        v = abs(parts[0])
        if reciprocal:
            if v <= 0:
                raise SynthmedError(f"--edit {name}={text}: the factor must be > 0")
            parts = sorted([1 / v, v])
        else:
            parts = [-v, v] if symmetric else [v, v]
    if len(parts) != 2 or parts[0] > parts[1] or not np.isfinite(parts).all():
        raise SynthmedError(f"--edit {name}={text}: expected LO:HI with LO <= HI")
    return parts[0], parts[1]


def parse_edits(items: list[str] | None) -> EditSpec:
    """``["translate=0.2", "rotate=30", "scale=0.7:1.3", "flip=h", "elastic=8:4"]`` -> spec."""
    spec = EditSpec()
    for item in items or []:
        name, _, value = item.partition("=")
        name = name.strip().lower()
        if name not in EDITS:
            raise SynthmedError(f"--edit {item}: unknown edit {name!r}; choose from "
                                f"{', '.join(EDITS)}")
        if name in ("translate", "rotate"):
            setattr(spec, name, _range(name, value, symmetric=True))
        elif name == "scale":
            spec.scale = _range(name, value, reciprocal=True)
            if spec.scale[0] <= 0:
                raise SynthmedError(f"--edit {item}: scale factors must be > 0")
        elif name == "flip":
            spec.flip = value or "h"
            if spec.flip not in ("h", "v", "hv"):
                raise SynthmedError(f"--edit {item}: flip takes h, v or hv")
        elif name == "elastic":
            a, _, s = value.partition(":")
            spec.elastic = (_range(name, a)[0], float(s) if s else 4.0)
        else:
            spec.transplant = True
    return spec


@dataclass
class EditResult:
    mask: np.ndarray  # (H, W) uint8
    params: dict[str, Any] = field(default_factory=dict)
    rejected: int = 0  # draws rejected before this one


def _draw(spec: EditSpec, rng: np.random.Generator, size: int) -> dict[str, Any]:
    """One set of parameters from the ranges (always the same draw order: reproducible)."""
    p: dict[str, Any] = {}
    if spec.flip:
        p["flip_h"] = bool("h" in spec.flip and rng.random() < 0.5)
        p["flip_v"] = bool("v" in spec.flip and rng.random() < 0.5)
    if spec.translate:
        p["dx"], p["dy"] = (int(round(rng.uniform(*spec.translate) * size)) for _ in range(2))
    if spec.rotate:
        p["rotate_deg"] = float(rng.uniform(*spec.rotate))
    if spec.scale:
        p["scale"] = float(rng.uniform(*spec.scale))
    if spec.elastic:
        p["elastic_seed"] = int(rng.integers(2**31))
    return p


def apply_params(mask: np.ndarray, p: dict[str, Any], spec: EditSpec
                 ) -> tuple[np.ndarray, int]:
    """Edited mask (H, W) and the foreground pixels that fell outside the image."""
    m = np.asarray(mask, np.uint8)
    if p.get("flip_h"):
        m = m[:, ::-1]
    if p.get("flip_v"):
        m = m[::-1]
    h, w = m.shape
    pad = max(h, w)
    big = np.pad(m, pad)  # a canvas large enough that nothing leaves it
    cy, cx = ndimage.center_of_mass(big > 0)
    a = np.deg2rad(p.get("rotate_deg", 0.0))
    s = p.get("scale", 1.0)
    # output -> input map: rotate by -a and scale by 1/s about the (moved) centroid
    inv = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]]) / s
    centre_out = np.array([cy + p.get("dy", 0), cx + p.get("dx", 0)])
    offset = np.array([cy, cx]) - inv @ centre_out
    big = ndimage.affine_transform(big, inv, offset=offset, order=0, mode="constant")
    if spec.elastic and "elastic_seed" in p:
        big = _elastic(big, spec.elastic, p["elastic_seed"])
    inner = big[pad:pad + h, pad:pad + w]
    lost = int((big > 0).sum() - (inner > 0).sum())
    return np.ascontiguousarray(inner), lost


def _elastic(m: np.ndarray, params: tuple[float, float], seed: int) -> np.ndarray:
    alpha, sigma = params
    rng = np.random.default_rng(seed)
    dy, dx = (ndimage.gaussian_filter(rng.uniform(-1, 1, m.shape), sigma) for _ in range(2))
    norm = max(float(np.abs(dy).max()), float(np.abs(dx).max()), 1e-12)
    yy, xx = np.meshgrid(np.arange(m.shape[0]), np.arange(m.shape[1]), indexing="ij")
    coords = [yy + alpha * dy / norm, xx + alpha * dx / norm]
    return ndimage.map_coordinates(m, coords, order=0, mode="constant")


def edit_mask(mask: np.ndarray, spec: EditSpec, rng: np.random.Generator, *,
              organ: np.ndarray | None = None, strict: bool = True) -> EditResult:
    """Draw parameters until the edited lesion is inside the image (and the organ), non-empty.

    An empty source mask (no lesion) is returned unchanged: there is nothing to move. When
    :data:`MAX_TRIES` draws all fail, ``strict`` raises; otherwise the mask is kept unedited
    (params ``{"unedited": true}``), so one cramped source case cannot stop a large set.
    """
    mask = np.asarray(mask, np.uint8)
    if not spec.active or not mask.any():
        return EditResult(mask.copy(), {})
    # the organ outline is estimated from intensity: a lesion that is already partly outside
    # it (a dark slice, a lesion at the edge) need only stay as far inside as it was
    need = ORGAN_FRACTION if organ is None else min(ORGAN_FRACTION,
                                                    float(organ[mask > 0].mean()))
    for tries in range(MAX_TRIES):
        p = _draw(spec, rng, mask.shape[0])
        out, lost = apply_params(mask, p, spec)
        area = int((out > 0).sum())
        if lost or area == 0:
            continue
        if organ is not None and (out > 0)[organ].sum() < need * area:
            continue
        return EditResult(out, p, tries)
    if not strict:
        return EditResult(mask.copy(), {"unedited": True}, MAX_TRIES)
    raise SynthmedError(f"--edit: no acceptable edit in {MAX_TRIES} draws (the lesion always "
                        "left the image or the organ, or vanished); use smaller ranges")
