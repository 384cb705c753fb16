"""ddpm, ddpm-mask and vae trained by the one engine on the phantom, then sampled through
``synthmed generate`` (seconds each)."""

from __future__ import annotations

import json

import pytest
import torch

from synthmed import generate
from synthmed.errors import SynthmedError
from synthmed.training import train
from synthmed.training.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def ddpm_run(tmp_path_factory, phantom_dataset):
    from synthmed.config import load_config

    cfg = load_config(None, [f"data.path={phantom_dataset}", "model.name=ddpm", "name=dd",
                             "model.channels=[8,16]", "model.diffusion_steps=100",
                             "model.sample_steps=2", "train.batch_size=8", "train.steps=3",
                             "train.log_every=1", "train.num_threads=1"])
    return train(cfg, runs_dir=tmp_path_factory.mktemp("runs"), progress=False)


def test_ddpm_smoke_train_and_generate(ddpm_run):
    state = load_checkpoint(ddpm_run / "checkpoints" / "latest.pt")
    assert state["step"] == 3 and state["meta"]["conditional"] and state["meta"]["ema"]
    assert {"unet", "opt_unet", "generator_ema"} <= state.keys()
    logs = [json.loads(x) for x in (ddpm_run / "metrics.jsonl").read_text().splitlines()]
    assert all(torch.isfinite(torch.tensor(r["loss_diffusion"])) for r in logs if "step" in r
               and "loss_diffusion" in r)
    assert (ddpm_run / "samples" / "step-00000003.png").is_file()
    gen = generate(ddpm_run, per_class=2, steps=3, guidance=2.0)
    assert gen.images.shape == (4, 1, 32, 32) and gen.labels.tolist() == [0, 0, 1, 1]
    assert gen.images.abs().max() <= 1 and gen.source.options["steps"] == 3


def test_ddpm_images_do_not_depend_on_batch_size_and_follow_steps(ddpm_run):
    """Sampling runs in fixed one-class micro-batches, so an image is the same bytes alone or
    among others (synthmed.sampling.sampler)."""
    a = generate(ddpm_run, seeds="3,4,5", steps=3).images
    b = generate(ddpm_run, seeds="0-40", steps=3).images[3:6]
    assert torch.equal(a, b)
    c = generate(ddpm_run, seeds="3,4,5", steps=4).images
    assert not torch.allclose(a, c, atol=1e-4)


@pytest.mark.parametrize("opts,needle", [
    ({"steps": 0}, "--steps 0"), ({"steps": 101}, "from 1 to 100"), ({"steps": 2.5}, "--steps"),
    ({"guidance": -1.0}, "--guidance -1.0"), ({"guidance": float("nan")}, "finite"),
    ({"eta": 1.0}, "--eta"),
])
def test_ddpm_generation_options_are_validated(ddpm_run, opts, needle):
    with pytest.raises(SynthmedError, match=needle.replace("+", r"\+")):
        generate(ddpm_run, n=1, **opts)


def test_ddpm_v_prediction_with_min_snr_trains_and_samples(tmp_path, tiny_config):
    """model.min_snr_gamma (Hang et al. 2023) with v-prediction: finite losses, a grid, and
    images that do not depend on the batch they are generated in."""
    run = train(tiny_config("ddpm", "train.steps=3", "model.prediction=v",
                            "model.min_snr_gamma=5"), runs_dir=tmp_path, progress=False)
    logs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss_diffusion"] for r in logs if "loss_diffusion" in r]
    assert losses and all(torch.isfinite(torch.tensor(v)) for v in losses)
    assert (run / "samples" / "step-00000003.png").is_file()
    a = generate(run, seeds="1,2", steps=3).images
    b = generate(run, seeds="0-20", steps=3).images[1:3]
    assert torch.equal(a, b) and a.std() > 0


def test_min_snr_gamma_must_be_positive(tiny_config):
    from synthmed.errors import ConfigError

    with pytest.raises(ConfigError, match="model.min_snr_gamma"):
        tiny_config("ddpm", "model.min_snr_gamma=0")


@pytest.mark.parametrize("model", ["vae", "ddpm-mask"])
def test_vae_and_mask_ddpm_smoke_train(tmp_path, tiny_config, model):
    run = train(tiny_config(model, "train.steps=3"), runs_dir=tmp_path, progress=False)
    state = load_checkpoint(run / "checkpoints" / "latest.pt")
    assert state["step"] == 3 and (run / "samples" / "step-00000003.png").is_file()
    if model == "vae":
        assert state["meta"]["conditional"] and not state["meta"]["ema"]
        gen = generate(run, per_class=3)
        assert gen.images.shape == (6, 1, 32, 32) and gen.images.std() > 0
        same = generate(run, seeds="1", class_name=gen.class_names[1]).images
        assert torch.allclose(same[0], gen.images[4], atol=1e-5)
        with pytest.raises(SynthmedError, match="--steps: not a generation option of vae models"):
            generate(run, n=1, steps=10)
    else:
        assert state["meta"]["mask_channels"] == 1
        with pytest.raises(SynthmedError, match="mask-conditioned"):
            generate(run, n=1)


def test_bf16_is_refused_without_native_bf16(ddpm_run, monkeypatch):
    from synthmed.training.methods import ddpm

    monkeypatch.setattr(ddpm, "native_bf16", lambda device: False)
    with pytest.raises(SynthmedError, match="--bf16: cpu has no native bf16"):
        generate(ddpm_run, n=1, bf16=True)
    monkeypatch.setattr(ddpm, "native_bf16", lambda device: True)
    a = generate(ddpm_run, seeds="0", steps=2).images
    b = generate(ddpm_run, seeds="0", steps=2, bf16=True).images
    assert a.shape == b.shape and (a - b).abs().max() < 0.5  # rounding, not another image
