"""Options of the GAN recipe: bCR (model.cr_weight, Zhao et al. 2021) and the cgan's noise
inputs (model.cgan_noise)."""

from __future__ import annotations

import pytest
import torch

from synthmed.errors import ConfigError
from synthmed.models import build_gan
from synthmed.training import train
from synthmed.training.losses import build_loss, consistency_penalty
from synthmed.training.methods.gan import GANSection
from synthmed.training.steps import GANSteps, StepConfig


def _steps(cr_weight: float = 10.0) -> GANSteps:
    torch.manual_seed(0)
    pair = build_gan(GANSection(name="cgan", latent_dim=8, base_width=4), in_channels=1,
                     image_size=32, n_classes=2)
    G, D = pair.generator, pair.discriminator
    return GANSteps(generator=G, discriminator=D,
                    opt_g=torch.optim.Adam(G.parameters()), opt_d=torch.optim.Adam(D.parameters()),
                    loss=build_loss("hinge"), augment=None, latent_dim=8, conditional=True,
                    aux_classifier=False, settings=StepConfig(cr_weight=cr_weight),
                    device=torch.device("cpu"))


def test_consistency_penalty_is_the_mean_squared_change():
    a, b = torch.tensor([1.0, -2.0]), torch.tensor([0.0, 0.0])
    assert consistency_penalty(a, b).item() == pytest.approx(2.5)
    assert consistency_penalty(a, a).item() == 0.0


def test_penalty_is_zero_for_the_identity_and_positive_for_a_shift():
    s = _steps()
    x = torch.rand(6, 1, 32, 32) * 2 - 1
    y = torch.tensor([0, 1, 0, 1, 0, 1])
    s.cr_transform = lambda t: t
    logits, _, pen = s._d_consistent(x, y)
    assert pen.item() == 0.0
    s.D.eval()  # no spectral-norm power iteration between the two forwards
    logits, _, _ = s._d_consistent(x, y)
    assert torch.allclose(logits, s._d(x, y)[0], atol=1e-5)  # the first half is D(x) itself
    s.D.train()
    s.cr_transform = lambda t: torch.roll(t, shifts=3, dims=-1)
    _, _, pen = s._d_consistent(x, y)
    assert pen.item() > 0.0
    assert pen.requires_grad  # it trains D


def test_cr_weight_changes_the_d_update_and_off_means_no_penalty():
    x = torch.rand(4, 1, 32, 32) * 2 - 1
    y = torch.tensor([0, 1, 0, 1])
    losses = {}
    for w in (0.0, 10.0):
        s = _steps(w)
        torch.manual_seed(1)
        losses[w] = s.d_step(x, y).item()
    assert losses[10.0] > losses[0.0]  # the penalty is added, and only when on


def test_cr_weight_is_refused_with_per_class_routing(tmp_path, tiny_config):
    with pytest.raises(ConfigError, match="model.cr_weight"):
        train(tiny_config("dcgan", "model.per_class=true", "model.cr_weight=1"),
              runs_dir=tmp_path, progress=False)


@pytest.mark.parametrize("model", ["cgan", "acgan"])
def test_smoke_train_with_bcr(tmp_path, tiny_config, model):
    run = train(tiny_config(model, "model.cr_weight=10", "train.steps=4"), runs_dir=tmp_path,
                progress=False)
    assert (run / "checkpoints" / "latest.pt").is_file()


def test_cgan_noise_trains_and_generates_one_image_per_seed(tmp_path, tiny_config):
    from synthmed import generate

    run = train(tiny_config("cgan", "model.cgan_noise=true", "train.steps=4"), runs_dir=tmp_path,
                progress=False)
    many = generate(run, seeds="0-5", class_name="benign", device="cpu").images
    one = generate(run, seeds="3", class_name="benign", device="cpu").images
    assert many.shape[0] == 6
    assert torch.allclose(torch.as_tensor(one[0]), torch.as_tensor(many[3]), atol=1e-5)
