"""Evaluation, utility and provenance sections of the report (see :mod:`.collect`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from synthmed.config import STAGES
from synthmed.report import figures as fg
from synthmed.report.collect import _outputs_path, read_json, verdict_lines

# (label, value key, interval keys, real-vs-real floor key, reading)
FIDELITY_ROWS = (
    ("FID", "fid", ("fid_ci_low", "fid_ci_high"), "fid_real_real",
     "distance between feature distributions, all images; lower is better; the floor compares "
     "two halves of the real reference images"),
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
    ("membership AUC (pixels)", "membership_auc", None, None,
     "can an attacker tell training images from new patients? 0.5 = no"),
    ("membership AUC (features)", "membership_auc_features", None, None,
     "the same in feature space (the verdict uses the worse of the two)"),
)


METRIC_LABELS = {"dice": "Dice", "iou": "IoU", "hd95": "HD95 (px)", "auc": "AUC",
                 "kappa_qw": "QW kappa"}
# Which numbers each ``ci_method`` entry gives intervals for (the note under the tables).
CI_LABELS = {"fid": "FID", "kid": "KID",
             "prdc": "precision, recall, density, coverage"}
# Per-class columns of the report whose dashes need a reason (metrics.json per_class.unreliable).
PER_CLASS_SHOWN = {"fid": "FID", "fid_real_real": "its real-vs-real floor",
                   "precision": "precision", "recall": "recall", "coverage": "coverage"}
# Bounded higher-is-better metrics; every seed of two compared arms at or above CEILING means the
# test set cannot show a difference between them (a ceiling effect), whatever the test says.
CEILING = 0.999
BOUNDED = {"auc", "accuracy", "balanced_accuracy", "sensitivity", "specificity", "f1", "dice",
           "iou"}


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


def _fidelity_rows(m: dict) -> list[dict[str, str]]:
    """FID's interval is for the bias-corrected FID (Richardson extrapolation to n = infinity,
    synthmed.metrics.stats), which can lie far below the plain FID at small n: show the value the
    interval belongs to on its own row, so the interval never seems to miss its number."""
    rows = _rows(m, FIDELITY_ROWS)
    if m.get("fid_matched") is not None:  # relative FD is not FID / floor at the full n
        for r in rows:
            if r["label"] == "relative FD":
                r["reading"] = (f"FID at the floor's image counts ({fmt(m['fid_matched'])}) "
                                "divided by the floor: 1 = as close as a second real sample of "
                                "that size, 2 = twice as far")
    if m.get("fid_corrected") is None or not rows or rows[0]["label"] != "FID":
        return rows
    corrected = {"label": "FID, bias-corrected", "value": fmt(m["fid_corrected"]),
                 "interval": rows[0]["interval"], "floor": "–",
                 "reading": "FID extrapolated to unlimited images, removing most of FID's "
                            "small-sample bias; the interval belongs to this value"}
    rows[0] = {**rows[0], "interval": "–"}
    return [rows[0], corrected, *rows[1:]]


def _interval_notes(method: Any) -> list[str]:
    """One short line per interval method: which numbers, calibrated or not, how."""
    if isinstance(method, str):
        return [method]
    out = []
    for key, text in (method or {}).items():
        text = str(text)
        calibrated = "calibrated" in text and "not calibrated" not in text
        how = re.sub(r",?\s*not calibrated|\s*\(calibrated\)", "", text).strip()
        out.append(f"{CI_LABELS.get(key, key)}: {'calibrated' if calibrated else 'not calibrated'}"
                   f" — {how}")
    return out


def _needed(reason: str) -> int | None:
    """Real test images a per-class number needs, from its ``unreliable`` reason
    (synthmed.metrics.compare.small_n_reasons: "N real images < NEED ...", or "floor halves of
    N images < feature dimension D", which needs 2 D)."""
    hit = re.search(r"<\D*?(\d+)", reason)
    if not hit:
        return None
    return int(hit.group(1)) * (2 if reason.startswith("floor halves") else 1)


def _per_class_reasons(per_class: dict) -> dict[str, Any] | None:
    """Why per-class cells are dashes: the real test images each number needs, and how many each
    class has."""
    need: dict[str, int] = {}
    raw: list[str] = []
    short = {}
    for name, row in per_class.items():
        why = {k: v for k, v in (row.get("unreliable") or {}).items() if k in PER_CLASS_SHOWN}
        if why:
            short[name] = row.get("n_real")
        for k, reason in why.items():
            n = _needed(str(reason))
            if n is None:
                raw.append(f"{name}, {PER_CLASS_SHOWN[k]}: {reason}")
            else:
                need[k] = max(n, need.get(k, 0))
    if not short:
        return None
    by_n: dict[int, list[str]] = {}
    for k in PER_CLASS_SHOWN:
        if k in need:
            by_n.setdefault(need[k], []).append(PER_CLASS_SHOWN[k])
    parts = [f"{', '.join(labels)} {n:,}" for n, labels in by_n.items()]
    return {"needed": "; ".join(parts), "raw": raw,
            "classes": ", ".join(f"{c} has {fmt(n)}" for c, n in short.items())}


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


def _realism(m: dict, ev: Path) -> dict[str, Any] | None:
    r = m.get("realism")
    if not isinstance(r, dict) or r.get("auc") is None:
        return None
    auc = r["auc"]
    reading = ("A machine barely tells them apart." if auc <= 0.65 else
               "A machine tells many of them apart." if auc <= 0.85 else
               "A machine tells them apart easily: see the least real-looking images below.")
    return {"auc": fmt(auc), "interval": _interval([r.get("auc_ci_low"), r.get("auc_ci_high")]),
            "floor": fmt((r.get("floor") or {}).get("auc")), "p_value": fmt(r.get("p_value")),
            "reading": reading,
            "per_class": [{"name": c, "auc": fmt(v.get("auc"))}
                          for c, v in (r.get("per_class") or {}).items()],
            "most": fg.file_uri(ev / "most_real.png"), "least": fg.file_uri(ev / "least_real.png")}


def _spectral(m: dict, ev: Path) -> dict[str, Any] | None:
    s = m.get("spectral")
    if not isinstance(s, dict):
        return None
    return {"distance": fmt(s.get("distance")), "floor": fmt(s.get("distance_floor")),
            **{k: fmt(10 ** s[k]) if isinstance(s.get(k), (int, float)) else "–"
               for k in ("checkerboard", "half_nyquist")},
            **{f"{k}_range": f"{fmt(10 ** -s[f'{k}_real_range'])}x to "
               f"{fmt(10 ** s[f'{k}_real_range'])}x"
               if isinstance(s.get(f"{k}_real_range"), (int, float)) else "–"
               for k in ("checkerboard", "half_nyquist")},
            "artefacts": s.get("artefacts") or [], "plot": fg.file_uri(ev / "spectrum.png")}


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
    return {
        "verdict": verdict_lines(m.get("verdict")),
        "sanity": _sanity(m.get("sanity")),
        "interval_label": f"{round(conf * 100)}% interval" if conf else "interval",
        "interval_notes": _interval_notes(m.get("ci_method")),
        "per_class_reasons": _per_class_reasons(m.get("per_class") or {}),
        "real_split": (m.get("real") or {}).get("split") or "test",
        "fidelity": _fidelity_rows(m), "diversity": _rows(m, DIVERSITY_ROWS),
        "privacy": _rows(m, PRIVACY_ROWS), "per_class": per_class,
        "extractor": m.get("extractor"), "n_real": m.get("n_real"),
        "n_synthetic": m.get("n_synthetic"), "n_train": m.get("n_train"),
        "warnings": [w.replace("(reasons under per_class.<class>.unreliable)",
                               "(see the note under the per-class table)")
                     for w in m.get("warnings") or []],
        "realism": _realism(m, ev), "spectral": _spectral(m, ev),
        "labels": label_rows(m.get("label_consistency"), m),
        "pairs": fg.file_uri(ev / "closest_pairs.png"),
        "distances": fg.file_uri(ev / "nearest_distances.png"),
        "embedding": fg.embedding_uri(read_json(ev / "embedding.json") or {}),
    }


def label_rows(lc: dict | None, m: dict) -> dict[str, Any] | None:
    """Label consistency of a pair set (metrics.json ``label_consistency``) as report rows:
    the segmenter's Dice / IoU / lesions found on the synthetic pairs beside the real test
    slices, overall and per edit applied, with the memorization audit beside it (the two are
    traded against each other: a generator that copies its source patient follows masks best)."""
    if not lc:
        return None
    rows = [{"name": "all pairs", "n": fmt(lc["synthetic"]["n"], 0),
             **{k: fmt(lc["synthetic"][k]) for k in ("dice", "iou", "detection_rate")}},
            {"name": "real test slices", "n": fmt(lc["real_test"]["n"], 0),
             **{k: fmt(lc["real_test"][k]) for k in ("dice", "iou", "detection_rate")}}]
    for name, s in (lc.get("by_edit") or {}).items():
        rows.append({"name": f"edit: {name}", "n": fmt(s["n"], 0),
                     **{k: fmt(s[k]) for k in ("dice", "iou", "detection_rate")}})
    seg = lc.get("segmenter") or {}
    return {"ratio": fmt(lc.get("dice_ratio")), "rows": rows,
            "detect_fraction": fmt(lc.get("detect_fraction"), 2),
            "privacy": ", ".join(f"{label} {fmt(m.get(k))}" for label, k in (
                ("membership AUC pixels", "membership_auc"),
                ("features", "membership_auc_features"), ("copy rate pixels", "copy_rate"),
                ("features", "copy_rate_features"))),
            "segmenter": f"{seg.get('arch')} seed {seg.get('seed')}, val Dice "
                         f"{fmt(seg.get('val_dice'))}"}


def _arm_rows(u: dict) -> list[dict[str, str]]:
    metric = u.get("primary_metric")
    extra = ("dice", "iou", "hd95") if u.get("task") == "segmentation" else \
        ("accuracy", "sensitivity", "specificity", "kappa_qw")
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


def _per_class_rows(u: dict) -> list[dict[str, Any]]:
    """Per arm and class: one-vs-rest sensitivity and specificity on test, mean over seeds (the
    headline numbers of a multi-class study are macro averages of these)."""
    names = (u.get("dataset") or {}).get("class_names") or []
    if u.get("task") == "segmentation" or len(names) < 3:
        return []
    acc: dict[tuple[str, str], dict[str, list[float]]] = {}
    for r in u.get("runs") or []:
        for cls, vals in ((r.get("test") or {}).get("per_class") or {}).items():
            cell = acc.setdefault((_arm_name(r["arm"], r.get("ratio")), cls), {})
            for k in ("sensitivity", "specificity"):
                if isinstance(vals.get(k), (int, float)):
                    cell.setdefault(k, []).append(float(vals[k]))
    keys = ("sensitivity", "specificity")
    return [{"arm": arm, "cls": cls,
             **{k: fmt(sum(d[k]) / len(d[k])) if d.get(k) else "–" for k in keys}}
            for (arm, cls), d in acc.items()]


def _arm_name(arm: str, ratio: Any) -> str:
    return arm + (f" ×{ratio:g}" if ratio else "")


def _at_ceiling(u: dict, metric: str) -> tuple[set[tuple[str, float]], list[float]]:
    """The (arm, ratio) pairs whose every seed scores ``metric`` >= CEILING, and all runs'
    values: a paired test between two such arms cannot show a difference (a ceiling effect)."""
    values: dict[tuple[str, float], list[float]] = {}
    for r in u.get("runs") or []:
        v = (r.get("test") or {}).get(metric)
        if isinstance(v, (int, float)):
            values.setdefault((r["arm"], float(r.get("ratio") or 0)), []).append(float(v))
    top = {k for k, vals in values.items() if vals and min(vals) >= CEILING}
    return top, [v for vals in values.values() for v in vals]


def _ceiling_line(arms: list[str], label: str, every: list[float]) -> str:
    spread = (f" (all arms: {fmt(min(every))} to {fmt(max(every))})"
              if every and min(every) < CEILING else "")
    names = arms[0] if len(arms) == 1 else f"{', '.join(arms[:-1])} and {arms[-1]}"
    return (f"Ceiling: {names} score {label} \u2265 {CEILING} on every seed{spread}, "
            "so the task is too easy for this test set to show whether synthetic data helps (a "
            "ceiling effect); "
            "the comparisons between these arms carry no information. A harder task or a "
            "larger, more varied real test set is needed to see a difference.")


def _comparisons(u: dict, metric: str) -> tuple[list[dict[str, str]], str | None]:
    """The primary metric's paired comparisons, a comparison between two saturated arms called
    a ceiling, and the plain line saying so (None when no compared arms saturate)."""
    top, every = _at_ceiling(u, metric) if metric in BOUNDED else (set(), [])
    label = METRIC_LABELS.get(metric, metric)
    comps, capped = [], []
    for c in u.get("comparisons") or []:
        if c.get("metric") != metric:
            continue
        pair = [(c["arm"], float(c.get("ratio") or 0)),
                (c["reference"], float(c.get("reference_ratio") or 0))]
        ceiling = all(p in top for p in pair)
        if ceiling:
            capped += [_arm_name(*p) for p in pair if _arm_name(*p) not in capped]
        comps.append({"arm": _arm_name(c["arm"], c.get("ratio")), "reference": c["reference"],
                      "diff": fmt(c.get("mean_diff")), "ci": _interval(c.get("ci95")),
                      "p": fmt(c.get("p")), "p_holm": fmt(c.get("p_holm")),
                      "verdict": f"ceiling: both arms at {label} \u2265 {CEILING} on every seed"
                      if ceiling else c.get("verdict") or "–"})
    return comps, (_ceiling_line(capped, label, every) if capped else None)


def utility_section(run_dir: Path, st: dict) -> dict[str, Any] | None:
    path = _outputs_path(run_dir, st, "utility", "utility")
    u = read_json(path) if path else None
    if not u:
        return None
    metric = u.get("primary_metric")
    comps, ceiling = _comparisons(u, metric)
    files = set(u.get("files") or [])
    return {"task": u.get("task"), "model": u.get("model"), "metric": metric,
            "seeds": u.get("seeds"), "arms": _arm_rows(u), "comparisons": comps,
            "ceiling": ceiling, "per_class": _per_class_rows(u),
            "definitions": [f"{k}: {v}" for k, v in (u.get("metric_definitions") or {}).items()],
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
