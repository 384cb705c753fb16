"""Files of a utility run besides utility.json: utility.csv, confusion.csv and the figures."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from synthmed.fileio import atomic_write_text
from synthmed.tasks import plots

CSV_HEADER = ("arm", "ratio", "seed", "metric", "value")


def csv_rows(records: list[dict[str, Any]], metrics: tuple[str, ...]) -> list[list[Any]]:
    """utility.csv rows: headline metrics, per-class values as ``metric[class]``, threshold."""
    out = []
    for r in records:
        base = [r["arm"], r["ratio"], r["seed"]]
        out.extend([*base, m, r["test"][m]] for m in metrics)
        for cls, vals in r["test"].get("per_class", {}).items():
            out.extend([*base, f"{m}[{cls}]", v] for m, v in vals.items())
        if r.get("threshold") is not None:
            out.append([*base, "threshold", r["threshold"]])
    return out


def write_csv(path: Path, rows: list[list[Any]], header: tuple[str, ...] = CSV_HEADER) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def jsonable(obj: Any) -> Any:
    """NaN/inf -> null and numpy scalars -> Python, so utility.json is strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    return obj


def group_records(records: list[dict[str, Any]]) -> dict[tuple[str, float], list[dict[str, Any]]]:
    """Records by (arm, ratio), in the order first seen."""
    out: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for r in records:
        out.setdefault((r["arm"], r["ratio"]), []).append(r)
    return out


def write_figures(path: Path, records: list[dict[str, Any]], summary: list[dict[str, Any]], *,
                  task: str, metric: str, class_names: list[str]) -> list[str]:
    """utility.png, and for classification roc.png, confusion.png and confusion.csv."""
    groups = group_records(records)
    sums = {(s["arm"], s["ratio"]): s for s in summary if s["metric"] == metric}
    plots.plot_metric({k: [r["test"][metric] for r in v] for k, v in groups.items()}, sums,
                      metric, path / "utility.png")
    files = ["utility.png"]
    if task == "classification":
        plots.plot_roc(groups, path / "roc.png")
        cms = {k: np.sum([r["test"]["confusion"] for r in v], axis=0) for k, v in groups.items()}
        plots.plot_confusion(cms, class_names, path / "confusion.png")
        rows = [[r["arm"], r["ratio"], r["seed"], class_names[i], class_names[j], v]
                for r in records for (i, j), v in np.ndenumerate(np.array(r["test"]["confusion"]))]
        write_csv(path / "confusion.csv", rows,
                  ("arm", "ratio", "seed", "true", "predicted", "count"))
        files += ["roc.png", "confusion.png", "confusion.csv"]
    return files
