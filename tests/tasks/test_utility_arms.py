"""Arm construction: counts per arm and class, the count-matched duplicate control, no leakage."""

from __future__ import annotations

import numpy as np
import pytest

from synthmed.errors import SynthmedError
from synthmed.tasks.arms import (
    ARMS,
    ArmPlan,
    LeakError,
    allocate,
    build_arm,
    check_no_leak,
    draw_cycled,
)

NAMES = ["benign", "malignant", "other"]


@pytest.fixture
def real():
    """60 rows: train 0-39 (25/10/5 per class), val 40-49, test 50-59."""
    labels = np.array([0] * 25 + [1] * 10 + [2] * 5 + [0, 1, 2] * 6 + [0, 1], np.int64)
    return labels, np.arange(40), np.arange(40, 60)


@pytest.fixture
def synth_labels():
    return np.array([0] * 30 + [1] * 30 + [2] * 30, np.int64)


def test_allocate_modes_sum_exactly():
    counts = np.array([25, 10, 5])
    assert allocate(40, counts, "real").tolist() == [25, 10, 5]
    assert allocate(20, counts, "real").tolist() == [13, 5, 2]  # 12.5, 5, 2.5 -> remainders
    assert allocate(20, counts, "balanced").tolist() == [7, 7, 6]
    assert allocate(20, counts, "fill").tolist() == [0, 8, 12]  # -> 25, 18, 17 (ties: first)
    assert allocate(50, counts, "fill").tolist() == [5, 20, 25]  # -> 30, 30, 30
    for mode in ("real", "balanced", "fill"):
        for total in (0, 1, 7, 123):
            assert allocate(total, counts, mode).sum() == total
    with pytest.raises(SynthmedError, match="class_mix"):
        allocate(5, counts, "equalish")


def test_draw_cycled_uses_every_item_before_repeating():
    rng = np.random.default_rng(0)
    d = draw_cycled(np.arange(10, 17), 16, rng)
    assert sorted(d[:7].tolist()) == list(range(10, 17))
    assert sorted(d[7:14].tolist()) == list(range(10, 17))
    assert np.bincount(d).max() == 3


@pytest.mark.parametrize("ratio", [0.5, 1.0, 2.0, 5.0])
@pytest.mark.parametrize("mix", ["real", "balanced", "fill"])
def test_synthetic_and_duplicate_counts_match_exactly(real, synth_labels, ratio, mix):
    labels, train, _ = real
    kw = dict(real_labels=labels, train_rows=train, ratio=ratio, synthetic_labels=synth_labels,
              class_mix=mix, class_names=NAMES, seed=3)
    syn = build_arm("real+classic+synthetic", **kw)
    dup = build_arm("real+classic+duplicate", **kw)
    n_extra = round(ratio * len(train))
    assert len(syn.synthetic_rows) == n_extra and syn.real_rows.tolist() == train.tolist()
    assert len(dup.synthetic_rows) == 0 and len(dup.real_rows) == len(train) + n_extra
    syn_counts = np.bincount(synth_labels[syn.synthetic_rows], minlength=3)
    dup_counts = np.bincount(labels[dup.real_rows[len(train):]], minlength=3)
    assert syn_counts.tolist() == dup_counts.tolist()
    assert syn_counts.tolist() == allocate(n_extra, [25, 10, 5], mix).tolist()
    assert syn.n == dup.n


def test_real_arms_and_synthetic_only(real, synth_labels):
    labels, train, _ = real
    kw = dict(real_labels=labels, train_rows=train, synthetic_labels=synth_labels,
              class_names=NAMES, seed=0)
    plain = build_arm("real", **kw)
    classic = build_arm("real+classic", **kw)
    assert plain.real_rows.tolist() == classic.real_rows.tolist() == train.tolist()
    assert not plain.augment and classic.augment and plain.ratio == 0
    only = build_arm("synthetic-only", ratio=1.0, **kw)
    assert len(only.real_rows) == 0 and len(only.synthetic_rows) == 40
    assert np.bincount(synth_labels[only.synthetic_rows]).tolist() == [25, 10, 5]
    only_bal = build_arm("synthetic-only", ratio=0.75, class_mix="fill", **kw)
    assert np.bincount(synth_labels[only_bal.synthetic_rows]).tolist() == [10, 10, 10]


def test_no_val_or_test_row_enters_any_arm(real, synth_labels):
    labels, train, held_out = real
    for arm in ARMS:
        for ratio in (0.5, 5.0):
            for seed in range(3):
                plan = build_arm(arm, real_labels=labels, train_rows=train, ratio=ratio,
                                 synthetic_labels=synth_labels, class_names=NAMES, seed=seed)
                assert not np.isin(plan.real_rows, held_out).any()
                assert np.isin(plan.real_rows, train).all()
                check_no_leak(plan, train_rows=train, held_out_rows=held_out)


def test_check_no_leak_raises_on_a_test_row(real):
    labels, train, held_out = real
    bad = ArmPlan("real+classic", 0.0, np.concatenate([train, [55]]))
    with pytest.raises(LeakError, match="val/test"):
        check_no_leak(bad, train_rows=train, held_out_rows=held_out)
    outside = ArmPlan("real", 0.0, np.array([0, 1, 99]))
    with pytest.raises(LeakError, match="outside"):
        check_no_leak(outside, train_rows=train, held_out_rows=held_out)


def test_same_seed_same_draw_other_seed_other_draw(real, synth_labels):
    labels, train, _ = real
    kw = dict(real_labels=labels, train_rows=train, ratio=1.0, synthetic_labels=synth_labels,
              class_names=NAMES)
    a = build_arm("real+classic+synthetic", seed=1, **kw)
    b = build_arm("real+classic+synthetic", seed=1, **kw)
    c = build_arm("real+classic+synthetic", seed=2, **kw)
    assert a.synthetic_rows.tolist() == b.synthetic_rows.tolist()
    assert a.synthetic_rows.tolist() != c.synthetic_rows.tolist()


def test_missing_synthetic_class_and_missing_set_are_user_errors(real):
    labels, train, _ = real
    only_two = np.array([0] * 10 + [1] * 10, np.int64)
    with pytest.raises(SynthmedError, match="'other'"):
        build_arm("real+classic+synthetic", real_labels=labels, train_rows=train, ratio=1.0,
                  synthetic_labels=only_two, class_names=NAMES)
    with pytest.raises(SynthmedError, match="utility.synthetic"):
        build_arm("synthetic-only", real_labels=labels, train_rows=train, ratio=1.0,
                  class_names=NAMES)
    with pytest.raises(SynthmedError, match="unknown arm"):
        build_arm("real+gan", real_labels=labels, train_rows=train)
