"""The generator EMA: warm-up decay, exact values, integer buffers, state round trip."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from synthmed.training.ema import build_ema


def _net(value: float) -> nn.Module:
    net = nn.Sequential(nn.Linear(1, 1, bias=False), nn.BatchNorm1d(1))
    net[0].weight.data.fill_(value)
    return net


def test_warmup_decay_matches_the_closed_form():
    net = _net(0.0)
    ema = build_ema(net, decay=0.999)
    expected = 0.0
    for n, value in enumerate([1.0, 2.0, 3.0, 4.0, 5.0], start=0):
        net[0].weight.data.fill_(value)
        ema.update_parameters(net)
        if n == 0:
            expected = value  # the first update copies
        else:
            d = min(0.999, (1 + n) / (10 + n))
            expected = d * expected + (1 - d) * value
        assert ema.module[0].weight.item() == pytest.approx(expected, rel=1e-6)


def test_a_short_run_is_not_dominated_by_the_initial_weights():
    """With decay 0.999 a plain EMA would still be 37% initial weights after 1,000 updates."""
    net = _net(0.0)
    ema = build_ema(net, decay=0.999)
    ema.update_parameters(net)  # the initial weights
    net[0].weight.data.fill_(1.0)
    for _ in range(1000):
        ema.update_parameters(net)
    assert ema.module[0].weight.item() > 0.95
    assert ema.module.training is False


def test_integer_buffers_follow_the_model_and_state_round_trips():
    net = _net(0.0)
    ema = build_ema(net, decay=0.99)
    net.train()
    for _ in range(3):
        net(torch.randn(4, 1))
        ema.update_parameters(net)
    assert ema.module[1].num_batches_tracked.item() == net[1].num_batches_tracked.item() == 3
    other = build_ema(_net(5.0), decay=0.99)
    other.load_state_dict(ema.state_dict())
    assert int(other.n_averaged) == 3
    assert torch.equal(other.module[0].weight, ema.module[0].weight)
