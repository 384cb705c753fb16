"""cgan vs ddpm vs vae on BreastMNIST at equal training time, scored the same way.

For each generator (all trained by the one engine, on the official train split at 32 px):

1. train for ``--minutes`` of process CPU time (``--clock wall`` on a GPU), in three equal
   segments (each ends with SIGINT, which the trainer turns into a checkpoint; the next segment
   resumes exactly), so the relative FD can
   be read after 1/3, 2/3 and all of the budget: three points of the quality-vs-time curve;
2. after each segment, generate a class-matched set (the training split's class counts, seeds
   0..n-1 per class) and score it with ``synthmed evaluate`` against the real test split (domain
   features; relative FD after the segment, and at the end all metrics: relative FD, KID,
   precision/recall/density/coverage, copy rate and membership AUC against the train split);
3. at the end, the synthetic-only utility arm: a small ResNet trained on the synthetic set only,
   AUC on the real test split, over ``--seeds`` seeds (plus the ``real`` arm once, as the anchor).

Writes ``WORK/generators.md`` (the table), ``WORK/generators.json`` and one 8-column sample grid
per generator (``WORK/grid-NAME.png``: 4 rows per class). ``--quick`` is a CPU smoke run (3.5-4.5
minutes on a loaded 2-core machine; its numbers mean nothing); ``--device cuda`` sizes the same
study for one GPU (90 s of training per generator, meant to finish in under 8 minutes; not yet run
on a GPU). The budget is CPU time by default, so a busy machine slows the run but does not
change what each generator gets; the table also reports the steps each generator reached.

Usage::

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/generators.py --minutes 15 [--threads 2]
    .venv/bin/python benchmarks/generators.py --quick
    .venv/bin/python benchmarks/generators.py --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from utility_breastmnist import SHARED, import_real  # noqa: E402

# Per-generator settings (32 px, batch 64). ddpm: the 1.06 M-parameter MONAI U-Net [32, 64, 64]
# with Adam(0.9, 0.999) as in Ho et al. 2020, at a higher learning rate because CPU budgets
# allow only hundreds of steps; vae: MONAI VarAutoEncoder [32, 64, 128], latent 32.
GENERATORS = {
    "cgan": ["model.name=cgan", "model.base_width=32"],
    "ddpm": ["model.name=ddpm", "model.channels=[32,64,64]", "train.lr_g=5e-4",
             "train.betas=[0.9,0.999]",
             "model.sample_steps=10"],  # training grids only (64 x steps passes); not the sets
    "vae": ["model.name=vae", "model.channels=[32,64,128]", "model.latent_dim=32",
            "train.lr_g=1e-3", "train.betas=[0.9,0.999]"],
}


def _stop_after(seconds: float, done: threading.Event, clock=time.process_time) -> None:
    """SIGINT this process once ``clock`` has advanced ``seconds``, but only once the trainer's
    own handler is in place (a SIGINT during start-up would be a KeyboardInterrupt, not a clean
    checkpoint). The default clock is the process's CPU time: on a shared machine every
    generator then gets the same compute however busy the other cores are (with one thread,
    CPU seconds are wall seconds of a quiet core)."""
    start = clock()
    while not done.wait(0.5):
        if clock() - start < seconds:
            continue
        handler = signal.getsignal(signal.SIGINT)  # SIG_IGN in a `cmd &` of a script
        if getattr(handler, "__module__", "").startswith("synthmed.training"):
            os.kill(os.getpid(), signal.SIGINT)
            return


def train_for(minutes: float, cfg_or_run, overrides: list[str], runs: Path,
              clock=time.process_time, config: str | Path | None = None) -> tuple[Path, float]:
    """Train (or resume a run) for ``minutes`` of ``clock`` time (CPU time by default);
    SIGINT ends it with a checkpoint. A new run reads the YAML ``config`` (default: none) with
    ``overrides`` on top. Returns the run and the seconds of ``clock`` used."""
    from synthmed.config import load_config
    from synthmed.training import train

    done = threading.Event()
    threading.Thread(target=_stop_after, args=(minutes * 60, done, clock), daemon=True).start()
    t0 = clock()
    try:
        if isinstance(cfg_or_run, Path):
            run = train(None, resume=cfg_or_run, progress=False)
        else:
            run = train(load_config(config, overrides), runs_dir=runs, progress=False)
    finally:
        done.set()
    return run, clock() - t0


def class_matched(run: Path, data: Path, out: Path, *, device: str, steps: int | None,
                  n: int | None = None) -> tuple[Path, float]:
    """The training split's class counts (or ``n`` images in its class proportions), seeds
    0..n_k-1 of each class, as a prepared dataset (``synthmed evaluate`` and ``utility`` read it
    like a real one)."""
    from synthmed import generate
    from synthmed.data.dataset import PreparedDataset, from_model_range, write_prepared

    ds = PreparedDataset(data)
    counts = np.bincount(ds.labels[ds.indices("train")], minlength=len(ds.class_names))
    if n is not None:
        counts = np.maximum(np.round(counts * n / counts.sum()).astype(int), 2)
    opts = {"steps": steps} if steps is not None else {}
    t0 = time.perf_counter()
    images, labels = [], []
    for k, name in enumerate(ds.class_names):
        g = generate(run, seeds=f"0-{counts[k] - 1}", class_name=name, device=device, **opts)
        images.append(from_model_range(g.images))
        labels.append(np.full(len(g.images), k))
    dt = time.perf_counter() - t0
    imgs, labs = np.concatenate(images), np.concatenate(labels)
    write_prepared(out, images=imgs, labels=labs, splits=["train"] * len(labs),
                   class_names=ds.class_names, name=out.name, force=True)
    return out, dt


def score(data: Path, synthetic: Path, out: Path, *, full: bool, device: str) -> dict:
    from synthmed.metrics.evaluate import evaluate

    return evaluate(f"{data}:test", f"{synthetic}:train", train=f"{data}:train", out=out,
                    metrics=None if full else "fid", cache_dir=out.parent / "cache",
                    n_bootstrap=100 if full else 20, plots=False, device=device)


def synthetic_only(data: Path, synthetic: Path, runs: Path, name: str, *, seeds: int,
                   epochs: int, threads: int, device: str, with_real: bool,
                   positive: str = "malignant") -> dict:
    from synthmed.config import load_config
    from synthmed.tasks.utility import run_utility

    arms = "[real,synthetic-only]" if with_real else "[synthetic-only]"
    cfg = load_config(None, [
        f"name={name}", f"data.path={data}", f"utility.synthetic={synthetic}",
        f"utility.arms={arms}", "utility.model=small-resnet", f"utility.epochs={epochs}",
        "utility.batch_size=128", f"utility.seeds={seeds}", f"utility.num_threads={threads}",
        f"utility.positive_class={positive}", f"utility.device={device}"])
    run = run_utility(cfg, runs_dir=runs)
    doc = json.loads((run / "utility.json").read_text(encoding="utf-8"))
    return {x["arm"]: x for x in doc["summary"] if x["metric"] == "auc"}


def grid(synthetic: Path, out: Path, per_class_rows: int = 4, cols: int = 8) -> Path:
    """First ``rows x cols`` images of each class, one band of rows per class."""
    from PIL import Image

    from synthmed.data.dataset import PreparedDataset
    from synthmed.training.samples import tile

    ds = PreparedDataset(synthetic)
    imgs = np.asarray(ds.images)
    imgs = imgs[:, None] if imgs.ndim == 3 else imgs
    rows = [imgs[ds.labels == k][: per_class_rows * cols] for k in range(len(ds.class_names))]
    Image.fromarray(tile(np.concatenate(rows), cols)).save(out, optimize=True)
    return out


def _get(d: dict, *keys, fmt: str = "{:.3f}") -> str:
    for k in keys:
        d = (d or {}).get(k) if isinstance(d, dict) else None
    return fmt.format(d) if isinstance(d, (int, float)) else "n/a"


def run_generator(name: str, data: Path, work: Path, a, budget: list[float]) -> dict:
    """Train ``name`` in three segments, scoring after each; full scores at the end."""
    base = [f"name=bench-{name}", f"data.path={data}", "data.split=train", "model.image_size=32",
            "train.batch_size=64", "train.steps=100000000", "train.sample_every=100000000",
            "train.checkpoint_every=100000000", "train.log_every=10", "train.seed=0",
            f"train.num_threads={a.threads}", f"train.device={a.device}", *GENERATORS[name]]
    out: dict = {"name": name, "points": []}
    run, trained = None, 0.0
    for i, minutes in enumerate(budget):
        clock = time.perf_counter if a.clock == "wall" else time.process_time
        run, dt = train_for(minutes, run if run else None, base, work / "runs", clock=clock)
        trained += dt
        from synthmed.training.checkpoint import load_checkpoint

        step = int(load_checkpoint(run / "checkpoints" / "latest.pt")["step"])
        last = i == len(budget) - 1
        syn, gen_s = class_matched(run, data, work / f"syn-{name}-{i}", device=a.device,
                                   steps=a.ddim_steps if name == "ddpm" else None,
                                   n=None if last else a.curve_n)
        m = score(data, syn, work / f"eval-{name}-{i}", full=last, device=a.device)
        dom = m  # flat: the primary (domain) extractor's numbers
        out["points"].append({"minutes": trained / 60, "step": step, "relative_fd":
                              dom.get("relative_fd"), "fid": dom.get("fid"),
                              "fid_ci": [dom.get("fid_ci_low"), dom.get("fid_ci_high")]})
        print(f"{name}: segment {i + 1}: {trained / 60:.1f} min, step {step}, relative FD "
              f"{_get(dom, 'relative_fd', fmt='{:.2f}')}, generation {gen_s:.0f} s", flush=True)
    speeds = [json.loads(x).get("img_per_s") for x in
              (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    speeds = [v for v in speeds if v]  # the loop's own rate, start-up and checkpoints excluded
    out.update(run=str(run), synthetic=str(syn), metrics=m, train_s=trained, steps=step,
               train_img_s=float(np.median(speeds)) if speeds else step * 64 / trained,
               sample_s=gen_s, n_generated=_n_images(syn))
    out["sample_img_s"] = out["n_generated"] / gen_s
    grid(syn, work / f"grid-{name}.png")
    return out


def _n_images(prepared: Path) -> int:
    from synthmed.data.dataset import PreparedDataset

    return len(PreparedDataset(prepared).labels)


def _auc(arm: dict | None) -> str:
    if not arm or arm.get("mean") is None:
        return "n/a"
    lo, hi = arm["ci95"]
    ci = f" [{lo:.3f}, {hi:.3f}]" if lo is not None else ""
    return f"{arm['mean']:.3f} ± {arm['std'] or 0:.3f}{ci}"


def table(results: list[dict], real_auc: dict | None, a, header: str) -> str:
    rows = [
        (f"training ({a.clock} min incl. start-up / steps / loop img/s)",
         lambda r: f"{r['train_s'] / 60:.1f} / {r['steps']} / {r['train_img_s']:.0f}"),
        ("sampling img/s (class-matched set)", lambda r: f"{r['sample_img_s']:.1f}"),
        (f"relative FD after 1/3, 2/3 (n = {a.curve_n}), 3/3 of the time (class-matched n)",
         lambda r: ", ".join(
            _get(p, "relative_fd", fmt="{:.2f}") for p in r["points"])),
        # the interval belongs to the bias-corrected FID (docs/metrics.md), not the plain one
        ("FID plain / bias-corrected [95% CI]",
         lambda r: f"{_get(r['metrics'], 'fid', fmt='{:.1f}')}"
         f" / {_get(r['metrics'], 'fid_corrected', fmt='{:.1f}')} "
         f"[{_get(r['metrics'], 'fid_ci_low', fmt='{:.1f}')}, "
         f"{_get(r['metrics'], 'fid_ci_high', fmt='{:.1f}')}] (half-size floor "
         f"{_get(r['metrics'], 'fid_real_real', fmt='{:.1f}')})"),
        ("KID mean ± std", lambda r: f"{_get(r['metrics'], 'kid_mean')} ± "
         f"{_get(r['metrics'], 'kid_std')}"),
        ("precision / recall", lambda r: f"{_get(r['metrics'], 'precision', fmt='{:.2f}')} / "
         f"{_get(r['metrics'], 'recall', fmt='{:.2f}')}"),
        ("density / coverage", lambda r: f"{_get(r['metrics'], 'density', fmt='{:.2f}')} / "
         f"{_get(r['metrics'], 'coverage', fmt='{:.2f}')}"),
        ("copy rate, pixel / features", lambda r: f"{_get(r['metrics'], 'copy_rate')} / "
         f"{_get(r['metrics'], 'copy_rate_features')}"),
        ("membership AUC, pixel / features", lambda r: f"{_get(r['metrics'], 'membership_auc')}"
         f" / {_get(r['metrics'], 'membership_auc_features')}"),
        (f"synthetic-only AUC on real test ({a.seeds} seeds, mean ± std [95% CI])",
         lambda r: _auc(r.get("utility"))),
    ]
    names = [r["name"] for r in results]
    lines = [header, "", "| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    lines += [f"| {label} | " + " | ".join(f(r) for r in results) + " |" for label, f in rows]
    lines += ["", f"Real-data anchor (`real` arm, same classifier and seeds): AUC "
              f"{_auc(real_auc)}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="cgan vs ddpm vs vae at equal training time")
    p.add_argument("--minutes", type=float, default=None,
                   help="training minutes per generator (default 15; cuda 1.5)")
    p.add_argument("--clock", choices=["cpu", "wall"], default=None,
                   help="what a minute is: process CPU time (default on cpu: equal compute on "
                        "a shared machine) or wall time (default on cuda)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--quick", action="store_true", help="CPU smoke run (~4 min, meaningless)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seeds", type=int, default=3, help="utility seeds (>= 3 for the table)")
    p.add_argument("--epochs", type=int, default=12, help="utility classifier epochs")
    p.add_argument("--ddim-steps", type=int, default=50)
    p.add_argument("--curve-n", type=int, default=200,
                   help="images (train class mix) for the relative-FD points before the last")
    p.add_argument("--generators", default="cgan,ddpm,vae")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-generators")
    p.add_argument("--npz", type=Path, default=SHARED / "breastmnist.npz")
    a = p.parse_args(argv)
    if not a.npz.is_file():
        print(f"{a.npz}: not found (see ../shared/datasets/README.md); skipping")
        return 0
    if a.minutes is None:
        a.minutes = 0.15 if a.quick else 1.5 if a.device.startswith("cuda") else 15.0
    if a.clock is None:
        a.clock = "wall" if a.device.startswith("cuda") else "cpu"
    if a.quick:
        a.seeds, a.epochs, a.ddim_steps = 2, 1, 5
    work = a.work / ("quick" if a.quick else a.device.split(":")[0])
    import torch  # noqa: F401  (imports outside the timed segments: equal start for all)
    from monai.networks.nets import DiffusionModelUNet  # noqa: F401

    data = import_real(a.npz, work / "data", 240 if a.quick else None)
    results, real_auc = [], None
    for i, name in enumerate(a.generators.split(",")):
        r = run_generator(name, data, work, a, [a.minutes / 3] * 3)
        t0 = time.perf_counter()
        arms = synthetic_only(data, Path(r["synthetic"]), work / "runs", f"util-{name}",
                              seeds=a.seeds, epochs=a.epochs, threads=a.threads,
                              device=a.device, with_real=i == 0)
        r["utility"], r["utility_s"] = arms.get("synthetic-only"), time.perf_counter() - t0
        real_auc = real_auc or arms.get("real")
        results.append(r)
        print(f"{name}: synthetic-only AUC {_auc(r['utility'])}", flush=True)
    header = (f"### BreastMNIST 32 px, {a.minutes:g} training {a.clock} minutes per generator on "
              f"{a.device} ({a.threads} threads){' (--quick: numbers meaningless)' * a.quick}")
    text = table(results, real_auc, a, header)
    (work / "generators.md").write_text(text, encoding="utf-8")
    (work / "generators.json").write_text(json.dumps(
        {"args": {k: str(v) for k, v in vars(a).items()}, "results": results,
         "real_auc": real_auc}, indent=1, default=str), encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
