"""LeanAdam is torch.optim.Adam on the CPU, bit for bit and state dict for state dict, without
importing torch._dynamo (synthmed.training.optim)."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
import torch
from torch import nn

from synthmed.training.optim import LeanAdam, build_adam


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.LeakyReLU(0.2),
                         nn.Flatten(), nn.Linear(4 * 6 * 6, 1))


def _train(net: nn.Module, opt, steps: int, seed: int = 1) -> None:
    gen = torch.Generator().manual_seed(seed)
    for i in range(steps):
        x = torch.randn(5, 1, 8, 8, generator=gen)
        opt.zero_grad(set_to_none=True)
        if i == 1:  # a parameter without a gradient this step is skipped, as torch does
            net[4].bias.requires_grad_(False)
        net(x).square().mean().backward()
        net[4].bias.requires_grad_(True)
        opt.step()


def _same_state(a: dict, b: dict) -> None:
    assert a["param_groups"] == b["param_groups"]
    assert list(a["state"]) == list(b["state"])
    for k in a["state"]:
        sa, sb = a["state"][k], b["state"][k]
        assert list(sa) == list(sb)
        for name in sa:
            assert sa[name].dtype == sb[name].dtype and torch.equal(sa[name], sb[name]), name


@pytest.mark.parametrize("betas", [(0.5, 0.999), (0.9, 0.99)])
def test_bit_identical_to_torch_adam(betas):
    ours, ref = _net(), _net()
    o1 = LeanAdam(ours.parameters(), lr=2e-3, betas=betas)
    o2 = torch.optim.Adam(ref.parameters(), lr=2e-3, betas=betas)
    _train(ours, o1, 6)
    _train(ref, o2, 6)
    for p, q in zip(ours.parameters(), ref.parameters(), strict=True):
        assert torch.equal(p, q)
    _same_state(o1.state_dict(), o2.state_dict())
    b1, b2 = io.BytesIO(), io.BytesIO()
    torch.save(o1.state_dict(), b1)
    torch.save(o2.state_dict(), b2)
    assert len(b1.getvalue()) == len(b2.getvalue())  # same structure in a checkpoint


@pytest.mark.parametrize("direction", ["torch->lean", "lean->torch"])
def test_state_dicts_cross_load_and_continue_identically(direction):
    a, b = _net(), _net()
    make = {"torch": lambda n: torch.optim.Adam(n.parameters(), lr=1e-3, betas=(0.5, 0.999)),
            "lean": lambda n: LeanAdam(n.parameters(), lr=1e-3, betas=(0.5, 0.999))}
    src_kind, dst_kind = direction.split("->")
    oa = make[src_kind](a)
    _train(a, oa, 3)
    b.load_state_dict(a.state_dict())
    ob = make[dst_kind](b)
    buf = io.BytesIO()  # through a file, as a checkpoint (a loaded state shares its tensors)
    torch.save(oa.state_dict(), buf)
    buf.seek(0)
    ob.load_state_dict(torch.load(buf, weights_only=True))
    _train(a, oa, 3, seed=5)
    _train(b, ob, 3, seed=5)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    _same_state(oa.state_dict(), ob.state_dict())


def test_refuses_wrong_shapes_and_unimplemented_options():
    opt = LeanAdam(_net().parameters(), lr=1e-3, betas=(0.5, 0.999))
    other = torch.optim.Adam(nn.Linear(2, 2).parameters())
    with pytest.raises(ValueError, match="number of parameter"):
        opt.load_state_dict(other.state_dict())
    ams = torch.optim.Adam(_net().parameters(), amsgrad=True)
    with pytest.raises(ValueError, match="amsgrad"):
        opt.load_state_dict(ams.state_dict())
    with pytest.raises(ValueError):
        LeanAdam([], lr=1e-3, betas=(0.5, 0.999))


def test_build_adam_picks_by_device():
    params = list(_net().parameters())
    assert isinstance(build_adam(params, lr=1e-3, betas=[0.5, 0.999],
                                 device=torch.device("cpu")), LeanAdam)
    assert isinstance(build_adam(params, lr=1e-3, betas=[0.5, 0.999],
                                 device=torch.device("meta")), torch.optim.Adam)


def test_cpu_optimizer_does_not_import_dynamo():
    """The point of LeanAdam: torch.optim.Adam imports torch._dynamo (~1.2 CPU-s) on creation."""
    code = ("import sys, torch\n"
            "from synthmed.training.optim import build_adam\n"
            "net = torch.nn.Linear(3, 1)\n"
            "opt = build_adam(net.parameters(), lr=1e-3, betas=(0.5, 0.999), device='cpu')\n"
            "opt.zero_grad(); net(torch.ones(2, 3)).sum().backward(); opt.step()\n"
            "opt.load_state_dict(opt.state_dict())\n"
            "print('torch._dynamo' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[-1] == "False"
