"""A fixed, non-learned block of low-level image statistics, appended to the domain features.

A contrastive network learns what its augmentations leave unchanged; it has no reason to keep
the exact sharpness, noise level or grey-level distribution of an image, and with a few hundred
28-64 px training images it does not. Yet those are precisely how bad generated images fail:
blur and over-smoothing lose high frequencies, up-sampling artefacts put energy in the wrong
frequency bands (Durall et al., 2020, "Watch your up-convolution", CVPR; Dzanic et al., 2020,
"Fourier spectrum discrepancies in deep network generated images", NeurIPS), block and tiling
artefacts add edges, and a collapsed generator loses texture. So the default domain extractor
also measures them directly, with statistics that no training can talk away:

- ``spectrum``: the azimuthally averaged power spectrum (mean removed), log10 energy in
  ``N_BANDS`` equal-width radial frequency bands up to the Nyquist frequency (Durall et al.'s
  1-D spectrum, binned);
- ``gradient``: the gradient magnitude (central differences, in [-1, 1] units per px): mean, sd
  and quantiles 0.5, 0.9, 0.99 (edges, texture; tiling and blocking add edges, blur removes them);
- ``local_sd``: the 3x3 local standard deviation: mean and quantiles 0.1, 0.5, 0.9 (speckle and
  noise level, flat regions);
- ``intensity``: grey-level quantiles 0.05, 0.25, 0.5, 0.75, 0.95 and the sd (histogram shape);
- ``layout``: the ``LAYOUT_K`` x ``LAYOUT_K`` lowest-frequency coefficients of the orthonormal 2-D
  DCT-II, i.e. a tiny low-pass version of the image (the "tiny images" of Torralba et al., 2008):
  where bright and dark structures sit. The power spectrum and the texture statistics are blind
  to position, so without it an image whose parts are scrambled keeps every other statistic.

Per channel, on the images as the network sees them ([-1, 1], resized); the scale statistics on a
log scale. The domain extractor turns them into its feature block with :func:`fit_block`, on its
training images only: a typicality statistic (how far the layout is from the average layout),
per-statistic standardization, Ledoit-Wolf whitening and a fixed share of the total variance.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.covariance import LedoitWolf

N_BANDS = 8
GRADIENT_Q = (0.5, 0.9, 0.99)
LOCAL_SD_Q = (0.1, 0.5, 0.9)
INTENSITY_Q = (0.05, 0.25, 0.5, 0.75, 0.95)
LAYOUT_K = 6
LOG_FLOOR = 1e-8  # energy floor before log10: a flat image's bands read -8, not -inf
SCALE_FLOOR = 1e-4  # floor before log10 of the gradient, local-sd and grey-level sd statistics
RADIUS_FLOOR = 1e-3  # floor before log10 of the layout's typicality radius
STATS_VERSION = 2  # 1: linear scale statistics, per-statistic scaling (training_version 3)
GROUPS = {"spectrum": N_BANDS, "gradient": 2 + len(GRADIENT_Q),
          "local_sd": 1 + len(LOCAL_SD_Q), "intensity": len(INTENSITY_Q) + 1,
          "layout": LAYOUT_K * LAYOUT_K}
PER_CHANNEL = sum(GROUPS.values())


def stats_dim(in_channels: int) -> int:
    """Width of :func:`image_stats` for images with ``in_channels`` channels."""
    return in_channels * PER_CHANNEL


def block_dim(in_channels: int, version: int = STATS_VERSION) -> int:
    """Width of the feature block: the statistics, plus (version 2) the layout's typicality."""
    return stats_dim(in_channels) + (1 if version >= 2 else 0)


def _columns(in_channels: int, groups: dict[str, tuple[int, int]]) -> list[int]:
    out = []
    for c in range(in_channels):
        start = c * PER_CHANNEL
        for name, width in GROUPS.items():
            lo, hi = groups.get(name, (0, 0))
            out += [start + i for i in range(width)][lo:hi]
            start += width
    return out


def scale_columns(in_channels: int) -> list[int]:
    """Columns of the scale statistics (gradient, local sd, grey-level sd), logged in version 2."""
    return _columns(in_channels, {"gradient": (0, 99), "local_sd": (0, 99),
                                  "intensity": (len(INTENSITY_Q), 99)})


def layout_columns(in_channels: int) -> list[int]:
    """Columns of the layout (DCT) statistics, every channel."""
    return _columns(in_channels, {"layout": (0, 99)})


def _band_index(h: int, w: int, device: torch.device) -> torch.Tensor:
    """Radial band of every FFT bin: 0 .. N_BANDS-1 for 0 < r <= 0.5 cycles/px, -1 otherwise
    (the DC term, and the corners beyond Nyquist that only a square grid has)."""
    fy = torch.fft.fftfreq(h, device=device).view(h, 1)
    fx = torch.fft.fftfreq(w, device=device).view(1, w)
    r = torch.sqrt(fy * fy + fx * fx)
    band = torch.ceil(r / 0.5 * N_BANDS).long() - 1
    return torch.where((r > 0) & (r <= 0.5), band.clamp(max=N_BANDS - 1), -1)


def radial_spectrum(x: torch.Tensor) -> torch.Tensor:
    """(B, H, W) -> (B, N_BANDS) log10 mean power per radial band (image mean removed)."""
    b, h, w = x.shape
    power = torch.fft.fft2(x - x.mean(dim=(1, 2), keepdim=True)).abs().pow(2) / (h * w)
    band = _band_index(h, w, x.device).flatten()
    keep = band >= 0
    one_hot = F.one_hot(band[keep], N_BANDS).to(power.dtype)  # (bins, bands)
    counts = one_hot.sum(0).clamp(min=1)
    energy = power.flatten(1)[:, keep] @ one_hot / counts
    return torch.log10(energy + LOG_FLOOR)


def _gradient_magnitude(x: torch.Tensor) -> torch.Tensor:
    p = F.pad(x.unsqueeze(1), (1, 1, 1, 1), mode="replicate").squeeze(1)
    gx = (p[:, 1:-1, 2:] - p[:, 1:-1, :-2]) / 2
    gy = (p[:, 2:, 1:-1] - p[:, :-2, 1:-1]) / 2
    return torch.sqrt(gx * gx + gy * gy)


def _local_sd(x: torch.Tensor) -> torch.Tensor:
    p = F.pad(x.unsqueeze(1), (1, 1, 1, 1), mode="replicate")
    mean = F.avg_pool2d(p, 3, stride=1)
    sq = F.avg_pool2d(p * p, 3, stride=1)
    return (sq - mean * mean).clamp(min=0).sqrt().squeeze(1)


def dct_matrix(n: int, k: int, device: torch.device | None = None) -> torch.Tensor:
    """The first ``k`` rows of the orthonormal DCT-II matrix of size ``n`` (k, n), float64."""
    i = torch.arange(n, dtype=torch.float64, device=device)
    f = torch.arange(k, dtype=torch.float64, device=device)
    m = torch.cos(torch.pi * (i[None, :] + 0.5) * f[:, None] / n) * (2.0 / n) ** 0.5
    m[0] /= 2.0 ** 0.5
    return m


def layout(x: torch.Tensor, k: int = LAYOUT_K) -> torch.Tensor:
    """(B, H, W) -> (B, k * k) lowest-frequency 2-D DCT-II coefficients (orthonormal)."""
    _, h, w = x.shape
    a, b = dct_matrix(h, k, x.device).to(x.dtype), dct_matrix(w, k, x.device).to(x.dtype)
    return torch.einsum("kh,bhw,lw->bkl", a, x, b).flatten(1)


def _quantiles(v: torch.Tensor, qs: tuple[float, ...]) -> torch.Tensor:
    """(B, N) -> (B, len(qs)) linear-interpolation quantiles per row; on the CPU through numpy's
    selection (4x faster than torch.quantile's full sort: 0.2 instead of 0.75 s per 1,000
    64 px images, most of the block's cost), the same values."""
    if v.device.type != "cpu":
        return torch.quantile(v, torch.tensor(qs, dtype=v.dtype, device=v.device), dim=1).T
    return torch.from_numpy(np.quantile(v.numpy(), qs, axis=1).T.copy())


def image_stats(x: torch.Tensor, *, log_scale: bool = True) -> torch.Tensor:
    """Images (B, C, H, W) in [-1, 1] -> the statistics block (B, C * PER_CHANNEL), float32,
    groups in the order of :data:`GROUPS`, channel after channel.

    ``log_scale``: the scale statistics (gradient, local sd, grey-level sd) as log10(v + 1e-4),
    like the spectrum's energies. They vary by ratios (blur halves gradients; a flat region's
    texture is near 0), so on a linear scale a sharp image's large values own their spread and a
    blurred one is barely 1 sd away (BreastMNIST's blur passed only with the log; docs/metrics.md).
    ``False`` is version 1 (files of ``training_version`` 3)."""
    if x.ndim != 4:
        raise ValueError(f"image_stats expects (B, C, H, W), got shape {tuple(x.shape)}")
    x = x.detach().double()
    out = []
    for c in range(x.shape[1]):
        xc = x[:, c]
        g = _gradient_magnitude(xc).flatten(1)
        s = _local_sd(xc).flatten(1)
        v = xc.flatten(1)
        out += [radial_spectrum(xc),
                g.mean(1, keepdim=True), g.std(1, keepdim=True), _quantiles(g, GRADIENT_Q),
                s.mean(1, keepdim=True), _quantiles(s, LOCAL_SD_Q),
                _quantiles(v, INTENSITY_Q), v.std(1, keepdim=True), layout(xc)]
    out = torch.cat(out, dim=1)
    if log_scale:
        cols = scale_columns(x.shape[1])
        out[:, cols] = torch.log10(out[:, cols].clamp(min=0) + SCALE_FLOOR)
    return out.float()


def _standardizer(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column mean and 1/sd on the rows ``f``; constant columns get 1/sd = 0."""
    mean = f.mean(0)
    std = f.std(0, ddof=1) if len(f) > 1 else np.zeros(f.shape[1])
    return mean, np.where(std > 1e-6, 1.0 / np.maximum(std, 1e-12), 0.0)


def _whitener(z: np.ndarray) -> np.ndarray:
    """(D, D) PCA-whitening matrix of the Ledoit-Wolf shrunk covariance of the rows ``z``
    (Ledoit & Wolf, 2004: well conditioned even with fewer rows than columns)."""
    if len(z) < 2:
        return np.zeros((z.shape[1], z.shape[1]))
    evals, evecs = np.linalg.eigh(LedoitWolf().fit(z).covariance_)
    return evecs / np.sqrt(np.maximum(evals, 1e-12))


def layout_radius(stats: torch.Tensor, shift: torch.Tensor, proj: torch.Tensor) -> torch.Tensor:
    """(B, stats_dim) -> (B, 1) log10 Mahalanobis distance of the layout from the training
    images' mean layout (the typicality statistic, see :func:`fit_block`)."""
    lay = stats[:, layout_columns(len(stats[0]) // PER_CHANNEL)]
    r = ((lay - shift) @ proj).pow(2).sum(1, keepdim=True).sqrt()
    return torch.log10(r + RADIUS_FLOOR)


@torch.no_grad()
def fit_block(x: torch.Tensor, target_var: float, *, batch: int = 256) -> dict[str, torch.Tensor]:
    """The buffers that turn ``image_stats(x)`` into the feature block, fitted on the images ``x``
    (the training images, and only those).

    1. Typicality: the Mahalanobis distance of an image's layout from the training images' mean
       layout (``layout_shift``, ``layout_proj``), appended as one more statistic. Real images in
       D dimensions lie at distance about sqrt(D) from their mean, not at it (the typical set;
       Nalisnick et al., 2019, "Detecting out-of-distribution inputs to deep generative models
       using typicality"), while k-NN balls cover the middle of the cloud: without it the mean
       image, or a generator that regresses to the average anatomy, sits "on the manifold".
    2. Each statistic standardized (``stat_shift``, ``stat_scale``; constant ones 0), then the
       block whitened with the Ledoit-Wolf covariance (``stat_proj``): distances in it are
       Mahalanobis distances. The statistics are strongly correlated (contrast moves every band
       and gradient together), so a per-statistic scale lets that common direction own every
       distance and hides a blurred image whose *combination* of statistics is unlike any real
       one (PneumoniaMNIST's blur in docs/metrics.md).
    3. The whole block scaled to total variance ``target_var`` on ``x`` (a fixed ratio to the
       learned block, set by the caller), so neither owns every distance merely by its width.
    """
    s = torch.cat([image_stats(x[i:i + batch]) for i in range(0, len(x), batch)]).double().numpy()
    lay = layout_columns(x.shape[1])
    lshift, linv = _standardizer(s[:, lay])
    lproj = linv[:, None] * _whitener((s[:, lay] - lshift) * linv)
    radius = layout_radius(torch.from_numpy(s), torch.from_numpy(lshift), torch.from_numpy(lproj))
    v = np.concatenate([s, radius.numpy()], axis=1)
    shift, inv = _standardizer(v)
    w = _whitener((v - shift) * inv)
    total = float((((v - shift) * inv @ w) ** 2).sum()) / max(len(v) - 1, 1)
    k = (target_var / total) ** 0.5 if total > 0 and target_var > 0 else 0.0
    out = {"stat_shift": shift, "stat_scale": inv, "stat_proj": w * k, "layout_shift": lshift,
           "layout_proj": lproj}
    return {name: torch.from_numpy(np.ascontiguousarray(a)).float() for name, a in out.items()}
