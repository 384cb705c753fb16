"""Engine hardening: run-directory lock, a grid when a run stops, determinism and SyncBatchNorm
settings, host-sync-free per-class routing and EMA counter."""

from __future__ import annotations

import fcntl
import os

import pytest
import torch

from synthmed.errors import ConfigError, SynthmedError
from synthmed.training import distributed as ddp
from synthmed.training import train
from synthmed.training.checkpoint import load_checkpoint


def test_a_second_train_of_a_running_run_refuses(tmp_path, tiny_config):
    run = train(tiny_config("dcgan", "train.steps=2"), runs_dir=tmp_path, progress=False)
    metrics = (run / "metrics.jsonl").read_text()
    fd = os.open(run / ".lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running `train` holds it
        with pytest.raises(SynthmedError, match=r"another synthmed train is using this run"):
            train(None, resume=run, overrides=["train.steps=4"], progress=False)
    finally:
        os.close(fd)
    assert (run / "metrics.jsonl").read_text() == metrics, "the refused run wrote nothing"
    train(None, resume=run, overrides=["train.steps=4"], progress=False)  # free again
    assert load_checkpoint(run / "checkpoints" / "latest.pt")["step"] == 4


def test_a_run_stopped_between_grids_still_writes_one(tmp_path, tiny_config, monkeypatch):
    from synthmed.training import stopping

    calls = {"n": 0}
    real = stopping.StopAgreement.__call__

    def stop_after_three(self, flag, step):
        calls["n"] += 1
        if step == 3:
            flag["signum"] = 15
        return real(self, flag, step)

    monkeypatch.setattr(stopping.StopAgreement, "__call__", stop_after_three)
    run = train(tiny_config("dcgan", "train.steps=100", "train.sample_every=50"),
                runs_dir=tmp_path, progress=False)
    assert [p.name for p in (run / "samples").iterdir()] == ["step-00000003.png"]
    assert "stopped by SIGTERM at step 3" in (run / "log.txt").read_text()


def test_the_final_message_names_only_what_exists(tmp_path, monkeypatch, capsys):
    import synthmed.training
    from synthmed.cli import main

    empty = tmp_path / "run"
    empty.mkdir()
    (empty / "samples").mkdir()
    monkeypatch.setattr(synthmed.training, "train", lambda *a, **k: empty)

    def message() -> str:
        with pytest.raises(SystemExit) as e:
            main(["train", str(tmp_path / "x.yaml")])
        assert e.value.code == 0
        return " ".join(capsys.readouterr().out.split())

    out = message()
    assert "run:" in out and "samples/" not in out and "latest.pt" not in out
    (empty / "metrics.jsonl").write_text("")
    assert "(metrics.jsonl)" in message()


def test_deterministic_defaults_to_on_for_cpu_and_can_be_turned_off(tmp_path, tiny_config):
    before = torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic
    try:
        run = train(tiny_config("dcgan", "train.steps=1"), runs_dir=tmp_path, progress=False)
        assert "deterministic kernels: on" in (run / "log.txt").read_text()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        train(None, resume=run, overrides=["train.steps=2", "train.deterministic=false"],
              progress=False)  # a how-to-run key: may change on resume
        assert "deterministic kernels: off" in (run / "log.txt").read_text()
        assert torch.backends.cudnn.benchmark and not torch.backends.cudnn.deterministic
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before


def test_sync_batchnorm_defaults_and_refuses_cpu():
    two = ddp.DistInfo(rank=0, world_size=2)
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert ddp.resolve_sync_batchnorm(None, ddp.DistInfo(), cuda) is False  # one process
    assert ddp.resolve_sync_batchnorm(None, two, cuda) is True
    assert ddp.resolve_sync_batchnorm(None, two, cpu) is False
    assert ddp.resolve_sync_batchnorm(False, two, cuda) is False
    with pytest.raises(ConfigError, match="train.sync_batchnorm: SyncBatchNorm needs CUDA"):
        ddp.resolve_sync_batchnorm(True, two, cpu)


def test_per_class_routing_with_host_counts_is_identical_and_checked():
    from synthmed.models.perclass import _route

    nets = torch.nn.ModuleList([torch.nn.Linear(3, 2) for _ in range(3)])
    x, y = torch.randn(7, 3), torch.tensor([2, 0, 2, 1, 0, 2, 2])
    call = lambda net, xs: net(xs)  # noqa: E731
    assert torch.equal(_route(nets, x, y, call), _route(nets, x, y, call, [2, 1, 4]))
    only = torch.full((7,), 1)
    assert torch.equal(_route(nets, x, only, call, [0, 7, 0]), nets[1](x))
    with pytest.raises(ValueError, match="counts"):
        _route(nets, x, y, call, [1, 1, 4])


def test_per_class_training_passes_host_counts(tmp_path, tiny_config, monkeypatch):
    """The trainer knows each batch's class counts on the host: routing needs no host sync."""
    from synthmed.models import perclass

    seen = []
    real = perclass._route

    def spy(networks, x, y, call, counts=None):
        seen.append(counts)
        return real(networks, x, y, call, counts)

    monkeypatch.setattr(perclass, "_route", spy)
    train(tiny_config("acgan", "model.per_class=true", "train.steps=2",
                      "train.sample_every=1000"), runs_dir=tmp_path, progress=False)
    training_calls = seen[:-1]  # the last call renders the final grid (no counts there)
    assert training_calls and all(c is not None and sum(c) == 8 for c in training_calls)


def test_ema_counter_survives_a_state_round_trip():
    from synthmed.training.ema import build_ema

    net = torch.nn.Linear(2, 2)
    ema = build_ema(net, decay=0.999)
    for _ in range(3):
        ema.update_parameters(net)
    other = build_ema(torch.nn.Linear(2, 2), decay=0.999)
    other.load_state_dict(ema.state_dict())
    assert other.current_decay() == ema.current_decay() != build_ema(net, 0.999).current_decay()
    assert other.n_averaged.device == next(net.parameters()).device
