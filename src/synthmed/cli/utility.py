"""``synthmed utility CONFIG.yaml [--set k=v ...] [--runs-dir DIR] [--seeds N] [--weights P]``."""

from __future__ import annotations

from pathlib import Path

import typer

from synthmed.cli import app, console


@app.command("utility")
def utility_cmd(
    config: Path = typer.Argument(..., help="Experiment YAML: data.path and a utility section."),
    set_: list[str] = typer.Option([], "--set", help="Override a key: --set utility.epochs=10"),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where run directories go."),
    seeds: int = typer.Option(None, "--seeds", help="Seeds per arm (overrides utility.seeds)."),
    weights: Path = typer.Option(None, "--weights",
                                 help="Local state-dict file for transfer learning (resnet18)."),
) -> None:
    """Downstream utility: one classifier/segmenter per arm and seed, scored on real test data.

    The arms are real, real+classic, real+classic+synthetic, the count-matched duplicate control
    and synthetic-only; see docs/utility.md."""
    from synthmed.config import load_config
    from synthmed.tasks.utility import run_utility

    overrides = list(set_)
    if seeds is not None:
        overrides.append(f"utility.seeds={seeds}")
    if weights is not None:
        overrides.append(f"utility.weights={weights}")
    cfg = load_config(config, overrides)
    run_dir = run_utility(cfg, runs_dir=runs_dir, log=lambda m: console.print(
        m, markup=False, highlight=False, soft_wrap=True))
    console.print(f"utility: {run_dir}  (utility.json, utility.csv, *.png)")
