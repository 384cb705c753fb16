"""Two CPU processes on gloo via torchrun: DDP, DistributedSampler, rank 0 alone writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from synthmed.training.checkpoint import load_checkpoint


@pytest.mark.slow
@pytest.mark.parametrize("model", ["dcgan", "acgan"])
def test_two_process_gloo_training(tmp_path, phantom_dataset, model):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"),
           "OMP_NUM_THREADS": "1"}
    cfg = tmp_path / "ddp.yaml"
    cfg.write_text("name: ddp\n")
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "synthmed", "train", str(cfg), "--runs-dir", str(runs), "--no-progress",
           "--set", f"data.path={phantom_dataset}", "--set", f"model.name={model}",
           "--set", "model.base_width=8", "--set", "model.latent_dim=16", "--set", "name=ddp",
           "--set", "train.batch_size=8", "--set", "train.steps=4", "--set", "train.log_every=2",
           "--set", "train.sample_every=2", "--set", "train.checkpoint_every=2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    made = list(runs.iterdir())
    assert [r.name for r in made] == ["00000-ddp"], "rank 0 alone creates the run directory"
    run = made[0]
    state = load_checkpoint(run / "checkpoints" / "latest.pt")
    assert state["step"] == 4
    assert all(torch.isfinite(v).all() for v in state["generator"].values()
               if v.is_floating_point())
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [2, 4], "one metrics line per interval, not per rank"
    env_json = json.loads((run / "env.json").read_text())
    assert env_json["device"] == "cpu"


@pytest.mark.slow
def test_two_processes_stop_together_on_a_diverged_loss(tmp_path, phantom_dataset):
    """Issue 19: the divergence check is agreed between ranks (a one-int all-reduce), so no rank
    waits forever in a collective that a stopped rank never joins."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"),
           "OMP_NUM_THREADS": "1"}
    cfg = tmp_path / "ddp.yaml"
    cfg.write_text("name: ddp\n")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "synthmed", "train", str(cfg), "--runs-dir", str(tmp_path / "runs"),
           "--no-progress", "--set", f"data.path={phantom_dataset}", "--set", "model.name=cgan",
           "--set", "model.base_width=8", "--set", "model.latent_dim=8",
           "--set", "train.batch_size=8", "--set", "train.steps=30", "--set", "train.log_every=1",
           "--set", "train.lr_g=1e10", "--set", "train.lr_d=1e10"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode != 0
    assert "training diverged at step" in proc.stderr, proc.stderr[-3000:]
