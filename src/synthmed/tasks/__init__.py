"""Downstream tasks: does a model trained with synthetic images get better on real test patients?

``run_utility(cfg)`` runs the utility study (arms x ratios x seeds, selection on val, one score on
the real test split, paired statistics); the pieces are usable on their own: :mod:`.arms`,
:mod:`.augment`, :mod:`.models`, :mod:`.train`, :mod:`.metrics`, :mod:`.stats`.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "ARMS": "synthmed.tasks.arms",
    "ArmPlan": "synthmed.tasks.arms",
    "build_arm": "synthmed.tasks.arms",
    "check_no_leak": "synthmed.tasks.arms",
    "classic_augmentation": "synthmed.tasks.augment",
    "CLASSIFIERS": "synthmed.tasks.models",
    "build_classifier": "synthmed.tasks.models",
    "build_segmenter": "synthmed.tasks.models",
    "load_weights": "synthmed.tasks.models",
    "classification_metrics": "synthmed.tasks.metrics",
    "segmentation_metrics": "synthmed.tasks.metrics",
    "youden_threshold": "synthmed.tasks.metrics",
    "paired_comparison": "synthmed.tasks.stats",
    "summarize": "synthmed.tasks.stats",
    "fit": "synthmed.tasks.train",
    "run_utility": "synthmed.tasks.utility",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import on first use, so ``import synthmed.tasks`` stays cheap (no torch/MONAI)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'synthmed.tasks' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_EXPORTS[name]), name)
