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
    allow_missing_class: bool = False,
    notices: list[str] | None = None,
) -> np.ndarray:
    """Assign each image to 'train', 'val' or 'test'.

    Groups are stratified by their majority label; within each stratum groups are shuffled with
    ``seed``, ordered largest first, and each goes to the split furthest below its target count.
    Every class then gets at least one patient in each split with a non-zero fraction: a class
    with fewer patients than that is an error (or, with ``allow_missing_class``, a notice
    appended to ``notices``), because a val/test split without a class gives no AUC for it.
    ``labels`` may be -1 (unlabelled) for all images: the split is then grouped only. Without
    ``groups`` every image is its own group.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    if n == 0:
        raise DataError("nothing to split: the dataset has no images")
    groups = np.arange(n).astype(str) if groups is None else np.asarray(groups).astype(str)
    fractions = parse_fractions(list(fractions))
    notices = [] if notices is None else notices

    members: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        members[g].append(i)
    strata: dict[int, list[str]] = defaultdict(list)
    for g, idx in members.items():
        strata[Counter(labels[idx].tolist()).most_common(1)[0][0]].append(g)
    wanted = [k for k in range(3) if fractions[k] > 0]
    _check_patients(strata, labels, wanted, class_names, allow_missing_class, notices)

    rng = np.random.default_rng(seed)
    out = np.empty(n, dtype="<U5")
    for label in sorted(strata):
        names = sorted(strata[label])
        rng.shuffle(names)
        names.sort(key=lambda g: -len(members[g]))  # stable: shuffled order breaks ties
        total = sum(len(members[g]) for g in names)
        targets = np.array(fractions) * total
        counts = np.zeros(3)
        where: dict[str, int] = {}
        for g in names:
            k = int(np.argmax(targets - counts))
            counts[k] += len(members[g])
            where[g] = k
        _cover_splits(where, members, wanted)
        for g, k in where.items():
            out[members[g]] = SPLITS[k]
    return out


def _cover_splits(where: dict[str, int], members: dict[str, list[int]], wanted: list[int]
                  ) -> None:
    """Move the smallest group of the fullest split into each wanted split this stratum missed.

    Large groups go first in the greedy pass, so a stratum of a few big patients can fill train
    and leave val or test without one; this keeps at least one patient of the class there.
    """
    for k in wanted:
        if k in where.values():
            continue
        per_split = Counter(where.values())
        donor = max(per_split, key=lambda s: (per_split[s], s == 0))
        if per_split[donor] < 2:
            return  # fewer groups than splits: _check_patients has already reported it
        g = min((g for g, s in where.items() if s == donor), key=lambda g: len(members[g]))
        where[g] = k


def _check_patients(strata: dict[int, list[str]], labels: np.ndarray, wanted: list[int],
                    class_names, allow: bool, notices: list[str]) -> None:
    """Refuse (or note, with ``allow``) classes with fewer patients than non-empty splits."""
    need = len(wanted)
    missing = ", ".join(SPLITS[k] for k in wanted[1:])
    if (labels < 0).all():
        n_groups = sum(len(v) for v in strata.values())
        if n_groups < need:
            notices.append(f"only {n_groups} patient group(s): {missing} will be empty or "
                           "incomplete (every image of one patient stays in one split)")
        return
    present = sorted(set(labels[labels >= 0].tolist()))
    for label in present:
        count = len(strata.get(label, []))
        if count >= need:
            continue
        name = class_names[label] if class_names is not None else str(label)
        text = (f"class {name!r} has {count} patient(s) (groups), too few to appear in "
                f"train, {missing}")
        if allow:
            notices.append(f"{text}; kept anyway (--allow-missing-class): its val/test metrics "
                           "will be missing")
            continue
        raise DataError(
            f"{text}: add patients, change --split (e.g. 0.8,0,0.2 needs 2 per class), drop it "
            f"with --drop-label {name}, or accept the gap with --allow-missing-class")
