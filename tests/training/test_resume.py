"""Exact resume after SIGKILL, and a clean stop on SIGINT (real signals, in subprocesses)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from synthmed.training import train
from synthmed.training.checkpoint import load_checkpoint

CHILD = textwrap.dedent("""
    import os, signal, sys
    from synthmed.config import load_config
    from synthmed.training import checkpoint, trainer
    sig, at_step, runs, *overrides = sys.argv[1:]
    real_save = checkpoint.save_checkpoint
    fired = []
    def save_then_signal(state, ckpt_dir, step, **kw):
        out = real_save(state, ckpt_dir, step, **kw)
        if step == int(at_step) and not fired:
            fired.append(step)
            os.kill(os.getpid(), getattr(signal, sig))
        return out
    trainer.save_checkpoint = save_then_signal
    trainer.train(load_config(None, overrides), runs_dir=runs, progress=False)
""")


def _child(sig: str, at_step: int, runs: Path, overrides: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    return subprocess.run([sys.executable, "-c", CHILD, sig, str(at_step), str(runs), *overrides],
                          capture_output=True, text=True, env=env, timeout=300)


def _overrides(cfg) -> list[str]:
    d = cfg.model_dump(mode="json")
    return [f"{s}.{k}={v if not isinstance(v, list) else '[' + ','.join(map(str, v)) + ']'}"
            for s in ("data", "model", "train") for k, v in d[s].items() if v is not None] + [
        f"name={cfg.name}"]


def _weights(run: Path) -> dict:
    return load_checkpoint(run / "checkpoints" / "latest.pt")


@pytest.mark.parametrize("extra", [[], ["model.cr_weight=10", "model.cgan_upsample=bilinear",
                                            "model.cgan_noise=true"]],
                         ids=["default", "bcr-bilinear-noise"])
def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path, tiny_config, extra):
    cfg = tiny_config("cgan", "train.steps=10", "train.checkpoint_every=4",
                      "model.diffaugment=translation,cutout,color", "model.ada=true",
                      "model.ema=true", "train.d_steps=2", *extra)
    straight = train(cfg, runs_dir=tmp_path / "a", progress=False)

    proc = _child("SIGKILL", 4, tmp_path / "b", _overrides(cfg))
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    run = next((tmp_path / "b").iterdir())
    assert _weights(run)["step"] == 4
    resumed = train(None, resume=run, progress=False)
    assert resumed == run

    a, b = _weights(straight), _weights(resumed)
    assert a["step"] == b["step"] == 10
    for part in ("generator", "discriminator", "generator_ema"):
        assert a[part].keys() == b[part].keys()
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), f"{part}.{k} differs after resume"
    assert a["augment"] == b["augment"]
    log = (run / "metrics.jsonl").read_text()
    assert '"event": "resume"' in log


def test_sigint_saves_a_checkpoint_and_exits_cleanly(tmp_path, tiny_config):
    cfg = tiny_config("dcgan", "train.steps=1000", "train.checkpoint_every=3")
    proc = _child("SIGINT", 3, tmp_path, _overrides(cfg))
    assert proc.returncode == 0, proc.stderr
    run = next(tmp_path.iterdir())
    step = _weights(run)["step"]
    assert 3 <= step < 1000
    assert "stopped by SIGINT" in (run / "log.txt").read_text()


def test_resume_can_extend_training(tmp_path, tiny_config):
    run = train(tiny_config("dcgan", "train.steps=4"), runs_dir=tmp_path, progress=False)
    train(None, resume=run, overrides=["train.steps=6"], progress=False)
    assert _weights(run)["step"] == 6


@pytest.mark.slow
@pytest.mark.parametrize("recipe", [[], ["model.prediction=v", "model.min_snr_gamma=5"]],
                         ids=["epsilon", "v-min-snr"])
def test_ddpm_resume_after_sigkill_matches_uninterrupted_run(tmp_path, tiny_config, recipe):
    cfg = tiny_config("ddpm", "train.steps=6", "train.checkpoint_every=3", "model.ema=true",
                      "model.cond_drop=0.5", *recipe)
    straight = train(cfg, runs_dir=tmp_path / "a", progress=False)
    proc = _child("SIGKILL", 3, tmp_path / "b", _overrides(cfg))
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    run = next((tmp_path / "b").iterdir())
    assert _weights(run)["step"] == 3
    resumed = train(None, resume=run, progress=False)
    a, b = _weights(straight), _weights(resumed)
    assert a["step"] == b["step"] == 6
    for part in ("unet", "generator_ema"):
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), f"{part}.{k} differs after resume"
