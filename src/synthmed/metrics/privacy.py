"""Privacy audit: does the synthetic set copy (memorize) training patients?

Definitions (the same in pixel space and in feature space):

- nearest training image of each synthetic image (Euclidean; in pixel space the root-mean-square
  difference of [0, 1] intensities at the training images' size, so 0.01 means 1 % of the range);
- copy threshold: the 5th percentile of the nearest-training distances of *held-out* real images
  (patients the generator never saw), after removing held-out images that duplicate a training
  image (within ``DUPLICATE_RMS`` in pixel space: public splits such as BreastMNIST's hold such
  cross-split duplicates, and with >= 5 % of them the threshold was 0 and no copy was counted;
  ``n_heldout_duplicates`` reports how many were removed). A synthetic image closer than that to
  a training image is closer than 95 % of genuinely new patients are: a near copy. A synthetic
  image within the duplicate tolerance of a training image (an exact copy has distance 0: the
  distances are float64, exact for identical rows) is always a copy. The copy rate is the share of
  copies; an honest generator scores about 0.05 or below, a memorizing one approaches 1;
- nearest-neighbour distance ratio (NNDR): a near copy must also be much closer to *one*
  training image than to the next distinct one (distance to the nearest / distance to the
  nearest training image that is not a duplicate of it). A smooth, "average-looking" image is
  close to every speckled training image alike (ratio near 1): on the ultrasound phantom a
  diffusion model's slightly smoothed samples were 46 % "copies" by distance alone, with
  membership AUC 0.47 and visibly different nearest images. So a copy is closer than the
  threshold *and* has a ratio below the 5th percentile of the held-out images' ratios (the
  holdout-calibrated DCR + NNDR pair of Platzer & Reutterer, 2021); within the duplicate
  tolerance it is a copy regardless;
- membership-inference AUC: a distance attack (Hilprecht et al., 2019; Chen et al., 2020,
  "GAN-Leaks") scores every real image by its distance to the nearest synthetic image and tries
  to tell training images (members) from held-out ones. 0.5 means the synthetic set gives no
  membership away; 1.0 means it gives it away completely. Its 95 % interval
  (``membership_auc_ci95``) is a percentile bootstrap that resamples *patients* on each side when
  the sets know them (``membership_auc_ci_unit`` "patient"; slices of one patient are not
  independent, so resampling images would be too narrow), else images ("image").
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
from synthmed.metrics.extractor import prepare_images

COPY_PERCENTILE = 5.0
DUPLICATE_RMS = 0.01  # pixel RMS (1 % of the range, ~2.5 grey levels of 255): a duplicate image
AUC_BOOTSTRAP = 1000  # resamples for the membership AUC's interval


def space_label(space: str) -> str:
    """A distance space as a reader says it: ``pixel`` -> "pixel space", ``domain_features`` ->
    "domain-feature space" (plot titles, not JSON keys)."""
    if space.endswith("_features"):
        return f"{space.removesuffix('_features')}-feature space"
    return f"{space} space"


def pixel_vectors(images: np.ndarray, *, size: tuple[int, int], channels: int) -> torch.Tensor:
    """(N, C, H, W) images -> (N, channels*H*W) float32 in [0, 1] at ``size`` (training size)."""
    x = prepare_images(np.asarray(images), size=size, channels=channels, input_range="unit")
    return x.reshape(len(x), -1)


def _double(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).double()


def nearest(query: np.ndarray | torch.Tensor, ref: np.ndarray | torch.Tensor, *, rms: bool = False,
            chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Index and Euclidean distance of each query row's nearest ``ref`` row (/sqrt(D) if rms).

    float64 throughout, and the winning distance is recomputed directly from the two rows, so an
    exact copy is at distance exactly 0 (float32 ``cdist`` gave up to 4e-4 RMS for copies)."""
    idx, dist, _ = _neighbours(_double(query), _double(ref), rms=rms, chunk=chunk)
    return idx, dist


def nearest_with_ratio(query: np.ndarray | torch.Tensor, ref: np.ndarray | torch.Tensor, *,
                       rms: bool = False, duplicate_tol: float = 0.0, k: int = 8,
                       chunk: int = 1024) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`nearest` plus each query row's nearest-neighbour distance ratio, from the same
    distance matrix: its nearest distance over its distance to the nearest ``ref`` row that is
    not a duplicate of that nearest one (further than ``duplicate_tol`` from it, same units),
    looked for among the ``k`` nearest.

    Duplicates are skipped so that a copy of a training image the split holds twice still has a
    small ratio. When all ``k`` candidates are duplicates the k-th distance is used (ratio near
    1: not a copy by ratio; an exact copy is caught by the duplicate tolerance anyway). A row at
    distance 0 from two distinct rows gets ratio 1."""
    return _neighbours(_double(query), _double(ref), rms=rms, chunk=chunk,
                       ratio_k=k, duplicate_tol=duplicate_tol)


def _neighbours(q: torch.Tensor, r: torch.Tensor, *, rms: bool, chunk: int,
                ratio_k: int | None = None, duplicate_tol: float = 0.0
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """One pass of ``cdist`` per chunk: nearest index, exact nearest distance and, with
    ``ratio_k``, the distance to the nearest non-duplicate second row (None otherwise)."""
    scale = np.sqrt(q.shape[1]) if rms else 1.0
    k = min(ratio_k or 1, len(r))
    idx, dist, second = [], [], []
    for s in range(0, len(q), chunk):
        qs = q[s:s + chunk]
        all_d = torch.cdist(qs, r)
        best = all_d.argmin(dim=1)
        idx.append(best)
        dist.append((qs - r[best]).square().sum(dim=1).sqrt())
        if ratio_k is not None and len(r) >= 2:
            d, cand = all_d.topk(k, dim=1, largest=False)
            # distance of each candidate to the query's nearest row; the nearest itself and its
            # duplicates do not count as "the next distinct one"
            gap = (r[cand] - r[best][:, None]).square().sum(-1).sqrt() / scale
            distinct = (gap > duplicate_tol) & (cand != best[:, None])
            pos = torch.where(distinct.any(1), distinct.float().argmax(1),
                              torch.full((len(cand),), k - 1))
            second.append(d.gather(1, pos[:, None])[:, 0])
    d1 = torch.cat(dist).numpy() if dist else np.zeros(0)
    ratio = None
    if ratio_k is not None:
        if len(r) < 2 or not second:
            ratio = np.ones(len(q))
        else:
            d2 = torch.cat(second).numpy()
            ratio = np.where(d2 > 0, d1 / np.where(d2 > 0, d2, 1.0), 1.0)
    return (torch.cat(idx).numpy() if idx else np.zeros(0, np.int64)), d1 / scale, ratio


def copy_threshold(heldout_to_train: np.ndarray, percentile: float = COPY_PERCENTILE, *,
                   duplicates: np.ndarray | None = None) -> float:
    """The ``percentile``-th percentile of held-out real images' nearest-training distances,
    leaving out held-out images marked as ``duplicates`` of a training image (0.0 if all are)."""
    d = np.asarray(heldout_to_train, np.float64)
    if duplicates is not None:
        d = d[~np.asarray(duplicates, bool)]
    return float(np.percentile(d, percentile)) if len(d) else 0.0


@dataclass
class CopyRule:
    """The copy test of a synthetic set against a training set, calibrated on held-out images
    (module docstring): nearest training image, distance and distance ratio per synthetic row,
    and the two thresholds from the held-out rows' own distances and ratios."""

    synth_idx: np.ndarray
    synth_dist: np.ndarray
    synth_ratio: np.ndarray
    heldout_dist: np.ndarray
    duplicates: np.ndarray  # held-out rows that duplicate a training row (left out of both)
    threshold: float
    ratio_threshold: float
    tol: float

    @property
    def flagged(self) -> np.ndarray:
        return copy_mask(self.synth_dist, self.threshold, self.tol, ratio=self.synth_ratio,
                         ratio_threshold=self.ratio_threshold)


def copy_rule(synth: torch.Tensor, train: torch.Tensor, heldout: torch.Tensor, *, rms: bool,
              percentile: float = COPY_PERCENTILE,
              heldout_duplicates: np.ndarray | None = None) -> CopyRule:
    """:class:`CopyRule` for vectors (rows); pixel space (``rms``) marks held-out duplicates
    within ``DUPLICATE_RMS`` itself, another space takes ``heldout_duplicates`` or exact ones."""
    tol = DUPLICATE_RMS if rms else 0.0
    idx, dist, ratio = nearest_with_ratio(synth, train, rms=rms, duplicate_tol=tol)
    _, held, held_ratio = nearest_with_ratio(heldout, train, rms=rms, duplicate_tol=tol)
    dup = (np.asarray(heldout_duplicates, bool) if heldout_duplicates is not None
           else held <= tol)
    return CopyRule(idx, dist, ratio, held, dup, copy_threshold(held, percentile, duplicates=dup),
                    copy_threshold(held_ratio, percentile, duplicates=dup), tol)


def copy_mask(dist: np.ndarray, threshold: float, duplicate_tol: float = 0.0, *,
              ratio: np.ndarray | None = None,
              ratio_threshold: float | None = None) -> np.ndarray:
    """Copies: closer than the threshold (and, when given, with a distance ratio below
    ``ratio_threshold``), or within the duplicate tolerance (exact copies always count, even
    when the threshold is 0)."""
    d = np.asarray(dist, np.float64)
    near = d < threshold
    if ratio is not None and ratio_threshold is not None:
        near &= np.asarray(ratio, np.float64) < ratio_threshold
    return near | (d <= duplicate_tol)


def membership_auc(member_to_synth: np.ndarray, nonmember_to_synth: np.ndarray) -> float:
    """ROC AUC of 'closer to the synthetic set means training member' (0.5: no leak)."""
    d = np.concatenate([member_to_synth, nonmember_to_synth])
    y = np.concatenate([np.ones(len(member_to_synth)), np.zeros(len(nonmember_to_synth))])
    return float(roc_auc_score(y, -d))


def _auc_ranks(member: np.ndarray, nonmember: np.ndarray) -> float:
    """:func:`membership_auc` by the Mann-Whitney rank sum (ties count half), without sklearn's
    per-call overhead: the bootstrap calls it a thousand times."""
    from scipy.stats import rankdata

    r = rankdata(-np.concatenate([member, nonmember]))
    n1, n0 = len(member), len(nonmember)
    return float((r[:n1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def membership_auc_interval(member_to_synth: np.ndarray, nonmember_to_synth: np.ndarray,
                            member_groups: np.ndarray | None = None,
                            nonmember_groups: np.ndarray | None = None, *,
                            n_boot: int = AUC_BOOTSTRAP, level: float = 0.95, seed: int = 0
                            ) -> tuple[list[float], str] | None:
    """Percentile bootstrap interval of :func:`membership_auc` and its unit: with both sides'
    groups (patients) the patients of each side are drawn with replacement ("patient"), else the
    images ("image"; also when every group holds one image). None without members or
    non-members. A side with one patient keeps it in every draw, so its own sampling variation
    is missing from the interval."""
    m, h = np.asarray(member_to_synth, np.float64), np.asarray(nonmember_to_synth, np.float64)
    if not len(m) or not len(h):
        return None
    by_patient = member_groups is not None and nonmember_groups is not None
    if by_patient:
        sides = [[np.flatnonzero(np.asarray(g) == u) for u in np.unique(np.asarray(g))]
                 for g in (member_groups, nonmember_groups)]
        by_patient = len(sides[0]) < len(m) or len(sides[1]) < len(h)  # else one image each
    if not by_patient:
        sides = [[np.array([i]) for i in range(len(x))] for x in (m, h)]
    rng = np.random.default_rng(seed)
    aucs = np.empty(n_boot)
    for b in range(n_boot):
        pick = [np.concatenate([side[k] for k in rng.integers(0, len(side), len(side))])
                for side in sides]
        aucs[b] = _auc_ranks(m[pick[0]], h[pick[1]])
    a = (1 - level) / 2
    return [float(np.quantile(aucs, a)), float(np.quantile(aucs, 1 - a))], \
        ("patient" if by_patient else "image")


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
    duplicate_tol: float = 0.0
    heldout_duplicates: np.ndarray | None = None
    synth_ratio: np.ndarray | None = None  # nearest-neighbour distance ratio per synthetic image
    ratio_threshold: float | None = None
    membership_auc_ci: tuple[list[float], str] | None = None  # (95 % interval, unit)

    @property
    def flagged(self) -> np.ndarray:
        if self.threshold is None:
            return np.zeros(len(self.synth_nn_dist), bool)
        return copy_mask(self.synth_nn_dist, self.threshold, self.duplicate_tol,
                         ratio=self.synth_ratio, ratio_threshold=self.ratio_threshold)

    def summary(self, suffix: str = "") -> dict[str, Any]:
        known = self.threshold is not None
        held = self.heldout_nn_dist
        return {f"copy_rate{suffix}": self.copy_rate, f"copy_threshold{suffix}": self.threshold,
                f"copy_ratio_threshold{suffix}": self.ratio_threshold,
                f"n_copies{suffix}": int(self.flagged.sum()) if known else None,
                f"membership_auc{suffix}": self.membership_auc,
                f"membership_auc_ci95{suffix}": (self.membership_auc_ci[0]
                                                 if self.membership_auc_ci else None),
                f"membership_auc_ci_unit{suffix}": (self.membership_auc_ci[1]
                                                    if self.membership_auc_ci else None),
                f"nn_distance_median{suffix}": float(np.median(self.synth_nn_dist)),
                f"heldout_nn_distance_median{suffix}": (float(np.median(held))
                                                        if held is not None else None),
                f"n_heldout_duplicates{suffix}": (int(self.heldout_duplicates.sum())
                                                  if self.heldout_duplicates is not None
                                                  else None)}


def audit(synth: np.ndarray | torch.Tensor, train: np.ndarray | torch.Tensor,
          heldout: np.ndarray | torch.Tensor | None = None, *, space: str = "pixel",
          percentile: float = COPY_PERCENTILE,
          heldout_duplicates: np.ndarray | None = None,
          train_groups: np.ndarray | None = None,
          heldout_groups: np.ndarray | None = None) -> PrivacyResult:
    """Nearest neighbours, copy rate and membership AUC for vectors (rows) of the three sets.

    Pixel space uses RMS distances and finds the held-out images that duplicate a training image
    (within ``DUPLICATE_RMS``); another space uses plain Euclidean distances and takes that mask
    from ``heldout_duplicates`` (the pixel audit's), else counts only exact duplicates. Duplicates
    are left out of the thresholds and of the membership non-members. A copy is below both the
    distance and the distance-ratio threshold (module docstring). Without ``heldout`` only the
    nearest neighbours are known (no threshold, copy rate or AUC). ``train_groups`` and
    ``heldout_groups`` (patient ids, one per row) make the AUC's interval resample patients
    (:func:`membership_auc_interval`).
    """
    rms = space == "pixel"
    tol = DUPLICATE_RMS if rms else 0.0
    if heldout is None or len(heldout) == 0:
        idx, dist = nearest(synth, train, rms=rms)
        return PrivacyResult(space, idx, dist, None, None, None, None, duplicate_tol=tol)
    rule = copy_rule(synth, train, heldout, rms=rms, percentile=percentile,
                     heldout_duplicates=heldout_duplicates)
    dup = rule.duplicates
    _, member = nearest(train, synth, rms=rms)
    _, nonmember = nearest(heldout, synth, rms=rms)
    auc = membership_auc(member, nonmember[~dup]) if (~dup).any() else None
    ci = membership_auc_interval(
        member, nonmember[~dup], train_groups,
        None if heldout_groups is None else np.asarray(heldout_groups)[~dup]) \
        if auc is not None else None
    return PrivacyResult(space, rule.synth_idx, rule.synth_dist, rule.heldout_dist,
                         rule.threshold, float(rule.flagged.mean()),
                         auc, {"n_train": len(train), "n_heldout": len(heldout),
                               "percentile": percentile}, duplicate_tol=tol,
                         heldout_duplicates=dup, synth_ratio=rule.synth_ratio,
                         ratio_threshold=rule.ratio_threshold, membership_auc_ci=ci)


def near_copy_mask(synthetic_uint8: np.ndarray, train_uint8: np.ndarray, *,
                   threshold: float | None = None, heldout_uint8: np.ndarray | None = None,
                   features=None) -> tuple[np.ndarray, float]:
    """Which synthetic images are near copies of a training image: (bool mask (N,), threshold).

    Images are (N, C, H, W) uint8/uint16. The distance is pixel RMS at the training size, or
    feature-space Euclidean when ``features`` (a ``FeatureExtractor`` or any callable
    images -> (N, D) array) is given. ``threshold`` defaults to the 5th percentile
    of ``heldout_uint8``'s nearest-training distances; one of the two is required. With
    held-out images a copy must also pass the distance-ratio test (module docstring); a given
    ``threshold`` alone applies the distance test only.
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
    if threshold is not None:
        _, dist = nearest(vecs[0], vecs[1], rms=rms)
        return copy_mask(dist, threshold, DUPLICATE_RMS if rms else 0.0), float(threshold)
    rule = copy_rule(vecs[0], vecs[1], vecs[2], rms=rms)
    return rule.flagged, rule.threshold


def _feature_rows(features, images: np.ndarray) -> np.ndarray:
    out = features(images)
    return np.asarray(getattr(out, "features", out), np.float32)


def closest_pairs_grid(synthetic: np.ndarray, train: np.ndarray, result: PrivacyResult,
                       out: str | os.PathLike, *, k: int = 12, pairs_per_row: int = 2) -> Path:
    """PNG of the ``k`` synthetic images closest to a training image, each pair shown as
    synthetic | nearest training image (synthetic resized to the training size), with indices
    and distance; "COPY" labels (white on red) mark near copies. One montage, so it stays fast
    for many pairs."""
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
        flagged = bool(result.flagged[s])
        # a flagged copy: white on solid red, so the label reads on dark and bright images alike
        ax.text(x, y + h - 1, ("COPY " if flagged else "")
                + f"syn {s} | train {t}  d={result.synth_nn_dist[s]:.3g}", fontsize=6,
                color="white" if flagged else "yellow", va="bottom",
                fontweight="bold" if flagged else "normal",
                bbox={"facecolor": "#c00000" if flagged else "black",
                      "alpha": 0.9 if flagged else 0.5, "pad": 1, "lw": 0})
    ax.imshow(canvas[..., 0] if ch == 1 else canvas, cmap="gray", vmin=0, vmax=1,
              interpolation="nearest")
    ax.axis("off")
    ax.set_title(f"closest synthetic | training pairs ({space_label(result.space)}; "
                 "COPY = below the copy threshold)", fontsize=9)
    fig.tight_layout()
    out = Path(out)
    atomic_save(out, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)
    return out

