"""Stage completion markers: ``RUN_DIR/stages/STAGE.json`` with the hash of the stage's inputs.

A stage's inputs are the config keys it reads plus the completion tokens of the stages it reads
from, so changing a key re-runs exactly the stages that read it (and those downstream of them),
and re-running an upstream stage re-runs everything that consumed its old outputs (the same idea
as make's timestamps or DVC's stage hashes, on config values instead of files).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

from synthmed.config import MASK_MODELS, STAGES, ExperimentConfig
from synthmed.fileio import atomic_write_json

# Config keys each stage reads. Keys that only say how to run (device, threads, log interval)
# are left out: changing them never invalidates a finished stage.
STAGE_KEYS: dict[str, tuple[str, ...]] = {
    "import": ("data", "pipeline.source", "pipeline.import_options"),
    "train": ("data.split", "model", "train.batch_size", "train.steps", "train.lr_g",
              "train.lr_d", "train.betas", "train.d_steps", "train.seed", "train.sample_every",
              "train.amp", "train.channels_last"),
    "generate": ("pipeline.n_generate", "pipeline.class_counts", "pipeline.edits"),
    "evaluate": ("pipeline.eval_features", "pipeline.eval_metrics", "pipeline.eval_bootstrap",
                 "pipeline.eval_extractor_epochs", "train.seed"),
    "utility": ("utility",),
    "report": (),
}
UPSTREAM: dict[str, tuple[str, ...]] = {
    "import": (), "train": ("import",), "generate": ("import", "train"),
    "evaluate": ("import", "generate"), "utility": ("import", "generate"),
    "report": ("import", "train", "generate", "evaluate", "utility"),
}
# Written into utility runs as the synthetic set (not a user key), and the utility keys that say
# how to run, not what: never part of a hash.
_IGNORED = {"utility.synthetic", "utility.device", "utility.num_threads"}


def _get(data: dict, dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def stage_inputs(stage: str, cfg: ExperimentConfig, tokens: dict[str, str]) -> dict[str, Any]:
    """The values that decide whether ``stage`` must run again."""
    data = cfg.model_dump(mode="json")
    values = {k: _get(data, k) for k in STAGE_KEYS[stage]}
    if stage == "generate" and cfg.model.name not in MASK_MODELS:
        del values["pipeline.edits"]  # only pairs are edited; other runs keep their old hashes
    if isinstance(values.get("utility"), dict):
        values["utility"] = {k: v for k, v in values["utility"].items()
                             if f"utility.{k}" not in _IGNORED}
    out = {"config": values, "upstream": {u: tokens.get(u) for u in UPSTREAM[stage]}}
    if stage == "import":
        out["files"] = _data_identity(cfg)
    return out


def _data_identity(cfg: ExperimentConfig) -> Any:
    """What the files behind the data are: a prepared dataset's content hash, or the source's
    size and modification time, so re-importing the data re-runs the pipeline."""
    p = cfg.pipeline
    if p.source is not None:
        src = Path(p.source)
        return {"source": str(src.resolve()), "mtime_ns": src.stat().st_mtime_ns,
                "size": src.stat().st_size} if src.exists() else None
    meta = Path(cfg.data.path) / "dataset.json"
    if cfg.data.path == "phantom" or not meta.is_file():
        return None
    try:
        return {"content_hash": json.loads(meta.read_text(encoding="utf-8")).get("content_hash")}
    except (OSError, ValueError):
        return None


def inputs_hash(inputs: dict[str, Any]) -> str:
    text = json.dumps(inputs, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def marker_path(run_dir: Path, stage: str) -> Path:
    return run_dir / "stages" / f"{stage}.json"


def read_marker(run_dir: Path, stage: str) -> dict[str, Any] | None:
    path = marker_path(run_dir, stage)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_marker(run_dir: Path, stage: str, inputs: dict[str, Any], *, started: str,
                 seconds: float, outputs: dict[str, Any]) -> dict[str, Any]:
    marker = {"stage": stage, "inputs_hash": inputs_hash(inputs), "inputs": inputs,
              "token": uuid.uuid4().hex, "started": started, "finished": now(),
              "seconds": round(seconds, 2), "outputs": outputs}
    atomic_write_json(marker_path(run_dir, stage), marker)
    return marker


def clear_marker(run_dir: Path, stage: str) -> None:
    marker_path(run_dir, stage).unlink(missing_ok=True)


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def stage_index(stage: str) -> int:
    return STAGES.index(stage)
