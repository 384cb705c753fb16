"""The training-method interface: a non-GAN method trains, resumes and samples through the one
engine (loop, checkpoints, EMA, grids, ``generate``) without touching it."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from synthmed import generate
from synthmed.errors import ConfigError, SynthmedError
from synthmed.training import train
from synthmed.training.checkpoint import load_checkpoint
from synthmed.training.method import (
    METHODS,
    Batch,
    TrainingMethod,
    reject_options,
    resolve_method,
    sampling_weights,
)


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

    needs_masks = True
    default_ema = True
    seen_masks: list[bool] = []

    def __init__(self, net, opt, device, n_classes):
        self.net, self.opt, self.device, self.n_classes = net, opt, device, n_classes

    @classmethod
    def build(cls, cfg, data, device, info):
        n = len(data.class_names) if data.labelled else 0
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
    def build_sampler(cls, state, cfg, device, **options):
        reject_options({k: v for k, v in options.items() if k != "scale"}, "toy")
        scale = options.get("scale") or 1.0
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
def toy(monkeypatch):
    monkeypatch.setitem(METHODS._items, "toy", ToyMethod)
    return ToyMethod


def test_unknown_model_names_every_method(monkeypatch, toy):
    with pytest.raises(ConfigError, match=r"model.name: unknown model 'nope'.*cgan.*dcgan.*toy"):
        resolve_method("nope")
    assert resolve_method("toy") is ToyMethod
    assert resolve_method("cgan").__name__ == "GANMethod"


def test_a_new_method_trains_resumes_and_samples_through_the_engine(tmp_path, tiny_config, toy):
    cfg = tiny_config("toy", "train.steps=4", "train.checkpoint_every=2", "train.sample_every=2")
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
    with pytest.raises(SynthmedError, match="--steps: not used by toy"):
        generate(run, n=2, steps=10)


def test_gan_generation_refuses_diffusion_options(tmp_path, tiny_config):
    run = train(tiny_config("dcgan", "train.steps=1"), runs_dir=tmp_path, progress=False)
    with pytest.raises(SynthmedError, match="--guidance: not used by dcgan"):
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
