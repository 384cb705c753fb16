"""Statistics over seeds: mean, std and 95% t-interval; paired comparisons between arms.

Arms are paired by seed (seed s of every arm starts from the same initial weights and shuffling
stream), so a comparison uses the per-seed differences: their mean, a Student-t 95% interval, the
paired t-test p-value, and (with six or more seeds, where it can reach p < 0.05) the Wilcoxon
signed-rank p-value as a check that does not assume normal differences. With few seeds the interval
is wide: that is the honest answer, not a defect, but below five seeds it is flagged unreliable,
and an interval of a metric bounded to [0, 1] is clipped to that range with a note saying so.
Below three seeds, or when every seed gives the same difference, no test is made ("n/a").
A study makes many comparisons at once, so its verdict words come from Holm's step-down adjusted
p-value (Holm 1979), shown beside the unadjusted one.
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


MIN_SEEDS_TEST = 3  # below this a paired test has at most 1 df: no test is reported
MIN_SEEDS_CI = 5  # below this the t-interval is too wide (and too unstable) to read
BOUNDED = {"auc", "accuracy", "balanced_accuracy", "accuracy_argmax", "sensitivity",
           "specificity", "precision", "f1", "dice", "iou"}  # metrics that live in [0, 1]
NA_FEW = f"n/a: fewer than {MIN_SEEDS_TEST} seeds"
NA_FLAT = "n/a: identical differences on every seed (no variance to test)"


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Student-t confidence interval of the mean (NaN with fewer than two values)."""
    a = _clean(values)
    if len(a) < 2:
        return float("nan"), float("nan")
    m, sd = float(a.mean()), float(a.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, len(a) - 1)) * sd / math.sqrt(len(a))
    return m - half, m + half


def clip_interval(ci: Sequence[float], low: float, high: float) -> tuple[list[float], str | None]:
    """An interval cut to the metric's range [low, high], and a note saying so when it was cut:
    a t-interval is symmetric and ignores bounds, so with few seeds it can reach AUC 4.2."""
    lo, hi = (float(v) for v in ci)
    if not (math.isfinite(lo) and math.isfinite(hi)) or (lo >= low and hi <= high):
        return [lo, hi], None
    note = (f"t-interval [{lo:.3g}, {hi:.3g}] clipped to the metric's range [{low:g}, {high:g}] "
            "(too few seeds or too much spread for a symmetric interval)")
    return [max(lo, low), min(hi, high)], note


def summarize(values: Sequence[float], metric: str | None = None) -> dict[str, Any]:
    """n, mean, std (ddof 1), 95% t-interval over seeds; non-finite values are left out.

    For a metric bounded to [0, 1] (``BOUNDED``) the interval is clipped to it, with ``ci_note``
    saying so; ``ci_reliable`` is False with fewer than ``MIN_SEEDS_CI`` seeds."""
    a = _clean(values)
    ci, note = list(t_interval(a)), None
    if metric in BOUNDED:
        ci, note = clip_interval(ci, 0.0, 1.0)
    elif metric == "kappa_qw":  # Cohen's kappa lies in [-1, 1]
        ci, note = clip_interval(ci, -1.0, 1.0)
    return {"n": int(len(a)),
            "mean": float(a.mean()) if len(a) else float("nan"),
            "std": float(a.std(ddof=1)) if len(a) > 1 else float("nan"),
            "ci95": ci, "ci_note": note, "ci_reliable": len(a) >= MIN_SEEDS_CI}


def verdict(p: float, mean_diff: float, *, alpha: float = 0.05, higher_is_better: bool = True,
            na: str | None = None) -> str:
    """'better' / 'worse' when ``p`` (the Holm-adjusted one in a study) is below ``alpha``,
    'not significant' otherwise, or the ``na`` reason when no test was made."""
    if na:
        return na
    if not (math.isfinite(p) and p < alpha):
        return "not significant"
    return "better" if (mean_diff > 0) == higher_is_better else "worse"


def paired_comparison(a: Sequence[float], b: Sequence[float], *, alpha: float = 0.05,
                      higher_is_better: bool = True, metric: str | None = None) -> dict[str, Any]:
    """Compare arm ``a`` with reference ``b``, paired by position (seed): differences a - b.

    Returns n, mean_diff, std_diff, ci95 (clipped to [-1, 1] with ``ci_note`` for a ``BOUNDED``
    metric), p (paired t-test), p_wilcoxon (n >= 6, else None), significant (p < alpha), verdict
    ('better', 'worse', 'not significant') and ``test`` (None, or why no test was made). With
    fewer than ``MIN_SEEDS_TEST`` seeds, or identical differences on every seed (t is 0/0 or
    infinite), no test is made: p is NaN and the verdict says why, never p = 0 from two seeds.
    """
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if x.shape != y.shape:
        raise ValueError(f"paired samples differ in length: {x.shape} vs {y.shape}")
    ok = np.isfinite(x) & np.isfinite(y)
    d = x[ok] - y[ok]
    n = len(d)
    ci, note = list(t_interval(d)), None
    if metric in BOUNDED:
        ci, note = clip_interval(ci, -1.0, 1.0)
    elif metric == "kappa_qw":
        ci, note = clip_interval(ci, -2.0, 2.0)
    out: dict[str, Any] = {"n": n, "mean_diff": float(d.mean()) if n else float("nan"),
                           "std_diff": float(d.std(ddof=1)) if n > 1 else float("nan"),
                           "ci95": ci, "ci_note": note, "p": float("nan"), "p_wilcoxon": None,
                           "test": None}
    if n < MIN_SEEDS_TEST:
        out["test"] = NA_FEW
    elif np.allclose(d, d[0], rtol=0, atol=1e-12):
        out["test"] = NA_FLAT
    else:
        out["p"] = float(stats.ttest_rel(x[ok], y[ok]).pvalue)
    if n >= 6 and out["test"] is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                out["p_wilcoxon"] = float(stats.wilcoxon(d).pvalue)
            except ValueError:  # all differences zero
                out["p_wilcoxon"] = 1.0
    out["significant"] = bool(np.isfinite(out["p"]) and out["p"] < alpha)
    out["verdict"] = verdict(out["p"], out["mean_diff"], alpha=alpha,
                             higher_is_better=higher_is_better, na=out["test"])
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
    if comparison.get("test"):
        ptext = f"paired t {comparison['test']}"
    else:
        ptext = f"paired t p={p:.2g}" if math.isfinite(p) else "paired t p n/a"
        ph = comparison.get("p_holm")
        if ph is not None and math.isfinite(ph):
            ptext += f", Holm p={ph:.2g}"
    ref = f"{reference} ({reference_ratio:g}x)" if reference_ratio else reference
    verdict_words = comparison["verdict"]
    if verdict_words.startswith("n/a"):
        verdict_words = "no test"
    note = " (interval clipped to the metric's range)" if comparison.get("ci_note") else ""
    return (f"{head}: {METRIC_WORDS.get(metric, metric)} {_signed(comparison['mean_diff'])} "
            f"[{_plain(lo)}, {_plain(hi)}]{note} vs {ref} \u2014 {verdict_words} "
            f"({ptext}, {comparison['n']} seeds)")
