"""The six stages of ``synthmed run``. Each takes the :class:`Context` and returns the outputs its
marker records (paths relative to the run directory where they live inside it)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synthmed import generators
from synthmed.config import (
    ExperimentConfig,
    PipelineConfig,
    UtilityConfig,
    config_from_dict,
)
from synthmed.errors import SynthmedError
from synthmed.fileio import atomic_write_json

REAL_SAMPLES_PER_CLASS = 8


class StageInterrupted(SynthmedError):
    """Training stopped by a signal: the checkpoint is kept and the same command resumes it."""

    exit_code = 130


@dataclass
class Context:
    run_dir: Path
    cfg: ExperimentConfig
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    progress: bool = True
    log: Callable[[str], None] = print

    def dataset(self) -> str:
        """The import stage's dataset; without that stage, ``data.path`` itself (a prepared
        dataset or the phantom), so ``pipeline.stages: [train, generate]`` needs no import."""
        out = self.outputs.get("import")
        if out:
            return str(out["dataset"])
        if self.cfg.pipeline.source is not None:
            raise SynthmedError("no dataset: pipeline.source is set but the import stage has not "
                                "run (add import to pipeline.stages)")
        from synthmed.training.data import resolve_dataset

        return str(Path(resolve_dataset(self.cfg.data).path).resolve())

    def path(self, stage: str, key: str) -> Path:
        out = self.outputs.get(stage)
        if not out or key not in out:
            raise SynthmedError(f"the {stage} stage has not run (add it to pipeline.stages)")
        return self.run_dir / out[key]


def _fresh(path: Path) -> Path:
    """Remove a stage's own output folder inside the run directory before it is rebuilt."""
    if path.exists():
        shutil.rmtree(path)
    return path


def import_stage(ctx: Context) -> dict[str, Any]:
    """Import ``pipeline.source`` into RUN_DIR/dataset, or reuse ``data.path``; either way keep
    the dataset summary and a few real images per class in RUN_DIR/data for the report."""
    from synthmed.data.dataset import PreparedDataset
    from synthmed.data.importer import import_dataset
    from synthmed.pipeline.checks import check_import_options
    from synthmed.training.data import resolve_dataset

    p = ctx.cfg.pipeline
    if p.source is not None:
        opts = dict(p.import_options)
        check_import_options(opts)
        path = import_dataset(p.source, _fresh(ctx.run_dir / "dataset"), progress=False, **opts)
        ds = PreparedDataset(path)
    else:
        ds = resolve_dataset(ctx.cfg.data)
    data_dir = ctx.run_dir / "data"
    data_dir.mkdir(exist_ok=True)
    atomic_write_json(data_dir / "summary.json", {"path": str(ds.path), **ds.summary()})
    idx = ds.indices(ctx.cfg.data.split)
    rows = []
    for k in range(max(1, len(ds.class_names))):
        mine = idx[ds.labels[idx] == k] if ds.class_names else idx
        rows.extend(mine[:REAL_SAMPLES_PER_CLASS].tolist())
    rows = np.array(sorted(rows), dtype=np.int64)
    extra = {"masks": np.asarray(ds.masks[rows])} if getattr(ds, "masks", None) is not None \
        else {}  # the report's mask | real rows for mask-to-image runs
    np.savez_compressed(data_dir / "real_samples.npz", images=np.asarray(ds.images[rows]),
                        labels=ds.labels[rows], class_names=np.array(ds.class_names, dtype=str),
                        **extra)
    ctx.log(f"dataset: {ds.path} ({len(ds)} images, classes {', '.join(ds.class_names) or '-'})")
    return {"dataset": str(Path(ds.path).resolve()), "summary": "data/summary.json",
            "real_samples": "data/real_samples.npz"}


def _train_config(ctx: Context) -> ExperimentConfig:
    """The experiment as ``train`` sees it: this run's dataset, and the sections train does not
    read at their defaults (so changing them never blocks resuming a checkpoint)."""
    data = ctx.cfg.model_dump(mode="json")
    data["data"]["path"] = ctx.dataset()
    data["pipeline"] = PipelineConfig().model_dump(mode="json")
    data["utility"] = UtilityConfig().model_dump(mode="json")
    return config_from_dict(data)


def _train_runs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def _echo_training_log(ctx: Context, path: Path) -> None:
    """Repeat this session's estimate and 'stopped before the recipe' lines in the run's log, and
    name the training log that has the ETA at every log line."""
    from synthmed.report.collect import ESTIMATE_RE, SHORT_RE

    lines = (path / "log.txt").read_text(encoding="utf-8").splitlines() \
        if (path / "log.txt").is_file() else []
    start = max((i for i, x in enumerate(lines)  # this session: after its opening line
                 if " run directory " in x or " resumed at step " in x), default=0)
    for line in lines[start:]:
        if m := ESTIMATE_RE.match(line) or SHORT_RE.match(line):
            ctx.log(f"train: {m.group(1)}")
    ctx.log(f"train: log (losses and ETA every train.log_every steps): "
            f"{(path / 'log.txt').relative_to(ctx.run_dir)}")


def _legacy_resumable(ctx: Context, cfg: ExperimentConfig, run: Path) -> bool:
    """A training started by a synthmed that kept no restart hash (an upgrade): resume it when
    its checkpoint is this experiment on this data (what ``synthmed train --resume`` accepts,
    same dataset content), rather than train again from step 0."""
    from synthmed.data.dataset import PreparedDataset
    from synthmed.training.resume import resolve_config

    try:
        _, state = resolve_config(cfg, None, run)
    except SynthmedError:
        return False
    return state["meta"].get("dataset_hash") == PreparedDataset(ctx.dataset()).content_hash


def train_stage(ctx: Context, resume_hash: str | None = None, inputs_hash: str = "") -> dict:
    """Train in RUN_DIR/train; a run started with the same inputs (``inputs_hash``: all but the
    resumable keys, so a raised ``train.steps`` continues a finished run) resumes from its
    checkpoint."""
    from synthmed.training import train
    from synthmed.training.checkpoint import load_checkpoint

    root = ctx.run_dir / "train"
    runs = _train_runs(root)
    have = bool(runs) and (runs[-1] / "checkpoints" / "latest.pt").exists()
    cfg = _train_config(ctx)
    resume = runs[-1] if have and (resume_hash == inputs_hash or (
        resume_hash == "legacy" and _legacy_resumable(ctx, cfg, runs[-1]))) else None
    if resume is not None and resume_hash == "legacy":  # from now on the hash decides
        atomic_write_json(ctx.run_dir / "stages" / "train.started.json",
                          {"restart_hash": inputs_hash})
    if resume is None:
        _fresh(root)
        atomic_write_json(ctx.run_dir / "stages" / "train.started.json",
                          {"restart_hash": inputs_hash})
    else:
        done = int(load_checkpoint(resume / "checkpoints" / "latest.pt")["step"])
        ctx.log(f"train: resuming {resume} from step {done:,} (train.steps {cfg.train.steps:,})")
    path = train(cfg, runs_dir=root, resume=resume, progress=ctx.progress)
    _echo_training_log(ctx, path)
    step = int(load_checkpoint(path / "checkpoints" / "latest.pt")["step"])
    if step < cfg.train.steps:
        raise StageInterrupted(f"stage train stopped at step {step} of {cfg.train.steps}; run the "
                               "same command again to resume from the checkpoint")
    return {"train_run": str(path.relative_to(ctx.run_dir)), "step": step}


def _generation_options(ctx: Context) -> dict[str, Any]:
    """The generation options this config's ``model`` keys set (generation-only keys such as a
    ddpm's ``sample_steps``) where they differ from the trained run's: changing them re-runs
    generate, never train."""
    import yaml

    saved = ctx.path("train", "train_run") / "config.yaml"
    trained = (yaml.safe_load(saved.read_text(encoding="utf-8")) or {}).get("model", {}) \
        if saved.is_file() else {}
    desc = generators.get(ctx.cfg.model.name)
    out = {}
    for opt, value in generators.config_options(ctx.cfg.model).items():
        key = desc.options.model_fields[opt].json_schema_extra["config_key"]
        if trained.get(key) != value:
            out[opt] = value
    return out


def generate_stage(ctx: Context) -> dict[str, Any]:
    """As many images as the training split (or ``pipeline.n_generate``), classes in its mix; a
    mask-to-image model (pix2pix, ddpm-mask) makes image+mask pairs from the training split's
    masks edited with ``pipeline.edits`` (``synthmed generate --masks-from DATASET:SPLIT --edit``),
    which the segmentation study uses."""
    from synthmed.data.dataset import PreparedDataset
    from synthmed.sampling.writer import write_synthetic

    p, dataset = ctx.cfg.pipeline, ctx.dataset()
    ds = PreparedDataset(dataset)
    n = p.n_generate or len(ds.indices(ctx.cfg.data.split))
    # a model trained at another size (model.image_size) generates at the data's size, so the
    # synthetic set, its thumbnails and the evaluation match the real images (issue 19)
    h, w = ds.size
    size = h if ctx.cfg.model.image_size not in (None, h) and h == w else None
    options = _generation_options(ctx)
    if generators.needs_masks(ctx.cfg.model.name):  # as check_run_config
        from synthmed.sampling.pairs import write_pairs

        source = f"{dataset}:{ctx.cfg.data.split}"
        out = write_pairs(ctx.path("train", "train_run"), ctx.run_dir / "synthetic",
                          masks_from=source, n=n, device=p.device, force=True,
                          edits=list(p.edits), **options)
        ctx.log(f"synthetic set: {out} ({n} image+mask pairs from the masks of {source}, "
                f"edits: {' '.join(p.edits) or 'none'})")
        return {"synthetic": "synthetic", "n": n}
    out = write_synthetic(ctx.path("train", "train_run"), ctx.run_dir / "synthetic", n=n,
                          device=p.device, force=True, match_train=p.class_counts == "match-train",
                          size=size, **options)
    ctx.log(f"synthetic set: {out} ({n} images, {p.class_counts})")
    return {"synthetic": "synthetic", "n": n}


def evaluate_stage(ctx: Context) -> dict[str, Any]:
    """``synthmed evaluate`` against the held-out test split, plus the 2-D embedding."""
    from synthmed.metrics.evaluate import evaluate
    from synthmed.pipeline.embedding import write_embedding

    p, ds = ctx.cfg.pipeline, ctx.dataset()
    out = _fresh(ctx.run_dir / "evaluate")
    synth = ctx.path("generate", "synthetic")
    train_ref = f"{ds}:{ctx.cfg.data.split}"
    m = evaluate(f"{ds}:test", synth, train=train_ref, features=p.eval_features,
                 metrics=p.eval_metrics, out=out, seed=ctx.cfg.train.seed,
                 n_bootstrap=p.eval_bootstrap, extractor_epochs=p.eval_extractor_epochs,
                 device=p.device)
    write_embedding(out / "embedding.json", ds, synth, train_ref, epochs=p.eval_extractor_epochs,
                    seed=ctx.cfg.train.seed)
    fd = m.get("relative_fd")  # was printed unrounded (3.6902673652841953)
    ratio = m.get("label_consistency_ratio")  # mask-to-image pairs (issue 21)
    labels = "" if ratio is None else f", label consistency {ratio:.3g}"
    ctx.log(f"evaluate: {out / 'metrics.json'} (relative FD "
            f"{'n/a' if not isinstance(fd, (int, float)) else f'{fd:.3g}'}{labels})")
    return {"metrics": "evaluate/metrics.json", "embedding": "evaluate/embedding.json"}


def utility_stage(ctx: Context) -> dict[str, Any]:
    """``synthmed utility`` with this run's dataset and synthetic set (all five arms)."""
    from synthmed.tasks.utility import run_utility

    data = ctx.cfg.model_dump(mode="json")
    data["data"]["path"] = ctx.dataset()
    data["utility"]["synthetic"] = str(ctx.path("generate", "synthetic"))
    root = _fresh(ctx.run_dir / "utility")
    path = run_utility(config_from_dict(data), runs_dir=root, log=ctx.log)
    return {"utility_run": str(path.relative_to(ctx.run_dir)),
            "utility": str((path / "utility.json").relative_to(ctx.run_dir))}


def report_stage(ctx: Context) -> dict[str, Any]:
    from synthmed.report import build_report

    path = build_report(ctx.run_dir)
    return {"report": str(path.relative_to(ctx.run_dir))}


STAGE_FUNCS = {"import": import_stage, "generate": generate_stage, "evaluate": evaluate_stage,
               "utility": utility_stage, "report": report_stage}
