"""``utility.synthetic_filter``: keep only the synthetic images a real-data classifier vouches for.

A generator trained on a few dozen images makes some images that do not look like their intended
class (mode mixing between classes, artefacts). Filtering synthetic images with a classifier
trained on the real data is a known way to keep only useful ones: Bissoto et al. (CVPR-W 2021)
and He et al. ("Is synthetic data from generative models ready for image recognition?", ICLR
2023) keep synthetic images a classifier labels as intended, or the ones it is most confident
about, before training on them.

- ``none`` (default): every synthetic image is used.
- ``classifier-agree``: keep an image when the classifier's most likely class is its intended
  label, judged with equal class priors (probabilities divided by the real train class
  frequencies): a classifier trained on an imbalanced set otherwise favours the majority class and
  rejects minority-class images wholesale, the very images augmentation is meant to add.
- ``confidence-topk``: keep, per class, the ``ceil(synthetic_filter_keep x n_class)`` images with
  the highest predicted probability of the intended label (a class never empties, and the class
  balance of the source is kept).
- ``realism-topk``: keep, per class, the same share of the most real-looking images: the realism
  score of ``evaluate``'s classifier two-sample test (:func:`synthmed.metrics.realism.c2st`,
  out-of-fold P(real)), here of the synthetic source against the real **train** images. It judges
  how real an image looks, not its class; no network is trained.

The filtering classifier is the study's own model (``utility.model``) trained once per study,
with classic augmentation and seed ``utility.seeds[0]``, on the **real train split only**: its
epoch is picked by balanced accuracy on those same train images, so neither val nor test is seen
(they stay the honest judges of the arms). The filter changes only the *pool* the synthetic arms
draw from; the number of synthetic images per arm and the count-matched duplicate control are
unchanged (a small pool is drawn with repeats, recorded as ``n_synthetic_unique``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from synthmed.errors import ConfigError
from synthmed.tasks.augment import classic_augmentation
from synthmed.tasks.models import build_classifier
from synthmed.tasks.study import Job, Study
from synthmed.tasks.train import ArmDataset, Images, fit, predict

FILTERS = ("none", "classifier-agree", "confidence-topk", "realism-topk")


def select_synthetic(probs: np.ndarray, labels: np.ndarray, method: str, *, keep: float = 0.5,
                     priors: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask of the synthetic images to keep, from the filtering classifier's class
    probabilities ``probs`` (N, K) and the images' intended ``labels`` (N,). ``priors`` (K,):
    the class frequencies the classifier was trained with; ``classifier-agree`` divides them out
    (equal priors)."""
    probs, labels = np.asarray(probs, np.float64), np.asarray(labels, np.int64)
    if method == "none":
        return np.ones(len(labels), bool)
    if method == "classifier-agree":
        if priors is not None:
            probs = probs / np.maximum(np.asarray(priors, np.float64), 1e-12)
        return probs.argmax(1) == labels
    if method == "confidence-topk":
        return topk_per_class(probs[np.arange(len(labels)), labels], labels, keep)
    raise ConfigError(f"utility.synthetic_filter: unknown {method!r}; choose one of "
                      f"{', '.join(FILTERS)}")


def topk_per_class(scores: np.ndarray, labels: np.ndarray, keep: float) -> np.ndarray:
    """Boolean mask of the ``ceil(keep x n_class)`` highest-scoring images of each class."""
    out = np.zeros(len(labels), bool)
    for k in np.unique(labels):
        rows = np.flatnonzero(labels == k)
        n = math.ceil(keep * len(rows))
        out[rows[np.argsort(-np.asarray(scores)[rows], kind="stable")[:n]]] = True
    return out


def realism_keep(real: np.ndarray, synthetic: np.ndarray, labels: np.ndarray, keep: float, *,
                 seed: int = 0) -> tuple[np.ndarray, dict[str, Any]]:
    """``realism-topk``: the mask of the most real-looking share per class, and the test's facts
    (AUC of the synthetic source against ``real``, n)."""
    from synthmed.metrics.realism import CLASSIFIER, c2st

    res = c2st(np.asarray(real), np.asarray(synthetic), seed=seed, permutations=0)
    info = {"judge": CLASSIFIER, "against": "real train split", "auc": round(res.auc, 4),
            "n_real": res.n_real, "seed": seed}
    return topk_per_class(res.scores, np.asarray(labels), keep), info


def train_filter_classifier(study: Study, log: Callable[[str], None] | None = None):
    """The study's classifier on the real train split, epoch picked on the same train images."""
    u, train_rows = study.cfg, study.rows["train"]
    side, c = int(study.real.images.shape[2]), int(study.real.images.shape[1])
    aug = classic_augmentation(image_size=side, rotate_deg=u.rotate_deg, translate=u.translate,
                               scale=u.scale, flip=u.flip, intensity=u.intensity,
                               seed=study.seeds[0])
    res = fit(lambda: build_classifier(study.model, in_channels=c,
                                       num_classes=len(study.class_names), image_size=side,
                                       weights=u.weights),
              ArmDataset([(study.real, train_rows)], transform=aug), study.real, train_rows,
              task="classification", epochs=u.epochs, batch_size=u.batch_size, lr=u.lr,
              weight_decay=u.weight_decay, seed=study.seeds[0],
              select_metric="balanced_accuracy", positive=study.positive, device=study.device,
              log=log)
    info = {"model": study.model, "trained_on": "train", "n_train": int(len(train_rows)),
            "seed": study.seeds[0], "epochs": u.epochs, "best_epoch": res.best_epoch,
            "train_balanced_accuracy": round(float(res.best_score), 4)}
    return res.model, info


def _counts(labels: np.ndarray, names: list[str]) -> dict[str, int]:
    return {c: int((labels == k).sum()) for k, c in enumerate(names)}


def filter_sources(study: Study, jobs: list[Job], log: Callable[[str], None] | None = None
                   ) -> None:
    """Replace every synthetic source the ``jobs`` use by its filtered subset, in place, and
    record ``filter`` (method, counts per class before and kept, the classifier) in the
    source's provenance (``utility.json`` ``synthetic[i].filter``)."""
    u = study.cfg
    used = {j.source for j in jobs if j.source}
    if u.synthetic_filter == "none" or not used:
        return
    realism = u.synthetic_filter == "realism-topk"
    model, clf = (None, None) if realism else train_filter_classifier(study)
    train_labels = study.real.labels[study.rows["train"]]
    priors = np.bincount(train_labels, minlength=len(study.class_names)) / len(train_labels)
    for info in study.source_info:
        name = info["name"]
        if name not in used:
            continue
        src = study.sources[name]
        if realism:
            real = np.asarray(study.real.images[study.rows["train"]])
            keep, clf = realism_keep(real, src.images, src.labels, u.synthetic_filter_keep,
                                     seed=study.seeds[0])
        else:
            probs = predict(model, src, np.arange(len(src)), task="classification",
                            device=study.device)
            keep = select_synthetic(probs, src.labels, u.synthetic_filter,
                                    keep=u.synthetic_filter_keep, priors=priors)
        before = _counts(src.labels, study.class_names)
        kept = _counts(src.labels[keep], study.class_names)
        emptied = [c for c in study.class_names if before[c] and not kept[c]]
        if emptied:
            raise ConfigError(
                f"utility.synthetic_filter: {u.synthetic_filter} kept no synthetic image of "
                f"class {', '.join(map(repr, emptied))} in {name} (the real-data classifier "
                "disagrees with all of them); use confidence-topk, or none")
        idx = np.flatnonzero(keep)
        study.sources[name] = Images(np.asarray(src.images)[idx], src.labels[idx],
                                     None if src.masks is None else np.asarray(src.masks)[idx])
        record: dict[str, Any] = {"method": u.synthetic_filter, "before": before, "kept": kept,
                                  "classifier": clf}
        if u.synthetic_filter in ("confidence-topk", "realism-topk"):
            record["keep"] = u.synthetic_filter_keep
        info["filter"] = record
        if log:
            log(f"synthetic_filter {u.synthetic_filter}: {name}: kept "
                + ", ".join(f"{c} {kept[c]}/{before[c]}" for c in study.class_names))
