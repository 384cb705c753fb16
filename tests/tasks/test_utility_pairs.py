"""Segmentation utility with pix2pix image+mask pairs (generate --masks-from) on the phantom, and
the memorization audit reported beside the synthetic-only Dice."""

from __future__ import annotations

import json

import pytest

from synthmed.config import load_config
from synthmed.sampling.pairs import write_pairs
from synthmed.tasks.utility import run_utility
from synthmed.training import train


@pytest.fixture(scope="module")
def phantom64(tmp_path_factory):
    from synthmed.data.dataset import write_prepared
    from synthmed.data.phantom import CLASS_NAMES, make_phantom
    from synthmed.data.splits import group_stratified_split

    ph = make_phantom(n=36, size=64, seed=3)
    splits = group_stratified_split(ph["labels"], ph["groups"], seed=0)
    return write_prepared(tmp_path_factory.mktemp("ph64") / "prepared",
                          images=ph["images"][:, None], labels=ph["labels"], splits=splits,
                          class_names=CLASS_NAMES, ids=ph["ids"], groups=ph["groups"],
                          masks=ph["masks"], name="phantom64")


@pytest.mark.slow
def test_segmentation_arms_with_synthetic_pairs(phantom64, tmp_path):
    cfg = load_config(None, [f"data.path={phantom64}", "model.name=pix2pix", "name=p",
                             "model.base_width=4", "train.batch_size=8", "train.steps=2",
                             "train.checkpoint_every=2", "train.sample_every=2",
                             "train.num_threads=1"])
    run = train(cfg, runs_dir=tmp_path / "runs", progress=False)
    pairs = write_pairs(run, tmp_path / "pairs", masks_from=str(phantom64), n=24,
                        edits=["translate=0.1", "rotate=20"])
    ucfg = load_config(None, [f"data.path={phantom64}", "utility.task=segmentation",
                              f"utility.synthetic={pairs}", "utility.seeds=1",
                              "utility.epochs=1", "utility.batch_size=16",
                              "utility.num_threads=1", "utility.arms=[real+classic, "
                              "real+classic+synthetic, real+classic+duplicate, synthetic-only]"])
    out = run_utility(ucfg, runs_dir=tmp_path / "u")
    doc = json.loads((out / "utility.json").read_text())
    by = {r["arm"]: r for r in doc["runs"]}
    assert by["synthetic-only"]["n_real"] == 0 and by["synthetic-only"]["n_synthetic"] > 0
    assert by["real+classic+synthetic"]["n_synthetic"] > 0
    for r in doc["runs"]:
        assert 0 <= r["test"]["dice"] <= 1
    priv = doc["synthetic"][0]["privacy"]
    assert 0 <= priv["copy_rate"] <= 1 and 0 <= priv["membership_auc"] <= 1
    line = doc["result_lines"][-1]
    assert "synthetic-only dice" in line and "copy rate" in line and "membership AUC" in line


def test_memorization_audit_flags_copies_of_training_images(phantom64):
    import numpy as np

    from synthmed.data.dataset import PreparedDataset
    from synthmed.tasks.sources import memorization

    ds = PreparedDataset(phantom64)
    held = np.concatenate([ds.indices("val"), ds.indices("test")])
    copies = np.asarray(ds.images[ds.indices("train")])
    priv = memorization(copies, ds, held)
    assert priv["copy_rate"] == 1.0 and priv["membership_auc"] > 0.9
    noise = np.random.default_rng(0).integers(0, 256, copies.shape, dtype=np.uint8)
    assert memorization(noise, ds, held)["copy_rate"] == 0.0
