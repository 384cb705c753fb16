"""A procedural, labelled ultrasound-like phantom for the quick start and tests.

NOT real data. Each image is a B-mode-like thyroid frame: correlated Rayleigh speckle over
layered tissue with depth attenuation, and one nodule with its mask. Class ``benign``: a smooth,
oval, hypoechoic nodule. Class ``malignant``: a darker nodule with an irregular, spiculated margin
and bright microcalcifications (the TI-RADS features that separate the classes). Images are grouped
into fake patients (``caseNNN``), 2-4 frames each, sharing class and nodule geometry, so that
patient-level splitting matters. Image ``i`` depends only on ``(seed, i)``: deterministic per seed.
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
                  malignant: bool) -> tuple[np.ndarray, np.ndarray]:
    """(mask bool, radial distance normalised by the local radius) for one nodule."""
    cy, cx = rng_case.uniform(0.4, 0.6, 2) * size + rng_img.normal(0, 0.02 * size, 2)
    a = rng_case.uniform(0.14, 0.24) * size
    b = a * rng_case.uniform(0.6, 0.95)
    rot = rng_case.uniform(0, np.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    dy, dx = yy - cy, xx - cx
    u = dx * np.cos(rot) + dy * np.sin(rot)
    v = -dx * np.sin(rot) + dy * np.cos(rot)
    theta = np.arctan2(v / b, u / a)
    radius = np.ones_like(theta)
    if malignant:
        for k in range(3, 8):
            radius += rng_case.uniform(0.02, 0.08) * np.cos(k * theta + rng_case.uniform(0, 6.3))
        for _ in range(int(rng_case.integers(5, 10))):
            ang = rng_case.uniform(-np.pi, np.pi)
            width = rng_case.uniform(0.04, 0.1)
            d = np.angle(np.exp(1j * (theta - ang)))
            radius += rng_case.uniform(0.15, 0.35) * np.exp(-(d / width) ** 2)
    else:
        radius += 0.04 * np.cos(2 * theta + rng_case.uniform(0, 6.3))
    rho = np.sqrt((u / a) ** 2 + (v / b) ** 2) / radius
    return rho <= 1.0, rho


def phantom_image(seed: int, index: int, size: int, case: int, label: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """One (image uint8 (size, size), mask uint8 {0,1}) pair."""
    rng_case = np.random.default_rng([seed, 2, case])
    rng = np.random.default_rng([seed, 1, index])
    malignant = bool(label)
    mask, rho = _nodule_shape(rng_case, rng, size, malignant)
    echo = _tissue(rng, size).copy()
    edge = 1.0 / (1.0 + np.exp((rho - 1.0) * (60 if not malignant else 25)))
    inside = rng_case.uniform(0.25, 0.4) if malignant else rng_case.uniform(0.45, 0.65)
    echo = echo * (1 - edge) + echo * inside * edge
    if not malignant:  # thin, smooth echogenic halo
        echo *= 1 + 0.35 * np.exp(-((rho - 1.0) / 0.06) ** 2)
    img = echo * _speckle(rng, size)
    if malignant:  # punctate echogenic foci (microcalcifications)
        ys, xs = np.nonzero(rho < 0.8)
        for j in rng.choice(len(ys), size=min(len(ys), int(rng.integers(4, 10))), replace=False):
            r = max(size / 128, 0.6)
            yy, xx = np.ogrid[0:size, 0:size]
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
            f"seed {seed}.\nNOT real patient data. Classes: benign (smooth oval hypoechoic "
            "nodule), malignant (irregular spiculated margin, microcalcifications).\n"
            "Groups caseNNN are fake patients.\n", encoding="utf-8")
        (tmp / "phantom.json").write_text(json.dumps(
            {"n": n, "size": size, "seed": seed, "synthmed_version": __version__}) + "\n",
            encoding="utf-8")
    return out
