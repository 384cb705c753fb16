"""pix2pix with the issue-21 options through the engine: population-prior and brain-mask
conditioning, the SPADE generator, the pooled discriminator and joint pair augmentation; pairs
from their checkpoints with edited masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synthmed.sampling.io import load_synthetic
from synthmed.sampling.pairs import write_pairs
from synthmed.sampling.sampler import load_generator
from synthmed.training import train
from synthmed.training.checkpoint import load_checkpoint


@pytest.mark.parametrize("opts", [
    ["model.conditioning=prior", "model.generator=spade", "model.discriminator=pooled",
     "model.pair_augment=true"],
    ["model.conditioning=brain", "model.upsample=resize"],
    ["model.conditioning=brain", "model.generator=spade", "model.noise_dim=4",
     "model.diversity_weight=5"],
    ["model.conditioning=brain", "model.generator=spade", "model.discriminator=oasis",
     "model.l1_weight=0", "model.pair_augment=true"],
])
def test_options_train_and_make_reproducible_pairs(tmp_path, tiny_config, phantom_dataset, opts):
    run = train(tiny_config("pix2pix", "train.steps=2", "train.checkpoint_every=2",
                            "train.sample_every=2", *opts), runs_dir=tmp_path, progress=False)
    state = load_checkpoint(run / "checkpoints" / "latest.pt")
    mode = opts[0].split("=")[1]
    assert state["meta"]["conditioning"] == mode
    if mode == "prior":
        prior = state["generator"]["prior"]
        assert prior.shape == (64, 64) and 0 < float(prior.max()) <= 1
        assert torch.equal(state["generator_ema"]["module.prior"], prior)
    assert load_generator(run).sampler.anatomy  # edits keep lesions inside the brain
    kw = dict(masks_from=str(phantom_dataset), n=6, edits=["translate=0.1", "rotate=20"],
              fmt="npz")
    a = load_synthetic(write_pairs(run, tmp_path / "a", **kw))
    b = load_synthetic(write_pairs(run, tmp_path / "b", **kw))
    assert a.images.shape == (6, 1, 64, 64) and np.array_equal(a.images, b.images)
    assert a.masks.shape == (6, 64, 64) and np.array_equal(a.masks, b.masks)
    if "model.diversity_weight=5" in opts:  # the diversity term is logged
        assert "spread" in (run / "metrics.jsonl").read_text(encoding="utf-8")


def test_mask_only_conditioning_needs_no_anatomy(tmp_path, tiny_config, phantom_dataset):
    run = train(tiny_config("pix2pix", "train.steps=1", "model.conditioning=mask"),
                runs_dir=tmp_path, progress=False)
    sampler = load_generator(run).sampler
    assert not sampler.anatomy
    assert load_checkpoint(run / "checkpoints" / "latest.pt")["meta"]["conditioning"] == "mask"
