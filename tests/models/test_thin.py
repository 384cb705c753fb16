"""The CPU-fast image-end convolutions (synthmed.models.thin) compute what nn.Conv2d and
nn.ConvTranspose2d compute: outputs, input and weight gradients, double backward (R1 / WGAN-GP
penalties), odd sizes and channels_last, and keep the plain modules' checkpoints."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from synthmed.models.dcgan import DCGANDiscriminator, DCGANGenerator
from synthmed.models.thin import ThinInputConv2d, ThinOutputConvTranspose2d

CL = torch.channels_last


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-5) -> None:
    assert a.shape == b.shape
    assert (a - b).abs().max() <= rtol * b.abs().max() + 1e-6


def _pair(plain_cls, thin_cls, *args, fmt=torch.contiguous_format):
    torch.manual_seed(0)
    plain = plain_cls(*args, bias=False).to(memory_format=fmt)
    thin = thin_cls(*args, bias=False).to(memory_format=fmt)
    thin.load_state_dict(plain.state_dict())
    return plain, thin


@pytest.mark.parametrize("channels,size,fmt", [(1, 64, CL), (3, 33, CL), (1, 17,
                                                torch.contiguous_format)])
def test_thin_input_conv_matches_conv2d(channels, size, fmt):
    plain, thin = _pair(nn.Conv2d, ThinInputConv2d, channels, 8, 4, 2, 1, fmt=fmt)
    x = torch.randn(3, channels, size, size).contiguous(memory_format=fmt).requires_grad_(True)
    y0, y1 = plain(x), thin(x)
    assert thin(x).grad_fn is not None and "ConvThinInputGrad" in type(y1.grad_fn).__name__
    _close(y1, y0)
    g = torch.randn_like(y0)
    for a, b in zip(torch.autograd.grad(y1, [x, thin.weight], g),
                    torch.autograd.grad(y0, [x, plain.weight], g), strict=True):
        _close(a, b)

    def r1(m: nn.Module) -> torch.Tensor:  # gradient of a penalty on the input gradient
        xi = x.detach().requires_grad_(True)
        gx, = torch.autograd.grad(torch.tanh(m(xi)).sum(), xi, create_graph=True)
        return torch.autograd.grad(gx.square().sum(), m.weight)[0]

    _close(r1(thin), r1(plain), rtol=1e-4)


@pytest.mark.parametrize("channels,size", [(1, 32), (3, 17)])
def test_thin_output_conv_transpose_matches(channels, size):
    plain, thin = _pair(nn.ConvTranspose2d, ThinOutputConvTranspose2d, 8, channels, 4, 2, 1,
                        fmt=CL)
    h = torch.randn(3, 8, size, size).contiguous(memory_format=CL).requires_grad_(True)
    y0, y1 = plain(h), thin(h)
    _close(y1, y0)
    g = torch.randn_like(y0)
    for a, b in zip(torch.autograd.grad(y1, [h, thin.weight], g),
                    torch.autograd.grad(y0, [h, plain.weight], g), strict=True):
        _close(a, b)


def test_plain_path_where_the_thin_one_is_not_defined():
    thin = ThinInputConv2d(1, 4, 4, 2, 1, bias=False)
    x = torch.randn(2, 1, 8, 8, requires_grad=True)
    assert "ConvThinInputGrad" in type(thin(x).grad_fn).__name__
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert "ConvThinInputGrad" not in type(thin(x).grad_fn).__name__
    assert "ConvThinInputGrad" not in type(thin(x.detach()).grad_fn).__name__  # no input grad
    biased = ThinOutputConvTranspose2d(4, 1, 4, 2, 1, bias=True)
    h = torch.randn(2, 4, 4, 4)
    _close(biased(h), nn.functional.conv_transpose2d(h, biased.weight, biased.bias, 2, 1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert ThinOutputConvTranspose2d(4, 1, 4, 2, 1, bias=False)(h).dtype == torch.bfloat16


def test_dcgan_uses_them_and_keeps_its_checkpoint_keys():
    g, d = DCGANGenerator(channels=8), DCGANDiscriminator(channels=8)
    assert isinstance(g.main[-2], ThinOutputConvTranspose2d)
    assert isinstance(d.features[0], ThinInputConv2d)
    assert g.state_dict()["main.12.weight"].shape == (8, 1, 4, 4)  # the keys of before
    assert d.state_dict()["features.0.weight"].shape == (8, 1, 4, 4)
    rgb_wide = DCGANDiscriminator(in_channels=8, channels=8)
    assert type(rgb_wide.features[0]) is nn.Conv2d  # many channels: oneDNN is fast there
    plain = nn.ConvTranspose2d(8, 1, 4, 2, 1, bias=False)
    g.main[-2].load_state_dict(plain.state_dict())  # a plain module's weights load as they are
