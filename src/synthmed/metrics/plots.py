"""Evaluation plots (matplotlib, Agg backend), written atomically as PNG."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from synthmed.fileio import atomic_save
from synthmed.metrics.privacy import PrivacyResult, space_label
from synthmed.plotfonts import drawable


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out: str | os.PathLike) -> Path:
    out = Path(out)
    atomic_save(out, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    _plt().close(fig)
    return out


def distance_histograms(results: list[PrivacyResult], out: str | os.PathLike) -> Path:
    """Nearest-training-image distances: synthetic vs held-out real, with the copy threshold."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.2), squeeze=False)
    for ax, res in zip(axes[0], results, strict=True):
        parts = [res.synth_nn_dist] + ([res.heldout_nn_dist] if res.heldout_nn_dist is not None
                                       else [])
        bins = np.histogram_bin_edges(np.concatenate(parts), bins=30)
        ax.hist(res.synth_nn_dist, bins=bins, alpha=0.6, density=True, label="synthetic")
        if res.heldout_nn_dist is not None:
            ax.hist(res.heldout_nn_dist, bins=bins, alpha=0.6, density=True,
                    label="held-out real")
        if res.threshold is not None:
            ax.axvline(res.threshold, color="red", ls="--",
                       label=f"copy threshold (copy rate {res.copy_rate:.3f})")
        unit = "RMS intensity" if res.space == "pixel" else "feature distance"
        ax.set_xlabel(f"distance to nearest training image ({unit})")
        ax.set_title(space_label(res.space), fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, out)


def per_class_bars(per_class: dict[str, dict], out: str | os.PathLike) -> Path:
    """Per-class FID beside its real-vs-real floor, and precision/recall/coverage per class."""
    plt = _plt()
    names = list(per_class)
    x = np.arange(len(names))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(max(6.0, 1.6 * len(names) + 4), 3.2))

    def vals(key: str) -> list[float]:
        return [np.nan if per_class[n].get(key) is None else per_class[n][key] for n in names]

    ax1.bar(x - 0.2, vals("fid"), 0.4, label="synthetic vs real")
    ax1.bar(x + 0.2, vals("fid_real_real"), 0.4, label="real vs real (floor)")
    labels, font = drawable(names)  # CJK names without a CJK font: class K
    ax1.set_xticks(x, labels, **font)
    ax1.set_ylabel("FID")
    ax1.legend(fontsize=7)
    for n, key in enumerate(("precision", "recall", "coverage")):
        ax2.bar(x + (n - 1) * 0.27, vals(key), 0.27, label=key)
    ax2.set_xticks(x, labels, **font)
    ax2.set_ylim(0, 1.05)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, out)


def realism_grid(images: np.ndarray, scores: np.ndarray, out: str | os.PathLike, *,
                 most: bool, k: int = 16, cols: int = 8, title: str | None = None) -> Path:
    """The ``k`` most (or least) real-looking synthetic images by their realism score, in order,
    each labelled with its index and score (P(real) out of fold)."""
    from synthmed.metrics.extractor import prepare_images

    plt = _plt()
    order = np.argsort(-scores if most else scores, kind="stable")[:k]
    ch = 3 if images.shape[1] == 3 else 1
    h, w = images.shape[-2:]
    rows, gap = max(1, -(-len(order) // cols)), max(2, w // 10)
    canvas = np.ones((rows * (h + gap), cols * (w + gap), ch), np.float32)
    fig, ax = plt.subplots(figsize=(1.2 * cols, 1.3 * rows + 0.4))
    for n, i in enumerate(order):
        r, c = divmod(n, cols)
        tile = prepare_images(np.asarray(images[i])[None], channels=ch, input_range="unit")[0]
        canvas[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = \
            tile.numpy().transpose(1, 2, 0)
        ax.text(c * (w + gap), r * (h + gap) + h - 1, f"{i}: {scores[i]:.2f}", fontsize=5,
                color="yellow", va="bottom", bbox={"facecolor": "black", "alpha": 0.5, "pad": 0.5,
                                                   "lw": 0})
    ax.imshow(canvas[..., 0] if ch == 1 else canvas, cmap="gray", vmin=0, vmax=1,
              interpolation="nearest")
    ax.axis("off")
    ax.set_title(title or ("most" if most else "least") + " real-looking synthetic images "
                 "(index: P(real), out of fold)", fontsize=8)
    fig.tight_layout()
    return _save(fig, out)


def spectrum_plot(spectral: dict, out: str | os.PathLike) -> Path:
    """Radially averaged log10 power spectrum, real vs synthetic, one panel per channel."""
    plt = _plt()
    real, synth = np.asarray(spectral["spectrum_real"]), np.asarray(spectral["spectrum_synthetic"])
    f = np.asarray(spectral["frequencies"])
    fig, axes = plt.subplots(1, len(real), figsize=(4.0 * len(real), 3.0), squeeze=False)
    names = ["grey"] if len(real) == 1 else ["red", "green", "blue"][:len(real)]
    for ax, r, s, name in zip(axes[0], real, synth, names, strict=False):
        ax.plot(f, r, label="real (held out)", color="black")
        ax.plot(f, s, label="synthetic", color="tab:red")
        ax.set_xlabel("frequency (cycles/px; 0.5 = Nyquist)")
        ax.set_ylabel("log10 power")
        ax.set_title(f"{name}: spectral distance {spectral['distance']:.3g} "
                     f"(real floor {spectral['distance_floor']:.3g})", fontsize=8)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, out)
