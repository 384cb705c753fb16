"""Spectral artefacts: the frequency fingerprints that up-sampling layers leave.

Transposed convolutions and nearest/bilinear up-sampling put energy where real images have little
(at the Nyquist frequency: a pixel checkerboard; at half of it: period-4 grids) and often too
little in the high frequencies (Durall et al., 2020, "Watch your up-convolution", CVPR; Dzanic et
al., 2020, "Fourier spectrum discrepancies in deep network generated images", NeurIPS). A learned
feature space can average such a fingerprint away; the spectrum cannot. Three numbers:

- the radially averaged log10 power spectrum of each set (mean-removed images, per channel, one
  band per frequency step up to 0.5 cycles/px), and ``distance``: the mean |difference| of the two
  sets' mean log spectra (in decades), with its floor between two random halves of the real set;
- ``checkerboard``: log10 of the synthetic / real mean share of power on the Nyquist lines, and
  ``half_nyquist`` the same on the half-Nyquist lines (0 = as real), with the range that random
  halves of the real set reach against each other (:data:`SPLITS` splits); a score outside that
  range, either way, is flagged and named in words (excess: a checkerboard or period-4 grid;
  deficit: blocky, smoothed or coarse grain, as after nearest-neighbour up-sampling or blur).

Functions take (N, C, H, W) uint8/uint16 arrays of one size (resize the synthetic set first, as
:func:`synthmed.metrics.realism.match_sets` does).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from synthmed.metrics.realism_features import grid_lines, power_spectrum, to_unit_gray

SPLITS = 20
FLOOR = 1e-12
MIN_IMAGES = 10


def radial_spectrum(images: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> (C, B) mean log10 power per radial band (B = min(H, W) // 2 bands of
    1/min(H, W) cycles/px from DC to 0.5 cycles/px)."""
    x, _ = to_unit_gray(images)
    n, c, h, w = x.shape
    side = min(h, w)
    r = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :])
    band = np.rint(r * side).astype(np.int64)
    keep = (band >= 1) & (band <= side // 2)
    counts = np.bincount(band[keep], minlength=side // 2 + 1)[1:]
    out = np.zeros((c, side // 2))
    for ch in range(c):
        p = power_spectrum(x[:, ch]).mean(0)
        sums = np.bincount(band[keep], weights=p[keep], minlength=side // 2 + 1)[1:]
        out[ch] = np.log10(np.maximum(sums / np.maximum(counts, 1), FLOOR))
    return out


def line_shares(images: np.ndarray) -> dict[str, np.ndarray]:
    """Per image: share of the (grey) power on the Nyquist and half-Nyquist lines."""
    _, g = to_unit_gray(images)
    p = power_spectrum(g)
    total = np.maximum(p.reshape(len(g), -1).sum(1), FLOOR)
    return {k: p[:, m].sum(1) / total for k, m in grid_lines(*g.shape[1:]).items()}


def _line_score(a: np.ndarray, b: np.ndarray) -> float:
    """log10(mean share of a / mean share of b)."""
    return float(np.log10(max(a.mean(), FLOOR) / max(b.mean(), FLOOR)))


def _distance(sa: np.ndarray, sb: np.ndarray) -> float:
    return float(np.abs(sa - sb).mean())


def spectral_artefacts(real: np.ndarray, synthetic: np.ndarray, *, seed: int = 0
                       ) -> dict[str, Any] | None:
    """Spectra, distance with its real-vs-real floor, and the grid scores with their real range
    (see the module docstring); None with fewer than :data:`MIN_IMAGES` images on a side."""
    real, synthetic = np.asarray(real), np.asarray(synthetic)
    if min(len(real), len(synthetic)) < MIN_IMAGES:
        return None
    if real.shape[1:] != synthetic.shape[1:]:
        raise ValueError(f"spectra need one image shape (real {real.shape[1:]}, synthetic "
                         f"{synthetic.shape[1:]})")
    spec_r, spec_s = radial_spectrum(real), radial_spectrum(synthetic)
    lr, ls = line_shares(real), line_shares(synthetic)
    rng = np.random.default_rng(seed)
    floors, ranges = [], {k: [] for k in lr}
    for _ in range(SPLITS):
        perm = rng.permutation(len(real))
        a, b = perm[:len(real) // 2], perm[len(real) // 2:]
        if len(floors) < 3:  # spectra are smooth: three halvings give the floor
            floors.append(_distance(radial_spectrum(real[np.sort(a)]),
                                    radial_spectrum(real[np.sort(b)])))
        for k in lr:
            ranges[k].append(abs(_line_score(lr[k][a], lr[k][b])))
    out: dict[str, Any] = {
        "distance": _distance(spec_s, spec_r), "distance_floor": float(np.mean(floors)),
        "frequencies": (np.arange(1, spec_r.shape[1] + 1) / min(real.shape[2:])).tolist(),
        "spectrum_real": spec_r.tolist(), "spectrum_synthetic": spec_s.tolist(),
        "splits": SPLITS}
    for k in lr:
        score, top = _line_score(ls[k], lr[k]), float(max(ranges[k]))
        name = "checkerboard" if k == "nyquist" else "half_nyquist"
        out[name], out[f"{name}_real_range"] = score, top
        out[f"{name}_flagged"] = bool(abs(score) > top)
    out["artefacts"] = artefact_words(out)
    return out


def artefact_words(s: dict[str, Any]) -> list[str]:
    """Plain sentences for the grid scores outside the real range (either direction)."""
    words = []
    if s.get("checkerboard_flagged"):
        ratio, top = 10 ** s["checkerboard"], 10 ** s["checkerboard_real_range"]
        if ratio > 1:
            words.append(f"checkerboard artefacts: {ratio:.3g}x the real images' power at the "
                         "Nyquist frequency (a pixel-grid pattern, as transposed-convolution "
                         "up-sampling leaves, or pixel noise left by an under-trained sampler), "
                         f"outside the real range (up to {top:.3g}x between halves of the real "
                         "set)")
        else:
            words.append(f"blocky or smoothed pixel grain: {ratio:.3g}x the real images' power at "
                         "the Nyquist frequency (neighbouring pixels move together, as after "
                         f"nearest-neighbour up-sampling or blur), outside the real range "
                         f"({1 / top:.3g}x to {top:.3g}x)")
    if s.get("half_nyquist_flagged"):
        ratio, top = 10 ** s["half_nyquist"], 10 ** s["half_nyquist_real_range"]
        if ratio > 1:
            words.append(f"period-4 grid artefacts: {ratio:.3g}x the real images' power at half "
                         "the Nyquist frequency (two stacked 2x up-samplings), outside the real "
                         f"range (up to {top:.3g}x)")
        else:
            words.append(f"coarse grain: {ratio:.3g}x the real images' power at half the Nyquist "
                         "frequency (2-4 px texture missing: a 2x up-sampling grid or blur), "
                         f"outside the real range ({1 / top:.3g}x to {top:.3g}x)")
    return words
