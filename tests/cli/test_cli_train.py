"""`synthmed train` / `generate` from the command line: bad input is one line, exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")


def synthmed(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "synthmed", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=180)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.fixture
def config(tmp_path, phantom_dataset) -> Path:
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(f"name: cli\ndata:\n  path: {phantom_dataset}\nmodel:\n  name: dcgan\n"
                   "  base_width: 8\n  latent_dim: 8\ntrain:\n  batch_size: 8\n  steps: 2\n"
                   "  log_every: 1\n  num_threads: 1\n")
    return cfg


@pytest.mark.parametrize("override,expected", [
    ("train.lr_g=fast", "train.lr_g: expected a number, got 'fast'"),
    ("train.lr=1e-4", "train.lr: unknown key"),
    ("model.name=dcgn", "model.name: unknown model 'dcgn'; choose one of acgan, cgan, dcgan"),
    ("model.image_size=8", "model.image_size"),
    ("model.loss=l2", "model.loss: unknown loss 'l2'"),
    ("model.diffaugment=rotate", "model.diffaugment"),
    ("train.batch_size=0", "train.batch_size"),
    ("train.device=tpu", "train.device"),
    ("data.path=/no/such/dir", "data.path: /no/such/dir does not exist"),
    ("train", "--set 'train': expected key.path=value"),
])
def test_bad_config_values_are_one_line_errors(config, tmp_path, override, expected):
    line = one_line_error(synthmed("train", str(config), "--set", override,
                                   "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path))
    assert expected in line
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_bad_config_files(tmp_path):
    line = one_line_error(synthmed("train", "missing.yaml", cwd=tmp_path))
    assert "missing.yaml: config file not found" in line
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    assert "not valid YAML" in one_line_error(synthmed("train", str(bad), cwd=tmp_path))
    nested = tmp_path / "nested.yaml"
    nested.write_text("train:\n  optimizer:\n    lr: 1\n")
    assert "train.optimizer: unknown key" in one_line_error(synthmed("train", str(nested),
                                                                     cwd=tmp_path))


def test_train_then_generate_end_to_end(config, tmp_path):
    proc = synthmed("train", str(config), "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    run = tmp_path / "runs" / "00000-cli"
    assert (run / "checkpoints" / "latest.pt").is_file()
    assert "runs/00000-cli" in proc.stdout
    proc = synthmed("generate", str(run), "--n", "4", "--out", "syn", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / "syn" / "images").glob("*.png"))) == 4
    again = synthmed("generate", str(run), "--n", "4", "--out", "syn", cwd=tmp_path)
    assert "--force" in one_line_error(again)
    line = one_line_error(synthmed("generate", str(run), "--per-class", "2", "--out", "x",
                                   cwd=tmp_path))
    assert "unconditional" in line
    line = one_line_error(synthmed("generate", str(tmp_path), "--n", "2", "--out", "y",
                                   cwd=tmp_path))
    assert "checkpoint not found" in line


def test_resume_with_the_config_as_the_issue_writes_it(config, tmp_path):
    """`synthmed train CONFIG --resume RUN_DIR`: the same experiment may run longer; a different
    experiment is refused (one line naming the key) and the run is left untouched."""
    assert synthmed("train", str(config), "--no-progress", cwd=tmp_path).returncode == 0
    run = tmp_path / "runs" / "00000-cli"
    proc = synthmed("train", str(config), "--resume", str(run), "--set", "train.steps=3",
                    "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["00000-cli"]
    assert "resumed at step 2" in (run / "log.txt").read_text()
    assert (run / "checkpoints" / "step-00000003.pt").is_file()
    before = (run / "checkpoints" / "latest.pt").read_bytes()
    line = one_line_error(synthmed("train", str(config), "--resume", str(run), "--set",
                                   "model.latent_dim=16", "--set", "train.steps=5",
                                   cwd=tmp_path))
    assert line.startswith("error: model.latent_dim: differs from the run being resumed")
    assert (run / "checkpoints" / "latest.pt").read_bytes() == before
    line = one_line_error(synthmed("train", "--resume", str(run), "--set", "train.lr_g=1",
                                   cwd=tmp_path))
    assert line.startswith("error: train.lr_g: differs from the run being resumed")
