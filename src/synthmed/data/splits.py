"""Patient-exclusive, label-stratified train/val/test splits.

Images of one group (patient, case) always land in the same split, so no patient leaks between
training and test; within that constraint each class is spread over the splits as close to the
requested fractions as the group sizes allow.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from synthmed.errors import DataError

SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)


def parse_fractions(text: str | Sequence[float]) -> tuple[float, float, float]:
    """Parse ``"0.7,0.15,0.15"`` and check the three fractions are in [0, 1] and sum to 1."""
    try:
        values = [float(x) for x in (text.split(",") if isinstance(text, str) else text)]
    except ValueError:
        raise DataError(f"--split {text!r}: expected three numbers like 0.8,0.1,0.1") from None
    if len(values) != 3:
        raise DataError(f"--split {text!r}: expected three fractions train,val,test")
    if any(v < 0 or v > 1 for v in values):
        raise DataError(f"--split {text!r}: each fraction must be between 0 and 1")
    if abs(sum(values) - 1.0) > 1e-6:
        raise DataError(f"--split {text!r}: fractions sum to {sum(values):g}, they must sum to 1")
    if values[0] == 0:
        raise DataError(f"--split {text!r}: the train fraction must be positive")
    return values[0], values[1], values[2]


def group_stratified_split(
    labels: Sequence[int] | np.ndarray,
    groups: Sequence[str] | np.ndarray | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
    *,
    class_names: Sequence[str] | None = None,
) -> np.ndarray:
    """Assign each image to 'train', 'val' or 'test'.

    Groups are stratified by their majority label; within each stratum groups are shuffled with
    ``seed``, ordered largest first, and each goes to the split furthest below its target count.
    ``labels`` may be -1 (unlabelled) for all images: the split is then grouped only. Without
    ``groups`` every image is its own group.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    if n == 0:
        raise DataError("nothing to split: the dataset has no images")
    groups = np.arange(n).astype(str) if groups is None else np.asarray(groups).astype(str)
    fractions = parse_fractions(list(fractions))
    _check_class_sizes(labels, fractions, class_names)

    members: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        members[g].append(i)
    strata: dict[int, list[str]] = defaultdict(list)
    for g, idx in members.items():
        strata[Counter(labels[idx].tolist()).most_common(1)[0][0]].append(g)

    rng = np.random.default_rng(seed)
    out = np.empty(n, dtype="<U5")
    for label in sorted(strata):
        names = sorted(strata[label])
        rng.shuffle(names)
        names.sort(key=lambda g: -len(members[g]))  # stable: shuffled order breaks ties
        total = sum(len(members[g]) for g in names)
        targets = np.array(fractions) * total
        counts = np.zeros(3)
        for g in names:
            k = int(np.argmax(targets - counts))
            counts[k] += len(members[g])
            out[members[g]] = SPLITS[k]
    return out


def _check_class_sizes(labels: np.ndarray, fractions, class_names) -> None:
    if (labels < 0).all():
        return
    needed = 1 + sum(1 for f in fractions[1:] if f > 0)
    needed = min(needed, 2)
    for label, count in sorted(Counter(labels[labels >= 0].tolist()).items()):
        if count < needed:
            name = class_names[label] if class_names is not None else str(label)
            raise DataError(
                f"class {name!r} has {count} image(s); a stratified split needs at least "
                f"{needed} per class: add images, merge or drop the class"
            )
