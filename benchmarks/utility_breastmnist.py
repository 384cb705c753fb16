"""Downstream-utility benchmark on BreastMNIST (MedMNIST v2, official splits), end to end.

1. import ``../shared/datasets/medmnist/breastmnist.npz`` at 32 px (official train/val/test kept);
2. train a conditional GAN (``cgan``) with synthmed on the train split only;
3. generate a class-labelled synthetic set (npz) from its final checkpoint;
4. ``run_utility``: all five arms over seeds, selection on val, one score on the real test split;
5. print a table beside the published MedMNIST v2 ResNet-18 (28) result, and write it with the
   stage timings to ``WORK/benchmark.md``.

Full settings (the defaults below), on 2 CPU cores (``--threads 2``): cgan, base width 32, 1000
steps of batch 64; 800 synthetic images per class; small-resnet, 12 epochs of batch 128, ratios
1x and 2x, 5 seeds, classic augmentation on, extras at real class frequencies; positive class
``malignant``. Expected time, from costs measured on the shared 2-core development machine (GAN
35-70 img/s, i.e. 0.9-1.8 s per step; classifier 2.7 ms per augmented 32 px sample at batch 128):
15-30 min for the GAN and ~19 min for the utility study (546 x 13 samples per epoch and seed over
the five arms and two ratios), 35-50 min in total; less on a dedicated machine.
``--quick`` runs the same pipeline in under a minute (10-step GAN, 1 epoch, 2 seeds, 1 thread, a
240/120/120-image subset of the splits; ~25 s measured): a smoke test, its numbers mean nothing.

Usage::

    .venv/bin/python benchmarks/utility_breastmnist.py [--quick] [--work DIR] [--npz FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets" / "medmnist"
# MedMNIST v2 (Yang et al., Sci. Data 2023), Table: ResNet-18 (28), test ACC / AUC.
PUBLISHED = {"breastmnist": (0.863, 0.901), "pneumoniamnist": (0.854, 0.944)}


@dataclass
class Settings:
    gan_steps: int = 1000
    gan_width: int = 32
    gan_batch: int = 64
    per_class: int = 800
    model: str = "small-resnet"
    epochs: int = 12
    batch_size: int = 128
    ratios: list[float] = field(default_factory=lambda: [1.0, 2.0])
    seeds: int = 5
    threads: int = 2
    subset: int | None = None  # quick: at most this many images per split


QUICK = dict(gan_steps=10, gan_width=16, gan_batch=32, per_class=150, epochs=1, batch_size=64,
             ratios=[1.0], seeds=2, subset=240, threads=1)


def import_real(npz: Path, out: Path, subset: int | None) -> Path:
    """The official splits at 32 px (raw pixels, only resized); with ``subset`` a smaller copy."""
    from synthmed.data.dataset import PreparedDataset, write_prepared
    from synthmed.data.importer import import_dataset

    full = out.with_name(out.name + "-full") if subset else out
    if not (full / "dataset.json").is_file():
        import_dataset(npz, full, size=32, normalize="none", force=True, progress=False)
    if not subset:
        return full
    ds = PreparedDataset(full)  # a seeded random subset: some files are sorted by class
    rng = np.random.default_rng(0)
    rows = np.sort(np.concatenate([
        rng.permutation(ds.indices(s))[: subset if s == "train" else subset // 2]
        for s in ("train", "val", "test")]))
    return write_prepared(out, images=np.asarray(ds.images[rows]), labels=ds.labels[rows],
                          splits=ds.splits[rows].tolist(), class_names=ds.class_names,
                          groups=ds.groups[rows].tolist(), name=out.name, force=True)


def train_gan(data: Path, runs: Path, s: Settings, name: str) -> Path:
    from synthmed.config import load_config
    from synthmed.training import train

    every = max(s.gan_steps // 4, 1)
    cfg = load_config(None, [
        f"name={name}-cgan", f"data.path={data}", "data.split=train", "model.name=cgan",
        "model.image_size=32", f"model.base_width={s.gan_width}", f"train.steps={s.gan_steps}",
        f"train.batch_size={s.gan_batch}", f"train.num_threads={s.threads}",
        f"train.sample_every={every}", f"train.checkpoint_every={every}", "train.seed=0"])
    return train(cfg, runs_dir=runs, progress=False)


def generate(run_dir: Path, out: Path, per_class: int) -> Path:
    from synthmed.sampling.writer import write_synthetic

    return write_synthetic(run_dir, out, per_class=per_class, fmt="npz", force=True)


def utility(data: Path, synthetic: Path, runs: Path, s: Settings, name: str,
            positive: str) -> Path:
    from synthmed.config import load_config
    from synthmed.tasks.utility import run_utility

    cfg = load_config(None, [
        f"name={name}", f"data.path={data}", f"utility.synthetic={synthetic}",
        f"utility.model={s.model}", f"utility.epochs={s.epochs}",
        f"utility.batch_size={s.batch_size}", f"utility.ratios={s.ratios}",
        f"utility.seeds={s.seeds}", f"utility.num_threads={s.threads}",
        f"utility.positive_class={positive}"])
    return run_utility(cfg, runs_dir=runs, log=print)


def _fmt(summary: dict, arm: str, ratio: float, metric: str, ci: bool = False) -> str:
    for x in summary:
        if x["arm"] == arm and x["ratio"] == ratio and x["metric"] == metric:
            if x["mean"] is None:
                return "n/a"
            text = f"{x['mean']:.3f} ± {x['std'] or 0:.3f}"
            if ci and x["ci95"][0] is not None:
                text += f" [{x['ci95'][0]:.3f}, {x['ci95'][1]:.3f}]"
            return text
    return ""


def table(doc: dict, name: str, timings: dict[str, float], s: Settings, quick: bool) -> str:
    """Markdown: one row per arm (mean ± std over seeds) and the published baseline."""
    acc, auc = PUBLISHED[name]
    groups = list(dict.fromkeys((r["arm"], r["ratio"]) for r in doc["runs"]))
    lines = [f"### {name}{' (--quick: smoke run, numbers meaningless)' if quick else ''}", "",
             "| arm | ratio | ACC (arg-max) | AUC [95% CI] | sensitivity | specificity |",
             "|---|---|---|---|---|---|"]
    for arm, ratio in groups:
        cells = [_fmt(doc["summary"], arm, ratio, m, ci=m == "auc")
                 for m in ("accuracy_argmax", "auc", "sensitivity", "specificity")]
        lines.append(f"| {arm} | {f'{ratio:g}x' if ratio else '-'} | " + " | ".join(cells) + " |")
    lines.append(f"| MedMNIST v2 ResNet-18 (28), published | - | {acc:.3f} | {auc:.3f} | - | - |")
    lines += ["", f"Seeds: {doc['seeds']}; positive class: {doc['positive_class']}; "
              f"sensitivity/specificity at the Youden threshold chosen on val.", ""]
    lines += [f"- {x}" for x in doc["result_lines"]]
    total = sum(timings.values())
    lines += ["", "Settings: " + json.dumps(asdict(s)),
              "Time (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()) +
              f", total {total:.0f} ({total / 60:.1f} min)", ""]
    return "\n".join(lines)


def run_benchmark(name: str, npz_name: str, positive: str, full: Settings,
                  argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=f"synthmed downstream utility on {name}")
    p.add_argument("--quick", action="store_true", help="~1 minute smoke run")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-utility")
    p.add_argument("--npz", type=Path, default=SHARED / npz_name)
    p.add_argument("--threads", type=int, default=None,
                   help=f"CPU threads (default {full.threads}; --quick: 1)")
    args = p.parse_args(argv)
    if not args.npz.is_file():
        print(f"{args.npz}: not found (see ../shared/datasets/README.md); skipping")
        return 0
    s = replace(full, **(QUICK if args.quick else {}))
    s = replace(s, threads=args.threads or s.threads)
    work = args.work / f"{name}-{'quick' if args.quick else 'full'}"
    timings: dict[str, float] = {}
    t = time.perf_counter()
    data = import_real(args.npz, work / "data", s.subset)
    timings["import"] = time.perf_counter() - t
    t = time.perf_counter()
    gan_run = train_gan(data, work / "runs", s, name)
    timings["gan"] = time.perf_counter() - t
    t = time.perf_counter()
    synthetic = generate(gan_run, work / "synthetic", s.per_class)
    timings["generate"] = time.perf_counter() - t
    t = time.perf_counter()
    run = utility(data, synthetic, work / "runs", s, name, positive)
    timings["utility"] = time.perf_counter() - t
    doc = json.loads((run / "utility.json").read_text(encoding="utf-8"))
    text = table(doc, name, timings, s, args.quick) + f"Run: {run}\n"
    (work / "benchmark.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(run_benchmark("breastmnist", "breastmnist.npz", "malignant", Settings()))
