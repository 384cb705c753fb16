"""Statistics over seeds: mean, std and 95% t-interval; paired comparisons between arms.

Arms are paired by seed (seed s of every arm starts from the same initial weights and shuffling
stream), so a comparison uses the per-seed differences: their mean, a Student-t 95% interval, the
paired t-test p-value, and (with six or more seeds, where it can reach p < 0.05) the Wilcoxon
signed-rank p-value as a check that does not assume normal differences. With few seeds the interval
is wide: that is the honest answer, not a defect. Holm's step-down adjustment (Holm 1979) is
provided for reading many comparisons at once.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

ARM_WORDS = {
    "real": "no augmentation",
    "real+classic": "classic augmentation",
    "real+classic+synthetic": "synthetic augmentation",
    "real+classic+duplicate": "duplicate control",
    "synthetic-only": "synthetic only",
}
METRIC_WORDS = {"auc": "AUC", "accuracy": "accuracy", "balanced_accuracy": "balanced accuracy",
                "accuracy_argmax": "accuracy (arg-max)",
                "sensitivity": "sensitivity", "specificity": "specificity",
                "precision": "precision", "f1": "F1", "dice": "Dice", "iou": "IoU",
                "hd95": "HD95"}


def _clean(values: Sequence[float]) -> np.ndarray:
    a = np.asarray(values, np.float64)
    return a[np.isfinite(a)]


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Student-t confidence interval of the mean (NaN with fewer than two values)."""
    a = _clean(values)
    if len(a) < 2:
        return float("nan"), float("nan")
    m, sd = float(a.mean()), float(a.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, len(a) - 1)) * sd / math.sqrt(len(a))
    return m - half, m + half


def summarize(values: Sequence[float]) -> dict[str, Any]:
    """n, mean, std (ddof 1), 95% t-interval over seeds; non-finite values are left out."""
    a = _clean(values)
    lo, hi = t_interval(a)
    return {"n": int(len(a)),
            "mean": float(a.mean()) if len(a) else float("nan"),
            "std": float(a.std(ddof=1)) if len(a) > 1 else float("nan"),
            "ci95": [lo, hi]}


def paired_comparison(a: Sequence[float], b: Sequence[float], *, alpha: float = 0.05,
                      higher_is_better: bool = True) -> dict[str, Any]:
    """Compare arm ``a`` with reference ``b``, paired by position (seed): differences a - b.

    Returns n, mean_diff, std_diff, ci95, p (paired t-test), p_wilcoxon (n >= 6, else None),
    significant (p < alpha) and verdict ('better', 'worse' or 'not significant').
    """
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if x.shape != y.shape:
        raise ValueError(f"paired samples differ in length: {x.shape} vs {y.shape}")
    ok = np.isfinite(x) & np.isfinite(y)
    d = x[ok] - y[ok]
    n = len(d)
    out: dict[str, Any] = {"n": n, "mean_diff": float(d.mean()) if n else float("nan"),
                           "std_diff": float(d.std(ddof=1)) if n > 1 else float("nan"),
                           "ci95": list(t_interval(d)), "p": float("nan"), "p_wilcoxon": None}
    if n >= 2:
        if np.allclose(d, d[0], rtol=0, atol=1e-12):  # no spread: t is 0/0 or infinite
            out["p"] = 1.0 if abs(d[0]) <= 1e-12 else 0.0
        else:
            out["p"] = float(stats.ttest_rel(x[ok], y[ok]).pvalue)
    if n >= 6:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                out["p_wilcoxon"] = float(stats.wilcoxon(d).pvalue)
            except ValueError:  # all differences zero
                out["p_wilcoxon"] = 1.0
    sig = bool(np.isfinite(out["p"]) and out["p"] < alpha)
    better = (out["mean_diff"] > 0) == higher_is_better
    out["significant"] = sig
    out["verdict"] = ("better" if better else "worse") if sig else "not significant"
    return out


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order; NaN stays NaN)."""
    p = np.asarray(pvalues, np.float64)
    idx = [i for i in np.argsort(p) if np.isfinite(p[i])]
    m = len(idx)
    adj = np.full(len(p), np.nan)
    running = 0.0
    for rank, i in enumerate(idx):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adj[i] = running
    return adj.tolist()


def _signed(v: float, digits: int = 3) -> str:
    if not math.isfinite(v):
        return "n/a"
    text = f"{abs(v):.{digits}f}"
    return ("+" if v >= 0 else "\u2212") + text


def _plain(v: float, digits: int = 3) -> str:
    return f"{v:.{digits}f}".replace("-", "\u2212") if math.isfinite(v) else "n/a"


def result_line(arm: str, metric: str, comparison: dict[str, Any], *, reference: str,
                ratio: float | None = None, source: str | None = None,
                reference_ratio: float | None = None) -> str:
    """One sentence, e.g. ``synthetic augmentation (1x): AUC +0.021 [−0.004, 0.046] vs
    real+classic — not significant (paired t p=0.09, 5 seeds)``; a reference with a ratio
    (the duplicate control) is named with it: ``vs real+classic+duplicate (1x)``."""
    words = ARM_WORDS.get(arm, arm)
    extras = []
    if ratio:
        extras.append(f"{ratio:g}x")
    if source:
        extras.append(source)
    head = f"{words} ({', '.join(extras)})" if extras else words
    lo, hi = comparison["ci95"]
    p = comparison["p"]
    ptext = f"p={p:.2g}" if math.isfinite(p) else "p n/a"
    ref = f"{reference} ({reference_ratio:g}x)" if reference_ratio else reference
    return (f"{head}: {METRIC_WORDS.get(metric, metric)} {_signed(comparison['mean_diff'])} "
            f"[{_plain(lo)}, {_plain(hi)}] vs {ref} \u2014 {comparison['verdict']} "
            f"(paired t {ptext}, {comparison['n']} seeds)")
