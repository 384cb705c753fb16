"""``synthmed train CONFIG.yaml [--set k=v ...] [--resume RUN_DIR]``."""

from __future__ import annotations

from pathlib import Path

import typer

from synthmed.cli import app, console
from synthmed.errors import ConfigError, SynthmedError


@app.command("train")
def train_cmd(
    config: Path = typer.Argument(None, help="Experiment YAML (optional with --resume, which "
                                "otherwise continues the run's saved config)."),
    set_: list[str] = typer.Option([], "--set", help="Override a key: --set train.lr_g=1e-4"),
    resume: Path = typer.Option(None, "--resume",
                                help="Continue RUN_DIR from its latest checkpoint."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where run directories go."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
) -> None:
    """Train a generator (model.name: dcgan, acgan, cgan, ddpm, ddpm-mask, vae, pix2pix) and write a
    run directory."""
    from synthmed.training import train

    if config is None and resume is None:
        raise ConfigError("train: give a CONFIG.yaml (or --resume RUN_DIR)")
    if resume is not None and not (resume / "checkpoints" / "latest.pt").is_file():
        # The library's hint names generate's --checkpoint, which train does not have.
        raise SynthmedError(f"{resume / 'checkpoints' / 'latest.pt'}: no checkpoint to resume "
                            "from; --resume takes a run directory that has saved one (e.g. "
                            "runs/00001-name), or start a new run with CONFIG.yaml")
    run_dir = train(config, overrides=set_, runs_dir=runs_dir, resume=resume,
                    progress=not no_progress)
    if run_dir is not None:
        made = [name for name, path in (("checkpoints/latest.pt", "checkpoints/latest.pt"),
                                        ("samples/", "samples"), ("metrics.jsonl", "metrics.jsonl"))
                if _exists(Path(run_dir) / path)]
        console.print(f"run: {run_dir}" + (f"  ({', '.join(made)})" if made else ""))


def _exists(path: Path) -> bool:
    """A file, or a folder with something in it (the final message names only real outputs)."""
    return path.is_file() or (path.is_dir() and any(path.iterdir()))
