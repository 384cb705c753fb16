"""The HTML report of a ``synthmed run`` directory: one self-contained page (images embedded),
rendered with Jinja2 from the run directory's files only; see docs/report.md."""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path

from synthmed import __version__
from synthmed.errors import SynthmedError
from synthmed.fileio import atomic_write_text

__all__ = ["build_report", "render_report"]


def render_report(run_dir: str | os.PathLike) -> str:
    """The report's HTML text for ``run_dir``."""
    import jinja2

    from synthmed.report import collect, results

    rd = Path(run_dir)
    if not rd.is_dir():
        raise SynthmedError(f"{rd}: run directory not found; pass a `synthmed run` directory")
    if not (rd / "stages").is_dir():
        raise SynthmedError(f"{rd}: not a `synthmed run` directory (no stages/); run "
                            "`synthmed run CONFIG.yaml` first")
    st = collect.stages(rd)
    data = collect.dataset_section(rd)
    training = collect.training_section(rd, st)
    env = (training or {}).get("env") or collect.read_json(rd / "env.json") or {}
    ctx = {
        "run_dir": str(rd), "title": None, "data": data, "training": training,
        "synthetic": collect.synthetic_section(rd, st, data),
        "metrics": results.metrics_section(rd, st),
        "utility": results.utility_section(rd, st),
        "about": results.about_section(rd, st, env),
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "version": __version__, "fmt": results.fmt,
        # stages left out of pipeline.stages whose inputs changed (their outputs are stale)
        "stale": [w.removeprefix("warning: ") for w in
                  (collect.read_json(rd / "run.json") or {}).get("warnings") or []],
    }
    env_j = jinja2.Environment(loader=jinja2.PackageLoader("synthmed.report", "templates"),
                               autoescape=True, trim_blocks=True, lstrip_blocks=True,
                               undefined=jinja2.StrictUndefined)
    return env_j.get_template("report.html.j2").render(**ctx)


def build_report(run_dir: str | os.PathLike) -> Path:
    """Write ``RUN_DIR/report.html`` and return its path."""
    html = render_report(run_dir)
    out = Path(run_dir) / "report.html"
    atomic_write_text(out, html)
    return out
