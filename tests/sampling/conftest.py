from __future__ import annotations

import pytest

from synthmed.config import load_config
from synthmed.training import train


@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory, phantom_dataset):
    """One tiny trained run per model kind, shared by the sampling tests."""
    root = tmp_path_factory.mktemp("runs")
    runs = {}
    for name, model, extra in [("uncond", "dcgan", []), ("cond", "acgan", []),
                               ("ema", "cgan", ["model.ema=true"])]:
        cfg = load_config(None, [f"data.path={phantom_dataset}", f"model.name={model}",
                                 f"name={name}", "model.base_width=8", "model.latent_dim=16",
                                 "train.batch_size=8", "train.steps=4", "train.log_every=2",
                                 "train.sample_every=4", "train.checkpoint_every=2",
                                 "train.num_threads=1", *extra])
        runs[name] = train(cfg, runs_dir=root, progress=False)
    return runs
