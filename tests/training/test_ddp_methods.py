"""ddpm, vae and pix2pix under DDP (2 gloo CPU processes via torchrun), as the GANs are tested in
test_ddp.py; and the logged losses are the mean over the ranks, not rank 0's alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from synthmed.training.checkpoint import load_checkpoint

TINY = {  # as tests/training/conftest.py
    "ddpm": ["model.channels=[8,16]", "model.diffusion_steps=100", "model.sample_steps=2"],
    "vae": ["model.channels=[8,16]", "model.latent_dim=8"],
    "pix2pix": ["model.base_width=4", "model.image_size=64"],
}
SRC = str(Path(__file__).resolve().parents[2] / "src")

# Trains through the library with each rank's local interval means written beside the run, so
# the test can check that metrics.jsonl holds their average.
CHILD = textwrap.dedent("""
    import json, os, sys
    from synthmed.training import progress, train
    rank = int(os.environ["RANK"])
    local = []
    record = progress.LossMeter.record

    def spy(self, step, images_per_step):
        local.append({k: float(v / max(self.n, 1)) for k, v in self.sums.items()})
        return record(self, step, images_per_step)

    progress.LossMeter.record = spy
    out, runs, overrides = sys.argv[1], sys.argv[2], sys.argv[3:]
    train(None, overrides=overrides, runs_dir=runs, progress=False)
    json.dump(local, open(f"{out}/local-{rank}.json", "w"))
""")


@pytest.mark.slow
@pytest.mark.parametrize("model", ["ddpm", "vae", "pix2pix"])
def test_two_process_gloo_training_of_every_method(tmp_path, phantom_dataset, model):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    runs = tmp_path / "runs"
    overrides = [f"data.path={phantom_dataset}", f"model.name={model}", "name=ddp",
                 "train.batch_size=8", "train.steps=4", "train.log_every=2",
                 "train.sample_every=2", "train.checkpoint_every=2", "train.device=cpu",
                 *TINY[model]]
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(script), str(tmp_path), str(runs), *overrides]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=400)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    made = list(runs.iterdir())
    assert [r.name for r in made] == ["00000-ddp"], "rank 0 alone creates the run directory"
    state = load_checkpoint(made[0] / "checkpoints" / "latest.pt")
    assert state["step"] == 4 and state["world_size"] == 2
    net = {"ddpm": "unet", "vae": "vae", "pix2pix": "generator"}[model]
    assert all(torch.isfinite(v).all() for v in state[net].values() if v.is_floating_point())
    recs = [json.loads(x) for x in (made[0] / "metrics.jsonl").read_text().splitlines()
            if "img_per_s" in x]
    assert [r["step"] for r in recs] == [2, 4], "one metrics line per interval, not per rank"
    local = [json.loads((tmp_path / f"local-{r}.json").read_text()) for r in (0, 1)]
    losses = [k for k in recs[0] if k.startswith("loss_")]
    assert losses and all(k in local[0][0] for k in losses)
    differ = False
    for i, rec in enumerate(recs):
        for k in losses:
            a, b = local[0][i][k], local[1][i][k]
            differ |= a != b
            assert rec[k] == pytest.approx((a + b) / 2, rel=1e-5), (k, rec[k], a, b)
    assert differ, "the ranks saw different batches, so rank 0's value alone would fail"
