"""train.amp's precision helper: bf16 without a scaler where native, fp16 with one scaler per
optimizer where not (forced here on the CPU, which has fp16 autocast and GradScaler too)."""

from __future__ import annotations

import pytest
import torch

from synthmed.training.precision import Precision, add_scalers


def _fit(prec: Precision, steps: int = 5):
    torch.manual_seed(0)
    net = torch.nn.Linear(8, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x, y = torch.randn(32, 8), torch.randn(32, 1)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        with prec.autocast():
            loss = torch.nn.functional.mse_loss(net(x).float(), y)
        prec.backward(loss, "net")
        prec.step(opt, "net")
        losses.append(float(loss))
    return net, opt, losses


def test_off_is_the_plain_float32_path_and_adds_no_checkpoint_key():
    prec = Precision(torch.device("cpu"), False, ("net",))
    _, _, losses = _fit(prec)
    ref = Precision(torch.device("cpu"), False, ())
    assert _fit(ref)[2] == losses
    assert prec.state_dict() is None and add_scalers({"a": 1}, prec) == {"a": 1}


def test_bf16_has_no_scaler():
    prec = Precision(torch.device("cpu"), True, ("net",))
    assert prec.dtype == torch.bfloat16 and not prec.scalers


def test_fp16_scales_the_loss_skips_overflowing_steps_and_resumes_its_scale():
    prec = Precision(torch.device("cpu"), True, ("net",), dtype=torch.float16)
    net, opt, losses = _fit(prec)
    assert losses[-1] < losses[0]
    state = add_scalers({}, prec)["grad_scalers"]
    assert set(state) == {"net"} and state["net"]["scale"] > 0
    before = [p.detach().clone() for p in net.parameters()]
    opt.zero_grad()
    prec.backward(net(torch.randn(4, 8)).sum() * float("inf"), "net")
    prec.step(opt, "net")  # inf gradients: the step is skipped and the scale halves
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    assert prec.scalers["net"].get_scale() == pytest.approx(state["net"]["scale"] / 2)
    again = Precision(torch.device("cpu"), True, ("net",), dtype=torch.float16)
    again.load_state_dict(prec.state_dict())
    assert again.scalers["net"].get_scale() == prec.scalers["net"].get_scale()


def test_a_cpu_amp_run_keeps_its_checkpoint_layout(tiny_config, tmp_path):
    from synthmed.training import train
    from synthmed.training.checkpoint import load_checkpoint

    run = train(tiny_config("dcgan", "train.amp=true", "train.steps=2"), runs_dir=tmp_path,
                progress=False)
    assert "grad_scalers" not in load_checkpoint(run / "checkpoints" / "latest.pt")
