"""The procedural phantom: deterministic per seed, two classes, binary masks, grouped cases."""

from __future__ import annotations

import numpy as np
import pytest

from synthmed.data.phantom import CLASS_NAMES, make_phantom, write_phantom
from synthmed.errors import DataError


def test_deterministic_per_seed():
    a, b, c = make_phantom(12, 32, seed=3), make_phantom(12, 32, seed=3), make_phantom(12, 32, 4)
    for key in ("images", "masks", "labels", "groups"):
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["images"], c["images"])


def test_image_depends_only_on_seed_and_index():
    small, large = make_phantom(5, 32, seed=1), make_phantom(20, 32, seed=1)
    np.testing.assert_array_equal(small["images"], large["images"][:5])


@pytest.mark.parametrize("size", [16, 32, 48])
def test_shapes_classes_and_masks(size):
    ph = make_phantom(40, size, seed=0)
    assert ph["images"].shape == (40, size, size) and ph["images"].dtype == np.uint8
    assert set(ph["labels"]) == {0, 1} and list(ph["class_names"]) == list(CLASS_NAMES)
    assert set(np.unique(ph["masks"])) == {0, 1}
    assert all(m.any() for m in ph["masks"])
    benign = ph["labels"] == 0
    inside = [img[m == 1].mean() for img, m in zip(ph["images"][benign], ph["masks"][benign],
                                                    strict=True)]
    outside = [img[m == 0].mean() for img, m in zip(ph["images"][benign], ph["masks"][benign],
                                                     strict=True)]
    assert np.mean(inside) < np.mean(outside)  # hypoechoic benign nodules


def test_cases_share_class_and_have_2_to_4_frames():
    ph = make_phantom(60, 16, seed=0)
    groups, counts = np.unique(ph["groups"], return_counts=True)
    assert counts[:-1].min() >= 2 and counts.max() <= 4
    for g in groups:
        assert len(set(ph["labels"][ph["groups"] == g])) == 1


def test_write_phantom_files(tmp_path):
    out = write_phantom(tmp_path / "raw", n=6, size=16, seed=0)
    rows = (out / "labels.csv").read_text().splitlines()
    assert rows[0] == "path,label,group" and len(rows) == 7
    rel = rows[1].split(",")[0]
    assert (out / "images" / rel).is_file() and (out / "masks" / rel).is_file()
    assert "NOT real" in (out / "README.txt").read_text()
    with pytest.raises(DataError, match="already exists"):
        write_phantom(out, n=6, size=16)


@pytest.mark.parametrize(("n", "size", "match"), [(0, 32, "--n 0"), (4, 8, "--size 8")])
def test_bad_arguments(n, size, match):
    with pytest.raises(DataError, match=match):
        make_phantom(n, size)


def test_classes_overlap_but_remain_separable():
    """Version 2: some benign cases look suspicious and some malignant ones bland, and the
    strongest single cue (bright foci inside the nodule) is no longer a perfect separator
    (version 1: AUC 1.000 on every seed, a utility ceiling)."""
    from sklearn.metrics import roc_auc_score

    from synthmed.data.phantom import suspicion

    for label in (0, 1):
        p = np.array([suspicion(np.random.default_rng([0, 2, c]), label) for c in range(400)])
        wrong = np.mean(p > 0.5) if label == 0 else np.mean(p < 0.5)
        assert 0.005 < wrong < 0.1, (label, wrong)
    ph = make_phantom(300, 32, seed=0)
    foci = [(img[m == 1] > 200).sum() for img, m in zip(ph["images"], ph["masks"], strict=True)]
    assert 0.75 < roc_auc_score(ph["labels"], foci) < 0.995
    assert 0.2 < ph["labels"].mean() < 0.5
