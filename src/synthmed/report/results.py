"""Evaluation, utility and provenance sections of the report (see :mod:`.collect`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from synthmed.config import STAGES
from synthmed.report import figures as fg
from synthmed.report.collect import _outputs_path, read_json, verdict_lines

# (label, value key, interval keys, real-vs-real floor key, reading)
FIDELITY_ROWS = (
    ("FID", "fid", ("fid_ci_low", "fid_ci_high"), "fid_real_real",
     "distance between feature distributions; lower is better, the floor is real vs real"),
    ("relative FD", "relative_fd", None, None,
     "FID divided by the real-vs-real floor (see docs/metrics.md for what 1 means)"),
    ("KID", "kid_mean", ("kid_ci_low", "kid_ci_high"), "kid_real_real_mean",
     "unbiased at small n; lower is better"),
    ("precision", "precision", ("precision_ci_low", "precision_ci_high"), None,
     "share of synthetic images that look like some real image"),
    ("density", "density", ("density_ci_low", "density_ci_high"), None,
     "how tightly synthetic images sit among real ones (1 is typical of real)"),
)
DIVERSITY_ROWS = (
    ("recall", "recall", ("recall_ci_low", "recall_ci_high"), None,
     "share of real images that some synthetic image resembles"),
    ("coverage", "coverage", ("coverage_ci_low", "coverage_ci_high"), None,
     "share of real images with a synthetic neighbour nearby"),
    ("MS-SSIM", "ms_ssim", None, "ms_ssim_real",
     "similarity of random synthetic pairs; higher than real means less diverse"),
)
PRIVACY_ROWS = (
    ("copy rate (pixels)", "copy_rate", None, None,
     "synthetic images closer to a training image than held-out real ones usually are"),
    ("copy rate (features)", "copy_rate_features", None, None, "the same in feature space"),
    ("membership AUC", "membership_auc", None, None,
     "can an attacker tell training images from new patients? 0.5 = no"),
)


METRIC_LABELS = {"dice": "Dice", "iou": "IoU", "hd95": "HD95 (px)", "auc": "AUC"}


def fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1e-3 or abs(v) >= 1e4 else f"{v:.{digits}f}"
    return str(v)


def _rows(m: dict, spec) -> list[dict[str, str]]:
    out = []
    for label, key, ci, floor, reading in spec:
        if key not in m:
            continue
        lo, hi = (m.get(ci[0]), m.get(ci[1])) if ci else (None, None)
        out.append({"label": label, "value": fmt(m.get(key)),
                    "interval": f"[{fmt(lo)}, {fmt(hi)}]" if lo is not None and hi is not None
                    else "–", "floor": fmt(m.get(floor)) if floor else "–", "reading": reading})
    return out


def _interval(ci: Any) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return "–"
    return f"[{fmt(ci[0])}, {fmt(ci[1])}]"


def _sanity(sanity: Any) -> dict[str, Any] | None:
    if not isinstance(sanity, dict):
        return None
    rungs = [{"name": n, **{k: fmt(v) for k, v in r.items() if k != "passed"},
              "passed": r.get("passed")} for n, r in (sanity.get("rungs") or {}).items()]
    real = {k: fmt(v) for k, v in (sanity.get("real") or {}).items()}
    return {"passed": sanity.get("passed"), "rule": sanity.get("rule"), "rungs": rungs,
            "real": real, "reason": sanity.get("reason")}


def metrics_section(run_dir: Path, st: dict) -> dict[str, Any] | None:
    path = _outputs_path(run_dir, st, "evaluate", "metrics")
    m = read_json(path) if path else None
    if not m:
        return None
    ev = path.parent
    per_class = [{"name": c, **{k: fmt(row.get(k)) for k in
                                ("n_real", "n_synthetic", "fid", "fid_real_real", "precision",
                                 "recall", "coverage", "ms_ssim", "ms_ssim_real")}}
                 for c, row in (m.get("per_class") or {}).items()]
    conf = m.get("confidence")
    method = m.get("ci_method")
    if isinstance(method, dict):
        kinds = sorted({str(v) for v in method.values()})
        method = kinds[0] if len(kinds) == 1 else ", ".join(f"{k} {v}" for k, v in method.items())
    return {
        "verdict": verdict_lines(m.get("verdict")),
        "sanity": _sanity(m.get("sanity")),
        "interval_label": (f"{round(conf * 100)}% interval" if conf else "interval")
        + (f" ({method})" if method else ""),
        "fidelity": _rows(m, FIDELITY_ROWS), "diversity": _rows(m, DIVERSITY_ROWS),
        "privacy": _rows(m, PRIVACY_ROWS), "per_class": per_class,
        "extractor": m.get("extractor"), "n_real": m.get("n_real"),
        "n_synthetic": m.get("n_synthetic"), "n_train": m.get("n_train"),
        "warnings": m.get("warnings") or [],
        "pairs": fg.file_uri(ev / "closest_pairs.png"),
        "distances": fg.file_uri(ev / "nearest_distances.png"),
        "embedding": fg.embedding_uri(read_json(ev / "embedding.json") or {}),
    }


def _arm_rows(u: dict) -> list[dict[str, str]]:
    metric = u.get("primary_metric")
    extra = ("dice", "iou", "hd95") if u.get("task") == "segmentation" else \
        ("accuracy", "sensitivity", "specificity")
    keys = [metric] + [k for k in extra if k != metric]
    by = {}
    for s in u.get("summary") or []:
        by.setdefault((s["arm"], s["ratio"]), {})[s["metric"]] = s
    rows = []
    for (arm, ratio), vals in by.items():
        cells = []
        for k in keys:
            s = vals.get(k)
            if s is None:
                continue
            cells.append({"metric": k, "label": METRIC_LABELS.get(k, k), "mean": fmt(s.get("mean")),
                          "ci": _interval(s.get("ci95"))})
        rows.append({"arm": arm + (f" ×{ratio:g}" if ratio else ""), "n": vals[metric]["n"]
                     if metric in vals else "–", "cells": cells})
    return rows


def utility_section(run_dir: Path, st: dict) -> dict[str, Any] | None:
    path = _outputs_path(run_dir, st, "utility", "utility")
    u = read_json(path) if path else None
    if not u:
        return None
    metric = u.get("primary_metric")
    comps = [{"arm": c["arm"] + (f" ×{c['ratio']:g}" if c.get("ratio") else ""),
              "reference": c["reference"], "diff": fmt(c.get("mean_diff")),
              "ci": _interval(c.get("ci95")),
              "p": fmt(c.get("p")), "p_holm": fmt(c.get("p_holm")),
              "verdict": c.get("verdict") or "–"}
             for c in u.get("comparisons") or [] if c.get("metric") == metric]
    files = set(u.get("files") or [])
    return {"task": u.get("task"), "model": u.get("model"), "metric": metric,
            "seeds": u.get("seeds"), "arms": _arm_rows(u), "comparisons": comps,
            "lines": u.get("result_lines") or [],
            "headline": [x for x in u.get("result_lines") or [] if x.startswith("synthetic")]
            or (u.get("result_lines") or []), "warnings": u.get("warnings") or [],
            "roc": fg.file_uri(path.parent / "roc.png") if "roc.png" in files else None,
            "figure": fg.file_uri(path.parent / "utility.png")}


def _config_value(v: Any) -> str:
    """A config value as written in YAML (``0.0002``, ``0.5, 0.999``, ``size=64``), not JSON."""
    if v is None or v == {} or v == []:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, list):
        return ", ".join(_config_value(x) for x in v)
    if isinstance(v, dict):
        return "; ".join(f"{a}={_config_value(b)}" for a, b in v.items())
    return str(v)


def about_section(run_dir: Path, st: dict, env: dict) -> dict[str, Any]:
    cfg_path = run_dir / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) if cfg_path.is_file() else {}
    sections = [{"name": name, "rows": [(k, _config_value(v)) for k, v in body.items()]}
                for name, body in (cfg or {}).items() if isinstance(body, dict)]
    times = [{"stage": s, "seconds": fmt(m.get("seconds"), 3), "finished": m.get("finished")}
             for s, m in sorted(st.items(), key=lambda kv: STAGES.index(kv[0])
                                if kv[0] in STAGES else len(STAGES))]
    hardware = {"platform": env.get("platform"), "device": env.get("device"),
                "GPU": env.get("gpu"), "CPU threads": env.get("torch_threads"),
                "Python": env.get("python"), "git commit": env.get("git_commit")}
    return {"config": sections, "name": (cfg or {}).get("name"), "times": times,
            "versions": {k: v for k, v in (env.get("versions") or {}).items() if v},
            "hardware": {k: v for k, v in hardware.items() if v is not None},
            "seed": ((cfg or {}).get("train") or {}).get("seed")}
