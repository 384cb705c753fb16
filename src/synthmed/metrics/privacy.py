"""Privacy audit: does the synthetic set copy (memorize) training patients?

Definitions (the same in pixel space and in feature space):

- nearest training image of each synthetic image (Euclidean; in pixel space the root-mean-square
  difference of [0, 1] intensities at the training images' size, so 0.01 means 1 % of the range);
- copy threshold: the 5th percentile of the nearest-training distances of *held-out* real images
  (patients the generator never saw). A synthetic image closer than that to a training image is
  closer than 95 % of genuinely new patients are: a near copy. The copy rate is the share of such
  images; an honest generator scores about 0.05 or below (held-out real images score 0.05 by
  construction), a memorizing one approaches 1;
- membership-inference AUC: a distance attack (Hilprecht et al., 2019; Chen et al., 2020,
  "GAN-Leaks") scores every real image by its distance to the nearest synthetic image and tries
  to tell training images (members) from held-out ones. 0.5 means the synthetic set gives no
  membership away; 1.0 means it gives it away completely.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from synthmed.errors import SynthmedError
from synthmed.metrics.features import prepare_images

COPY_PERCENTILE = 5.0


def pixel_vectors(images: np.ndarray, *, size: tuple[int, int], channels: int) -> torch.Tensor:
    """(N, C, H, W) images -> (N, channels*H*W) float32 in [0, 1] at ``size`` (training size)."""
    x = prepare_images(np.asarray(images), size=size, channels=channels, input_range="unit")
    return x.reshape(len(x), -1)


def nearest(query: np.ndarray | torch.Tensor, ref: np.ndarray | torch.Tensor, *, rms: bool = False,
            chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Index and Euclidean distance of each query row's nearest ``ref`` row (/sqrt(D) if rms)."""
    q = torch.as_tensor(np.asarray(query) if not isinstance(query, torch.Tensor) else query).float()
    r = torch.as_tensor(np.asarray(ref) if not isinstance(ref, torch.Tensor) else ref).float()
    idx, dist = [], []
    for s in range(0, len(q), chunk):
        d = torch.cdist(q[s:s + chunk], r)
        m = d.min(dim=1)
        idx.append(m.indices)
        dist.append(m.values)
    d = torch.cat(dist).double().numpy()
    return torch.cat(idx).numpy(), (d / np.sqrt(q.shape[1]) if rms else d)


def copy_threshold(heldout_to_train: np.ndarray, percentile: float = COPY_PERCENTILE) -> float:
    """The ``percentile``-th percentile of held-out real images' nearest-training distances."""
    return float(np.percentile(np.asarray(heldout_to_train, np.float64), percentile))


def membership_auc(member_to_synth: np.ndarray, nonmember_to_synth: np.ndarray) -> float:
    """ROC AUC of 'closer to the synthetic set means training member' (0.5: no leak)."""
    d = np.concatenate([member_to_synth, nonmember_to_synth])
    y = np.concatenate([np.ones(len(member_to_synth)), np.zeros(len(nonmember_to_synth))])
    return float(roc_auc_score(y, -d))


@dataclass
class PrivacyResult:
    """One space's audit: per-synthetic-image nearest neighbours and the summary numbers."""

    space: str
    synth_nn_index: np.ndarray
    synth_nn_dist: np.ndarray
    heldout_nn_dist: np.ndarray | None
    threshold: float | None
    copy_rate: float | None
    membership_auc: float | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def flagged(self) -> np.ndarray:
        if self.threshold is None:
            return np.zeros(len(self.synth_nn_dist), bool)
        return self.synth_nn_dist < self.threshold

    def summary(self, suffix: str = "") -> dict[str, Any]:
        known = self.threshold is not None
        held = self.heldout_nn_dist
        return {f"copy_rate{suffix}": self.copy_rate, f"copy_threshold{suffix}": self.threshold,
                f"n_copies{suffix}": int(self.flagged.sum()) if known else None,
                f"membership_auc{suffix}": self.membership_auc,
                f"nn_distance_median{suffix}": float(np.median(self.synth_nn_dist)),
                f"heldout_nn_distance_median{suffix}": (float(np.median(held))
                                                        if held is not None else None)}


def audit(synth: np.ndarray | torch.Tensor, train: np.ndarray | torch.Tensor,
          heldout: np.ndarray | torch.Tensor | None = None, *, space: str = "pixel",
          percentile: float = COPY_PERCENTILE) -> PrivacyResult:
    """Nearest neighbours, copy rate and membership AUC for vectors (rows) of the three sets.

    Pixel space uses RMS distances; anything else plain Euclidean. Without ``heldout`` only the
    nearest neighbours are known (no threshold, copy rate or AUC).
    """
    rms = space == "pixel"
    idx, dist = nearest(synth, train, rms=rms)
    if heldout is None or len(heldout) == 0:
        return PrivacyResult(space, idx, dist, None, None, None, None)
    _, held = nearest(heldout, train, rms=rms)
    thr = copy_threshold(held, percentile)
    _, member = nearest(train, synth, rms=rms)
    _, nonmember = nearest(heldout, synth, rms=rms)
    return PrivacyResult(space, idx, dist, held, thr, float((dist < thr).mean()),
                         membership_auc(member, nonmember),
                         {"n_train": len(train), "n_heldout": len(heldout),
                          "percentile": percentile})


def near_copy_mask(synthetic_uint8: np.ndarray, train_uint8: np.ndarray, *,
                   threshold: float | None = None, heldout_uint8: np.ndarray | None = None,
                   features=None) -> tuple[np.ndarray, float]:
    """Which synthetic images are near copies of a training image: (bool mask (N,), threshold).

    Images are (N, C, H, W) uint8/uint16. The distance is pixel RMS at the training size, or
    feature-space Euclidean when ``features`` (a ``FeatureExtractor`` or any callable
    images -> (N, D) array) is given. ``threshold`` defaults to the 5th percentile
    of ``heldout_uint8``'s nearest-training distances; one of the two is required.
    """
    if threshold is None and heldout_uint8 is None:
        raise SynthmedError("near-copy filtering needs a threshold or held-out real images "
                            "(e.g. the dataset's val or test split)")
    sets = [synthetic_uint8, train_uint8] + ([heldout_uint8] if threshold is None else [])
    if features is not None:
        vecs = [_feature_rows(features, s) for s in sets]
        rms = False
    else:
        size, ch = tuple(train_uint8.shape[-2:]), train_uint8.shape[1]
        vecs = [pixel_vectors(s, size=size, channels=ch) for s in sets]
        rms = True
    _, dist = nearest(vecs[0], vecs[1], rms=rms)
    if threshold is None:
        threshold = copy_threshold(nearest(vecs[2], vecs[1], rms=rms)[1])
    return dist < threshold, float(threshold)


def _feature_rows(features, images: np.ndarray) -> np.ndarray:
    out = features(images)
    return np.asarray(getattr(out, "features", out), np.float32)


def closest_pairs_grid(synthetic: np.ndarray, train: np.ndarray, result: PrivacyResult,
                       out: str | os.PathLike, *, k: int = 12, pairs_per_row: int = 2) -> Path:
    """PNG of the ``k`` synthetic images closest to a training image, each pair shown as
    synthetic | nearest training image (synthetic resized to the training size), with indices
    and distance; red labels mark near copies. One montage, so it stays fast for many pairs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from synthmed.fileio import atomic_save

    order = np.argsort(result.synth_nn_dist, kind="stable")[:k]
    h, w = train.shape[-2:]
    ch = 3 if max(synthetic.shape[1], train.shape[1]) == 3 else 1
    gap, rows = max(2, w // 8), max(1, -(-len(order) // pairs_per_row))
    pair_w = 2 * w + gap
    canvas = np.ones((rows * (h + gap), pairs_per_row * (pair_w + 2 * gap), ch), np.float32)
    fig, ax = plt.subplots(figsize=(1.7 * 2 * pairs_per_row, 1.8 * rows))
    for n, s in enumerate(order):
        t = int(result.synth_nn_index[s])
        r, c = divmod(n, pairs_per_row)
        y, x = r * (h + gap), c * (pair_w + 2 * gap)
        for img, x0 in ((synthetic[s], x), (train[t], x + w + gap)):
            tile = prepare_images(np.asarray(img)[None], size=(h, w), channels=ch,
                                  input_range="unit")[0].numpy()
            canvas[y:y + h, x0:x0 + w] = tile.transpose(1, 2, 0)
        flagged = result.threshold is not None and result.synth_nn_dist[s] < result.threshold
        ax.text(x, y + h - 1, f"syn {s} | train {t}  d={result.synth_nn_dist[s]:.3g}",
                fontsize=6, color="red" if flagged else "yellow", va="bottom",
                bbox={"facecolor": "black", "alpha": 0.5, "pad": 1, "lw": 0})
    ax.imshow(canvas[..., 0] if ch == 1 else canvas, cmap="gray", vmin=0, vmax=1,
              interpolation="nearest")
    ax.axis("off")
    ax.set_title(f"closest synthetic | training pairs ({result.space} space)", fontsize=9)
    fig.tight_layout()
    out = Path(out)
    atomic_save(out, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)
    return out

