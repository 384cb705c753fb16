"""A procedural, labelled ultrasound-like phantom for the quick start and tests.

NOT real data. Each image is a B-mode-like thyroid frame: correlated Rayleigh speckle over
layered tissue with depth attenuation, and one nodule with its mask. The class is read from the
TI-RADS-like features that separate nodules in practice, but, as in practice, they overlap:

- every fake patient (``caseNNN``, 2-4 frames sharing class and nodule geometry, so that
  patient-level splitting matters) draws a *suspicion* ``z = CLASS_SEPARATION * label + N(0, 1)``;
  its features follow ``p = sigmoid(SUSPICION_SLOPE (z - CLASS_SEPARATION / 2))`` (0 benign-looking,
  1 suspicious):
  a darker interior, an irregular, lobulated-to-spiculated margin, a weaker echogenic halo and
  more bright microcalcifications as ``p`` grows, each with its own case-level noise;
- so a benign nodule can look suspicious and a malignant one bland. An observer who saw the
  latent suspicion itself would reach AUC ``Phi(CLASS_SEPARATION / sqrt(2))`` (0.998); the
  features are noisy and small at 32 px, so the quick start's small CNN (4 epochs, ~320 training
  images) reaches real+classic test AUC 0.87 +- 0.06 on phantom seed 0 (0.92 and 1.00 on seeds 2
  and 1: the test split holds only ~13 patients; docs/data.md). Version 1 (every malignant
  nodule dark, spiculated and calcified) scored 1.000 on every seed: the utility study could
  only show a ceiling.

Image ``i`` depends only on ``(seed, i)``: deterministic per seed. ``PHANTOM_VERSION`` names the
recipe (the on-disk cache of ``data.path: phantom`` is keyed by it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from synthmed import __version__
from synthmed.errors import DataError
from synthmed.fileio import atomic_directory, disk_errors
from synthmed.paths import check_output

CLASS_NAMES = ("benign", "malignant")
MALIGNANT_FRACTION = 0.35
#: the recipe's version (2: overlapping classes); part of the phantom cache's key
PHANTOM_VERSION = 2
#: distance of the class means of the latent suspicion, in its standard deviations (d')
CLASS_SEPARATION = 4.0
#: slope of the sigmoid from suspicion to feature strength (steeper: features nearer all-or-none)
SUSPICION_SLOPE = 4.0


def suspicion(rng_case: np.random.Generator, label: int) -> float:
    """The case's feature strength ``p`` in (0, 1): sigmoid of its latent suspicion."""
    z = CLASS_SEPARATION * label + rng_case.normal()
    return float(1.0 / (1.0 + np.exp(-SUSPICION_SLOPE * (z - CLASS_SEPARATION / 2))))


def _patients(n: int, seed: int) -> list[tuple[int, int]]:
    """(case, class) per image: cases of 2-4 frames, class drawn once per case."""
    rng = np.random.default_rng([seed, 10**6])
    out: list[tuple[int, int]] = []
    case = 0
    while len(out) < n:
        label = int(rng.random() < MALIGNANT_FRACTION)
        out.extend([(case, label)] * int(rng.integers(2, 5)))
        case += 1
    return out[:n]


def _speckle(rng: np.random.Generator, size: int) -> np.ndarray:
    """Rayleigh speckle, spatially correlated (axially elongated like a real PSF)."""
    raw = rng.rayleigh(1.0, (size, size))
    corr = ndimage.gaussian_filter(raw, sigma=(size / 160, size / 80))
    return corr / corr.mean()


def _tissue(rng: np.random.Generator, size: int) -> np.ndarray:
    y = np.linspace(0, 1, size)[:, None]
    layers = 0.55 + 0.15 * np.sin(2 * np.pi * (y * rng.uniform(1.5, 3.0) + rng.random()))
    atten = np.exp(-rng.uniform(0.4, 0.9) * y)
    skin = 1.0 + 0.6 * np.exp(-((y - 0.04) / 0.03) ** 2)
    return np.broadcast_to(layers * atten * skin, (size, size))


def _nodule_shape(rng_case: np.random.Generator, rng_img: np.random.Generator, size: int,
                  p: float) -> tuple[np.ndarray, np.ndarray]:
    """(mask bool, radial distance normalised by the local radius) for one nodule of
    suspicion ``p``: lobulation and spicules grow with ``p`` (none below ~0.3)."""
    cy, cx = rng_case.uniform(0.4, 0.6, 2) * size + rng_img.normal(0, 0.02 * size, 2)
    a = rng_case.uniform(0.14, 0.24) * size
    b = a * rng_case.uniform(0.6, 0.95)
    rot = rng_case.uniform(0, np.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    dy, dx = yy - cy, xx - cx
    u = dx * np.cos(rot) + dy * np.sin(rot)
    v = -dx * np.sin(rot) + dy * np.cos(rot)
    theta = np.arctan2(v / b, u / a)
    radius = 1.0 + 0.04 * np.cos(2 * theta + rng_case.uniform(0, 6.3))
    irregular = max(0.0, p - 0.3) / 0.7 * rng_case.uniform(0.5, 1.3)
    for k in range(3, 8):
        radius += irregular * rng_case.uniform(0.02, 0.08) * np.cos(
            k * theta + rng_case.uniform(0, 6.3))
    for _ in range(int(rng_case.integers(5, 10))):
        ang = rng_case.uniform(-np.pi, np.pi)
        width = rng_case.uniform(0.04, 0.1)
        d = np.angle(np.exp(1j * (theta - ang)))
        radius += irregular * rng_case.uniform(0.15, 0.35) * np.exp(-(d / width) ** 2)
    rho = np.sqrt((u / a) ** 2 + (v / b) ** 2) / radius
    return rho <= 1.0, rho


def phantom_image(seed: int, index: int, size: int, case: int, label: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """One (image uint8 (size, size), mask uint8 {0,1}) pair."""
    rng_case = np.random.default_rng([seed, 2, case])
    rng = np.random.default_rng([seed, 1, index])
    p = suspicion(rng_case, label)
    mask, rho = _nodule_shape(rng_case, rng, size, p)
    echo = _tissue(rng, size).copy()
    edge = 1.0 / (1.0 + np.exp((rho - 1.0) * (60 - 35 * p)))
    inside = float(np.clip(0.62 - 0.3 * p + rng_case.normal(0, 0.07), 0.2, 0.8))
    echo = echo * (1 - edge) + echo * inside * edge
    halo = 0.35 * (1 - p) * rng_case.uniform(0.3, 1.2)  # thin, smooth echogenic halo
    echo *= 1 + halo * np.exp(-((rho - 1.0) / 0.06) ** 2)
    img = echo * _speckle(rng, size)
    n_foci = int(rng_case.poisson(7 * p ** 2))  # punctate echogenic foci (microcalcifications)
    ys, xs = np.nonzero(rho < 0.8)
    if n_foci and len(ys):
        yy, xx = np.ogrid[0:size, 0:size]
        r = max(size / 128, 0.6)
        for j in rng.choice(len(ys), size=min(len(ys), n_foci), replace=False):
            img += 2.2 * np.exp(-((yy - ys[j]) ** 2 + (xx - xs[j]) ** 2) / (2 * r**2))
    img = np.log1p(3 * img) / np.log1p(3 * 2.5)
    img = np.clip(img * 255, 0, 255).astype(np.uint8)
    return img, mask.astype(np.uint8)


def make_phantom(n: int = 600, size: int = 64, seed: int = 0) -> dict[str, np.ndarray]:
    """The phantom as arrays: images (N, H, W) uint8, masks, labels, groups, ids."""
    if n < 1:
        raise DataError(f"--n {n}: the phantom needs at least one image")
    if size < 16:
        raise DataError(f"--size {size}: the phantom needs a size of at least 16 pixels")
    cases = _patients(n, seed)
    images = np.empty((n, size, size), np.uint8)
    masks = np.empty((n, size, size), np.uint8)
    for i, (case, label) in enumerate(cases):
        images[i], masks[i] = phantom_image(seed, i, size, case, label)
    labels = np.array([c[1] for c in cases], np.int64)
    groups = np.array([f"case{c[0]:03d}" for c in cases])
    ids = np.array([f"case{c[0]:03d}_{i:04d}" for i, c in enumerate(cases)])
    return {"images": images, "masks": masks, "labels": labels, "groups": groups, "ids": ids,
            "class_names": np.array(CLASS_NAMES)}


def write_phantom(out: str | os.PathLike, n: int = 600, size: int = 64, seed: int = 0, *,
                  force: bool = False) -> Path:
    """Write the phantom as raw files, like a user's export from a PACS or a public set:

    ``images/<class>/<id>.png``, ``masks/<class>/<id>.png`` (0/255), ``labels.csv``
    (path,label,group), a README saying it is a phantom, and ``phantom.json`` (its parameters;
    the marker that lets ``--force`` replace it).
    """
    out = check_output(out, force=force, kind="phantom")
    ph = make_phantom(n, size, seed)
    needed = 2 * ph["images"].nbytes + 65536
    with disk_errors(out, needed), atomic_directory(out, force=force, kind="phantom") as tmp:
        rows = ["path,label,group"]
        for name in CLASS_NAMES:
            (tmp / "images" / name).mkdir(parents=True)
            (tmp / "masks" / name).mkdir(parents=True)
        for i in range(n):
            cls = CLASS_NAMES[ph["labels"][i]]
            rel = f"{cls}/{ph['ids'][i]}.png"
            Image.fromarray(ph["images"][i]).save(tmp / "images" / rel)
            Image.fromarray(ph["masks"][i] * 255).save(tmp / "masks" / rel)
            rows.append(f"{rel},{cls},{ph['groups'][i]}")
        (tmp / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
        (tmp / "README.txt").write_text(
            f"synthmed phantom: {n} procedural ultrasound-like nodule images, {size}x{size}, "
            f"seed {seed}, recipe version {PHANTOM_VERSION}.\nNOT real patient data. Classes: "
            "benign (mostly smooth oval hypoechoic nodules), malignant (mostly darker, irregular "
            "spiculated margins, microcalcifications); the features overlap between classes.\n"
            "Groups caseNNN are fake patients.\n", encoding="utf-8")
        (tmp / "phantom.json").write_text(json.dumps(
            {"n": n, "size": size, "seed": seed, "version": PHANTOM_VERSION,
             "synthmed_version": __version__}) + "\n",
            encoding="utf-8")
    return out
