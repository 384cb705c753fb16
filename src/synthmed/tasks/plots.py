"""Figures of a utility run (matplotlib, Agg backend): ROC curves, confusion matrices, and the
per-seed values of the primary metric per arm."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synthmed.fileio import atomic_save
from synthmed.plotfonts import drawable
from synthmed.tasks.metrics import FPR_GRID


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    atomic_save(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight"))


def group_name(arm: str, ratio: float) -> str:
    return f"{arm} x{ratio:g}" if ratio else arm


def plot_roc(groups: dict[tuple[str, float], list[dict[str, Any]]], path: Path,
             *, title: str = "ROC on the real test split") -> None:
    """Mean test ROC per arm (thick) over the per-seed curves (thin); legend: mean AUC."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    x = np.concatenate([[0.0], FPR_GRID])
    for i, ((arm, ratio), recs) in enumerate(groups.items()):
        color = colors[i % len(colors)]
        curves = np.array([[0.0, *r["test"]["roc"]] for r in recs], np.float64)
        for c in curves:
            ax.plot(x, c, color=color, alpha=0.2, lw=0.8)
        aucs = [r["test"]["auc"] for r in recs]
        ax.plot(x, np.nanmean(curves, 0), color=color, lw=2,
                label=f"{group_name(arm, ratio)}: AUC {np.nanmean(aucs):.3f}")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title=title, xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=7, loc="lower right")
    _save(fig, path)
    plt.close(fig)


def plot_confusion(groups: dict[tuple[str, float], np.ndarray], class_names: Sequence[str],
                   path: Path) -> None:
    """Confusion matrices (summed over seeds; rows = true, columns = predicted), one per arm."""
    plt = _pyplot()
    n = len(groups)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.2 * rows), squeeze=False)
    for ax, ((arm, ratio), cm) in zip(axes.flat, groups.items(), strict=False):
        ax.imshow(cm, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(int(v)), ha="center", va="center",
                    color="white" if v > cm.max() / 2 else "black", fontsize=8)
        ticks = range(len(class_names))
        labels, font = drawable(class_names)  # CJK names without a CJK font: class K
        ax.set_xticks(ticks, labels, fontsize=7, rotation=30, **font)
        ax.set_yticks(ticks, labels, fontsize=7, **font)
        ax.set_title(group_name(arm, ratio), fontsize=8)
        ax.set_xlabel("predicted", fontsize=7)
        ax.set_ylabel("true", fontsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle("test confusion matrices, summed over seeds", fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def plot_metric(groups: dict[tuple[str, float], list[float]],
                summaries: dict[tuple[str, float], dict[str, Any]], metric: str,
                path: Path) -> None:
    """Per-seed values (dots) with mean and 95% CI (bar) per arm."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(groups) + 1), 4))
    for i, (key, values) in enumerate(groups.items()):
        ax.scatter(np.full(len(values), i, float), values, s=14, alpha=0.6, color="tab:blue")
        s = summaries[key]
        lo, hi = s["ci95"]
        if np.isfinite(lo):
            ax.errorbar(i + 0.15, s["mean"], yerr=[[s["mean"] - lo], [hi - s["mean"]]],
                        fmt="o", color="black", capsize=4)
    ax.set_xticks(range(len(groups)), [group_name(*k) for k in groups], rotation=30,
                  ha="right", fontsize=7)
    ax.set_ylabel(f"test {metric}")
    if metric != "hd95":  # proportions: a 2-seed CI may reach past them
        lo = min(min((min(v) for v in groups.values() if len(v)), default=0.0), 0.5)
        ax.set_ylim(max(0.0, lo - 0.05), 1.02)
    ax.set_title(f"{metric} per seed, mean and 95% CI", fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
