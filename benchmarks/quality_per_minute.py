"""Realism per CPU-minute: every generator x budget x dataset, trained and scored the same way.

For each dataset (BreastMNIST at 32 px, DDTI nodule ROIs at 64 px, PneumoniaMNIST at 64 px) and
each generator (``GENERATORS``: the shipped methods and the candidate recipes of issue 20), one
run is trained on the training split for cumulative budgets of ``--minutes`` (default 3, 6, 12)
of *process CPU time* of one thread (``--clock wall`` on a GPU); between budgets the run is
interrupted by SIGINT (a checkpoint) and resumed exactly. At each budget:

1. a class-matched synthetic set (the training split's class counts, seeds 0..n_k-1 per class)
   is generated; for diffusion its sampling CPU time is *part of the budget*: the training
   segment is shortened by the measured cost of sampling one training set (issue 20);
2. ``synthmed evaluate`` scores it against the real test split: relative FD with its interval,
   precision/recall/density/coverage, membership AUC against the training split, and the
   realism judge (C2ST AUC with interval, spectral/checkerboard score) when this synthmed has it;
3. one small grid per cell is written (``WORK/grid-DATASET-GENERATOR-MINUTES.png``);
4. at the last budget, the synthetic-only arm: a small ResNet trained on the synthetic set only,
   AUC on the real test split over ``--seeds`` seeds (0 skips it).

Writes ``WORK/quality_per_minute.md`` (one table per dataset), ``.json`` and
``quality_per_minute.png`` (relative FD against CPU minutes). ``--quick`` is a smoke run of a few
minutes whose numbers mean nothing; ``--device cuda`` sizes the study for one GPU (budgets in
wall seconds, 0.5/1/2 minutes; not yet run on a GPU).

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/quality_per_minute.py \\
        [--datasets breastmnist,ddti] [--generators cgan,dcgan,vae,ddpm] [--minutes 3,6,12]
    .venv/bin/python benchmarks/quality_per_minute.py --quick
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from generators import grid, synthetic_only, train_for  # noqa: E402
from utility_breastmnist import SHARED, import_real  # noqa: E402

# Each generator: config overrides on top of the dataset's base (batch 64, seed 0). ddpm: the
# MONAI U-Net [16, 32, 64] at batch 32, v-prediction with Min-SNR-5 at lr 2e-3
# (configs/ddpm_phantom.yaml), DPM-Solver++ at 20 evaluations (the default sampler).
GENERATORS = {
    "cgan": ["model.name=cgan", "model.base_width=32"],
    "cgan-bilinear": ["model.name=cgan", "model.base_width=32", "model.cgan_upsample=bilinear"],
    "cgan-noada": ["model.name=cgan", "model.base_width=32", "model.ada=false"],  # DiffAugment
    "cgan-bcr": ["model.name=cgan", "model.base_width=32", "model.cr_weight=10"],
    "cgan-bilinear-noise": ["model.name=cgan", "model.base_width=32",
                            "model.cgan_upsample=bilinear", "model.cgan_noise=true"],
    "dcgan": ["model.name=dcgan", "model.base_width=32"],  # unconditional: an unlabelled set
    "acgan": ["model.name=acgan", "model.base_width=32"],  # the DCGAN with an auxiliary classifier
    "dcgan-per-class": ["model.name=dcgan", "model.base_width=32", "model.per_class=true"],
    "dcgan-ema": ["model.name=dcgan", "model.base_width=32", "model.ema=true"],
    "vae": ["model.name=vae", "model.channels=[32,64,128]", "model.latent_dim=32",
            "train.lr_g=1e-3", "train.betas=[0.9,0.999]"],
    "ddpm": ["model.name=ddpm", "model.channels=[16,32,64]", "train.batch_size=32",
             "train.lr_g=2e-3", "train.betas=[0.9,0.999]", "model.sample_steps=20",
             "model.prediction=v", "model.min_snr_gamma=5"],
    "ddpm-wide": ["model.name=ddpm", "model.channels=[32,64,64]", "train.lr_g=1e-3",
                  "train.betas=[0.9,0.999]", "model.sample_steps=20", "model.prediction=v",
                  "model.min_snr_gamma=5"],
    # the recipe before issue 20's second round: noise MSE, lr 5e-4
    "ddpm-eps": ["model.name=ddpm", "model.channels=[32,64,64]", "train.lr_g=5e-4",
                 "train.betas=[0.9,0.999]", "model.sample_steps=20"],
}
POSITIVE = {"breastmnist": "malignant", "ddti": "malignant", "pneumoniamnist": "pneumonia"}
# the realism judge's numbers in evaluate's result (issue 18): realism.auc [auc_ci_low,
# auc_ci_high] (C2ST) and spectral.checkerboard (log10 power ratio at Nyquist vs real)


def prepare(name: str, work: Path, subset: int | None) -> Path:
    """The dataset as a prepared dataset with official (MedMNIST) or patient-level splits."""
    if name == "breastmnist":
        return import_real(SHARED / "breastmnist.npz", work / "data-breastmnist", subset)
    if name == "pneumoniamnist":
        from synthmed.data.importer import import_dataset

        out = work / "data-pneumoniamnist"
        if not (out / "dataset.json").is_file():
            import_dataset(SHARED / "pneumoniamnist_reconstructed.npz", out, size=64,
                           normalize="none", force=True, progress=False)
        return out
    if name == "ddti":
        from thyroid_study import N_TRAIN
        from thyroid_study import prepare as prepare_ddti

        return prepare_ddti(work / "ddti", n_train=N_TRAIN)[1]
    raise SystemExit(f"unknown dataset {name!r}")


def sampling_cost(run_overrides: list[str], data: Path, work: Path, device: str) -> float:
    """CPU seconds per generated image of an (untrained) ddpm: weights do not change the cost.

    One untimed call first: loading the checkpoint and the first network passes cost seconds
    that 546 images do not pay 34 times (16 timed images once made a 3-minute budget all
    sampling)."""
    from synthmed.config import load_config
    from synthmed.training import train

    run = train(load_config(None, [*run_overrides, "name=cost", "train.steps=1"]),
                runs_dir=work / "cost", progress=False)
    from synthmed import generate

    generate(run, seeds="0-1", device=device)
    t0 = time.process_time()
    generate(run, seeds="0-63", device=device)
    per_img = (time.process_time() - t0) / 64
    print(f"sampling cost: {per_img:.3f} CPU s per image", flush=True)
    return per_img


def conditional(run: Path) -> bool:
    """Whether a trained run samples per class (a dcgan does not, unless model.per_class trains
    one per class: it gets an unlabelled set)."""
    from synthmed.sampling.sampler import load_generator

    return bool(load_generator(run).meta["conditional"])


def class_matched(run: Path, data: Path, out: Path, device: str, n: int | None,
                  labelled: bool = True) -> float:
    """Write the class-matched set; returns its generation CPU seconds. An unconditional run
    (``labelled=False``) writes as many unlabelled images (seeds 0..N-1) as the training split
    holds, as a synthetic set (``synthmed generate --n``): scored as a whole, no per-class
    numbers and no synthetic-only classifier."""
    from synthmed import generate
    from synthmed.data.dataset import PreparedDataset, from_model_range, write_prepared

    ds = PreparedDataset(data)
    counts = np.bincount(ds.labels[ds.indices("train")], minlength=len(ds.class_names))
    if n is not None:
        counts = np.maximum(np.round(counts * n / counts.sum()).astype(int), 2)
    t0 = time.process_time()
    if not labelled:
        from synthmed.sampling.writer import write_synthetic

        write_synthetic(run, out, n=int(counts.sum()), fmt="npz", device=device, force=True)
        return time.process_time() - t0
    images, labels = [], []
    for k, cls in enumerate(ds.class_names):
        g = generate(run, seeds=f"0-{counts[k] - 1}", class_name=cls, device=device)
        images.append(from_model_range(g.images))
        labels.append(np.full(len(g.images), k))
    dt = time.process_time() - t0
    labs = np.concatenate(labels)
    write_prepared(out, images=np.concatenate(images), labels=labs, splits=["train"] * len(labs),
                   class_names=ds.class_names, name=out.name, force=True)
    return dt


def score(data: Path, syn: Path, out: Path, device: str, bootstrap: int,
          split: str = "test") -> dict:
    from synthmed.metrics.evaluate import evaluate

    spec = f"{syn}:train" if (syn / "dataset.json").is_file() else str(syn)  # unlabelled set
    return evaluate(f"{data}:{split}", spec, train=f"{data}:train", out=out,
                    metrics=None, cache_dir=out.parent / "cache", n_bootstrap=bootstrap,
                    plots=False, device=device)


def cell(m: dict) -> dict:
    """The numbers of one (dataset, generator, budget) cell."""
    out = {k: m.get(k) for k in ("relative_fd", "fid", "fid_ci_low", "fid_ci_high", "precision",
                                 "recall", "density", "coverage", "membership_auc",
                                 "membership_auc_features")}
    realism, spectral = m.get("realism") or {}, m.get("spectral") or {}
    out["c2st_auc"] = realism.get("auc")
    out["c2st_ci"] = [realism.get("auc_ci_low"), realism.get("auc_ci_high")]
    out["spectral"] = spectral.get("checkerboard")
    out["checkerboard_flagged"] = spectral.get("checkerboard_flagged")
    out["half_nyquist"] = spectral.get("half_nyquist")  # period-4 grids
    out["half_nyquist_flagged"] = spectral.get("half_nyquist_flagged")
    return out


def run_cell_series(ds_name: str, gen: str, data: Path, work: Path, a) -> list[dict]:
    """Train ``gen`` on ``data`` through the budgets; score after each."""
    base = [f"name=qpm-{ds_name}-{gen}", f"data.path={data}", "data.split=train",
            "train.batch_size=64", "train.steps=100000000", "train.sample_every=100000000",
            "train.checkpoint_every=100000000", "train.log_every=10", "train.seed=0",
            f"train.num_threads={a.threads}", f"train.device={a.device}", *GENERATORS[gen],
            *a.set]
    from synthmed.data.dataset import PreparedDataset
    from synthmed.training.checkpoint import load_checkpoint

    n_train = len(PreparedDataset(data).indices("train"))
    diffusion = "model.name=ddpm" in GENERATORS[gen]  # its sampling counts in the budget
    per_img = sampling_cost(base, data, work, a.device) if diffusion else 0.0
    clock = time.perf_counter if a.clock == "wall" else time.process_time
    run, trained, done, points = None, 0.0, 0.0, []
    for minutes in a.budgets:
        seg = max(minutes * 60 - done - per_img * n_train, 5.0)  # diffusion: sampling counts
        run, dt = train_for(seg / 60, run, base, work / "runs", clock=clock)
        trained += dt
        step = int(load_checkpoint(run / "checkpoints" / "latest.pt")["step"])
        labelled = conditional(run)
        tag = f"{ds_name}-{gen}-{minutes:g}"
        syn = work / f"syn-{tag}"
        gen_s = class_matched(run, data, syn, a.device, None, labelled)
        done = trained + (gen_s if diffusion else 0.0)
        m = score(data, syn, work / f"eval-{tag}", a.device, a.bootstrap)
        img = (grid(syn, work / f"grid-{tag}.png", per_class_rows=2, cols=8) if labelled
               else unlabelled_grid(syn, work / f"grid-{tag}.png", cols=8))
        points.append({"budget_min": minutes, "train_min": trained / 60, "sample_min": gen_s / 60,
                       "step": step, "grid": str(img), "synthetic": str(syn), **cell(m)})
        if a.val:  # recipes are chosen on val; the table reports test
            points[-1]["val_relative_fd"] = score(data, syn, work / f"eval-val-{tag}", a.device,
                                                  a.bootstrap, split="val").get("relative_fd")
        print(f"{tag}: step {step}, train {trained / 60:.1f} + sample {gen_s / 60:.1f} CPU min, "
              f"relative FD {points[-1]['relative_fd']}", flush=True)
    if a.seeds and labelled:
        arms = synthetic_only(data, Path(points[-1]["synthetic"]), work / "runs",
                              f"util-{ds_name}-{gen}", seeds=a.seeds, epochs=a.epochs,
                              threads=a.threads, device=a.device, with_real=False,
                              positive=POSITIVE[ds_name])
        points[-1]["synthetic_only_auc"] = arms.get("synthetic-only")
    return points


def unlabelled_grid(synthetic: Path, out: Path, cols: int = 8) -> Path:
    """The first 4 rows of an unlabelled synthetic set (the labelled grid's size)."""
    from PIL import Image

    from synthmed.sampling.io import load_synthetic
    from synthmed.training.samples import tile

    imgs = np.asarray(load_synthetic(synthetic).images)[: 4 * cols]
    Image.fromarray(tile(imgs, cols)).save(out, optimize=True)
    return out


def series(ds_name: str, gens: list[str], data: Path, work: Path, a):
    """(generator, points) for each of ``gens``: one after the other, or ``--jobs`` at a time in
    their own processes (budgets are each process's own CPU time, so a parallel run on a
    shared machine gives every generator the same compute; wall time is what shrinks)."""
    if a.jobs <= 1:
        for gen in gens:
            yield gen, run_cell_series(ds_name, gen, data, work, a)
        return
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    with ProcessPoolExecutor(a.jobs, mp_context=get_context("spawn")) as pool:
        futures = [(gen, pool.submit(run_cell_series, ds_name, gen, data, work, a))
                   for gen in gens]
        for gen, fut in futures:
            yield gen, fut.result()


def _f(v, fmt="{:.2f}") -> str:
    return fmt.format(v) if isinstance(v, (int, float)) else "n/a"


def table(results: dict, a) -> str:
    lines = [f"Budgets: {', '.join(f'{b:g}' for b in a.budgets)} {a.clock} minutes of "
             f"{a.threads} thread(s) on {a.device} per generator (sampling one training set "
             f"included for diffusion){' (--quick: numbers meaningless)' * a.quick}.", ""]
    for ds_name, gens in results.items():
        lines += [f"#### {ds_name}", "",
                  "| generator | budget (train + sample CPU min) | steps | relative FD "
                  "[FID 95% CI] | relative FD val | C2ST AUC [CI] | Nyquist / half-Nyquist "
                  "(log10 vs real) | precision / recall | density / coverage | "
                  "membership AUC px / feat "
                  "| synthetic-only AUC |",
                  "|---" * 11 + "|"]
        for gen, points in gens.items():
            for p in points:
                lo, hi = p["c2st_ci"]
                c2 = _f(p["c2st_auc"], "{:.3f}") + (f" [{lo:.3f}, {hi:.3f}]" if lo else "")
                u = p.get("synthetic_only_auc") or {}
                util = f"{u['mean']:.3f} ± {u.get('std') or 0:.3f}" if u.get("mean") else ""
                lines.append(
                    f"| {gen} | {p['budget_min']:g} ({p['train_min']:.1f} + "
                    f"{p['sample_min']:.1f}) | {p['step']} | {_f(p['relative_fd'])} "
                    f"[{_f(p['fid_ci_low'], '{:.1f}')}, {_f(p['fid_ci_high'], '{:.1f}')}] | "
                    f"{_f(p.get('val_relative_fd'))} | {c2} | {_f(p['spectral'], '{:+.3f}')}"
                    f"{' **flagged**' * bool(p.get('checkerboard_flagged'))} / "
                    f"{_f(p.get('half_nyquist'), '{:+.3f}')}"
                    f"{' **flagged**' * bool(p.get('half_nyquist_flagged'))} | "
                    f"{_f(p['precision'])} / {_f(p['recall'])} | "
                    f"{_f(p['density'])} / {_f(p['coverage'])} | "
                    f"{_f(p['membership_auc'])} / {_f(p['membership_auc_features'])} | {util} |")
        lines.append("")
    return "\n".join(lines)


def plot(results: dict, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(results), figsize=(4.2 * len(results), 6.0), squeeze=False)
    for col, (ds_name, gens) in enumerate(results.items()):
        top, bottom = axes[0][col], axes[1][col]
        for gen, points in gens.items():
            xs = [p["train_min"] + p["sample_min"] for p in points]
            top.plot(xs, [p["relative_fd"] for p in points], marker="o", label=gen)
            bottom.plot(xs, [p["c2st_auc"] for p in points], marker="o", label=gen)
        top.set(title=ds_name, ylabel="relative FD (1 = real vs real)", yscale="log")
        top.axhline(1.0, color="grey", lw=0.8, ls=":")
        bottom.set(xlabel="CPU minutes (train + sample)", ylabel="C2ST AUC (0.5 = real)",
                   ylim=(0.45, 1.02))
        bottom.axhline(0.5, color="grey", lw=0.8, ls=":")
        top.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="realism per CPU-minute, generators x budgets")
    p.add_argument("--datasets", default="breastmnist,ddti")
    p.add_argument("--generators", default="cgan,dcgan,vae,ddpm")
    p.add_argument("--minutes", default=None, help="cumulative budgets (default 3,6,12)")
    p.add_argument("--clock", choices=["cpu", "wall"], default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--jobs", type=int, default=1, help="generators trained at once (processes)")
    p.add_argument("--seeds", type=int, default=3, help="synthetic-only utility seeds (0: skip)")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--bootstrap", type=int, default=50)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override on top of every arm's (repeatable; screening a recipe)")
    p.add_argument("--val", action="store_true", help="also score each cell against the val "
                   "split (val_relative_fd: what a recipe is chosen on)")
    p.add_argument("--quick", action="store_true", help="smoke run (minutes; meaningless)")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "quality-per-minute")
    a = p.parse_args(argv)
    cuda = a.device.startswith("cuda")
    a.clock = a.clock or ("wall" if cuda else "cpu")
    default = "0.05,0.1" if a.quick else "0.5,1,2" if cuda else "3,6,12"
    a.budgets = [float(x) for x in (a.minutes or default).split(",")]
    if a.quick:
        a.seeds, a.epochs, a.bootstrap = min(a.seeds, 1), 1, 10
    import torch  # noqa: F401  (imports outside the timed segments)

    work = a.work / ("quick" if a.quick else a.device.split(":")[0])
    results: dict = {}
    for ds_name in a.datasets.split(","):
        data = prepare(ds_name, work, 240 if a.quick and ds_name == "breastmnist" else None)
        results[ds_name] = {}
        for gen, points in series(ds_name, a.generators.split(","), data, work, a):
            results[ds_name][gen] = points
            (work / "quality_per_minute.json").write_text(json.dumps(
                {"args": {k: str(v) for k, v in vars(a).items()}, "results": results},
                indent=1, default=str), encoding="utf-8")
    text = table(results, a)
    (work / "quality_per_minute.md").write_text(text, encoding="utf-8")
    plot(results, work / "quality_per_minute.png")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
