"""Utility with a synthetic set of another image size: resized to the real size, one notice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from synthmed.config import load_config
from synthmed.data.phantom import CLASS_NAMES, make_phantom
from synthmed.errors import DataError
from synthmed.tasks.sources import match_size
from synthmed.tasks.utility import prepare_study, run_utility

FAST = ["utility.epochs=1", "utility.batch_size=16", "utility.num_threads=1"]


def test_smaller_synthetic_set_is_resized_with_one_notice(phantom_dataset, tmp_path,
                                                          make_synthetic):
    ph = make_phantom(n=12, size=28, seed=7)  # MedMNIST-sized set for the 32 px real data
    small = make_synthetic(tmp_path / "small", ph["images"], ph["labels"], list(CLASS_NAMES))
    cfg = load_config(None, [f"data.path={phantom_dataset}", *FAST, "utility.seeds=1",
                             "utility.arms=[real+classic+synthetic]", "utility.ratios=[0.5]",
                             f"utility.synthetic={small}"])
    run = run_utility(cfg, runs_dir=tmp_path / "runs")
    info = json.loads((run / "utility.json").read_text())["synthetic"][0]
    assert info["resized_from"] == [28, 28] and info["n"] == 12
    assert info["notice"] == (f"{small}: synthetic images resized from 28x28 to the real 32x32 "
                              f"({info['resize']})")
    assert (run / "log.txt").read_text().count("resized from 28x28") == 1
    study = prepare_study(cfg)
    assert study.sources["small"].images.shape == (12, 1, 32, 32)


def test_same_size_sets_carry_no_notice(phantom_dataset, synthetic_phantom):
    cfg = load_config(None, [f"data.path={phantom_dataset}", *FAST,
                             f"utility.synthetic={synthetic_phantom}"])
    assert "notice" not in prepare_study(cfg).source_info[0]


def test_match_size_resizes_images_and_masks():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 1, 64, 64), dtype=np.uint8)
    masks = np.zeros((3, 64, 64), np.uint8)
    masks[:, 16:48, 16:48] = 1
    real = np.zeros((5, 1, 28, 28), np.uint8)
    out, m, notice = match_size(Path("s"), images, masks, real)
    assert out.shape == (3, 1, 28, 28) and out.dtype == np.uint8
    assert m.shape == (3, 28, 28) and set(np.unique(m)) == {0, 1}
    assert "resized from 64x64 to the real 28x28" in notice
    assert abs(int(out.mean()) - int(images.mean())) <= 2  # a resize, not a crop of a corner
    same, m2, none = match_size(Path("s"), real, None, real)
    assert same is real and m2 is None and none is None


def test_other_channel_count_is_refused():
    with pytest.raises(DataError, match=r"s: images have 3 channel\(s\) but the real dataset's "
                                        r"have 1"):
        match_size(Path("s"), np.zeros((2, 3, 28, 28), np.uint8), None,
                   np.zeros((2, 1, 28, 28), np.uint8))
