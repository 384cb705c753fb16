"""Label consistency of image+mask pair sets (``synthmed evaluate --metrics labels``, issue 21):
a set whose images show their masks' lesions scores near the real test Dice; one whose masks
were moved away from the lesions it shows scores far lower."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from synthmed.errors import SynthmedError
from synthmed.metrics.consistency import by_edit, edit_names, per_image, read_segmenter


def _pair_set(path, images, masks, params):
    """A paired synthetic set on disk as `generate --masks-from --format npz` writes it."""
    path.mkdir(parents=True)
    np.savez_compressed(path / "synthetic.npz", train_images=images[:, 0],
                        train_labels=np.full((len(images), 1), -1), seeds=np.arange(len(images)),
                        class_names=np.array([], dtype=str), train_masks=masks)
    (path / "generation.json").write_text(json.dumps(
        {"format": "npz", "paired": True, "mask_labels": 1, "class_names": [], "model": "test"}))
    with open(path / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "mask_file", "class", "seed", "edit"])
        for i, p in enumerate(params):
            w.writerow([f"synthetic.npz#{i}", f"synthetic.npz#train_masks/{i}", "", i,
                        json.dumps(p)])
    return path


def test_per_image_dice_iou_and_detection():
    t = np.zeros((3, 8, 8), np.uint8)
    t[0, :4, :4] = 1  # 16 px lesion
    t[1, :2, :2] = 1
    p = np.zeros_like(t)
    p[0, :4, :2] = 1  # half the lesion: found, Dice 2*8/24
    p[1, 6:, 6:] = 1  # elsewhere: missed
    m = per_image(p, t)
    assert m["dice"][0] == pytest.approx(2 / 3) and m["iou"][0] == pytest.approx(0.5)
    assert m["found"][0] == 1 and m["found"][1] == 0 and np.isnan(m["found"][2])
    assert m["dice"][1] == 0 and m["dice"][2] == 1  # both empty: 1 (MONAI ignore_empty=False)


def test_edit_names_and_halves():
    params = [{}, {"dx": 3, "dy": 0, "rotate_deg": 5.0, "flip_h": False},
              {"dx": 0, "dy": 0, "rotate_deg": -30.0, "flip_h": True, "elastic_seed": 1},
              {"unedited": True}]
    assert [edit_names(p) for p in params] == [[], ["translate", "rotate"],
                                                ["rotate", "elastic", "flip"], []]
    m = {"dice": np.array([1.0, 0.8, 0.2, 0.9]), "iou": np.ones(4), "found": np.ones(4)}
    out = by_edit(m, params)
    assert out["unedited"]["n"] == 2 and out["translate"]["n"] == 1
    assert out["rotate"]["weaker_half"]["dice"] == pytest.approx(0.8)
    assert out["rotate"]["stronger_half"]["dice"] == pytest.approx(0.2)


def test_evaluate_labels_scores_faithful_pairs_above_moved_masks(phantom_dataset, tmp_path):
    from synthmed.data.dataset import PreparedDataset
    from synthmed.metrics.evaluate import evaluate

    ds = PreparedDataset(phantom_dataset)
    rows = ds.indices("train")
    images, masks = np.asarray(ds.images[rows]), (np.asarray(ds.masks[rows]) > 0).astype(np.uint8)
    faithful = _pair_set(tmp_path / "faithful", images, masks, [{}] * len(rows))
    moved = np.roll(masks, (10, 10), axis=(1, 2))  # lesions the images do not show
    wrong = _pair_set(tmp_path / "moved", images, moved, [{"dx": 10, "dy": 10}] * len(rows))
    res = {}
    for name, pairs in (("faithful", faithful), ("moved", wrong)):
        res[name] = evaluate(f"{phantom_dataset}:test", pairs, metrics="labels",
                             out=tmp_path / f"m-{name}", cache_dir=tmp_path / "cache",
                             segmenter_epochs=6, plots=False, extractor_epochs=1)
    f, w = res["faithful"]["label_consistency"], res["moved"]["label_consistency"]
    assert f["real_test"]["dice"] == w["real_test"]["dice"]  # one cached segmenter
    assert f["segmenter"]["seed"] != 0 and f["segmenter"]["arch"] == "monai.BasicUNet"
    assert f["real_test"]["dice"] > 0.3
    assert f["dice_ratio"] > 0.6 > w["dice_ratio"] + 0.3
    assert res["faithful"]["lesion_detection_rate"] > w["synthetic"]["detection_rate"]
    assert w["by_edit"]["translate"]["n"] == len(rows) and "unedited" in f["by_edit"]
    doc = json.loads((tmp_path / "m-moved" / "metrics.json").read_text())
    assert doc["label_consistency_ratio"] == pytest.approx(w["dice_ratio"])
    # --segmenter FILE reuses a given network
    again = evaluate(f"{phantom_dataset}:test", wrong, metrics="labels", out=tmp_path / "m2",
                     segmenter=f["segmenter"]["path"], plots=False, extractor_epochs=1,
                     cache_dir=tmp_path / "cache")
    assert again["label_consistency_ratio"] == pytest.approx(w["dice_ratio"])


def test_labels_on_an_unpaired_set_warns(phantom_dataset, tmp_path):
    from synthmed.metrics.evaluate import evaluate

    m = evaluate(f"{phantom_dataset}:test", f"{phantom_dataset}:train", metrics="labels",
                 out=tmp_path / "m", cache_dir=tmp_path / "cache", plots=False,
                 extractor_epochs=1)
    assert m["label_consistency"] is None
    assert any(w.startswith("labels: ") for w in m["warnings"])


def test_bad_segmenter_file(tmp_path):
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(SynthmedError, match="--segmenter"):
        read_segmenter(bad)
    with pytest.raises(SynthmedError, match="not found"):
        read_segmenter(tmp_path / "missing.pt")
