"""MedMNIST-sized (28 px) data end to end on the CPU: train, then generate at the data's size."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="module")
def dataset_28(tmp_path_factory):
    from synthmed.data.dataset import write_prepared
    from synthmed.data.phantom import CLASS_NAMES, make_phantom
    from synthmed.data.splits import group_stratified_split

    ph = make_phantom(n=24, size=28, seed=0)
    splits = group_stratified_split(ph["labels"], ph["groups"], seed=0)
    return write_prepared(tmp_path_factory.mktemp("d28") / "prepared",
                          images=ph["images"][:, None], labels=ph["labels"], splits=splits,
                          class_names=CLASS_NAMES, ids=ph["ids"], groups=ph["groups"],
                          name="phantom-28")


@pytest.mark.parametrize("model", ["cgan", "dcgan"])
def test_train_and_generate_at_28_px(cli, dataset_28, tmp_path, model):
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(f"name: m28\ndata:\n  path: {dataset_28}\nmodel:\n  name: {model}\n"
                   "  base_width: 4\n  latent_dim: 8\ntrain:\n  batch_size: 8\n  steps: 3\n"
                   "  log_every: 1\n  sample_every: 3\n  checkpoint_every: 3\n"
                   "  num_threads: 1\n")
    code, out, err = cli(["train", cfg, "--runs-dir", tmp_path / "runs", "--no-progress"])
    assert code == 0, err
    run = tmp_path / "runs" / "00000-m28"
    code, _, err = cli(["generate", run, "--n", 3, "--out", tmp_path / "syn"])
    assert code == 0, err
    meta = json.loads((tmp_path / "syn" / "generation.json").read_text())
    assert meta["size"] == [28, 28] and meta["generator_size"] == 28
    pngs = sorted((tmp_path / "syn" / "images").rglob("*.png"))
    assert len(pngs) == 3 and all(Image.open(p).size == (28, 28) for p in pngs)
    code, _, err = cli(["generate", run, "--n", 2, "--size", 64, "--format", "npz",
                        "--out", tmp_path / "big"])
    assert code == 0, err
    assert np.load(tmp_path / "big" / "synthetic.npz")["train_images"].shape == (2, 64, 64)
    code, _, err = cli(["generate", run, "--n", 2, "--size", 8, "--out", tmp_path / "tiny"])
    assert code == 2 and err.count("\n") == 1 and "--size 8: choose a side between 16" in err
