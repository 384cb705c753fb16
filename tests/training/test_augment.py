"""DiffAugment ops and the ADA probability controller."""

from __future__ import annotations

import pytest
import torch

from synthmed.errors import ConfigError
from synthmed.training.augment import (
    AdaptiveAugment,
    color,
    cutout,
    diff_augment,
    parse_policy,
    translation,
)

POLICY = "translation,cutout,color"


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny tensors: extra OpenMP threads only add overhead (and spin on a busy machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def images(n: int = 8, c: int = 1, size: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, size, size, generator=g) * 2 - 1


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("policy", ["translation", "cutout", "color", POLICY])
def test_shapes_kept_and_p0_identity(policy, channels):
    x = images(c=channels)
    torch.manual_seed(0)
    out = diff_augment(x, policy)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert not torch.equal(out, x)
    assert torch.equal(AdaptiveAugment(policy, p=0.0)(x), x)


@pytest.mark.parametrize("op", [translation, cutout, color])
def test_ops_with_probability_zero_leave_images_alone(op):
    x = images(c=3)
    torch.testing.assert_close(op(x, 0.0), x, rtol=0, atol=1e-6)


def test_translation_shifts_content_and_fills_zeros():
    torch.manual_seed(0)
    x = torch.ones(32, 1, 16, 16)
    out = translation(x)
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    zero_rows = (out == 0).all(dim=3).sum(dim=(1, 2))  # shifted-in rows per sample
    assert zero_rows.max() <= 2 and zero_rows.max() > 0  # at most 1/8 of 16 px


def test_cutout_zeroes_at_most_a_half_size_square():
    torch.manual_seed(0)
    x = torch.ones(32, 1, 16, 16)
    zeros = (cutout(x) == 0).sum(dim=(1, 2, 3))
    assert zeros.min() > 0 and zeros.max() <= 8 * 8
    assert (zeros == 64).any()


def test_color_keeps_gray_images_flat():
    torch.manual_seed(0)
    x = torch.full((6, 1, 8, 8), 0.25)
    out = color(x)
    assert torch.allclose(out, out[:, :, :1, :1].expand_as(out))  # brightness only moves a level
    assert not torch.allclose(out, x)


def test_partial_probability_touches_some_samples():
    torch.manual_seed(0)
    x = images(n=64)
    out = AdaptiveAugment("translation", p=0.5)(x)
    unchanged = (out == x).flatten(1).all(1).sum().item()
    assert 10 < unchanged < 54


def test_differentiable():
    x = images(c=3).requires_grad_(True)
    torch.manual_seed(0)
    out = AdaptiveAugment(POLICY, adaptive=False)(x)
    (out * torch.randn_like(out)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_same_seed_same_output():
    x = images(c=3)
    outs = []
    for seed in (5, 5, 6):
        torch.manual_seed(seed)
        outs.append(diff_augment(x, POLICY))
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(outs[0], outs[2])


def test_p_adapts_up_when_d_is_overconfident_and_down_otherwise():
    aug = AdaptiveAugment(POLICY, target=0.6, interval=4, speed_img=1000, p=0.0)
    for _ in range(3):
        aug.observe(torch.full((8,), 3.0))
        aug.update(8)
    assert aug.p == 0.0  # no adjustment before `interval` D steps
    aug.observe(torch.full((8,), 3.0))
    aug.update(8)
    assert aug.r_t == 1.0 and aug.p == pytest.approx(8 * 4 / 1000)
    for _ in range(8):
        aug.observe(torch.tensor([1.0, -1.0, -2.0, 0.5]))  # r_t = 0 < target
        aug.update(8)
    assert aug.r_t == 0.0 and aug.p == 0.0  # down by the same step, clipped at 0
    for _ in range(4 * 40):
        aug.observe(torch.ones(8))
        aug.update(8)
    assert aug.p == 1.0  # clipped at 1


def test_fixed_probability_without_adaptation():
    aug = AdaptiveAugment(POLICY, adaptive=False, p=0.0)
    assert aug.p == 1.0
    for _ in range(8):
        aug.observe(-torch.ones(4))
        aug.update(4)
    assert aug.p == 1.0 and aug.r_t == -1.0


def test_state_round_trip(tmp_path):
    aug = AdaptiveAugment(POLICY, interval=4, speed_img=100, p=0.2)
    for _ in range(6):
        aug.observe(torch.tensor([2.0, 1.0, -1.0]))
        aug.update(3)
    state = aug.state_dict()
    assert all(type(v) in (int, float) for v in state.values())
    torch.save(state, tmp_path / "aug.pt")
    other = AdaptiveAugment(POLICY, interval=4, speed_img=100)
    other.load_state_dict(torch.load(tmp_path / "aug.pt", weights_only=True))
    assert other.state_dict() == state
    for a in (aug, other):  # both continue identically
        for _ in range(2):
            a.observe(torch.ones(3))
            a.update(3)
    assert aug.state_dict() == other.state_dict() and aug.p != state["p"]


def test_policy_parsing_and_errors():
    assert parse_policy(" Translation, color ") == ("translation", "color")
    assert parse_policy("none") == () and parse_policy(None) == ()
    x = images()
    assert torch.equal(AdaptiveAugment("none", adaptive=False)(x), x)
    with pytest.raises(ConfigError, match=r"^model\.diffaugment: unknown augmentation 'flip'; "
                                          r"use a comma list of translation, cutout, color"):
        AdaptiveAugment("translation,flip")
    with pytest.raises(ConfigError, match=r"model\.diffaugment: .*repeats"):
        parse_policy("color,color")
    with pytest.raises(ConfigError, match=r"model\.ada_target"):
        AdaptiveAugment(POLICY, target=1.5)
