"""Metric correctness against scikit-learn on fixed predictions; threshold chosen on val only."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from synthmed.tasks.metrics import (
    FPR_GRID,
    classification_metrics,
    segmentation_metrics,
    selection_score,
    youden_threshold,
)

Y = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1])
P1 = np.array([0.1, 0.2, 0.35, 0.4, 0.7, 0.05, 0.8, 0.45, 0.9, 0.3])


def _binary_prob(p1):
    return np.stack([1 - p1, p1], 1)


def test_binary_metrics_match_sklearn():
    m = classification_metrics(Y, _binary_prob(P1), class_names=["neg", "pos"], threshold=0.42)
    pred = (P1 >= 0.42).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(Y, pred).ravel()
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(Y, pred))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(Y, pred))
    assert m["sensitivity"] == pytest.approx(tp / (tp + fn))
    assert m["specificity"] == pytest.approx(tn / (tn + fp))
    assert m["precision"] == pytest.approx(skm.precision_score(Y, pred))
    assert m["f1"] == pytest.approx(skm.f1_score(Y, pred))
    assert m["auc"] == pytest.approx(skm.roc_auc_score(Y, P1))
    assert m["accuracy_argmax"] == pytest.approx(skm.accuracy_score(Y, P1 > 0.5))
    assert m["confusion"] == skm.confusion_matrix(Y, pred).tolist()
    assert m["per_class"]["neg"]["sensitivity"] == pytest.approx(tn / (tn + fp))
    assert m["threshold"] == 0.42 and len(m["roc"]) == len(FPR_GRID)
    assert m["roc"][-1] == pytest.approx(1.0)


def test_positive_class_zero_swaps_sensitivity_and_specificity():
    prob = _binary_prob(P1)
    a = classification_metrics(Y, prob, class_names=["neg", "pos"], threshold=0.5, positive=1)
    b = classification_metrics(1 - Y, prob[:, ::-1], class_names=["pos", "neg"], threshold=0.5,
                               positive=0)
    for k in ("sensitivity", "specificity", "auc", "accuracy"):
        assert a[k] == pytest.approx(b[k])


def test_multiclass_macro_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 8)
    logits = rng.normal(size=(24, 3)) + np.eye(3)[y] * 1.2
    prob = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    pred = prob.argmax(1)
    m = classification_metrics(y, prob, class_names=["a", "b", "c"], threshold=0.3)
    assert m["threshold"] is None  # no threshold for multi-class: arg-max
    assert m["sensitivity"] == pytest.approx(skm.recall_score(y, pred, average="macro"))
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred, average="macro"))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m["auc"] == pytest.approx(skm.roc_auc_score(y, prob, multi_class="ovr"))
    cm = skm.confusion_matrix(y, pred)
    spec = [(cm.sum() - cm[k].sum() - cm[:, k].sum() + cm[k, k]) / (cm.sum() - cm[k].sum())
            for k in range(3)]
    assert m["specificity"] == pytest.approx(np.mean(spec))
    assert m["per_class"]["b"]["auc"] == pytest.approx(skm.roc_auc_score(y == 1, prob[:, 1]))
    assert selection_score("auc", prob, y) == pytest.approx(m["auc"])


def test_youden_threshold_maximizes_j():
    t = youden_threshold(Y, P1)
    fpr, tpr, thr = skm.roc_curve(Y, P1)
    assert t == pytest.approx(thr[np.argmax(tpr - fpr)])
    pred = np.greater_equal(P1, t)
    j = pred[Y == 1].mean() + (~pred[Y == 0]).mean() - 1
    assert j == pytest.approx(np.max(tpr - fpr))
    assert youden_threshold(np.zeros(4), np.linspace(0, 1, 4)) == 0.5  # one class: no ROC


def test_val_threshold_is_applied_unchanged_on_test():
    """The threshold comes from val; test metrics use it even where another would be better."""
    val_y, val_p = np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.6, 0.7])
    t = youden_threshold(val_y, val_p)
    assert 0.2 < t <= 0.6
    test_y, test_p = np.array([0, 0, 1, 1]), np.array([0.3, 0.4, 0.5, 0.55])  # best cut: 0.45
    m = classification_metrics(test_y, _binary_prob(test_p), class_names=["n", "p"], threshold=t)
    assert m["threshold"] == t and m["sensitivity"] == 0.0 and m["auc"] == 1.0


def test_segmentation_metrics_on_toy_masks():
    target = np.zeros((2, 16, 16), np.uint8)
    target[:, 4:8, 4:8] = 1  # 16 px
    pred = np.zeros_like(target)
    pred[0, 4:8, 4:10] = 1  # 24 px, 16 overlap: Dice 32/40, IoU 16/24
    m = segmentation_metrics(pred, target)
    assert m["n"] == 2 and m["hd95_undefined"] == 1
    assert m["dice"] == pytest.approx((0.8 + 0.0) / 2)
    assert m["iou"] == pytest.approx((16 / 24 + 0.0) / 2)
    diag = math.hypot(16, 16)  # empty prediction -> worst distance, not skipped
    assert m["hd95"] == pytest.approx((2.0 + diag) / 2, rel=0.05)
    same = segmentation_metrics(target, target)
    assert same["dice"] == pytest.approx(1.0) and same["hd95"] == pytest.approx(0.0)
    assert selection_score("dice", pred, target) == pytest.approx(m["dice"])


def test_quadratic_weighted_kappa_and_what_each_number_is():
    """Issue 19 item 3: ordinal grades get quadratic weighted kappa; the multi-class headline
    numbers are labelled as macro averages (sensitivity equals balanced accuracy)."""
    from synthmed.tasks.metrics import metric_definitions

    y = np.array([0, 1, 2, 3, 4] * 4)
    pred = np.clip(y + np.array([0, 1, -1, 0, 2] * 4), 0, 4)
    prob = np.eye(5)[pred] * 0.9 + 0.02
    m = classification_metrics(y, prob, class_names=list("abcde"))
    assert m["kappa_qw"] == pytest.approx(skm.cohen_kappa_score(y, pred, weights="quadratic"))
    assert m["sensitivity"] == pytest.approx(m["balanced_accuracy"])
    d = metric_definitions(5, None, ordinal=True)
    assert "macro average over the 5 classes" in d["sensitivity"] and "kappa_qw" in d
    assert "balanced accuracy" in d["sensitivity"] and "one-vs-rest" in d["auc"]
    assert "'malignant'" in metric_definitions(2, "malignant")["sensitivity"]
    assert "kappa_qw" not in metric_definitions(5, None)
