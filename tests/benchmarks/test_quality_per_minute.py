"""benchmarks/quality_per_minute.py: every generator arm can be sampled and scored (the dcgan arm
crashed after its first budget: an unconditional run cannot sample per class)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.parametrize("gen", ["dcgan", "acgan", "dcgan-per-class"])
def test_an_arm_writes_a_set_of_the_training_split_size_that_evaluate_reads(
        qpm, gen, phantom_dataset, tmp_path):
    from synthmed.config import load_config
    from synthmed.data.dataset import PreparedDataset
    from synthmed.training import train

    cfg = load_config(None, [f"data.path={phantom_dataset}", "data.split=train",
                             "train.steps=2", "train.batch_size=8", "model.base_width=8",
                             *[o for o in qpm.GENERATORS[gen] if "base_width" not in o]])
    run = train(cfg, runs_dir=tmp_path / "runs", progress=False)
    syn = tmp_path / "syn"
    labelled = qpm.conditional(run)
    assert labelled == (gen != "dcgan")  # an unconditional run samples no class
    qpm.class_matched(run, phantom_dataset, syn, "cpu", None, labelled)
    m = qpm.score(phantom_dataset, syn, tmp_path / "eval", "cpu", 5)
    n_train = len(PreparedDataset(phantom_dataset).indices("train"))
    assert m["synthetic"]["n"] == n_train and np.isfinite(m["relative_fd"])
    grid = qpm.grid if labelled else qpm.unlabelled_grid
    assert grid(syn, tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"
