"""The low-data curve: where does synthetic augmentation help? (BreastMNIST and DDTI thyroid.)

For each dataset and each fraction of the *training patients* (10 %, 25 %, 50 %, 100 %; nested,
stratified by the patient's class; val and test untouched):

1. a conditional GAN (``cgan``) is trained on that subset only, for the same CPU-time budget at
   every fraction (``train_for`` of ``benchmarks/generators.py``: process CPU time, so a busy
   machine does not change what each generator gets), and a synthetic pool of ``pool`` x the
   subset's class counts is generated;
2. ``run_utility`` runs real+classic, real+classic+synthetic, the count-matched duplicate control
   and synthetic-only over ``seeds`` seeds (ratio 1x; selection on val, one score on test);
3. ``run_utility`` runs real+classic+synthetic again with each ``utility.synthetic_filter`` (the
   filtering classifier trained on the subset's real train images only); its records join the
   first study's, so every arm is compared with real+classic and the duplicate control, paired
   by seed, Holm-adjusted over all comparisons of AUC at that fraction;
4. the filter (none or one of ``filters``) is chosen on the mean **val** AUC of the synthetic arm
   over all fractions and seeds; test numbers of every variant are shown.

Outputs: ``WORK/low_data_curve.md`` (tables, comparisons, the liver-lesion protocol at 100 %:
sensitivity/specificity of real+classic vs real+classic+synthetic beside the study's 78.6 % ->
85.7 % and 88.4 % -> 92.4 %; BreastMNIST beside MedMNIST v2 ResNet-18 (28): ACC 0.863, AUC 0.901),
``WORK/low_data_curve.json`` and one figure per dataset (``--figures``, default ``docs/img``:
``lowdata_<dataset>.png``, test AUC against fraction, 95 % CI over seeds). Each (dataset,
fraction) is cached in ``WORK/<dataset>/frac-<pct>.json``, so an interrupted run resumes.

Settings (defaults): 32 px; cgan width 16, batch 32, 2 CPU-minutes per subset; pool 2x; the
liver study's CNN (``fridadar-cnn``), 15 epochs of batch 64, AdamW 1e-3; 5 seeds; filtered arms
classifier-agree and confidence-topk (keep 0.5); DDTI benign
(TI-RADS 2-3) vs suspicious (4a-5), crops without TI-RADS dropped, patient-level 60/20/20 split
(seed 0), so val and test hold ~14 benign crops each. Measured on the shared 2-core machine with
one thread (1 Dec 2026): BreastMNIST 27.4 CPU-minutes, DDTI 17.6 (58 min wall for both, side
by side with two other benchmarks); see docs/results.md. 5 epochs and 1 CPU-minute of GAN (an
earlier run, 17.5 CPU-minutes in all) left the classifier under-trained. ``--quick`` (2
fractions, 1 epoch, 2 seeds, 6 CPU-seconds of GAN) checks the plumbing in a few
minutes; its numbers mean nothing.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/low_data_curve.py [--datasets breastmnist,ddti]
        [--threads 1] [--seeds 5] [--quick] [--work DIR] [--figures DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from generators import class_matched, train_for  # noqa: E402

DATASETS = {
    "breastmnist": {"npz": "medmnist/breastmnist.npz", "positive": "malignant", "options": {}},
    "ddti": {"npz": "ddti_thyroid_roi/ddti_roi_300.npz", "positive": "suspicious", "options": {
        "npz_keys": ["labels=label_binary", "groups=case_id", "ids=names"], "drop_labels": [-1],
        "class_names": "0=benign,1=suspicious", "split": "0.6,0.2,0.2", "seed": 0}},
}
BASE_ARMS = ["real+classic", "real+classic+synthetic", "real+classic+duplicate", "synthetic-only"]
SYN = "real+classic+synthetic"
LIVER = {"sensitivity": (0.786, 0.857), "specificity": (0.884, 0.924)}  # classic -> +synthetic
MEDMNIST = {"accuracy_argmax": 0.863, "auc": 0.901}  # MedMNIST v2 ResNet-18 (28), BreastMNIST


@dataclass
class Settings:
    size: int = 32
    fractions: list[float] = field(default_factory=lambda: [0.1, 0.25, 0.5, 1.0])
    gan_minutes: float = 2.0
    gan_width: int = 16
    gan_batch: int = 32
    pool: float = 2.0
    model: str = "fridadar-cnn"
    epochs: int = 15
    batch_size: int = 64
    ratio: float = 1.0
    seeds: int = 5
    filters: list[str] = field(default_factory=lambda: ["classifier-agree", "confidence-topk"])
    keep: float = 0.5
    threads: int = 1


QUICK = dict(fractions=[0.25, 1.0], gan_minutes=0.1, epochs=1, seeds=2)


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def import_real(name: str, out: Path, size: int) -> Path:
    from synthmed.data.importer import import_dataset

    if not (out / "dataset.json").is_file():
        import_dataset(SHARED / DATASETS[name]["npz"], out, size=size, normalize="none",
                       force=True, progress=False, **DATASETS[name]["options"])
    return out


def patient_subset(data: Path, out: Path, fraction: float, seed: int = 0) -> Path:
    """``fraction`` of the training patients, per class of the patient's majority label (so
    every class keeps at least one patient); nested across fractions; val/test unchanged."""
    from synthmed.data.dataset import PreparedDataset, write_prepared

    ds = PreparedDataset(data)
    train = ds.indices("train")
    groups, labels = ds.groups[train], ds.labels[train]
    patients = np.unique(groups)
    major = np.array([np.bincount(labels[groups == p]).argmax() for p in patients])
    rng = np.random.default_rng(seed)
    keep = np.concatenate([rng.permutation(patients[major == k])[
        : max(1, round(fraction * int((major == k).sum())))] for k in np.unique(major)])
    rows = np.sort(np.concatenate([train[np.isin(groups, keep)], ds.indices("val"),
                                   ds.indices("test")]))
    return write_prepared(out, images=np.asarray(ds.images[rows]), labels=ds.labels[rows],
                          splits=ds.splits[rows].tolist(), class_names=ds.class_names,
                          groups=ds.groups[rows].tolist(), name=out.name, force=True)


def train_generator(data: Path, runs: Path, s: Settings, name: str) -> tuple[Path, int, float]:
    from synthmed.training.checkpoint import load_checkpoint

    base = [f"name={name}", f"data.path={data}", "data.split=train", "model.name=cgan",
            f"model.image_size={s.size}", f"model.base_width={s.gan_width}",
            f"train.batch_size={s.gan_batch}", "train.steps=100000000",
            "train.sample_every=100000000", "train.checkpoint_every=100000000",
            "train.log_every=10", "train.seed=0", f"train.num_threads={s.threads}",
            "train.device=cpu"]
    run, used = train_for(s.gan_minutes, None, base, runs, clock=time.process_time)
    step = int(load_checkpoint(run / "checkpoints" / "latest.pt")["step"])
    return run, step, used


def study(data: Path, syn: Path, runs: Path, s: Settings, name: str, positive: str,
          arms: list[str], filt: str):
    from synthmed.config import load_config
    from synthmed.tasks.utility import run_utility

    cfg = load_config(None, [
        f"name={name}", f"data.path={data}", f"utility.synthetic={syn}",
        f"utility.arms=[{', '.join(arms)}]", f"utility.model={s.model}",
        f"utility.epochs={s.epochs}", f"utility.batch_size={s.batch_size}",
        f"utility.ratios=[{s.ratio}]", f"utility.synthetic_only_ratio={s.ratio}",
        f"utility.seeds={s.seeds}", f"utility.num_threads={s.threads}", "utility.device=cpu",
        f"utility.positive_class={positive}", f"utility.synthetic_filter={filt}",
        f"utility.synthetic_filter_keep={s.keep}"])
    run = run_utility(cfg, runs_dir=runs)
    return cfg, json.loads((run / "utility.json").read_text(encoding="utf-8"))


def run_fraction(name: str, data: Path, frac: float, work: Path, s: Settings) -> dict:
    """Generator, pool, the base study and one filtered study per filter, merged."""
    from synthmed.data.dataset import PreparedDataset
    from synthmed.errors import ConfigError
    from synthmed.tasks.utility import prepare_study, summarize_study

    tag = f"{round(frac * 100)}pct"
    t0, c0 = time.perf_counter(), cpu_s()
    sub = data if frac == 1.0 else patient_subset(data, work / f"data-{tag}", frac)
    ds = PreparedDataset(sub)
    train = ds.indices("train")
    gan, steps, gan_cpu = train_generator(sub, work / "runs", s, f"{name}-cgan-{tag}")
    pool, _ = class_matched(gan, sub, work / f"pool-{tag}", device="cpu", steps=None,
                            n=round(s.pool * len(train)))
    positive = DATASETS[name]["positive"]
    cfg, doc = study(sub, pool, work / "runs", s, f"{name}-{tag}", positive, BASE_ARMS, "none")
    records, filters = list(doc["runs"]), {}
    for f in s.filters:
        try:
            _, fdoc = study(sub, pool, work / "runs", s, f"{name}-{tag}-{f}", positive, [SYN], f)
        except ConfigError as e:  # e.g. classifier-agree kept no image of a class
            filters[f] = {"error": str(e)}
            print(f"{name} {tag}: filtered arm {f} not run: {e}", flush=True)
            continue
        filters[f] = fdoc["synthetic"][0].get("filter")
        for r in fdoc["runs"]:
            records.append({**r, "arm": f"{SYN}@{f}", "source": f"filter {f}"})
    merged = summarize_study(prepare_study(cfg), records)
    return {"fraction": frac, "n_train": int(len(train)),
            "n_patients": int(len(np.unique(ds.groups[train]))),
            "class_counts": {c: int((ds.labels[train] == k).sum())
                             for k, c in enumerate(ds.class_names)},
            "n_val": int(len(ds.indices("val"))), "n_test": int(len(ds.indices("test"))),
            "gan": {"steps": steps, "cpu_min": round(gan_cpu / 60, 2)}, "filters": filters,
            "summary": merged["summary"], "comparisons": merged["comparisons"],
            "result_lines": merged["result_lines"], "warnings": doc["warnings"],
            "runs": [{k: r[k] for k in ("arm", "seed", "n_train", "n_synthetic_unique",
                                        "best_epoch", "threshold", "val", "test")}
                     for r in records],
            "cpu_min": round((cpu_s() - c0) / 60, 2),
            "wall_min": round((time.perf_counter() - t0) / 60, 2)}


def choose_filter(points: list[dict], s: Settings) -> tuple[str, dict[str, float]]:
    """The synthetic-arm variant with the best mean val AUC over all fractions and seeds."""
    val = {}
    for f in ["none", *s.filters]:
        arm = SYN if f == "none" else f"{SYN}@{f}"
        v = [r["val"]["auc"] for p in points for r in p["runs"] if r["arm"] == arm]
        val[f] = float(np.nanmean(v)) if v else float("nan")
    return max(val, key=lambda f: (np.nan_to_num(val[f], nan=-1), f == "none")), val


def _get(point: dict, arm: str, metric: str) -> dict | None:
    return next((x for x in point["summary"] if x["arm"] == arm and x["metric"] == metric
                 and x["mean"] is not None), None)


def _cell(x: dict | None, ci: bool = True) -> str:
    if not x or x["mean"] is None or not np.isfinite(x["mean"]):
        return "n/a"
    lo, hi = x["ci95"]
    return f"{x['mean']:.3f}" + (f" [{lo:.3f}, {hi:.3f}]" if ci and lo is not None else "")


def _val(point: dict, arm: str) -> str:
    v = [r["val"]["auc"] for r in point["runs"] if r["arm"] == arm]
    return f"{np.nanmean(v):.3f}" if v else "n/a"


def arms_of(s: Settings) -> list[str]:
    return [BASE_ARMS[0], SYN, *[f"{SYN}@{f}" for f in s.filters], *BASE_ARMS[2:]]


def figure(name: str, points: list[dict], s: Settings, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=90)
    arms = arms_of(s)
    for i, arm in enumerate(arms):
        xs, ys, err = [], [], []
        for p in points:
            x = _get(p, arm, "auc")
            if x:
                lo, hi = x["ci95"] if x["ci95"][0] is not None else (x["mean"], x["mean"])
                xs.append(p["fraction"] * (1 + 0.025 * (i - len(arms) / 2)))
                ys.append(x["mean"])
                err.append([x["mean"] - lo, hi - x["mean"]])
        if xs:
            ax.errorbar(xs, ys, yerr=np.array(err).T, marker="o", ms=4, capsize=3, lw=1.2,
                        label=arm.replace(f"{SYN}@", "+synthetic, filter "))
    if name == "breastmnist":
        ax.axhline(MEDMNIST["auc"], color="grey", ls=":", lw=1,
                   label="MedMNIST v2 ResNet-18 (28), published, 100%")
    ax.axhline(0.5, color="grey", ls="--", lw=0.8)
    ax.set_xscale("log")
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xticks(s.fractions, [f"{f:.0%}" for f in s.fractions])
    ax.set_xlabel("fraction of training patients")
    ax.set_ylabel("test AUC (mean, 95% CI over seeds)")
    ax.set_title(f"{name}: {s.seeds} seeds, {s.model}, cgan {s.gan_minutes:g} CPU-min/subset",
                 fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"lowdata_{name}.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def curve_table(name: str, points: list[dict], s: Settings) -> list[str]:
    lines = ["| fraction (patients / images) | arm | test AUC [95% CI] | val AUC | "
             "sensitivity | specificity | ACC (arg-max) |", "|---|---|---|---|---|---|---|"]
    for p in points:
        head = f"{p['fraction']:.0%} ({p['n_patients']} / {p['n_train']})"
        for arm in arms_of(s):
            if not _get(p, arm, "auc"):
                continue
            cells = [_cell(_get(p, arm, m), ci=False)
                     for m in ("sensitivity", "specificity", "accuracy_argmax")]
            lines.append(f"| {head} | {arm} | {_cell(_get(p, arm, 'auc'))} | {_val(p, arm)} | "
                         + " | ".join(cells) + " |")
    return lines


def _p(v) -> str:
    return f"{v:.3g}" if isinstance(v, (int, float)) and np.isfinite(v) else "n/a"


def comparison_table(points: list[dict]) -> list[str]:
    lines = ["| fraction | arm | vs | AUC difference [95% CI] | paired t p | Holm p | verdict |",
             "|---|---|---|---|---|---|---|"]
    for p in points:
        for c in p["comparisons"]:
            if c["metric"] != "auc" or c["kind"] not in (SYN, "synthetic-only"):
                continue
            lo, hi = c["ci95"]
            diff = "n/a" if c["mean_diff"] is None else (
                f"{c['mean_diff']:+.3f}" + (f" [{lo:+.3f}, {hi:+.3f}]" if lo is not None else ""))
            pv, ph = (_p(c.get(k)) for k in ("p", "p_holm"))
            lines.append(f"| {p['fraction']:.0%} | {c['arm']} | {c['reference']} | {diff} | "
                         f"{pv} | {ph} | {c['verdict']} |")
    return lines


def protocol_table(name: str, points: list[dict], chosen: str) -> list[str]:
    full = next((p for p in points if p["fraction"] == 1.0), None)
    if full is None:
        return ["(100 % fraction not run)"]
    syn = SYN if chosen == "none" else f"{SYN}@{chosen}"
    arms = [BASE_ARMS[0], SYN] + ([syn] if syn != SYN else [])
    lines = ["| | " + " | ".join(arms) + " | liver-lesion study (classic -> +synthetic) |",
             "|---" * (len(arms) + 2) + "|"]
    for m in ("sensitivity", "specificity"):
        a, b = LIVER[m]
        lines.append(f"| {m} | " + " | ".join(_cell(_get(full, x, m)) for x in arms)
                     + f" | {a:.1%} -> {b:.1%} |")
    for m in ("auc", "accuracy_argmax"):
        pub = f"MedMNIST v2 ResNet-18 (28): {MEDMNIST[m]:.3f}" if name == "breastmnist" else ""
        lines.append(f"| {m} | " + " | ".join(_cell(_get(full, x, m)) for x in arms)
                     + f" | {pub} |")
    return lines


def report(name: str, points: list[dict], s: Settings, fig: Path, quick: bool) -> str:
    chosen, val = choose_filter(points, s)
    cpu = sum(p["cpu_min"] for p in points)
    lines = [f"### {name}{' (--quick: smoke run, numbers meaningless)' if quick else ''}", "",
             f"![{name}]({fig.name})", "", *curve_table(name, points, s), "",
             "Synthetic-arm variant chosen on mean **val** AUC over all fractions and seeds: "
             f"**{chosen}** (" + ", ".join(f"{k} {v:.3f}" for k, v in val.items()) + ").", "",
             "Paired comparisons (test AUC, paired by seed; Holm over all AUC comparisons at "
             "that fraction):", "", *comparison_table(points), "",
             "Liver-lesion protocol at 100 % (sensitivity/specificity at the Youden threshold "
             "chosen on val; mean [95% CI]):", "", *protocol_table(name, points, chosen), "",
             "Generators: " + ", ".join(f"{p['fraction']:.0%}: {p['gan']['steps']} steps in "
                                        f"{p['gan']['cpu_min']:.2f} CPU-min" for p in points),
             "Filters kept (per class, of the pool): " + "; ".join(
                 f"{p['fraction']:.0%} {f}: " + (", ".join(
                     f"{c} {info['kept'][c]}/{info['before'][c]}" for c in info["kept"])
                     if "kept" in info else f"not run ({info['error']})")
                 for p in points for f, info in p["filters"].items() if info),
             f"CPU time: {cpu:.1f} min (" + ", ".join(
                 f"{p['fraction']:.0%} {p['cpu_min']:.1f}" for p in points) + ")"]
    warn = sorted({w for p in points for w in p["warnings"]})
    return "\n".join(lines + [f"Warning: {w}" for w in warn] + [""])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="synthmed low-data curve (BreastMNIST, DDTI)")
    p.add_argument("--datasets", default="breastmnist,ddti")
    p.add_argument("--quick", action="store_true", help="smoke run (minutes, meaningless)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument("--gan-minutes", type=float, default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--fractions", default=None,
                   help="comma list, run in this order (default 0.1,0.25,0.5,1.0)")
    p.add_argument("--filters", default=None,
                   help="comma list of utility.synthetic_filter values for filtered arms "
                        "(default classifier-agree,confidence-topk)")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-lowdata")
    p.add_argument("--figures", type=Path, default=ROOT / "docs" / "img")
    a = p.parse_args(argv)
    s = replace(Settings(), **(QUICK if a.quick else {}))
    s = replace(s, **{k: v for k, v in dict(threads=a.threads, seeds=a.seeds, epochs=a.epochs,
                                             gan_minutes=a.gan_minutes).items() if v})
    if a.fractions:
        s = replace(s, fractions=[float(f) for f in a.fractions.split(",")])
    if a.filters:
        s = replace(s, filters=[f for f in a.filters.split(",") if f and f != "none"])
    import torch

    torch.set_num_threads(s.threads)
    texts, results = [], {}
    for name in a.datasets.split(","):
        if not (SHARED / DATASETS[name]["npz"]).is_file():
            print(f"{SHARED / DATASETS[name]['npz']}: not found (see ../shared/datasets/README.md)"
                  "; skipping")
            continue
        work = a.work / f"{name}-{'quick' if a.quick else 'full'}"
        data = import_real(name, work / "data", s.size)
        points = []
        for frac in s.fractions:
            cache = work / f"frac-{round(frac * 100)}pct.json"
            if cache.is_file():
                points.append(json.loads(cache.read_text(encoding="utf-8")))
                continue
            points.append(run_fraction(name, data, frac, work, s))
            cache.write_text(json.dumps(points[-1], default=str), encoding="utf-8")
            print(f"{name} {frac:.0%}: " + "; ".join(
                x for x in points[-1]["result_lines"] if "synthetic" in x), flush=True)
        points.sort(key=lambda p: p["fraction"])
        fig = figure(name, points, s, a.figures if not a.quick else work)
        texts.append(report(name, points, s, fig, a.quick))
        results[name] = points
    text = "\n".join(texts) + "\nSettings: " + json.dumps(asdict(s)) + "\n"
    a.work.mkdir(parents=True, exist_ok=True)
    (a.work / "low_data_curve.md").write_text(text, encoding="utf-8")
    (a.work / "low_data_curve.json").write_text(json.dumps(
        {"settings": asdict(s), "results": results}, default=str), encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
