"""``synthmed utility``: does training with synthetic images help on real test patients?

For each arm (:mod:`synthmed.tasks.arms`), ratio and seed one downstream model is trained on the
real train split (plus extras), selected on the real val split, and scored once on the real test
split. Results go to a run directory: ``utility.json`` (settings, every run, summaries over seeds,
paired comparisons, result lines), ``utility.csv`` (arm, ratio, seed, metric, value; rewritten
after every run so an interrupted study keeps what it finished), ``utility.png`` (primary metric
per seed) and, for classification, ``roc.png``, ``confusion.png`` and ``confusion.csv``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthmed.config import ExperimentConfig
from synthmed.data.dataset import PreparedDataset
from synthmed.errors import ConfigError, DataError
from synthmed.fileio import atomic_write_json
from synthmed.runs import Run
from synthmed.tasks import plots
from synthmed.tasks.arms import (
    ARMS,
    CONTROL,
    REFERENCE,
    USES_RATIO,
    USES_SYNTHETIC,
    build_arm,
    check_no_leak,
)
from synthmed.tasks.augment import classic_augmentation
from synthmed.tasks.filtering import filter_sources
from synthmed.tasks.metrics import (
    HIGHER_IS_BETTER,
    metric_definitions,
    youden_threshold,
)
from synthmed.tasks.models import CLASSIFIERS, SEGMENTERS, build_classifier, build_segmenter
from synthmed.tasks.outputs import csv_rows, group_records, jsonable, write_csv, write_figures
from synthmed.tasks.sources import load_source
from synthmed.tasks.stats import (
    MIN_SEEDS_CI,
    MIN_SEEDS_TEST,
    holm,
    paired_comparison,
    result_line,
    summarize,
    verdict,
)
from synthmed.tasks.study import Job, Study
from synthmed.tasks.train import ArmDataset, Images, evaluate, fit, predict, resolve_device

MIN_CLASS_TEST = 10  # fewer test images in a class: per-class numbers rest on a handful of patients


def _seeds(value: int | list[int]) -> list[int]:
    if isinstance(value, int):
        if value < 1:
            raise ConfigError(f"utility.seeds: {value}; give a count of at least 1 or a list")
        return list(range(value))
    if not value or len(set(value)) != len(value):
        raise ConfigError("utility.seeds: give a non-empty list of distinct seeds")
    return list(value)


def _real_rows(ds: PreparedDataset, task: str) -> dict[str, np.ndarray]:
    keep = ds.has_mask if task == "segmentation" else ds.labels >= 0
    rows = {s: ds.indices(s)[keep[ds.indices(s)]] for s in ("train", "val", "test")}
    for split, r in rows.items():
        if len(r) == 0:
            what = "images with masks" if task == "segmentation" else "labelled images"
            raise DataError(f"{ds.path}: the {split} split has no {what}; the utility study needs "
                            "train, val and test (re-import with --split)")
    if task == "classification":
        _check_classes_in_splits(ds, rows)
    return rows


def _check_classes_in_splits(ds: PreparedDataset, rows: dict[str, np.ndarray]) -> None:
    """Every class must be in train, val and test: without it in val or test, AUC is NaN, the
    Youden threshold is chosen blind, and every comparison reads "p n/a"."""
    for split, r in rows.items():
        present = set(ds.labels[r].tolist())
        for k, name in enumerate(ds.class_names):
            if k not in present:
                n_patients = len({ds.groups[i] for i in np.flatnonzero(ds.labels == k)})
                raise DataError(
                    f"{ds.path}: class {name!r} has no images in the {split} split ({n_patients} "
                    f"patient(s) in all), so its AUC and p-values cannot be computed; re-import "
                    f"with more patients or other --split fractions, or --drop-label {name}")


def positive_index(positive_class: str | None, class_names: list[str]) -> int:
    """``utility.positive_class`` as a class index. null or 'auto': the last class. It only
    means something for two classes; with 3+ the metrics are macro averages and it is not used
    (the last class is returned, whatever it says), so a shipped config runs on any dataset."""
    if positive_class in (None, "auto") or len(class_names) != 2:
        return len(class_names) - 1
    if positive_class not in class_names:
        raise ConfigError(f"utility.positive_class: {positive_class!r} is not a class of this "
                          f"dataset; choose one of {', '.join(class_names)} (or auto: the last)")
    return class_names.index(positive_class)


def check_utility_names(cfg: ExperimentConfig) -> None:
    """``utility.model`` names a model of ``utility.task``; every ``utility.arms`` entry is an arm.

    One place for the check that ``synthmed run`` makes before any work and the study makes again
    when called from Python."""
    u = cfg.utility
    if u.task == "classification":
        CLASSIFIERS.get(u.model or "small-resnet", key="utility.model")
    elif (u.model or "unet") not in SEGMENTERS:
        raise ConfigError(f"utility.model: {u.model!r} is not a segmenter; choose one of "
                          f"{', '.join(SEGMENTERS)}")
    for arm in u.arms or []:
        if arm not in ARMS:
            raise ConfigError(f"utility.arms: unknown arm {arm!r}; choose from {', '.join(ARMS)}")


def prepare_study(cfg: ExperimentConfig) -> Study:
    """Resolve the real dataset, synthetic sources, seeds and device; check what can be checked
    before any training starts."""
    from synthmed.training.data import resolve_dataset

    u = cfg.utility
    check_utility_names(cfg)
    arms = u.arms if u.arms is not None else list(ARMS)
    if any(r <= 0 or not math.isfinite(r) for r in u.ratios) or not u.ratios:
        raise ConfigError(f"utility.ratios: {u.ratios}; give positive numbers, e.g. [0.5, 1, 2]")
    ds = resolve_dataset(cfg.data)
    h, w = ds.size
    if h != w:
        raise DataError(f"{ds.path}: images are {h}x{w}; the utility models need square images "
                        "(re-import with --size)")
    if u.task == "segmentation" and ds.masks is None:
        raise DataError(f"{ds.path}: no masks, so utility.task=segmentation cannot run; import "
                        "masks or use classification")
    seg = u.task == "segmentation"  # arms draw by class only for classification
    if not seg and len(ds.class_names) < 2:
        raise DataError(f"{ds.path}: {len(ds.class_names)} class(es); classification needs two "
                        "or more (import with labels)")
    names = ["all"] if seg else ds.class_names
    labels = np.zeros(len(ds), np.int64) if seg else ds.labels
    rows = _real_rows(ds, u.task)
    study = Study(cfg=u, real=Images(ds.images, labels, ds.masks), rows=rows,
                  class_names=names, positive=0 if seg else positive_index(u.positive_class, names),
                  select=u.select_metric or ("dice" if u.task == "segmentation" else "auc"),
                  seeds=_seeds(u.seeds), device=resolve_device(u.device),
                  dataset={"path": str(ds.path), "content_hash": ds.content_hash,
                           "class_names": names, "size": [h, w],
                           "n": {s: int(len(r)) for s, r in rows.items()}})
    if study.select not in study.metrics:
        raise ConfigError(f"utility.select_metric: {study.select!r}; choose one of "
                          f"{', '.join(study.metrics)}")
    synthetic = [u.synthetic] if isinstance(u.synthetic, str) else list(u.synthetic or [])
    if u.synthetic_filter != "none" and (not synthetic or u.task != "classification"):
        raise ConfigError(f"utility.synthetic_filter: {u.synthetic_filter} filters the labelled "
                          "synthetic images of a classification study; set utility.synthetic "
                          "(classification), or synthetic_filter: none")
    if u.arms is not None and USES_SYNTHETIC & set(arms) and not synthetic:
        raise ConfigError("utility.synthetic: the chosen arms need a synthetic set; set "
                          "utility.synthetic or drop real+classic+synthetic and synthetic-only")
    for path in synthetic:
        name = Path(path).name or str(path)
        if name in study.sources:
            name = f"{name}-{len(study.sources)}"
        held_out = np.concatenate([ds.indices("val"), ds.indices("test")])  # labelled or not
        study.sources[name], info = load_source(path, ds, u.task, held_out)
        study.source_info.append({"name": name, **info})
    return study


def plan_jobs(study: Study) -> list[Job]:
    """Every (arm, ratio, synthetic source) to train, in a stable order."""
    u = study.cfg
    arms = u.arms if u.arms is not None else list(ARMS)
    several = len(study.sources) > 1
    jobs: list[Job] = []
    for kind in ARMS:
        if kind not in arms:
            continue
        if kind in USES_SYNTHETIC and not study.sources:
            continue  # default arms without a synthetic set: the rest still runs
        names = list(study.sources) if kind in USES_SYNTHETIC else [None]
        ratios = list(u.ratios) if kind in USES_RATIO else \
            [u.synthetic_only_ratio] if kind == "synthetic-only" else [0.0]
        for name in names:
            label = f"{kind}@{name}" if several and name else kind
            jobs.extend(Job(kind, label, float(r), name) for r in ratios)
    return jobs


def _build_model(study: Study):
    u, c, side = study.cfg, int(study.real.images.shape[1]), int(study.real.images.shape[2])
    if study.task == "segmentation":
        return lambda: build_segmenter(study.model, in_channels=c, image_size=side,
                                       weights=u.weights)
    return lambda: build_classifier(study.model, in_channels=c,
                                    num_classes=len(study.class_names), image_size=side,
                                    weights=u.weights)


def run_job(study: Study, job: Job, seed: int, *, log: Callable[[str], None] | None = None
            ) -> dict[str, Any]:
    """Train and score one (arm, ratio, seed); the returned record goes into utility.json."""
    u, seg = study.cfg, study.task == "segmentation"
    src = study.sources.get(job.source) if job.source else None
    train_rows = study.rows["train"]
    plan = build_arm(job.kind, real_labels=study.real.labels, train_rows=train_rows,
                     ratio=job.ratio, synthetic_labels=None if src is None else src.labels,
                     class_mix=u.class_mix, class_names=study.class_names, seed=seed,
                     source=job.source)
    check_no_leak(plan, train_rows=train_rows,
                  held_out_rows=np.concatenate([study.rows["val"], study.rows["test"]]))
    aug = classic_augmentation(image_size=int(study.real.images.shape[2]), rotate_deg=u.rotate_deg,
                               translate=u.translate, scale=u.scale, flip=u.flip,
                               intensity=u.intensity, with_mask=seg, seed=seed) \
        if plan.augment else None
    parts = [(study.real, plan.real_rows)] + ([(src, plan.synthetic_rows)] if src else [])
    train_set = ArmDataset(parts, transform=aug, with_masks=seg)
    common = dict(task=study.task, positive=study.positive, device=study.device)
    res = fit(_build_model(study), train_set, study.real, study.rows["val"],
              epochs=u.epochs, batch_size=u.batch_size, lr=u.lr, weight_decay=u.weight_decay,
              seed=seed, select_metric=study.select, log=log, **common)
    common["class_names"] = study.class_names
    threshold = None
    if not seg and len(study.class_names) == 2:
        if u.threshold == "youden":  # chosen on val only, applied unchanged to test
            prob = predict(res.model, study.real, study.rows["val"], task="classification",
                           device=study.device)
            threshold = youden_threshold(study.real.labels[study.rows["val"]] == study.positive,
                                         prob[:, study.positive])
        else:
            threshold = float(u.threshold)
    val_m = evaluate(res.model, study.real, study.rows["val"], threshold=threshold, **common)
    test_m = evaluate(res.model, study.real, study.rows["test"], threshold=threshold, **common)
    counts = plan.class_counts(study.real.labels, None if src is None else src.labels,
                               len(study.class_names))
    return {"arm": job.label, "kind": job.kind, "ratio": job.ratio, "seed": seed,
            "source": job.source, "n_train": plan.n, "n_real": int(len(plan.real_rows)),
            "n_synthetic": int(len(plan.synthetic_rows)),
            "n_synthetic_unique": int(len(np.unique(plan.synthetic_rows))), "class_counts": counts,
            "weights": getattr(res.model, "weights_info", None),
            "best_epoch": res.best_epoch, "seconds": round(res.seconds, 2),
            "threshold": threshold, "val": val_m, "test": test_m}


def nearest_ratio(available: list[float], target: float) -> float | None:
    """The ratio in ``available`` closest to ``target``; a tie goes to the smaller one."""
    return min(available, key=lambda r: (abs(r - target), r)) if available else None


def references(groups: dict, label: str, kind: str, ratio: float) -> list[tuple[str, float]]:
    """The (reference arm, reference ratio) pairs that arm ``label`` at ``ratio`` is compared to.

    Every arm except ``real+classic`` itself is compared with ``real+classic`` (ratio 0), and every
    arm except the duplicate control itself with ``real+classic+duplicate`` at the duplicate ratio
    nearest the arm's own ratio: the same ratio for ``real+classic+synthetic``,
    ``synthetic_only_ratio`` for ``synthetic-only``, and the smallest duplicate ratio for ``real``
    and ``real+classic`` (their ratio is 0). Only references that were run are returned.
    """
    refs = [(REFERENCE, 0.0)] if label != REFERENCE and (REFERENCE, 0.0) in groups else []
    if kind != CONTROL:
        dup = nearest_ratio([r for (a, r) in groups if a == CONTROL], ratio)
        if dup is not None:
            refs.append((CONTROL, dup))
    return refs


def _compare(study: Study, groups: dict) -> list[dict[str, Any]]:
    """Each arm against real+classic and against the duplicate control (see :func:`references`),
    paired by seed, for every metric. p-values are Holm-adjusted within each metric's family of
    comparisons, and the verdict words come from the adjusted value (both are shown)."""
    out = []
    for (label, ratio), recs in groups.items():
        kind = recs[0]["kind"]
        for ref in references(groups, label, kind, ratio):
            mine = {r["seed"]: r for r in recs}
            theirs = {r["seed"]: r for r in groups[ref]}
            seeds = [s for s in study.seeds if s in mine and s in theirs]
            for m in study.metrics:
                c = paired_comparison([mine[s]["test"][m] for s in seeds],
                                      [theirs[s]["test"][m] for s in seeds],
                                      higher_is_better=HIGHER_IS_BETTER[m], metric=m)
                out.append({"arm": label, "kind": kind, "ratio": ratio, "reference": ref[0],
                            "reference_ratio": ref[1], "metric": m, **c,
                            "source": recs[0]["source"] if "@" in label else None})
    for m in study.metrics:
        family = [c for c in out if c["metric"] == m]
        for c, p in zip(family, holm([c["p"] for c in family]), strict=True):
            c["p_holm"] = p
            c["significant"] = bool(math.isfinite(p) and p < 0.05)
            c["verdict"] = verdict(p, c["mean_diff"], higher_is_better=HIGHER_IS_BETTER[m],
                                   na=c["test"])
    for c in out:
        c["line"] = result_line(c["kind"], c["metric"], c, reference=c["reference"],
                                ratio=c["ratio"], source=c.pop("source"),
                                reference_ratio=c["reference_ratio"])
    return out


def study_warnings(study: Study) -> list[str]:
    """What makes this study's statistics weak: few seeds, small classes in the test split."""
    out = []
    if len(study.seeds) < MIN_SEEDS_CI:
        out.append(f"{len(study.seeds)} seed(s): confidence intervals over fewer than "
                   f"{MIN_SEEDS_CI} seeds are unreliable (and below {MIN_SEEDS_TEST} no test is "
                   "made); use 5 or more seeds for numbers to report")
    test = study.rows.get("test")
    if study.task == "classification" and test is not None:
        counts = np.bincount(study.real.labels[test], minlength=len(study.class_names))
        small = [f"{c} ({int(n)})" for c, n in zip(study.class_names, counts, strict=True)
                 if n < MIN_CLASS_TEST]
        if small:
            out.append(f"fewer than {MIN_CLASS_TEST} test images in class(es) {', '.join(small)}:"
                       " per-class and threshold metrics rest on very few patients")
    return out


def summarize_study(study: Study, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Summaries over seeds, paired comparisons and the plain-words result lines."""
    groups = group_records(records)
    summary = [{"arm": a, "ratio": r, "metric": m,
                **summarize([x["test"][m] for x in recs], metric=m)}
               for (a, r), recs in groups.items() for m in study.metrics]
    comparisons = _compare(study, groups)
    lines = [c["line"] for c in comparisons if c["metric"] == study.select]
    return {"summary": summary, "comparisons": comparisons, "result_lines": lines}


def _estimate_line(study: Study, jobs: list[Job], first: dict[str, Any]) -> str:
    """The whole study's time from its first run: seconds per training image and epoch times
    every run's images (the arms differ in size). A 5-seed x 30-epoch study takes hours on a CPU;
    training prints its estimate, and so does this stage now, after its first run."""
    from synthmed.training.progress import format_duration

    sizes = []
    for job in jobs:
        src = study.sources.get(job.source) if job.source else None
        plan = build_arm(job.kind, real_labels=study.real.labels, train_rows=study.rows["train"],
                         ratio=job.ratio, synthetic_labels=None if src is None else src.labels,
                         class_mix=study.cfg.class_mix, class_names=study.class_names,
                         seed=study.seeds[0], source=job.source)
        sizes.append(plan.n)
    per_image = first["seconds"] / max(first["n_train"], 1)
    total = per_image * sum(sizes) * len(study.seeds)
    plain = first["kind"] == "real"  # no classic augmentation: the other arms are slower
    return (f"estimate: {len(jobs) * len(study.seeds)} runs ({len(jobs)} arms x "
            f"{len(study.seeds)} seeds x {study.cfg.epochs} epochs) "
            f"{'at least' if plain else chr(0x2248)} {format_duration(total)} in all on this "
            f"machine (from a {first['seconds']:.1f} s run on {first['n_train']} images"
            f"{' without augmentation' if plain else ''})")


def _run_all(study: Study, jobs: list[Job], run: Run, say: Callable[[str], None]
             ) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for job in jobs:
        for seed in study.seeds:
            rec = run_job(study, job, seed, log=run.log)
            records.append(rec)
            if len(records) == 1 or (rec["kind"] != "real" and
                                     all(r["kind"] == "real" for r in records[:-1])):
                say(_estimate_line(study, jobs, rec))  # again once an augmented arm ran
            run.log_metrics(jsonable({k: rec[k] for k in ("arm", "ratio", "seed", "n_train",
                                       "best_epoch", "seconds", "threshold")}
                                      | {m: rec["test"][m] for m in study.metrics}))
            write_csv(run.path / "utility.csv", csv_rows(records, study.metrics))
            say(f"{plots.group_name(job.label, job.ratio)} seed {seed}: test {study.select} "
                f"{rec['test'][study.select]:.4f} (n={rec['n_train']}, best epoch "
                f"{rec['best_epoch']}, {rec['seconds']:.1f} s)")
    return records


def privacy_lines(study: Study, summary: list[dict[str, Any]]) -> list[str]:
    """Synthetic-only Dice beside the memorization audit of each source: the anonymised-sharing
    claim needs both (a segmenter trained on copies of patients would score well too)."""
    lines = []
    for info in study.source_info:
        priv = info.get("privacy")
        if not priv:
            continue
        dice = [s for s in summary if s["metric"] == study.select
                and s["arm"].startswith("synthetic-only") and info["name"] in s["arm"]]
        if not dice:
            dice = [s for s in summary if s["metric"] == study.select
                    and s["arm"] == "synthetic-only"]
        shown = f"synthetic-only {study.select} {dice[0]['mean']:.3f}" if dice else \
            "no synthetic-only arm"
        copy = priv.get("copy_rate")
        auc = priv.get("membership_auc")
        lines.append(f"{info['name']}: {shown}; memorization audit: copy rate "
                     f"{'n/a' if copy is None else f'{copy:.3f}'}, membership AUC "
                     f"{'n/a' if auc is None else f'{auc:.3f}'} (pixel space, "
                     f"{priv['n_train']} train / {priv['n_heldout']} held-out images)")
    return lines


def run_utility(cfg: ExperimentConfig, *, runs_dir: str | Path = "runs",
                log: Callable[[str], None] | None = None) -> Path:
    """Run the whole study for ``cfg`` and return its run directory (see the module docstring)."""
    study = prepare_study(cfg)
    jobs = plan_jobs(study)
    run = Run.create(runs_dir, f"{cfg.name}-utility", cfg, device=str(study.device),
                     seed=study.seeds[0])

    def say(msg: str) -> None:
        run.log(msg)
        if log:
            log(msg)

    say(f"utility: {len(jobs)} arms x {len(study.seeds)} seeds, {study.task} with "
        f"{study.model}, on {study.dataset['path']} {study.dataset['n']}")
    for info in study.source_info:
        if info.get("notice"):
            say(info["notice"])
    if not study.sources and cfg.utility.arms is None:
        say("no utility.synthetic set: running the arms without synthetic images only")
    threads = torch.get_num_threads()
    try:
        if cfg.utility.num_threads:
            torch.set_num_threads(cfg.utility.num_threads)
        filter_sources(study, jobs, say)  # synthetic pools only; real arms untouched
        records = _run_all(study, jobs, run, say)
    finally:
        torch.set_num_threads(threads)
    result = summarize_study(study, records)
    notes = study_warnings(study)
    for w in notes:
        say(f"warning: {w}")
    files = write_figures(run.path, records, result["summary"], task=study.task,
                          metric=study.select, class_names=study.class_names)
    doc = {"task": study.task, "model": study.model, "primary_metric": study.select,
           "positive_class": (study.class_names[study.positive]
                              if len(study.class_names) == 2 else None),
           "metric_definitions": None if study.task == "segmentation" else metric_definitions(
               len(study.class_names), study.class_names[study.positive]
               if len(study.class_names) == 2 else None, ordinal=study.cfg.ordinal),
           "dataset": study.dataset, "warnings": notes,
           "synthetic": study.source_info, "seeds": study.seeds,
           "settings": cfg.utility.model_dump(mode="json"), **result, "runs": records,
           "files": ["utility.json", "utility.csv", *files]}
    result["result_lines"] += privacy_lines(study, result["summary"])
    atomic_write_json(run.path / "utility.json", jsonable(doc))
    for line in result["result_lines"]:
        say(line)
    return run.path
