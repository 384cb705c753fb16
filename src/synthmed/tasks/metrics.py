"""Downstream metrics: classification via scikit-learn, segmentation via MONAI.

The binary operating threshold is chosen on the validation split (Youden's J = sensitivity +
specificity - 1, Youden 1950) and applied unchanged to the test split, so sensitivity and
specificity on test are honest; AUC does not depend on it. Multi-class predictions are the arg-max;
sensitivity/specificity/precision/F1 are then macro averages over one-vs-rest, AUC the macro
one-vs-rest AUC. ``accuracy_argmax`` is the accuracy at the arg-max (0.5 for binary), the
number published baselines report. ROC curves are stored on a fixed 101-point false-positive-rate
grid so curves of several seeds can be averaged.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    cohen_kappa_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

FPR_GRID = np.linspace(0.0, 1.0, 101)
CLASSIFICATION_METRICS = ("accuracy", "balanced_accuracy", "sensitivity", "specificity",
                          "precision", "f1", "auc", "accuracy_argmax")
SEGMENTATION_METRICS = ("dice", "iou", "hd95")
#: Ordinal grades (``utility.ordinal``: classes in order, e.g. TI-RADS or BI-RADS): quadratic
#: weighted kappa (Cohen 1968), the agreement measure of graded diagnoses; a two-grade miss
#: costs four times a one-grade miss.
ORDINAL_METRICS = ("kappa_qw",)
HIGHER_IS_BETTER = {**{m: True for m in CLASSIFICATION_METRICS}, "kappa_qw": True, "dice": True,
                    "iou": True, "hd95": False}


def metric_definitions(k: int, positive: str | None, *, ordinal: bool = False) -> dict[str, str]:
    """What each headline number of a ``k``-class study is, for utility.json and the report."""
    if k == 2:
        out = {"sensitivity": f"of the positive class {positive!r} at the threshold chosen on "
               "val (Youden's J)", "specificity": "of the negative class at the same threshold",
               "auc": f"ROC AUC of {positive!r} (threshold-free)"}
    else:
        out = {"sensitivity": f"macro average over the {k} classes of one-vs-rest sensitivity "
               "(equals balanced accuracy)", "specificity": f"macro average over the {k} classes "
               "of one-vs-rest specificity", "auc": f"macro average over the {k} classes of "
               "one-vs-rest ROC AUC", "precision": "macro average", "f1": "macro average"}
    out["accuracy"] = "fraction correct" + (" at the val threshold" if k == 2 else
                                            " at the arg-max")
    out["per_class"] = "one-vs-rest sensitivity, specificity, precision, F1 and AUC per class"
    if ordinal:
        out["kappa_qw"] = ("quadratic weighted kappa: agreement of predicted and true grades in "
                           "class order (1 perfect, 0 chance)")
    return out


def youden_threshold(y_true: np.ndarray, score: np.ndarray) -> float:
    """The score threshold that maximizes sensitivity + specificity - 1 (ties: the highest).

    ``y_true`` is 1 for the positive class. With a single class present there is no ROC curve and
    0.5 is returned. Predict positive when ``score >= threshold``.
    """
    y_true = np.asarray(y_true).astype(int)
    if len(np.unique(y_true)) < 2:
        return 0.5
    fpr, tpr, thr = roc_curve(y_true, score)
    j = tpr - fpr
    best = np.flatnonzero(j == j.max())[0]  # thresholds decrease: first = highest threshold
    t = float(thr[best])
    return t if math.isfinite(t) else float(np.nextafter(np.max(score), np.inf))


def _safe(fn, *args, **kwargs) -> float:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            v = float(fn(*args, **kwargs))
    except ValueError:  # e.g. a single class in y_true
        return float("nan")
    return v


def _roc_on_grid(y_bin: np.ndarray, score: np.ndarray) -> list[float]:
    if len(np.unique(y_bin)) < 2:
        return [float("nan")] * len(FPR_GRID)
    fpr, tpr, _ = roc_curve(y_bin, score)
    return np.interp(FPR_GRID, fpr, tpr).round(5).tolist()  # duplicates: the top of a step


def _specificity(cm: np.ndarray, k: int) -> float:
    tn = cm.sum() - cm[k].sum() - cm[:, k].sum() + cm[k, k]
    fp = cm[:, k].sum() - cm[k, k]
    return float(tn / (tn + fp)) if tn + fp else float("nan")


def predict_labels(prob: np.ndarray, *, threshold: float | None = None,
                   positive: int = 1) -> np.ndarray:
    """Class predictions: binary with ``threshold`` on p(positive), else the arg-max."""
    prob = np.asarray(prob, np.float64)
    if prob.shape[1] == 2 and threshold is not None:
        negative = 1 - positive
        return np.where(prob[:, positive] >= threshold, positive, negative)
    return prob.argmax(axis=1)


def classification_metrics(y_true: np.ndarray, prob: np.ndarray, *, class_names: list[str],
                           threshold: float | None = None, positive: int = 1) -> dict[str, Any]:
    """Metrics of class probabilities ``prob`` (N, K) against labels ``y_true`` (N,).

    Returns the headline values (:data:`CLASSIFICATION_METRICS`), ``per_class`` one-vs-rest values,
    the ``confusion`` matrix (rows = true, columns = predicted), ``roc`` (TPR on :data:`FPR_GRID`;
    binary: of the positive class, multi-class: the macro average) and the threshold used.
    """
    y = np.asarray(y_true, np.int64)
    prob = np.asarray(prob, np.float64)
    k = prob.shape[1]
    labels = list(range(k))
    pred = predict_labels(prob, threshold=threshold, positive=positive)
    cm = confusion_matrix(y, pred, labels=labels)
    per_class = {}
    for c in labels:
        yc = (y == c).astype(int)
        per_class[class_names[c]] = {
            "sensitivity": _safe(recall_score, yc, (pred == c).astype(int), zero_division=0),
            "specificity": _specificity(cm, c),
            "precision": _safe(precision_score, yc, (pred == c).astype(int), zero_division=0),
            "f1": _safe(f1_score, yc, (pred == c).astype(int), zero_division=0),
            "auc": _safe(roc_auc_score, yc, prob[:, c]),
            "support": int(yc.sum()),
        }
    out: dict[str, Any] = {
        "accuracy": float(accuracy_score(y, pred)),
        "balanced_accuracy": _safe(balanced_accuracy_score, y, pred),
        "kappa_qw": _safe(cohen_kappa_score, y, pred, labels=labels, weights="quadratic"),
        # at the arg-max (threshold 0.5), as published baselines such as MedMNIST v2 report it
        "accuracy_argmax": float(accuracy_score(y, prob.argmax(axis=1))),
    }
    if k == 2:
        pos = class_names[positive]
        yb = (y == positive).astype(int)
        out.update(sensitivity=per_class[pos]["sensitivity"],
                   specificity=per_class[pos]["specificity"],
                   precision=per_class[pos]["precision"], f1=per_class[pos]["f1"],
                   auc=_safe(roc_auc_score, yb, prob[:, positive]))
        roc = _roc_on_grid(yb, prob[:, positive])
    else:
        out.update(
            sensitivity=_safe(recall_score, y, pred, labels=labels, average="macro",
                              zero_division=0),
            specificity=float(np.nanmean([_specificity(cm, c) for c in labels])),
            precision=_safe(precision_score, y, pred, labels=labels, average="macro",
                            zero_division=0),
            f1=_safe(f1_score, y, pred, labels=labels, average="macro", zero_division=0),
            auc=_safe(roc_auc_score, y, prob, multi_class="ovr", average="macro", labels=labels),
        )
        curves = [_roc_on_grid((y == c).astype(int), prob[:, c]) for c in labels]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            roc = np.nanmean(np.asarray(curves, np.float64), axis=0).round(5).tolist()
    out.update(per_class=per_class, confusion=cm.tolist(), roc=roc,
               threshold=None if threshold is None or k != 2 else float(threshold))
    return out


def selection_score(metric: str, output: np.ndarray, target: np.ndarray, *, positive: int = 1
                    ) -> float:
    """Only the one val metric that picks the epoch (the full set costs ~50 ms per epoch).

    ``output`` is class probabilities (N, K) or label maps (N, H, W); ``target`` labels or masks.
    """
    if metric in SEGMENTATION_METRICS:
        if metric in ("dice", "iou"):
            from monai.metrics import compute_dice, compute_iou
            from monai.networks.utils import one_hot

            p = one_hot(torch.as_tensor(np.asarray(output), dtype=torch.long)[:, None], 2)
            t = one_hot(torch.as_tensor(np.asarray(target), dtype=torch.long)[:, None], 2)
            fn = compute_dice if metric == "dice" else compute_iou
            return float(fn(p, t, include_background=False, ignore_empty=False).mean())
        return float(segmentation_metrics(output, target)[metric])
    if metric == "auc":
        y = np.asarray(target, np.int64)
        if output.shape[1] == 2:
            return _safe(roc_auc_score, (y == positive).astype(int), output[:, positive])
        return _safe(roc_auc_score, y, output, multi_class="ovr", average="macro",
                     labels=list(range(output.shape[1])))
    if metric == "accuracy":
        return float((np.asarray(output).argmax(1) == np.asarray(target)).mean())
    names = [str(k) for k in range(output.shape[1])]
    return float(classification_metrics(target, output, class_names=names,
                                        positive=positive)[metric])


def segmentation_metrics(pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor
                         ) -> dict[str, Any]:
    """Mean foreground Dice, IoU and 95% Hausdorff distance (pixels) over images (MONAI).

    ``pred`` and ``target`` are (N, H, W) label maps in {0, 1}. An image whose prediction or truth
    is empty has no surface distance: its HD95 counts as the image diagonal (the worst possible),
    so empty predictions are penalized, not skipped; ``hd95_undefined`` says how many.
    """
    from monai.metrics import compute_dice, compute_hausdorff_distance, compute_iou
    from monai.networks.utils import one_hot

    p = one_hot(torch.as_tensor(np.asarray(pred), dtype=torch.long)[:, None], num_classes=2)
    t = one_hot(torch.as_tensor(np.asarray(target), dtype=torch.long)[:, None], num_classes=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dice = compute_dice(p, t, include_background=False, ignore_empty=False)[:, 0]
        iou = compute_iou(p, t, include_background=False, ignore_empty=False)[:, 0]
        hd = compute_hausdorff_distance(p, t, include_background=False, percentile=95)[:, 0]
    diag = math.hypot(*p.shape[2:])
    bad = ~torch.isfinite(hd)
    hd = torch.where(bad, torch.full_like(hd, diag), hd)
    return {"dice": float(dice.mean()), "iou": float(iou.mean()), "hd95": float(hd.mean()),
            "hd95_undefined": int(bad.sum()), "n": int(len(dice))}
