"""The arms of the utility study: which real and synthetic images each training set holds.

- ``real``: the real train split, no augmentation.
- ``real+classic``: the same images with classic augmentation (the reference arm).
- ``real+classic+synthetic``: plus ``round(ratio * n_real)`` synthetic images.
- ``real+classic+duplicate``: the count-matched control: the *same number per class* of extra
  samples drawn again from the real train split (each shown once more before any is shown twice),
  so "more, differently augmented views of the real images" is compared with "synthetic images"
  at equal training-set size and class mix. Later work found that synthetic augmentation often does
  not beat this control; a claim of benefit needs it.
- ``synthetic-only``: ``round(synthetic_only_ratio * n_real)`` synthetic images and no real one
  (could a site share only synthetic images?).

How extra images are spread over classes (``class_mix``): ``real`` follows the real train class
frequencies; ``balanced`` gives every class the same number; ``fill`` tops up the smallest classes
first so the combined training set is as balanced as the count allows.

Every plan is checked against the val and test rows: :func:`check_no_leak` raises if one would enter
training, whatever built the plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from synthmed.errors import SynthmedError

ARMS = ("real", "real+classic", "real+classic+synthetic", "real+classic+duplicate",
        "synthetic-only")
USES_SYNTHETIC = frozenset({"real+classic+synthetic", "synthetic-only"})
USES_RATIO = frozenset({"real+classic+synthetic", "real+classic+duplicate"})
REFERENCE = "real+classic"
CONTROL = "real+classic+duplicate"
CLASS_MIXES = ("real", "balanced", "fill")


class LeakError(AssertionError):
    """A val or test image was about to enter training: a bug, never a user error."""


@dataclass
class ArmPlan:
    """One training set: rows of the real dataset (repeats allowed) and of the synthetic source."""

    arm: str
    ratio: float
    real_rows: np.ndarray
    synthetic_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    augment: bool = True
    source: str | None = None

    @property
    def n(self) -> int:
        return len(self.real_rows) + len(self.synthetic_rows)

    def class_counts(self, real_labels: np.ndarray, synthetic_labels: np.ndarray | None,
                     n_classes: int) -> dict[str, list[int]]:
        """Images per class index from each source: {"real": [...], "synthetic": [...]}."""
        syn = synthetic_labels[self.synthetic_rows] if synthetic_labels is not None \
            else np.zeros(0, np.int64)
        return {"real": _bincount(real_labels[self.real_rows], n_classes),
                "synthetic": _bincount(syn, n_classes)}


def _bincount(labels: np.ndarray, n: int) -> list[int]:
    labels = np.asarray(labels, np.int64)
    return np.bincount(labels[labels >= 0], minlength=n)[:n].astype(int).tolist()


def _largest_remainder(total: int, weights: np.ndarray) -> np.ndarray:
    """Integers proportional to ``weights`` that sum exactly to ``total`` (Hamilton's method)."""
    weights = np.asarray(weights, np.float64)
    if total <= 0 or weights.sum() <= 0:
        return np.zeros(len(weights), np.int64)
    exact = total * weights / weights.sum()
    out = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - out), kind="stable")
    out[order[: total - int(out.sum())]] += 1
    return out


def allocate(total: int, real_counts: np.ndarray | list[int], class_mix: str,
             *, base: np.ndarray | list[int] | None = None) -> np.ndarray:
    """Split ``total`` extra images over classes (see the module docstring).

    ``base`` is what the extras are added to (for ``fill``): the real counts for augmentation
    arms, zeros for synthetic-only.
    """
    real_counts = np.asarray(real_counts, np.int64)
    if class_mix == "real":
        return _largest_remainder(total, real_counts)
    if class_mix == "balanced":
        return _largest_remainder(total, np.ones(len(real_counts)))
    if class_mix == "fill":
        level = np.asarray(real_counts if base is None else base, np.int64).copy()
        out = np.zeros(len(level), np.int64)
        for _ in range(int(total)):
            k = int(np.argmin(level + out))
            out[k] += 1
        return out
    raise SynthmedError(f"utility.class_mix: unknown {class_mix!r}; choose one of "
                        f"{', '.join(CLASS_MIXES)}")


def draw_cycled(pool: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` items of ``pool``: a random permutation, then another, ... so every item is drawn
    once before any is drawn twice (no more repeats than ``n`` forces)."""
    pool = np.asarray(pool, np.int64)
    if n <= 0:
        return np.zeros(0, np.int64)
    if len(pool) == 0:
        raise ValueError("cannot draw from an empty pool")
    reps = -(-n // len(pool))
    return np.concatenate([rng.permutation(pool) for _ in range(reps)])[:n]


def _draw_per_class(labels: np.ndarray, rows: np.ndarray, counts: np.ndarray,
                    rng: np.random.Generator, *, what: str, class_names: list[str]) -> np.ndarray:
    out = []
    for k, n in enumerate(counts):
        if n == 0:
            continue
        pool = rows[labels[rows] == k]
        if len(pool) == 0:
            raise SynthmedError(f"{what} has no images of class {class_names[k]!r}; it needs "
                                f"{n}; generate that class or set utility.class_mix")
        out.append(draw_cycled(pool, int(n), rng))
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def build_arm(arm: str, *, real_labels: np.ndarray, train_rows: np.ndarray, ratio: float = 0.0,
              synthetic_labels: np.ndarray | None = None, class_mix: str = "real",
              class_names: list[str] | None = None, seed: int = 0,
              source: str | None = None) -> ArmPlan:
    """The training set of ``arm`` at ``ratio`` for ``seed``.

    ``real_labels`` covers every row of the real dataset; ``train_rows`` are the rows training may
    use. ``synthetic_labels`` (class index per synthetic image, in the real dataset's class order)
    is needed by the synthetic arms. The synthetic and duplicate draws for one (ratio, seed) share
    their per-class counts exactly, so the duplicate control is count-matched by construction.
    """
    if arm not in ARMS:
        raise SynthmedError(f"utility.arms: unknown arm {arm!r}; choose from {', '.join(ARMS)}")
    train_rows = np.asarray(train_rows, np.int64)
    real_labels = np.asarray(real_labels, np.int64)
    names = list(class_names or [str(k) for k in range(int(real_labels.max(initial=0)) + 1)])
    n_classes = len(names)
    real_counts = np.asarray(_bincount(real_labels[train_rows], n_classes))
    rng = np.random.default_rng([int(seed), int(round(ratio * 1000)), ARMS.index(arm)])
    if arm in ("real", "real+classic"):
        return ArmPlan(arm, 0.0, train_rows.copy(), augment=arm != "real")
    if arm in USES_SYNTHETIC and synthetic_labels is None:
        raise SynthmedError(f"utility.synthetic: arm {arm} needs a synthetic set; set "
                            "utility.synthetic or drop the arm from utility.arms")
    if arm == "synthetic-only":
        counts = allocate(int(round(ratio * len(train_rows))), real_counts, class_mix,
                          base=np.zeros(n_classes, np.int64))
        syn_rows = np.arange(len(synthetic_labels))
        drawn = _draw_per_class(synthetic_labels, syn_rows, counts, rng,
                                what=f"synthetic set {source or ''}".strip(), class_names=names)
        return ArmPlan(arm, float(ratio), np.zeros(0, np.int64), drawn, True, source)
    counts = allocate(int(round(ratio * len(train_rows))), real_counts, class_mix)
    if arm == "real+classic+synthetic":
        syn_rows = np.arange(len(synthetic_labels))
        drawn = _draw_per_class(synthetic_labels, syn_rows, counts, rng,
                                what=f"synthetic set {source or ''}".strip(), class_names=names)
        return ArmPlan(arm, float(ratio), train_rows.copy(), drawn, True, source)
    extra = _draw_per_class(real_labels, train_rows, counts, rng, what="the real train split",
                            class_names=names)
    return ArmPlan(arm, float(ratio), np.concatenate([train_rows, extra]), augment=True)


def check_no_leak(plan: ArmPlan, *, train_rows: np.ndarray, held_out_rows: np.ndarray) -> None:
    """Raise :class:`LeakError` if any real row of ``plan`` is a val/test row or outside train.

    Always on (not an ``assert`` statement that ``python -O`` would drop).
    """
    rows = np.unique(plan.real_rows)
    leaked = np.intersect1d(rows, np.asarray(held_out_rows, np.int64))
    if len(leaked):
        raise LeakError(f"arm {plan.arm}: {len(leaked)} val/test rows would enter training "
                        f"(e.g. row {int(leaked[0])})")
    outside = np.setdiff1d(rows, np.asarray(train_rows, np.int64))
    if len(outside):
        raise LeakError(f"arm {plan.arm}: {len(outside)} rows outside the train split")
