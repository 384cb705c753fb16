"""The prepared dataset format: write, read, summarize, serve to torch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from synthmed.data import (
    PreparedDataset,
    SynthmedDataset,
    from_model_range,
    to_model_range,
    write_prepared,
)
from synthmed.errors import DataError


def test_round_trip_and_summary(phantom_dataset):
    ds = PreparedDataset(phantom_dataset)
    s = ds.summary()
    assert s["n"] == len(ds) == 48 and s["size"] == [32, 32] and s["channels"] == 1
    assert set(s["splits"]) == {"train", "val", "test"} and sum(s["splits"].values()) == 48
    assert set(s["classes"]) == {"benign", "malignant"} and s["has_masks"] is True
    assert sum(ds.class_counts("all").values()) == 48
    assert len(ds.indices("train")) == s["splits"]["train"]
    x, y = ds.tensors("val")
    assert x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1 and len(y) == len(x)
    with pytest.raises(DataError, match="split 'dev'"):
        ds.indices("dev")


def test_model_range_round_trip():
    img = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    t = to_model_range(img)
    assert t.min() == -1 and t.max() == 1
    np.testing.assert_array_equal(from_model_range(t), img)
    deep = np.array([[0, 65535]], np.uint16)
    np.testing.assert_array_equal(from_model_range(to_model_range(deep), np.uint16), deep)


def test_torch_dataset_items(phantom_dataset):
    ds = SynthmedDataset(phantom_dataset, "train", with_masks=True)
    item = ds[0]
    assert item["image"].shape == (1, 32, 32) and item["mask"].shape == (1, 32, 32)
    assert item["label"].dtype == torch.int64 and set(item["mask"].unique().tolist()) <= {0.0, 1.0}
    flipped = SynthmedDataset(phantom_dataset, "train",
                              transform=lambda d: {**d, "image": d["image"].flip(-1)})
    assert torch.equal(flipped[0]["image"], ds[0]["image"].flip(-1))


def test_content_hash_changes_with_content(tmp_path):
    imgs = np.zeros((4, 1, 4, 4), np.uint8)
    kw = {"labels": [0, 1, 0, 1], "class_names": ["a", "b"], "splits": ["train"] * 4}
    a = PreparedDataset(write_prepared(tmp_path / "a", images=imgs, **kw))
    imgs[0, 0, 0, 0] = 1
    b = PreparedDataset(write_prepared(tmp_path / "b", images=imgs, **kw))
    assert a.content_hash != b.content_hash
    assert a.meta["class_counts_by_split"]["train"] == {"a": 2, "b": 2}


def test_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        PreparedDataset(tmp_path / "nope")
    (tmp_path / "plain").mkdir()
    with pytest.raises(DataError, match="not a prepared dataset"):
        PreparedDataset(tmp_path / "plain")
    (tmp_path / "plain" / "dataset.json").write_text("{broken")
    with pytest.raises(DataError, match="corrupt dataset.json"):
        PreparedDataset(tmp_path / "plain")
    (tmp_path / "plain" / "dataset.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(DataError, match="not a synthmed dataset.json"):
        PreparedDataset(tmp_path / "plain")
    nomask = write_prepared(tmp_path / "nm", images=np.zeros((2, 1, 4, 4), np.uint8),
                            labels=[-1, -1], class_names=[], splits=["train"] * 2)
    with pytest.raises(DataError, match="has no masks"):
        SynthmedDataset(nomask, with_masks=True)
    (nomask / "images.npy").unlink()
    with pytest.raises(DataError, match="incomplete prepared dataset"):
        PreparedDataset(nomask)
    with pytest.raises(DataError, match="already exists"):
        write_prepared(tmp_path / "nm", images=np.zeros((1, 1, 2, 2), np.uint8), labels=[0],
                       class_names=["a"], splits=["train"])
