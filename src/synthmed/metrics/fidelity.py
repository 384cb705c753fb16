"""Fidelity and diversity metrics on feature vectors (numpy, float64) and on pixels (MS-SSIM).

- FID: Fréchet distance between Gaussians fitted to two feature sets (Heusel et al., 2017).
  Computed with symmetric eigendecompositions, which stay real and accurate where a plain
  ``sqrtm(S1 @ S2)`` picks up imaginary noise. Biased upward at small n (Chong & Forsyth, 2020):
  always read it beside the real-vs-real floor.
- KID: unbiased squared MMD with the cubic polynomial kernel, mean and std over subsets
  (Bińkowski et al., 2018; same defaults as torchmetrics/torch-fidelity).
- IS: exp(E_x KL(p(y|x) || p(y))) over 10 splits (Salimans et al., 2016).
- Precision/recall/density/coverage: k-NN manifolds (Kynkäänniemi et al., 2019; Naeem et al., 2020)
  via ``prdc``; :func:`prdc_metrics` is the same math on precomputed distances for the bootstrap.
- MS-SSIM between random pairs of one set (Odena et al., 2017): high means low diversity.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import torch

from synthmed.metrics.extractor import prepare_images

# Three scales fit images from 28 px up (the standard five need >= 161 px with an 11-px kernel):
# the first three of Wang et al.'s weights, renormalized to sum to 1.
MS_SSIM_WEIGHTS = (0.0711, 0.4530, 0.4759)
MS_SSIM_KERNEL = 7
MS_SSIM_MIN_SIDE = 28


def _mean_cov(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    if len(x) < 2:
        raise ValueError(f"need at least 2 feature vectors, got {len(x)}")
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray,
                     sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2), exact for PSD covariances."""
    root1 = _psd_sqrt(np.asarray(sigma1, np.float64))
    inner = root1 @ np.asarray(sigma2, np.float64) @ root1
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum()
    diff = np.asarray(mu1, np.float64) - np.asarray(mu2, np.float64)
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_sqrt
    return float(max(value, 0.0))


def fid(a: np.ndarray, b: np.ndarray) -> float:
    """FID between two feature sets (N, D) and (M, D)."""
    return frechet_distance(*_mean_cov(a), *_mean_cov(b))


def poly_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, coef: float = 1.0) -> np.ndarray:
    """KID's kernel k(a, b) = (a.b / d + coef)^degree, float64."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return (x @ y.T / x.shape[1] + coef) ** degree


def mmd2_from_kernels(kxx: np.ndarray, kyy: np.ndarray, kxy: np.ndarray, *,
                      cx: np.ndarray | None = None, cy: np.ndarray | None = None) -> float:
    """Unbiased MMD^2 from kernel matrices of two sets.

    ``cx``/``cy`` are multiplicities (how often each row is drawn in a bootstrap resample):
    pairs of copies of one sample are left out like the diagonal, so the estimate stays unbiased,
    and nothing of size resample x resample is built (sums are ``c @ K @ c``).
    """

    def within(k: np.ndarray, c: np.ndarray | None) -> float:
        c = np.ones(len(k)) if c is None else np.asarray(c, np.float64)
        pairs = c.sum() ** 2 - (c * c).sum()
        return float((c @ k @ c - (c * c * np.diag(k)).sum()) / pairs) if pairs > 0 else 0.0

    cxf = np.ones(kxy.shape[0]) if cx is None else np.asarray(cx, np.float64)
    cyf = np.ones(kxy.shape[1]) if cy is None else np.asarray(cy, np.float64)
    cross = float(cxf @ kxy @ cyf / (cxf.sum() * cyf.sum()))
    return within(kxx, cx) + within(kyy, cy) - 2.0 * cross


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, *, degree: int = 3, coef: float = 1.0) -> float:
    """Unbiased MMD^2 between feature sets with the polynomial kernel."""
    return mmd2_from_kernels(poly_kernel(x, x, degree, coef), poly_kernel(y, y, degree, coef),
                             poly_kernel(x, y, degree, coef))


def kid(a: np.ndarray, b: np.ndarray, *, subsets: int = 100, subset_size: int | None = None,
        seed: int = 0, degree: int = 3, coef: float = 1.0) -> tuple[float, float, int]:
    """KID: (mean, std, subset size) of unbiased MMD^2 over random subsets (no replacement).

    The default subset size is min(1000, n // 2), so subsets differ and the std says something.
    """
    n = min(len(a), len(b))
    if n < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got {n}")
    size = subset_size or max(2, min(1000, n // 2))
    rng = np.random.default_rng(seed)
    full = len(a) * len(b) <= 16_000_000  # kernels of the whole sets fit: index them
    if full:
        kaa, kbb, kab = (poly_kernel(a, a, degree, coef), poly_kernel(b, b, degree, coef),
                         poly_kernel(a, b, degree, coef))
    vals = []
    for _ in range(subsets):
        i = rng.choice(len(a), size, replace=False)
        j = rng.choice(len(b), size, replace=False)
        if full:
            vals.append(mmd2_from_kernels(kaa[np.ix_(i, i)], kbb[np.ix_(j, j)], kab[np.ix_(i, j)]))
        else:
            vals.append(mmd2_unbiased(a[i], b[j], degree=degree, coef=coef))
    return float(np.mean(vals)), float(np.std(vals)), size


def inception_score(probs: np.ndarray, splits: int = 10, *, shuffle: bool = True,
                    seed: int = 0) -> tuple[float, float]:
    """IS = exp(mean_x KL(p(y|x) || p(y))), mean and std over ``splits`` equal parts.

    Rows are shuffled (seeded) first, as in torch-fidelity: sets written class by class would
    otherwise give one-class splits.
    """
    p = np.asarray(probs, np.float64)
    if shuffle:
        p = p[np.random.default_rng(seed).permutation(len(p))]
    splits = max(1, min(splits, len(p)))
    scores = []
    for part in np.array_split(p, splits):
        py = part.mean(axis=0, keepdims=True)
        kl = (part * (np.log(np.clip(part, 1e-12, None)) - np.log(np.clip(py, 1e-12, None))))
        scores.append(np.exp(kl.sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict[str, float]:
    """Precision, recall, density, coverage from ``prdc.compute_prdc`` (its console print muted)."""
    from prdc import compute_prdc

    with contextlib.redirect_stdout(io.StringIO()):
        out = compute_prdc(real_features=np.asarray(real, np.float32),
                           fake_features=np.asarray(fake, np.float32), nearest_k=k)
    return {key: float(v) for key, v in out.items()}


def pairwise_distances(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Euclidean distance matrix (float64) between the rows of ``a`` and ``b``; without ``b``,
    within ``a`` with +inf on the diagonal (a point is not its own neighbour)."""
    ta = torch.as_tensor(np.asarray(a), dtype=torch.float64)
    d = torch.cdist(ta, ta if b is None else torch.as_tensor(np.asarray(b), dtype=torch.float64))
    d = d.numpy()
    if b is None:
        np.fill_diagonal(d, np.inf)
    return d


def prdc_from_distances(d_rr: np.ndarray, d_ff: np.ndarray, d_rf: np.ndarray,
                        k: int = 5) -> np.ndarray:
    """[precision, recall, density, coverage] exactly as ``prdc`` computes them, from distance
    matrices. ``d_rr``/``d_ff`` hold +inf where two rows are not neighbours: the diagonal, and
    copies of one sample in a bootstrap resample (gather a matrix with +inf diagonal)."""
    r_real = np.partition(d_rr, k - 1, axis=1)[:, k - 1]  # k-th neighbour other than itself
    r_fake = np.partition(d_ff, k - 1, axis=1)[:, k - 1]
    inside = d_rf < r_real[:, None]
    return np.array([inside.any(axis=0).mean(), (d_rf < r_fake[None, :]).any(axis=1).mean(),
                     inside.sum(axis=0).mean() / k, (d_rf.min(axis=1) < r_real).mean()])


def ms_ssim_pairs(images: np.ndarray, *, n_pairs: int = 200, seed: int = 0,
                  batch: int = 100) -> tuple[float, float, int] | None:
    """Mean and std of MS-SSIM over random pairs of distinct images of one set, and the pair count.

    Images go to [0, 1] (gray: one channel, colour averaged) and up to 28 px when smaller; three
    scales and a 7-px Gaussian window (sigma 1.5) so 28-64 px images are valid. None when n < 2.
    """
    from monai.metrics.regression import compute_ms_ssim

    n = len(images)
    if n < 2:
        return None
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, n_pairs)
    j = (i + rng.integers(1, n, n_pairs)) % n  # never i itself
    h, w = images.shape[-2:]
    size = (max(h, MS_SSIM_MIN_SIDE), max(w, MS_SSIM_MIN_SIDE))
    vals = []
    for s in range(0, n_pairs, batch):
        a, b = (prepare_images(np.asarray(images[k[s:s + batch]]), size=size, channels=1,
                               input_range="unit") for k in (i, j))
        vals.append(compute_ms_ssim(a, b, spatial_dims=2, data_range=1.0,
                                    kernel_size=MS_SSIM_KERNEL, kernel_sigma=1.5,
                                    weights=MS_SSIM_WEIGHTS).reshape(-1))
    v = torch.cat(vals).double().numpy()
    return float(v.mean()), float(v.std()), n_pairs


MS_SSIM_PROTOCOL = {"scales": len(MS_SSIM_WEIGHTS), "weights": list(MS_SSIM_WEIGHTS),
                    "kernel_size": MS_SSIM_KERNEL, "kernel_sigma": 1.5,
                    "min_side": MS_SSIM_MIN_SIDE,
                    "implementation": "monai.metrics.regression.compute_ms_ssim"}
