"""Tiny training configs over the session's prepared phantom (48 images, 32x32)."""

from __future__ import annotations

import pytest

from synthmed.config import load_config

TINY = {
    "dcgan": ["model.base_width=8", "model.latent_dim=16"],
    "acgan": ["model.base_width=8", "model.latent_dim=16"],
    "cgan": ["model.base_width=8", "model.latent_dim=16"],
    "ddpm": ["model.channels=[8,16]", "model.diffusion_steps=100", "model.sample_steps=2"],
    "ddpm-mask": ["model.channels=[8,16]", "model.diffusion_steps=100", "model.sample_steps=2"],
    "vae": ["model.channels=[8,16]", "model.latent_dim=8"],
    "pix2pix": ["model.base_width=4", "model.image_size=64"],
}


@pytest.fixture
def tiny_config(phantom_dataset):
    """``tiny_config(model, *overrides)`` -> ExperimentConfig that trains in about a second."""

    def make(model: str = "dcgan", *overrides: str):
        base = [f"data.path={phantom_dataset}", f"model.name={model}", "name=t",
                "train.batch_size=8", "train.steps=6", "train.log_every=2",
                "train.sample_every=3", "train.checkpoint_every=3", "train.num_threads=1"]
        return load_config(None, base + TINY.get(model, []) + list(overrides))

    return make
