"""Run directories: numbered, never overwritten, with env.json and append-only metrics."""

from __future__ import annotations

import json

import pytest

from synthmed.config import load_config
from synthmed.errors import SynthmedError
from synthmed.runs import Run, create_run_dir, env_info


def test_numbering_and_never_overwritten(tmp_path):
    a = create_run_dir(tmp_path, "dcgan phantom!")
    b = create_run_dir(tmp_path, "dcgan phantom!")
    assert a.name == "00000-dcgan-phantom" and b.name == "00001-dcgan-phantom"
    (tmp_path / "00007-old").mkdir()
    (tmp_path / "notes").mkdir()
    assert create_run_dir(tmp_path, "x").name == "00008-x"
    assert create_run_dir(tmp_path, "///").name == "00009-run"
    assert create_run_dir(tmp_path, "x" * 400).name == "00010-" + "x" * 100  # < NAME_MAX
    assert create_run_dir(tmp_path, "../..").parent == tmp_path


def test_run_files(tmp_path):
    cfg = load_config(overrides=["name=t"])
    run = Run.create(tmp_path, "t", cfg, device="cpu", seed=5)
    assert (run.path / "config.yaml").is_file() and (run.path / "log.txt").is_file()
    env = json.loads((run.path / "env.json").read_text())
    assert env["seed"] == 5 and env["device"] == "cpu"
    for key in ("python", "platform", "versions", "git_commit", "created", "argv"):
        assert key in env
    assert env["versions"]["torch"].startswith("2.13") and "numpy" in env["versions"]
    assert run.checkpoints == run.path / "checkpoints" and run.samples == run.path / "samples"


def test_metrics_append_only(tmp_path):
    run = Run.create(tmp_path, "m")
    assert run.read_metrics() == []
    run.log_metrics({"step": 1, "loss": 0.5})
    first = (run.path / "metrics.jsonl").read_text()
    run.log_metrics({"step": 2, "loss": 0.25})
    assert (run.path / "metrics.jsonl").read_text().startswith(first)
    assert [m["step"] for m in Run(run.path).read_metrics()] == [1, 2]
    run.log("hello")
    assert "hello" in (run.path / "log.txt").read_text()


def test_missing_run_and_env_info(tmp_path):
    with pytest.raises(SynthmedError, match="run directory not found"):
        Run(tmp_path / "nope")
    assert env_info()["seed"] is None
