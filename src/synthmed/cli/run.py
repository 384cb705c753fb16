"""``synthmed run CONFIG.yaml`` (the whole pipeline) and ``synthmed report RUN_DIR``."""

from __future__ import annotations

from pathlib import Path

import typer

from synthmed.cli import app, console

_FROM = "Re-run this stage and every later one: import, train, generate, evaluate, utility, report."


def _say(message: str) -> None:
    console.print(message, markup=False, highlight=False, soft_wrap=True)


@app.command("run")
def run_cmd(
    config: Path = typer.Argument(..., help="Experiment YAML with a pipeline section."),
    set_: list[str] = typer.Option([], "--set", help="Override a key: --set data.path=DIR"),
    run_dir: Path = typer.Option(None, "--run-dir", help="Run directory (default runs/NAME)."),
    from_stage: str = typer.Option(None, "--from", help=_FROM),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
) -> None:
    """Images to report in one command; re-running skips finished stages and resumes training."""
    from synthmed.pipeline import run

    path = run(config, overrides=set_, run_dir=run_dir, from_stage=from_stage,
               progress=not no_progress, echo=_say)
    report = path / "report.html"
    if report.is_file():
        console.print(f"report: {report}", markup=False, highlight=False, soft_wrap=True)
        console.print(f"open it in a browser: xdg-open {report}  (macOS: open {report})",
                      markup=False, highlight=False, soft_wrap=True)
    console.print(f"run directory: {path}", markup=False, highlight=False, soft_wrap=True)
    console.print(f"your own images (one subfolder per class): synthmed run {config} --set "
                  "pipeline.source=FOLDER --run-dir runs/mine  (docs/report.md)",
                  markup=False, highlight=False, soft_wrap=True)


@app.command("report")
def report_cmd(
    run_dir: Path = typer.Argument(..., help="A `synthmed run` directory."),
) -> None:
    """Write RUN_DIR/report.html: one self-contained page from the run directory's files."""
    from synthmed.report import build_report

    path = build_report(run_dir)
    console.print(f"report: {path}", markup=False, highlight=False, soft_wrap=True)
