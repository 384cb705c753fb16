"""benchmarks/lgg_privacy_control.py: null controls for the LGG membership audit (issue 21)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _dataset(path: Path, groups: list[str], splits: list[str]):
    from synthmed.data.dataset import write_prepared

    n = len(groups)
    imgs = (np.arange(n, dtype=np.uint8)[:, None, None, None] * np.ones((1, 1, 8, 8), np.uint8))
    return write_prepared(path, images=imgs, labels=np.zeros(n, np.int64), splits=splits,
                          class_names=["all"], groups=groups, ids=[f"i{k}" for k in range(n)])


def test_left_out_patients_never_holds_a_member_or_held_out_patient(ctl, tmp_path):
    groups = ["a", "a", "b", "b", "c", "c", "d", "d", "v", "t"]
    full = _dataset(tmp_path / "full", groups, ["train"] * 8 + ["val", "test"])
    sub = _dataset(tmp_path / "sub", ["a", "a", "v", "t"], ["train", "train", "val", "test"])
    from synthmed.data.dataset import PreparedDataset

    out = PreparedDataset(ctl.left_out_patients(full, sub, tmp_path / "out", 3))
    assert len(out) == 3 and set(out.groups) <= {"b", "c", "d"}
    assert (out.splits == "train").all()
    # fewer left-out slices than asked: all of them
    out = PreparedDataset(ctl.left_out_patients(full, sub, tmp_path / "out2", 50))
    assert sorted(out.groups.tolist()) == ["b", "b", "c", "c", "d", "d"]


def test_auc_cell(ctl):
    r = {"membership_auc": 0.9068, "membership_auc_ci95": [0.8036, 0.9835]}
    assert ctl._auc(r) == "0.907 [0.804, 0.984]"


def test_blurred_copies_are_the_training_slices_blurred(ctl, tmp_path):
    from synthmed.data.dataset import PreparedDataset

    groups = ["a", "a", "b", "v", "t"]
    src = _dataset(tmp_path / "d", groups, ["train"] * 3 + ["val", "test"])
    out = PreparedDataset(ctl.blurred_copies(src, tmp_path / "blur"))
    assert len(out) == 3 and out.groups.tolist() == ["a", "a", "b"]
    diff = np.abs(np.asarray(out.images).astype(int) - np.arange(3)[:, None, None, None])
    assert diff.max() <= 15  # flat images: the blur keeps them, the noise moves a few levels
