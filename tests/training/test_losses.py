"""GAN losses and penalties on known logits and analytic discriminators."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from synthmed.errors import ConfigError
from synthmed.training.losses import (
    GAN_LOSSES,
    aux_class_loss,
    build_loss,
    gradient_penalty,
    r1_penalty,
)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny tensors: extra OpenMP threads only add overhead (and spin on a busy machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class LinearD(nn.Module):
    """D(x) = <w, x> + b: its input gradient is w everywhere."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())
        self.b = nn.Parameter(torch.zeros(()))

    def forward(self, x, y=None):
        return (x * self.w).flatten(1).sum(1) + self.b, None


def test_registry_names_and_flags():
    assert GAN_LOSSES.names() == ["bce", "hinge", "wgan-gp"]
    assert [build_loss(n).gradient_penalty for n in GAN_LOSSES.names()] == [False, False, True]


def test_unknown_loss_names_the_key():
    with pytest.raises(ConfigError, match=r"^model\.loss: unknown loss 'lsgan'; choose one of bce"):
        build_loss("lsgan")


def test_hinge_known_values():
    loss = build_loss("hinge")
    real, fake = torch.full((4,), 2.0), torch.full((4,), -2.0)
    assert loss.d_loss(real, fake).item() == 0.0
    assert loss.d_loss(torch.zeros(4), torch.zeros(4)).item() == 2.0
    assert loss.d_loss(torch.tensor([0.5, 3.0]), torch.tensor([0.0, -1.0])).item() == 0.75
    assert loss.g_loss(fake).item() == 2.0


def test_bce_matches_torch_formula():
    torch.manual_seed(0)
    real, fake = torch.randn(16) * 3, torch.randn(16) * 3
    loss = build_loss("bce")
    want_d = (F.binary_cross_entropy_with_logits(real, torch.ones(16))
              + F.binary_cross_entropy_with_logits(fake, torch.zeros(16)))
    torch.testing.assert_close(loss.d_loss(real, fake), want_d)
    torch.testing.assert_close(loss.d_real(real) + loss.d_fake(fake), want_d)
    torch.testing.assert_close(loss.g_loss(fake),
                               F.binary_cross_entropy_with_logits(fake, torch.ones(16)))
    assert loss.d_loss(torch.zeros(2), torch.zeros(2)).item() == pytest.approx(2 * math.log(2))


def test_bce_is_stable_for_large_logits():
    loss = build_loss("bce")
    big = torch.tensor([200.0])
    assert loss.d_loss(big, -big).item() == pytest.approx(0.0, abs=1e-6)
    assert loss.g_loss(-big).item() == pytest.approx(200.0)


def test_wgan_values():
    loss = build_loss("wgan-gp")
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([-1.0, 0.0])
    assert loss.d_loss(real, fake).item() == -2.5
    assert loss.g_loss(fake).item() == 0.5


def test_gradient_penalty_zero_for_unit_norm_linear_critic():
    torch.manual_seed(0)
    w = torch.randn(1, 4, 4)
    real, fake = torch.randn(8, 1, 4, 4), torch.randn(8, 1, 4, 4)
    d_unit = LinearD(w / w.norm())
    assert gradient_penalty(d_unit, real, fake, None).item() == pytest.approx(0.0, abs=1e-6)
    d_two = LinearD(2 * w / w.norm())
    gp = gradient_penalty(lambda x, y: d_two(x, y)[0], real, fake, None)  # bare-logits callable
    assert gp.item() == pytest.approx(1.0, rel=1e-5)
    gp.backward()  # differentiable w.r.t. the critic's parameters
    assert d_two.w.grad is not None and d_two.w.grad.abs().sum() > 0


def test_r1_penalty():
    torch.manual_seed(0)
    real = torch.randn(4, 1, 4, 4).requires_grad_(True)
    w = torch.randn(1, 4, 4)
    d = LinearD(w)
    r1 = r1_penalty(d(real)[0], real)
    assert r1.item() == pytest.approx(w.pow(2).sum().item(), rel=1e-5)
    r1.backward()
    assert d.w.grad is not None

    const = nn.Parameter(torch.tensor(1.5))
    logits = const.expand(4) + 0 * real.flatten(1).sum(1)
    assert r1_penalty(logits, real).item() == 0.0
    assert r1_penalty(const.expand(4), real).item() == 0.0  # D ignores its input entirely
    with pytest.raises(ValueError, match="requires_grad"):
        r1_penalty(d(real.detach())[0], real.detach())


def test_aux_class_loss_is_cross_entropy():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    y = torch.tensor([0, 2])
    torch.testing.assert_close(aux_class_loss(logits, y), F.cross_entropy(logits, y))
    assert aux_class_loss(torch.zeros(2, 4), y).item() == pytest.approx(math.log(4))
