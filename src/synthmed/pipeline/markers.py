"""Stage completion markers: ``RUN_DIR/stages/STAGE.json`` with the hash of the stage's inputs.

A stage's inputs are the config keys it reads (derived from each key's role, declared once in the
config: :data:`ROLE_STAGE`), the completion tokens of the stages it reads from, the code versions
and, for import and train, the data's content manifest. Changing a key re-runs exactly the stage
its role names and those downstream of it, and re-running an upstream stage re-runs everything
that consumed its old outputs (the same idea as make's timestamps or DVC's stage hashes).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

from synthmed import __version__
from synthmed.config import STAGES, ExperimentConfig, key_roles
from synthmed.fileio import atomic_write_json, sha256_file

#: The first stage whose result a key of each role changes (``ROLES`` in synthmed.generators);
#: that stage and every stage downstream of it run again. Runtime keys never re-run a stage.
ROLE_STAGE: dict[str, str | None] = {
    "data": "import", "trained": "train", "resumable": "train", "generation": "generate",
    "evaluation": "evaluate", "utility": "utility", "runtime": None,
}
UPSTREAM: dict[str, tuple[str, ...]] = {
    "import": (), "train": ("import",), "generate": ("import", "train"),
    "evaluate": ("import", "generate"), "utility": ("import", "generate"),
    "report": ("import", "train", "generate", "evaluate", "utility"),
}
#: Stages whose inputs include the data's identity (the content manifest and the data keys): the
#: import stage, and train, so a run without an import stage still sees changed data.
DATA_STAGES = ("import", "train")


def _get(data: dict, dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def stage_keys(stage: str, cfg: ExperimentConfig) -> list[str]:
    """The config keys ``stage`` reads: those whose role maps to it (:data:`ROLE_STAGE`)."""
    return sorted(k for k, role in key_roles(cfg).items() if ROLE_STAGE.get(role) == stage)


def versions() -> dict[str, Any]:
    """Code versions in every marker: an upgrade re-runs the stages (a fixed metric is not
    reported as up to date)."""
    from synthmed.metrics.imagestats import STATS_VERSION

    return {"synthmed": __version__, "feature_stats": STATS_VERSION}


def stage_inputs(stage: str, cfg: ExperimentConfig, tokens: dict[str, str]) -> dict[str, Any]:
    """The values that decide whether ``stage`` must run again."""
    data = cfg.model_dump(mode="json")
    keys = stage_keys(stage, cfg) + (stage_keys("import", cfg) if stage == "train" else [])
    values = {k: _get(data, k) for k in keys}
    out = {"config": values, "upstream": {u: tokens.get(u) for u in UPSTREAM[stage]},
           "versions": versions()}
    if stage in DATA_STAGES:
        out["files"] = data_identity(cfg)
    return out


def restart_hash(inputs: dict[str, Any], cfg: ExperimentConfig) -> str:
    """The train stage's inputs without its resumable keys (``train.steps``), the versions and
    the import stage's token: a training started with the same keys and data (its own inputs
    hold the data keys and files) resumes its checkpoint instead of starting again, e.g. after
    raising ``train.steps`` or upgrading synthmed (the finished run then takes no step)."""
    roles = key_roles(cfg)
    kept = {k: v for k, v in inputs["config"].items() if roles.get(k) != "resumable"}
    return inputs_hash({**inputs, "config": kept, "versions": None, "upstream": None})


def data_identity(cfg: ExperimentConfig) -> Any:
    """What the files behind the data are: for ``pipeline.source`` a content manifest (relative
    path, size and mtime of every file, and the SHA-256 of label CSVs); for a prepared dataset
    its content hash; None for the phantom (its keys are config keys)."""
    p = cfg.pipeline
    if p.source is not None:
        out = {"source": str(Path(p.source).resolve()), "manifest": manifest(Path(p.source))}
        csv = p.import_options.get("labels_csv")
        if csv:
            out["labels_csv"] = sha256_file(csv) if Path(csv).is_file() else None
        return out
    meta = Path(cfg.data.path) / "dataset.json"
    if cfg.data.path == "phantom" or not meta.is_file():
        return None
    try:
        return {"content_hash": json.loads(meta.read_text(encoding="utf-8")).get("content_hash")}
    except (OSError, ValueError):
        return None


def manifest(root: Path) -> Any:
    """``[relative path, size, mtime_ns, sha256 for .csv]`` of every file under ``root`` (or of
    ``root`` itself), sorted; None when it does not exist."""
    if not root.exists():
        return None
    files = [root] if root.is_file() else sorted(f for f in root.rglob("*") if f.is_file())
    rows = []
    for f in files:
        st = f.stat()
        rel = f.name if f == root else f.relative_to(root).as_posix()
        rows.append([rel, st.st_size, st.st_mtime_ns,
                     sha256_file(f) if f.suffix.lower() == ".csv" else None])
    return rows


def changed_keys(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """What differs between two stages' inputs, in words (for the skipped-stage warning)."""
    if not old:
        return ["no record of its inputs"]
    out = [k for k in sorted(set(old.get("config", {})) | set(new["config"]))
           if old.get("config", {}).get(k) != new["config"].get(k)]
    out += [f"{u} stage's outputs" for u in new["upstream"]
            if (old.get("upstream") or {}).get(u) != new["upstream"][u]]
    if old.get("files") != new.get("files"):
        out.append("the data files")
    if old.get("versions") != new["versions"]:
        out.append("the synthmed version")
    return out


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
