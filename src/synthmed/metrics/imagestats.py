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

Per channel, on the images as the network sees them ([-1, 1], resized). The block is standardized
by the domain extractor on its training images only (see :mod:`synthmed.metrics.domain`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

N_BANDS = 8
GRADIENT_Q = (0.5, 0.9, 0.99)
LOCAL_SD_Q = (0.1, 0.5, 0.9)
INTENSITY_Q = (0.05, 0.25, 0.5, 0.75, 0.95)
LAYOUT_K = 6
LOG_FLOOR = 1e-8  # energy floor before log10: a flat image's bands read -8, not -inf
GROUPS = {"spectrum": N_BANDS, "gradient": 2 + len(GRADIENT_Q),
          "local_sd": 1 + len(LOCAL_SD_Q), "intensity": len(INTENSITY_Q) + 1,
          "layout": LAYOUT_K * LAYOUT_K}
PER_CHANNEL = sum(GROUPS.values())


def stats_dim(in_channels: int) -> int:
    """Width of the block for images with ``in_channels`` channels."""
    return in_channels * PER_CHANNEL


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
    return torch.quantile(v, torch.tensor(qs, dtype=v.dtype, device=v.device), dim=1).T


def image_stats(x: torch.Tensor) -> torch.Tensor:
    """Images (B, C, H, W) in [-1, 1] -> the statistics block (B, C * PER_CHANNEL), float32,
    groups in the order of :data:`GROUPS`, channel after channel."""
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
    return torch.cat(out, dim=1).float()


@torch.no_grad()
def fit_standardization(x: torch.Tensor, target_var: float, *, batch: int = 256
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """(shift, scale) so that ``(image_stats(x) - shift) * scale`` has, on the images ``x`` (the
    training images, and only those), every statistic centred with equal variance, constant
    statistics 0, and total variance ``target_var``: equal weight per statistic inside the block,
    and a fixed ratio to the learned block (set by the caller), so neither owns every distance
    merely because it is wider."""
    f = torch.cat([image_stats(x[i:i + batch]) for i in range(0, len(x), batch)]).double()
    mean, std = f.mean(0), f.std(0) if len(f) > 1 else torch.zeros(f.shape[1], dtype=f.dtype)
    alive = std > 1e-6
    n_alive = int(alive.sum())
    block = (target_var / n_alive) ** 0.5 if n_alive and target_var > 0 else 1.0
    return mean.float(), torch.where(alive, block / std.clamp(min=1e-12), 0.0).float()
