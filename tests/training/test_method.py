"""The training-method interface: a new method, declared in this one file (its config section,
generation option, capabilities, recipe and training method), trains, resumes and samples through
the one engine (loop, checkpoints, EMA, grids, ``generate``) without touching any other module."""

from __future__ import annotations

import json
from typing import Literal

import pytest
import torch
from torch import nn

from synthmed import generate, generators
from synthmed.config import load_config
from synthmed.errors import ConfigError, SynthmedError
from synthmed.generators import (
    Capabilities,
    Descriptor,
    GenerationOptions,
    ModelSection,
    Recipe,
    setting,
)
from synthmed.training import train
from synthmed.training.checkpoint import load_checkpoint
from synthmed.training.method import (
    Batch,
    TrainingMethod,
    resolve_method,
    sampling_weights,
)


class ToySection(ModelSection):
    """The toy's own ``model:`` keys."""

    name: Literal["toy"] = setting("toy", role="trained", description="toy")
    width: int = setting(8, role="trained", gt=0, description="latent length")


class ToyOptions(GenerationOptions):
    scale: float | None = setting(None, role="generation", description="output scale",
                                  extra={"flag": "--scale"})


TOY = Descriptor(names=("toy",), section=ToySection, options=ToyOptions,
                 kinds={"toy": "toy regression (an interface probe)"},
                 capabilities=Capabilities(needs_masks=True, conditional=True),
                 recipe=Recipe(steps=lambda size: 3, losses={"mse": "toy MSE"}))


class Decoder(nn.Module):
    def __init__(self, latent: int, shape: tuple[int, int, int], n_classes: int) -> None:
        super().__init__()
        self.shape = shape
        self.embed = nn.Embedding(max(n_classes, 1), latent)
        self.fc = nn.Linear(latent, shape[0] * shape[1] * shape[2])

    def forward(self, z, y=None):
        h = z + (self.embed(y) if y is not None else 0)
        return torch.tanh(self.fc(h)).view(len(z), *self.shape)


class ToyMethod(TrainingMethod):
    """Noise -> image regression onto the batch (not a useful generator; an interface probe)."""

    default_ema = True
    seen_masks: list[bool] = []

    def __init__(self, net, opt, device, n_classes):
        self.net, self.opt, self.device, self.n_classes = net, opt, device, n_classes

    @classmethod
    def build(cls, cfg, data, device, info):
        n = len(data.class_names) if data.labelled else 0
        assert cfg.model.width == 8  # its own typed section
        net = Decoder(8, tuple(data.images.shape[1:]), n).to(device)
        return cls(net, torch.optim.Adam(net.parameters(), lr=1e-2), device, n)

    def meta(self):
        return {"conditional": self.n_classes > 0, "latent_dim": 8}

    def train_step(self, batches: list[Batch]):
        b = batches[0]
        self.seen_masks.append(b.masks is not None and b.masks.shape[1] == 1)
        self.opt.zero_grad(set_to_none=True)
        z = torch.randn(len(b.images), 8, device=self.device)
        loss = (self.net(z, b.labels) - b.images).pow(2).mean()
        loss.backward()
        self.opt.step()
        return {"loss_mse": loss.detach()}

    def ema_network(self):
        return self.net

    def state_dict(self):
        return {"toy_net": self.net.state_dict(), "toy_opt": self.opt.state_dict()}

    def load_state_dict(self, state):
        self.net.load_state_dict(state["toy_net"])
        self.opt.load_state_dict(state["toy_opt"])

    def grid_inputs(self, seed, n):
        z = torch.randn(n, 8, generator=torch.Generator().manual_seed(seed))
        return z, torch.arange(n) % max(self.n_classes, 1)

    def render_grid(self, inputs, network):
        return network(*inputs), 4

    @classmethod
    def build_sampler(cls, state, cfg, device, scale=None):
        scale = scale or 1.0
        meta = state["meta"]
        net = Decoder(8, (meta["in_channels"], meta["image_size"], meta["image_size"]),
                      meta["n_classes"])
        net.load_state_dict(sampling_weights(state, "toy_net"))
        net.to(device).eval()

        def sampler(seeds, labels):
            z = torch.stack([torch.randn(8, generator=torch.Generator().manual_seed(s))
                             for s in seeds])
            return net(z.to(device), labels) * scale

        return sampler, net


@pytest.fixture
def toy():
    generators.register_generator(TOY)(ToyMethod)
    yield ToyMethod
    generators.unregister_generator(TOY)


def test_unknown_model_names_every_method(toy):
    with pytest.raises(ConfigError, match=r"model.name: unknown model 'nope'.*cgan.*dcgan.*toy"):
        resolve_method("nope")
    assert resolve_method("toy") is ToyMethod
    assert resolve_method("cgan").__name__ == "GANMethod"
    with pytest.raises(ConfigError, match=r"model.name: unknown model 'nope'.*toy"):
        load_config(None, ["model.name=nope"])


def test_the_toy_has_its_own_strict_config_section(toy):
    cfg = load_config(None, ["model.name=toy", "model.width=3"])
    assert isinstance(cfg.model, ToySection) and cfg.model.width == 3
    with pytest.raises(ConfigError, match=r"model.latent_dim: not a key of toy models"):
        load_config(None, ["model.name=toy", "model.latent_dim=7"])
    with pytest.raises(ConfigError, match=r"model.width: unknown key; did you mean model.base_w"):
        load_config(None, ["model.name=dcgan", "model.width=3"])
    assert generators.kind("toy").startswith("toy") and generators.needs_masks("toy")
    assert generators.short_flags()["--scale"] == "scale"
    from synthmed.report.figures import loss_label
    from synthmed.training.progress import short_of_recipe

    assert loss_label("loss_mse", "toy") == "toy MSE"
    assert "needs ~3 steps" in short_of_recipe("toy", 1, 32)


def test_a_new_method_trains_resumes_and_samples_through_the_engine(tmp_path, tiny_config, toy):
    cfg = tiny_config("toy", "train.steps=4", "train.checkpoint_every=2", "train.sample_every=2")
    assert isinstance(cfg.model, ToySection)
    run = train(cfg, runs_dir=tmp_path / "a", progress=False)
    state = load_checkpoint(run / "checkpoints" / "latest.pt")
    assert {"toy_net", "toy_opt", "generator_ema", "stream", "rng", "meta"} <= set(state)
    assert ToyMethod.seen_masks and all(ToyMethod.seen_masks), "needs_masks: masks in batches"
    assert state["checkpoint_format"] == 2 and state["meta"]["ema"] is True
    assert state["meta"]["method"] == "ToyMethod" and state["meta"]["conditional"] is True
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [2, 4] and all(r["loss_mse"] > 0 for r in recs)
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "step-00000002.png", "step-00000004.png"]

    # resumed from step 2 to 4: the same weights as the straight run
    half = train(tiny_config("toy", "train.steps=2", "train.checkpoint_every=2"),
                 runs_dir=tmp_path / "b", progress=False)
    resumed = train(None, overrides=["train.steps=4"], resume=half, progress=False)
    other = load_checkpoint(resumed / "checkpoints" / "latest.pt")
    for part in ("toy_net", "generator_ema"):
        for k, v in state[part].items():
            assert torch.equal(v, other[part][k]), f"{part}.{k} differs after resume"

    g = generate(run, per_class=2)
    assert g.images.shape == (4, 1, 32, 32) and g.labels.tolist() == [0, 0, 1, 1]
    one = generate(run, seeds=[1], class_name="malignant").images  # (batch-size bound: anysize)
    assert torch.allclose(one, g.images[3:], atol=1e-6)
    half_scale = generate(run, per_class=2, scale=0.5).images
    assert torch.allclose(half_scale, g.images * 0.5)
    with pytest.raises(SynthmedError, match=r"--steps: not a generation option of toy models "
                       r"\(their options: scale\)"):
        generate(run, n=2, steps=10)
    with pytest.raises(SynthmedError, match=r"--scale .big.: input should be a valid number"):
        generate(run, n=2, scale="big")


def test_gan_generation_refuses_diffusion_options(tmp_path, tiny_config):
    run = train(tiny_config("dcgan", "train.steps=1"), runs_dir=tmp_path, progress=False)
    with pytest.raises(SynthmedError, match="--guidance: not a generation option of dcgan"):
        generate(run, n=2, guidance=2.0)


def test_a_checkpoint_from_a_newer_format_is_refused_naming_the_version(tmp_path, tiny_config):
    run = train(tiny_config("dcgan", "train.steps=1"), runs_dir=tmp_path, progress=False)
    path = run / "checkpoints" / "latest.pt"
    state = load_checkpoint(path)
    state.update(checkpoint_format=99, synthmed_version="9.9.9")
    torch.save(state, path)
    with pytest.raises(SynthmedError, match=r"format 99 \(written by synthmed 9.9.9\).*upgrade"):
        load_checkpoint(path)


def test_a_format_1_checkpoint_still_samples(tmp_path, tiny_config):
    """Checkpoints written before the generic engine have no format key: they are GAN runs."""
    run = train(tiny_config("cgan", "train.steps=1"), runs_dir=tmp_path, progress=False)
    path = run / "checkpoints" / "latest.pt"
    before = generate(run, n=3).images
    state = load_checkpoint(path)
    for k in ("checkpoint_format", "world_size"):
        state.pop(k)
    state["meta"].pop("method")
    torch.save(state, path)
    assert torch.equal(generate(run, n=3).images, before)
