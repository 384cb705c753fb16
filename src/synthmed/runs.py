"""Run directories: ``runs/NNNNN-name/``, never overwritten.

Each holds the resolved ``config.yaml``, ``env.json`` (versions, git commit, device, seed),
``log.txt`` and an append-only ``metrics.jsonl``; training adds samples and checkpoints.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from synthmed.config import save_config
from synthmed.errors import SynthmedError
from synthmed.fileio import atomic_write_json

_RUN_RE = re.compile(r"^(\d{5})-")
_PACKAGES = ("synthmed", "torch", "monai", "numpy", "pydantic", "scipy", "scikit-learn",
             "pydicom", "nibabel", "pillow")


def create_run_dir(runs_dir: str | os.PathLike, name: str) -> Path:
    """Make ``runs_dir/NNNNN-name`` with the next free number; never reuses an existing one."""
    root = Path(runs_dir)
    root.mkdir(parents=True, exist_ok=True)
    safe = (re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "run")[:100]  # < NAME_MAX
    numbers = [int(m.group(1)) for p in root.iterdir() if (m := _RUN_RE.match(p.name))]
    n = max(numbers, default=-1) + 1
    while True:
        path = root / f"{n:05d}-{safe}"
        try:
            path.mkdir()
            return path
        except FileExistsError:  # another process took it: try the next number
            n += 1


def git_commit(cwd: str | os.PathLike | None = None) -> str | None:
    """The commit of the checkout synthmed runs from (or ``cwd``), '+dirty' if modified."""
    where = cwd or Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def env_info(device: str | None = None, seed: int | None = None) -> dict[str, Any]:
    """Versions, platform, git commit, device and seed: what a paper's methods section needs."""
    versions = {}
    for pkg in _PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    info: dict[str, Any] = {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "argv": sys.argv,
        "versions": versions,
        "git_commit": git_commit(),
        "device": device,
        "seed": seed,
    }
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.version.cuda
        if device and str(device).startswith("cuda") and torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    except ImportError:  # pragma: no cover - torch is a core dependency
        pass
    return info


class Run:
    """A run directory and its append-only logs."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise SynthmedError(f"{self.path}: run directory not found")

    @classmethod
    def create(cls, runs_dir: str | os.PathLike, name: str, cfg: BaseModel | None = None,
               *, device: str | None = None, seed: int | None = None) -> Run:
        run = cls(create_run_dir(runs_dir, name))
        if cfg is not None:
            save_config(cfg, run.path / "config.yaml")
        atomic_write_json(run.path / "env.json", env_info(device=device, seed=seed))
        (run.path / "metrics.jsonl").touch()
        run.log(f"run directory {run.path}")
        return run

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def samples(self) -> Path:
        return self.path / "samples"

    def log(self, message: str) -> None:
        stamp = _dt.datetime.now().isoformat(timespec="seconds")
        with open(self.path / "log.txt", "a", encoding="utf-8") as f:
            f.write(f"{stamp} {message}\n")

    def log_metrics(self, record: dict[str, Any]) -> None:
        """Append one JSON line and flush it, so a killed run keeps every line written so far."""
        with open(self.path / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record, default=float) + "\n")
            f.flush()

    def read_metrics(self) -> list[dict[str, Any]]:
        path = self.path / "metrics.jsonl"
        if not path.exists():
            return []
        lines = path.read_text(encoding="utf-8").splitlines()
        return [json.loads(x) for x in lines if x.strip()]
