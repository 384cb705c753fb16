"""The sanity ladder: does a feature space call obviously bad images bad?

FID, precision and density are only as good as the features they are computed on. A feature space
in which pure noise sits "on the real manifold" (it happens with a supervised 2-class extractor,
whose features are nearly one-dimensional) makes every number computed in it meaningless. So each
domain extractor, when it is built, is checked on images that are certainly not realistic:

- ``noise``: uniform random grey levels;
- ``blur``: the real images blurred with a Gaussian of sigma 1.5 px (GAN samples are often blurred);
- ``tiles``: each real image cut into a 4x4 grid of tiles, the tiles shuffled (local texture kept,
  global anatomy destroyed; a ``side % 4`` remainder row/column stays in place);
- ``constant``: the pixel-wise mean real image, repeated (no diversity at all).

The held-out real images are split into two random halves A and B. ``real`` is A vs B (the floor:
what a perfect generator would score at this n); each rung is A vs the rung applied to B, so every
comparison has the same sizes. Averaged over ``repeats`` random halvings.

"Clearly worse" (:data:`RULE`): a rung passes when its FID is at least twice the real-vs-real FID
(and above zero) *and* its precision and its density are at most half of the real-vs-real ones. The
ladder passes when every rung passes. Precision and density are Kynkäänniemi et al. (2019) and
Naeem et al. (2020), k = 5, as in ``evaluate``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter

from synthmed.metrics.fidelity import fid, prdc

RUNGS = ("noise", "blur", "tiles", "constant")
METRICS = ("fid", "precision", "density")
BLUR_SIGMA = 1.5
TILE_GRID = 4
FID_FACTOR = 2.0
PR_FACTOR = 0.5
PRDC_K = 5
RULE = (f"every rung must score clearly worse than held-out real vs real (two random halves of "
        f"the held-out images): FID >= {FID_FACTOR:g} x the real FID and > 0, precision and "
        f"density <= {PR_FACTOR:g} x the real ones (k = {PRDC_K})")
MIN_IMAGES = 2 * (PRDC_K + 2)


def _as_int(images: np.ndarray) -> tuple[np.ndarray, int]:
    top = 65535 if images.dtype == np.uint16 else 255
    return np.asarray(images), top


def uniform_noise(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Uniform random grey levels, same shape and dtype as ``images`` (N, C, H, W)."""
    x, top = _as_int(images)
    return rng.integers(0, top + 1, x.shape, dtype=np.int64).astype(x.dtype)


def gaussian_blur(images: np.ndarray, sigma: float = BLUR_SIGMA) -> np.ndarray:
    """Each image blurred in H and W by a Gaussian of ``sigma`` px (scipy, reflect borders)."""
    x, top = _as_int(images)
    out = gaussian_filter(x.astype(np.float64), sigma=(0, 0, sigma, sigma), mode="reflect")
    return np.clip(np.rint(out), 0, top).astype(x.dtype)


def shuffle_tiles(images: np.ndarray, rng: np.random.Generator, grid: int = TILE_GRID
                  ) -> np.ndarray:
    """Each image's ``grid`` x ``grid`` tiles put back in a random order (one permutation per
    image). Tiles are ``side // grid`` px; a remainder at the bottom/right stays where it is."""
    x, _ = _as_int(images)
    n, c, h, w = x.shape
    th, tw = h // grid, w // grid
    if th == 0 or tw == 0:
        raise ValueError(f"images of {h}x{w} px are too small for a {grid}x{grid} tile grid")
    out = x.copy()
    core = x[:, :, :th * grid, :tw * grid].reshape(n, c, grid, th, grid, tw)
    core = core.transpose(0, 2, 4, 1, 3, 5).reshape(n, grid * grid, c, th, tw)
    for i in range(n):
        tiles = core[i, rng.permutation(grid * grid)].reshape(grid, grid, c, th, tw)
        out[i, :, :th * grid, :tw * grid] = tiles.transpose(2, 0, 3, 1, 4).reshape(
            c, grid * th, grid * tw)
    return out


def constant_mean(images: np.ndarray) -> np.ndarray:
    """The pixel-wise mean image, repeated once per input image."""
    x, top = _as_int(images)
    mean = np.clip(np.rint(x.astype(np.float64).mean(axis=0)), 0, top).astype(x.dtype)
    return np.broadcast_to(mean, x.shape).copy()


# Rungs for the realism judge (:func:`synthmed.metrics.realism.realism_ladder`): subtler
# degradations that a reader notices but an FID at small n may not; ``flip`` must stay real.
REALISM_RUNGS = ("blur1", "checkerboard", "jpeg30", "flip")
MILD_BLUR_SIGMA = 1.0
CHECKER_AMPLITUDE = 3
JPEG_QUALITY = 30


def checkerboard(images: np.ndarray, amplitude: int = CHECKER_AMPLITUDE) -> np.ndarray:
    """``images`` plus a +-``amplitude`` grey-level pattern alternating at the pixel grid (the
    trace a stride-2 transposed convolution leaves), clipped."""
    x, top = _as_int(images)
    h, w = x.shape[-2:]
    pattern = (np.indices((h, w)).sum(0) % 2 * 2 - 1) * int(amplitude)
    return np.clip(x.astype(np.int64) + pattern, 0, top).astype(x.dtype)


def jpeg(images: np.ndarray, quality: int = JPEG_QUALITY) -> np.ndarray:
    """Each image JPEG-compressed at ``quality`` and decoded (Pillow; 8-bit, grey or RGB)."""
    import io

    from PIL import Image

    x, _ = _as_int(images)
    if x.dtype != np.uint8:
        x = (x.astype(np.float64) / 257).round().astype(np.uint8)
    out = np.empty_like(x)
    for i, img in enumerate(x):
        buf = io.BytesIO()
        Image.fromarray(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)).save(
            buf, "JPEG", quality=int(quality))
        dec = np.asarray(Image.open(io.BytesIO(buf.getvalue())))
        out[i] = dec[None] if dec.ndim == 2 else dec.transpose(2, 0, 1)
    return out.astype(images.dtype) if images.dtype == np.uint8 else \
        (out.astype(np.uint16) * 257)


def make_rung(name: str, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The ladder rung ``name`` built from real ``images`` (N, C, H, W) uint8/uint16: one of
    :data:`RUNGS` or :data:`REALISM_RUNGS`."""
    if name == "blur1":
        return gaussian_blur(images, MILD_BLUR_SIGMA)
    if name == "checkerboard":
        return checkerboard(images)
    if name == "jpeg30":
        return jpeg(images)
    if name == "flip":
        return np.ascontiguousarray(np.asarray(images)[..., ::-1])
    if name == "noise":
        return uniform_noise(images, rng)
    if name == "blur":
        return gaussian_blur(images)
    if name == "tiles":
        return shuffle_tiles(images, rng)
    if name == "constant":
        return constant_mean(images)
    raise ValueError(f"unknown ladder rung {name!r}; choose from "
                     f"{', '.join(RUNGS + REALISM_RUNGS)}")


def gram_fid(a: np.ndarray, b: np.ndarray) -> float:
    """FID through the samples' cross-Gram matrix: exactly :func:`~synthmed.metrics.fidelity.fid`
    but O(n^2 D) instead of O(D^3) (the ladder's features are wider than its halves are long).

    With centred rows A, B and S_a = A'A/(n_a-1), the non-zero eigenvalues of S_a^1/2 S_b S_a^1/2
    are the squared singular values of A B' / sqrt((n_a-1)(n_b-1)), so
    Tr (S_a^1/2 S_b S_a^1/2)^1/2 is that matrix's nuclear norm.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 2 or len(b) < 2 or a.shape[1] <= min(len(a), len(b)):
        return fid(a, b)
    ca, cb = a - a.mean(0), b - b.mean(0)
    c = np.sqrt((len(a) - 1) * (len(b) - 1))
    cross = np.linalg.svd(ca @ cb.T, compute_uv=False).sum() / c
    diff = a.mean(0) - b.mean(0)
    value = diff @ diff + (ca * ca).sum() / (len(a) - 1) + (cb * cb).sum() / (len(b) - 1)
    return float(max(value - 2.0 * cross, 0.0))


def _scores(ref: np.ndarray, other: np.ndarray) -> dict[str, float]:
    p = prdc(ref, other, k=PRDC_K)
    return {"fid": gram_fid(ref, other), "precision": p["precision"], "density": p["density"]}


def judge(real: dict[str, float], rung: dict[str, float]) -> bool:
    """:data:`RULE` for one rung against the real-vs-real scores."""
    return bool(rung["fid"] >= FID_FACTOR * real["fid"] and rung["fid"] > 0
                and rung["precision"] <= PR_FACTOR * real["precision"]
                and rung["density"] <= PR_FACTOR * real["density"])


def run_ladder(embed: Callable[[np.ndarray], np.ndarray], images: np.ndarray, *, seed: int = 0,
               repeats: int = 3, source: str = "held-out") -> dict[str, Any]:
    """The ladder of an image -> feature function on real held-out ``images`` (N, C, H, W).

    Returns ``{"passed", "rule", "rungs": {name: {fid, precision, density, passed}}, "real":
    {...}, "n_per_half", "repeats", "source"}``: plain JSON, stored in the extractor file.
    """
    images = np.asarray(images)
    if len(images) < MIN_IMAGES:
        return {"passed": False, "rule": RULE, "rungs": {}, "real": None, "source": source,
                "n_per_half": len(images) // 2, "repeats": 0,
                "reason": f"{len(images)} held-out images; the ladder needs at least {MIN_IMAGES}"}
    rng = np.random.default_rng(seed)
    sums: dict[str, dict[str, float]] = {r: dict.fromkeys(METRICS, 0.0) for r in ("real", *RUNGS)}
    half = len(images) // 2
    for _ in range(repeats):
        perm = rng.permutation(len(images))
        a, b = images[perm[:half]], images[perm[half:2 * half]]
        fa = embed(a)
        sets = {"real": b, **{r: make_rung(r, b, rng) for r in RUNGS}}
        for name, imgs in sets.items():
            for m, v in _scores(fa, embed(imgs)).items():
                sums[name][m] += v / repeats
    real = sums.pop("real")
    rungs = {r: {**s, "passed": judge(real, s)} for r, s in sums.items()}
    return {"passed": all(r["passed"] for r in rungs.values()), "rule": RULE, "rungs": rungs,
            "real": real, "n_per_half": half, "repeats": repeats, "source": source}


def summary_line(sanity: dict[str, Any] | None) -> str:
    """One line for the CLI: which rungs failed, or that the ladder passed."""
    if not sanity:
        return "no sanity ladder (not a domain extractor, or a file from before the ladder)"
    if sanity.get("reason"):
        return f"no sanity ladder: {sanity['reason']}"
    failed = [r for r, s in sanity["rungs"].items() if not s["passed"]]
    if not failed:
        return "sanity ladder passed (noise, blur, tiles, constant all clearly worse than real)"
    return (f"sanity ladder FAILED on {', '.join(failed)}: this feature space does not tell those "
            "images from real ones, so FID/precision/density computed in it are not trustworthy")


def sanity_block(name: str, group: dict[str, Any]) -> dict[str, Any]:
    """What metrics.json says under ``sanity`` for one extractor: its stored ladder, or
    ``passed: None`` with a reason when it has none (Inception, TorchScript, older files)."""
    found = group.get("sanity")
    if isinstance(found, dict):
        return {"extractor": name, **found}
    why = "the ladder runs only when a domain extractor is built"
    if name == "domain":
        why = "this extractor file predates the sanity ladder; retrain: `synthmed features train`"
    return {"extractor": name, "passed": None, "rule": RULE, "rungs": {}, "reason": why}


def sanity_warnings(groups: dict[str, dict[str, Any]]) -> list[str]:
    """One warning per extractor whose ladder failed or that has none though it is ``domain``."""
    out = []
    for name, group in groups.items():
        block = sanity_block(name, group)
        if block["passed"] is False or (name == "domain" and block["passed"] is None):
            out.append(f"{name}: {summary_line(group.get('sanity') or block)}")
    return out
