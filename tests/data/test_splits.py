"""Patient-exclusive, stratified, seed-deterministic splits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synthmed.data.splits import SPLITS, group_stratified_split, parse_fractions
from synthmed.errors import DataError


@st.composite
def labelled_groups(draw):
    n_groups = draw(st.integers(3, 30))
    sizes = draw(st.lists(st.integers(1, 5), min_size=n_groups, max_size=n_groups))
    group_labels = draw(st.lists(st.integers(0, 2), min_size=n_groups, max_size=n_groups))
    labels, groups = [], []
    for g, (size, label) in enumerate(zip(sizes, group_labels, strict=True)):
        labels += [label] * size
        groups += [f"p{g}"] * size
    return np.array(labels), np.array(groups)


@settings(max_examples=60, deadline=None)
@given(data=labelled_groups(), seed=st.integers(0, 2**31 - 1))
def test_no_group_in_two_splits_and_every_class_in_every_split(data, seed):
    labels, groups = data
    patients = {c: len(set(groups[labels == c])) for c in set(labels.tolist())}
    if min(patients.values()) < 3:
        with pytest.raises(DataError, match="patient"):
            group_stratified_split(labels, groups, seed=seed)
        return
    splits = group_stratified_split(labels, groups, (0.6, 0.2, 0.2), seed=seed)
    assert len(splits) == len(labels) and set(splits) <= set(SPLITS)
    for g in set(groups):
        assert len(set(splits[groups == g])) == 1
    for c in patients:
        assert set(splits[labels == c]) == set(SPLITS)


@pytest.mark.parametrize("n_patients", [3, 4, 5])
def test_minority_class_of_few_big_patients_reaches_val_and_test(n_patients):
    """A minority class of 3-5 large patients used to go wholly to train (greedy, largest first)."""
    labels = np.array([0] * 200 + [1] * (10 * n_patients))
    groups = np.array([f"a{i // 2}" for i in range(200)] + [f"b{i // 10}" for i in
                                                            range(10 * n_patients)])
    for seed in range(5):
        splits = group_stratified_split(labels, groups, seed=seed)
        assert set(splits[labels == 1]) == set(SPLITS)
        assert set(splits[labels == 0]) == set(SPLITS)


def test_too_few_patients_refused_unless_allowed():
    labels, groups = np.array([0] * 20 + [1] * 6), np.array([f"a{i}" for i in range(20)] +
                                                            ["b0"] * 3 + ["b1"] * 3)
    with pytest.raises(DataError, match=r"class 'rare' has 2 patient.*--allow-missing-class"):
        group_stratified_split(labels, groups, class_names=["common", "rare"])
    notes: list[str] = []
    splits = group_stratified_split(labels, groups, class_names=["common", "rare"],
                                    allow_missing_class=True, notices=notes)
    assert len(notes) == 1 and "'rare' has 2 patient" in notes[0]
    assert len(set(splits[labels == 1])) == 2
    # With no val split, two patients are enough.
    splits = group_stratified_split(labels, groups, (0.8, 0, 0.2))
    assert set(splits[labels == 1]) == {"train", "test"}


def test_unlabelled_single_patient_gives_a_notice():
    notes: list[str] = []
    splits = group_stratified_split(np.full(6, -1), ["p"] * 6, notices=notes)
    assert set(splits) == {"train"} and "only 1 patient group" in notes[0]


def test_stratified_fractions_per_class():
    labels = np.array([0] * 400 + [1] * 100)
    splits = group_stratified_split(labels, None, (0.8, 0.1, 0.1), seed=0)
    for label, n in ((0, 400), (1, 100)):
        counts = {s: int(((splits == s) & (labels == label)).sum()) for s in SPLITS}
        assert counts == {"train": 0.8 * n, "val": 0.1 * n, "test": 0.1 * n}


def test_grouped_split_is_close_to_target():
    labels = np.repeat(np.arange(2), 300)
    groups = np.repeat(np.arange(200), 3).astype(str)
    splits = group_stratified_split(labels, groups, (0.7, 0.15, 0.15), seed=1)
    assert abs((splits == "train").mean() - 0.7) < 0.02
    assert abs((splits == "test").mean() - 0.15) < 0.02


def test_deterministic_per_seed():
    labels = np.repeat([0, 1], 50)
    groups = np.arange(100) // 2
    a = group_stratified_split(labels, groups, seed=7)
    assert (a == group_stratified_split(labels, groups, seed=7)).all()
    assert any((a != group_stratified_split(labels, groups, seed=s)).any() for s in range(8, 12))


def test_unlabelled_split_by_group_only():
    splits = group_stratified_split(np.full(20, -1), np.arange(20) // 4, seed=0)
    assert set(splits) <= set(SPLITS)


@pytest.mark.parametrize(("text", "match"), [
    ("0.8,0.1", "three fractions"), ("a,b,c", "three numbers"), ("0.8,0.3,0.1", "sum to 1.2"),
    ("1.2,-0.1,-0.1", "between 0 and 1"), ("0,0.5,0.5", "train fraction"),
])
def test_parse_fractions_errors(text, match):
    with pytest.raises(DataError, match=match):
        parse_fractions(text)


def test_parse_fractions_ok_and_small_class_error():
    assert parse_fractions("0.7,0.15,0.15") == (0.7, 0.15, 0.15)
    with pytest.raises(DataError, match="class 'rare' has 1 patient"):
        group_stratified_split([0, 0, 0, 1], class_names=["common", "rare"])
    with pytest.raises(DataError, match="no images"):
        group_stratified_split([])
