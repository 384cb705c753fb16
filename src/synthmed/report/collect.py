"""Read a ``synthmed run`` directory into the plain values the report template shows.

Only files inside the run directory are read. Keys other stages may not have written (the
evaluation ``verdict`` and the extractor ``sanity`` ladder are newer than some runs) are optional:
absent ones become ``None`` and the page says "not available in this run".
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from synthmed.report import figures as fg

RATINGS = ("good", "borderline", "poor")
ESTIMATE_RE = re.compile(r"\d{4}-\S+ (estimate: .*)$")
SHORT_RE = re.compile(r"\d{4}-\S+ (stopped at step .* needs .*)$")
END_RE = re.compile(r"\d{4}-\S+ ((finished|stopped by \S+) at step \d+.*)$")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def stages(run_dir: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for p in sorted((run_dir / "stages").glob("*.json")):
        m = read_json(p)
        if isinstance(m, dict) and "stage" in m:
            out[m["stage"]] = m
    return out


def _outputs_path(run_dir: Path, st: dict, stage: str, key: str) -> Path | None:
    rel = (st.get(stage) or {}).get("outputs", {}).get(key)
    return run_dir / rel if rel else None


def dataset_section(run_dir: Path) -> dict[str, Any] | None:
    summary = read_json(run_dir / "data" / "summary.json")
    if not summary:
        return None
    classes = list(summary.get("classes") or {})
    by_split = summary.get("class_counts_by_split") or {}
    rows = [{"split": s, "n": summary["splits"].get(s, 0),
             "classes": [by_split.get(s, {}).get(c, 0) for c in classes]}
            for s in ("train", "val", "test") if s in summary.get("splits", {})]
    pre = {k: v for k, v in (summary.get("preprocessing") or {}).items() if v not in (None, {})}
    samples = []
    npz = run_dir / "data" / "real_samples.npz"
    if npz.is_file():
        with np.load(npz) as z:
            imgs, labels, names = z["images"], z["labels"], [str(c) for c in z["class_names"]]
            masks = z["masks"] if "masks" in z.files else None
        for k, name in enumerate(names or [""]):
            sel = labels == k if names else np.ones(len(imgs), bool)
            samples.append({"name": name or "all", "uri": fg.grid_uri(imgs[sel], scale=3),
                            "uri4": fg.grid_uri(imgs[sel], cols=4, scale=3),
                            "pairs": fg.pairs_uri(masks[sel][:4], imgs[sel][:4])
                            if masks is not None else None})
    groups = str((summary.get("split") or {}).get("groups") or "")
    return {"summary": summary, "classes": classes, "rows": rows, "preprocessing": pre,
            "samples": samples, "size": summary.get("size"), "source": summary.get("source"),
            "no_patient_ids": groups.startswith("each image is its own group")}


def _log_lines(path: Path, pattern: re.Pattern) -> list[str]:
    if not path.is_file():
        return []
    return [m.group(1) for line in path.read_text(encoding="utf-8").splitlines()
            if (m := pattern.match(line))]


def _short_note(path: Path) -> str | None:
    """The short-of-recipe line of the last training session only: a run stopped early and then
    resumed to the recipe's steps no longer is short (each session logs its end line, then the
    note when it applies)."""
    note = None
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if END_RE.match(line):
                note = None
            elif m := SHORT_RE.match(line):
                note = m.group(1)
    return note


def training_section(run_dir: Path, st: dict) -> dict[str, Any] | None:
    from synthmed import generators
    from synthmed.training.progress import format_duration

    path = _outputs_path(run_dir, st, "train", "train_run")
    if path is None or not path.is_dir():
        runs = sorted(p for p in (run_dir / "train").glob("*") if p.is_dir())
        path = runs[-1] if runs else None
    if path is None:
        return None
    cfg = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8")) or {}
    records = read_jsonl(path / "metrics.jsonl")
    losses = fg.loss_keys(records)
    steps = [r for r in records if any(k in r for k in losses)]
    model = (cfg.get("model") or {}).get("name")
    size = (cfg.get("model") or {}).get("image_size") or (cfg.get("data") or {}).get(
        "phantom_size") or 64
    # what kind of generator (plain words from its descriptor) and its recipe's step count
    recipe = generators.recipe_steps(model, size)
    grids = sorted((path / "samples").glob("step-*.png"))
    if len(grids) > 4:
        grids = [grids[round(i * (len(grids) - 1) / 3)] for i in range(4)]
    marker = st.get("train") or {}
    secs = marker.get("seconds")
    last = steps[-1]["step"] if steps else None
    return {
        "model": model, "kind": generators.kind(model), "cfg": cfg, "steps_done": last,
        "losses": [fg.loss_label(k, model) for k in losses],
        "steps_planned": (cfg.get("train") or {}).get("steps"), "recipe_steps": recipe,
        "recipe_line": fg.recipe_line_drawn(recipe, max((r["step"] for r in steps), default=None)),
        "seconds": secs, "duration": format_duration(secs) if secs else None,
        "steps_per_s": (last / secs) if last and secs else None,
        "img_per_s": float(np.median([r["img_per_s"] for r in steps if "img_per_s" in r]))
        if any("img_per_s" in r for r in steps) else None,
        "curves": fg.curves_uri(records, recipe, model),
        "grids": [{"step": int(g.stem.split("-")[1]), "uri": fg.file_uri(g, trim=False)}
                  for g in grids],
        "estimate": _log_lines(path / "log.txt", ESTIMATE_RE),
        "short": _short_note(path / "log.txt"),
        "env": read_json(path / "env.json") or {},
    }


def _manifest_masks(syn: Path, rows: list[dict[str, str]]) -> np.ndarray | None:
    """The label maps of a paired (mask-to-image) set: ``masks/seed<seed>.png`` files named in
    the manifest's ``mask_file`` column, or ``train_masks`` in synthetic.npz; None otherwise."""
    from PIL import Image

    if not rows or not rows[0].get("mask_file"):
        return None
    if rows[0]["mask_file"].startswith("synthetic.npz#"):
        with np.load(syn / "synthetic.npz") as z:
            return z["train_masks"] if "train_masks" in z.files else None
    return np.stack([np.asarray(Image.open(syn / r["mask_file"]).convert("L")) for r in rows])


def _npz_images(syn: Path) -> np.ndarray:
    with np.load(syn / "synthetic.npz") as z:
        x = z["train_images"]
    return x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)


def _edit_text(text: str | None) -> str:
    """A manifest ``edit`` cell (JSON parameters) as words: ``rotate 12.5; translate 2, -3``."""
    try:
        params = json.loads(text or "{}")
    except ValueError:
        return text or ""
    if not isinstance(params, dict) or not params:
        return "none"
    return "; ".join(f"{k.replace('_', ' ')} {_value(v)}" for k, v in params.items())


def _value(v: Any) -> str:
    if isinstance(v, list):
        return ", ".join(_value(x) for x in v)
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _sampling_options(gen: dict) -> list[tuple[str, str]]:
    """Generation options a method recorded (a diffusion run's steps and guidance) as rows."""
    opts = gen.get("sampling_options") or {}
    names = {"steps": "sampling steps", "guidance": "guidance scale", "bf16": "bfloat16"}
    return [(names.get(k, k.replace("_", " ")), "yes" if v is True else "no" if v is False
             else str(v)) for k, v in opts.items() if v is not None]


def synthetic_section(run_dir: Path, st: dict, data: dict | None) -> dict[str, Any] | None:
    """Real and synthetic images side by side, per class; mask | image rows for a paired set."""
    from PIL import Image

    syn = _outputs_path(run_dir, st, "generate", "synthetic")
    if syn is None or not (syn / "manifest.csv").is_file():
        return None
    with open(syn / "manifest.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    gen = read_json(syn / "generation.json") or {}
    masks = _manifest_masks(syn, rows)
    npz = _npz_images(syn) if rows and "#" in rows[0]["file"] else None
    samples = {s["name"]: s for s in (data or {}).get("samples", [])}
    classes = gen.get("class_names") or [""]
    out = []
    for c in classes:
        idx = [i for i, r in enumerate(rows) if (r.get("class") or "") == c][:8]
        if npz is not None:
            arr = npz[idx]
        else:
            imgs = [np.asarray(Image.open(syn / rows[i]["file"])) for i in idx]
            arr = np.stack([i[None] if i.ndim == 2 else i.transpose(2, 0, 1) for i in imgs]) \
                if imgs else np.zeros((0, 1, 1, 1), np.uint8)
        real = samples.get(c or "all") or {}
        entry = {"name": c or "all", "real": real.get("uri4"),
                 "synthetic": fg.grid_uri(arr, cols=4, scale=3)}
        if masks is not None:
            entry.update(real_pairs=real.get("pairs"),
                         synthetic_pairs=fg.pairs_uri(masks[idx[:4]], arr[:4]),
                         edits=[{"seed": rows[i].get("seed"), "source": rows[i].get("source_id"),
                                 "edit": _edit_text(rows[i].get("edit"))} for i in idx[:4]])
        out.append(entry)
    return {"classes": out, "n": gen.get("n"), "counts": gen.get("classes") or {},
            "step": gen.get("step"), "ema": gen.get("ema"), "paired": masks is not None,
            "options": _sampling_options(gen), "model": gen.get("model"),
            "edit": _edit_text(json.dumps(gen["edit"])) if gen.get("edit") else None}


def verdict_lines(verdict: Any) -> list[dict[str, str]] | None:
    """The evaluation verdict as (aspect, rating, text) rows, whatever its exact JSON shape."""
    if not verdict:
        return None
    if isinstance(verdict, dict) and all(isinstance(verdict.get(k), dict) and "rule" in verdict[k]
                                         for k in ("fidelity", "diversity", "privacy")):
        from synthmed.metrics.verdict import lines  # synthmed's own block: the CLI's lines

        return [{"aspect": k, "rating": str(verdict[k]["rating"]).lower(),
                 "text": line.split(" - ", 1)[-1]}
                for k, line in zip(("fidelity", "diversity", "privacy"), lines(verdict),
                                   strict=True)]
    items = verdict.items() if isinstance(verdict, dict) else enumerate(verdict)
    out = []
    for aspect, v in items:
        if isinstance(v, dict):
            rating = next((str(v[k]) for k in ("rating", "verdict", "level", "grade", "call")
                           if isinstance(v.get(k), str)), "")
            text = next((str(v[k]) for k in ("line", "text", "message", "reason", "rule")
                         if isinstance(v.get(k), str)), "")
        elif isinstance(v, str):
            rating, text = "", v
        else:
            continue
        if not rating:
            rating = next((w for w in RATINGS if re.search(rf"\b{w}\b", text, re.I)), "")
        out.append({"aspect": str(aspect), "rating": rating.lower(), "text": text})
    return out or None
