"""Integration on the real files in ../shared/datasets (skipped when absent)."""

from __future__ import annotations

import numpy as np
import pytest

from synthmed.data import PreparedDataset, import_dataset

pytestmark = pytest.mark.shared_data


def _groups_exclusive(ds: PreparedDataset) -> bool:
    seen: dict[str, str] = {}
    return all(seen.setdefault(g, s) == s for g, s in zip(ds.groups, ds.splits, strict=True))


def test_ddti_grouped_by_case(shared_datasets, tmp_path):
    out = import_dataset(shared_datasets / "ddti_thyroid_roi" / "ddti_roi_300.npz", tmp_path / "d",
                         npz_keys=["labels=label_binary", "groups=case_id", "ids=names"],
                         drop_labels=["-1"], class_names="0=benign,1=malignant", size=32)
    ds = PreparedDataset(out)
    assert len(ds) == 457 and ds.class_counts() == {"benign": 71, "malignant": 386}
    assert _groups_exclusive(ds) and ds.meta["n_groups"] == 291
    assert ds.masks is not None and ds.images.shape == (457, 1, 32, 32)
    frac = {s: n / len(ds) for s, n in ds.meta["splits"].items()}
    assert abs(frac["train"] - 0.8) < 0.03 and frac["test"] > 0.07


def test_breastmnist_official_splits(shared_datasets, tmp_path):
    ds = PreparedDataset(import_dataset(shared_datasets / "medmnist" / "breastmnist.npz",
                                        tmp_path / "b"))
    assert ds.meta["splits"] == {"train": 546, "val": 78, "test": 156}
    assert ds.class_names == ["malignant", "normal, benign"]
    assert ds.meta["class_counts_by_split"]["train"] == {"malignant": 147, "normal, benign": 399}
    assert ds.size == (28, 28)


def test_lgg_grouped_by_patient_with_masks(shared_datasets, tmp_path):
    out = import_dataset(shared_datasets / "lgg_brain_mri" / "lgg_flair_tumor_slices_256.npz",
                         tmp_path / "l", npz_keys={"groups": "patient", "ids": "case_id"},
                         size=32)
    ds = PreparedDataset(out)
    assert len(ds) == 1373 and ds.meta["n_groups"] == 110 and _groups_exclusive(ds)
    assert ds.has_mask.sum() == 1373
    emptied = ds.meta["preprocessing"]["masks_emptied_by_resize"]
    nonempty = np.asarray(ds.masks).reshape(1373, -1).any(1).sum()
    assert nonempty == 1373 - emptied and nonempty > 1200
    assert any("became empty" in n for n in ds.meta["source"]["notices"])
