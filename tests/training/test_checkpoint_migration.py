"""Checkpoints written before per-method config sections (format 2, a flat ``model:`` section
with every model's keys) still sample and resume."""

from __future__ import annotations

import pytest
import torch

from synthmed import generate
from synthmed.config import FLAT_MODEL_DEFAULTS
from synthmed.training import train
from synthmed.training.checkpoint import load_checkpoint


def _as_format_2(run):
    """Rewrite a run's checkpoints as the flat-section engine wrote them (keys added since,
    e.g. ``cr_weight`` or ``min_snr_gamma``, did not exist then: their defaults must apply)."""
    for path in (run / "checkpoints").glob("*.pt"):
        state = load_checkpoint(path)
        own = {k: v for k, v in state["config"]["model"].items() if k in FLAT_MODEL_DEFAULTS}
        flat = {**FLAT_MODEL_DEFAULTS, **own}
        flat["l1_weight"] = 3.0  # a foreign key the flat section accepted (and ignored)
        state["config"]["model"] = flat
        state["checkpoint_format"] = 2
        torch.save(state, path)


@pytest.mark.parametrize("model", ["dcgan", "ddpm"])
def test_a_format_2_checkpoint_samples_and_resumes(tmp_path, tiny_config, model):
    run = train(tiny_config(model, "train.steps=2", "train.checkpoint_every=2"),
                runs_dir=tmp_path, progress=False)
    before = generate(run, n=2).images
    _as_format_2(run)
    assert set(load_checkpoint(run / "checkpoints" / "latest.pt")["config"]["model"]) == \
        set(FLAT_MODEL_DEFAULTS)
    assert torch.equal(generate(run, n=2).images, before)
    resumed = train(None, overrides=["train.steps=3"], resume=run, progress=False)
    state = load_checkpoint(resumed / "checkpoints" / "latest.pt")
    assert state["step"] == 3 and "l1_weight" not in state["config"]["model"]
