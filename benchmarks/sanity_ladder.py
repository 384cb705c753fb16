"""The sanity ladder of the domain extractor on real data, before and after the contrastive default.

For BreastMNIST (28 px), PneumoniaMNIST (28 px) and DDTI thyroid ROIs (64 px, split by
``case_id``) from ``../shared/datasets``: import each (raw pixels), train the domain extractor on
the ``train`` split in mode ``supervised`` (the default before) and ``auto`` (now:
``simclr+supervised``), both with the default 15 epochs and seed 0, and print the ladder each
stored (real held-out vs real, vs uniform noise, Gaussian blur sigma 1.5, 4x4 tile shuffle and the
constant mean image; see ``synthmed.metrics.sanity``) as the Markdown tables of docs/metrics.md.

The ladder runs on the ``val`` + ``test`` images (at most 1,000, seeded subsample), halves
averaged over 3 random halvings. PneumoniaMNIST's 4,708 training images are subsampled to
``--pneumonia-train`` (default 1,000, seeded) to keep the run short; BreastMNIST and DDTI are used
whole. About 3 minutes on 2 CPU cores (on a machine shared with other jobs use one thread: two
threads on an oversubscribed machine made an 11 s step take 3 minutes):

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/sanity_ladder.py --threads 1 [--work DIR]

``--verdicts`` instead runs ``evaluate`` on BreastMNIST (``--real breast:test``, the default
extractor trained on ``train``; FID, KID, PRDC, privacy, 30 resamples) for sets whose verdict is
known: held-out real (``val``), uniform noise, dark 4x4 blocks, 16 exact training copies plus
``val``, and a real generator after 90 steps (``configs/breastmnist_cgan.yaml``, 156 images in
the training class mix), and prints the docs/metrics.md table (about 3 CPU minutes).

``--realism`` runs the realism judge's ladder instead (``synthmed.metrics.realism``: the classifier
two-sample test of held-out real half A vs half B and vs each rung applied to B; rungs blur sigma 1
and 1.5, a +-3 grey-level pixel checkerboard, JPEG quality 30, the mirror image, noise, 4x4 tiles,
constant mean image) on the ``val`` + ``test`` images of the three datasets, for the logistic
classifier and (``--classifier boosting``) gradient boosting, and measures the cost of the C2ST
with its floor and 100 permutations for 500 vs 500 images at 64 px (DDTI). No extractor is
trained; about 1 CPU minute:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/sanity_ladder.py --threads 1 --realism
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
DATASETS = {  # name: (file, import options)
    "BreastMNIST": ("medmnist/breastmnist.npz", {}),
    "PneumoniaMNIST": ("medmnist/pneumoniamnist_reconstructed.npz", {}),
    "DDTI": ("ddti_thyroid_roi/ddti_roi_300.npz",
             {"size": 64, "npz_keys": ["labels=label_binary", "groups=case_id", "ids=names"]}),
}
MODES = {"before": "supervised", "after": "auto"}


def prepare(name: str, work: Path, train_cap: int | None) -> Path | None:
    from synthmed.data.dataset import PreparedDataset, write_prepared
    from synthmed.data.importer import import_dataset

    file, opts = DATASETS[name]
    if not (SHARED / file).is_file():
        print(f"{SHARED / file}: not found (see ../shared/datasets/README.md); skipping {name}")
        return None
    out = work / name
    import_dataset(SHARED / file, out, normalize="none", force=True, progress=False, **opts)
    ds = PreparedDataset(out)
    train = ds.indices("train")
    if train_cap is None or len(train) <= train_cap:
        return out
    keep = np.random.default_rng(0).permutation(train)[:train_cap]
    rows = np.sort(np.concatenate([keep, np.flatnonzero(ds.splits != "train")]))
    return write_prepared(work / f"{name}-sub", images=np.asarray(ds.images[rows]),
                          labels=ds.labels[rows], splits=ds.splits[rows].tolist(),
                          class_names=ds.class_names, groups=ds.groups[rows].tolist(),
                          name=f"{name}-sub", force=True)


def ladders(data: Path, work: Path) -> dict[str, tuple[dict, float, int]]:
    from synthmed.metrics.domain import load_domain_extractor, train_domain_extractor

    out = {}
    for when, mode in MODES.items():
        t0 = time.perf_counter()
        path = train_domain_extractor(data, "train", mode=mode, seed=0, cache_dir=work / "cache",
                                      force=True)
        seconds = time.perf_counter() - t0
        ex = load_domain_extractor(path)
        out[when] = (ex.info["sanity"], seconds, ex.info["feature_dim"])
    return out


def _cell(row: dict, metric: str, real: dict) -> str:
    if metric == "fid":
        return f"{row['fid'] / real['fid']:.1f}x" if real["fid"] > 0 else f"{row['fid']:.3g}"
    return f"{row[metric]:.2f}"


def table(name: str, res: dict[str, tuple[dict, float, int]], n_train: int) -> str:
    b, a = res["before"][0], res["after"][0]
    lines = [f"**{name}** ({n_train} training images; ladder on {a['source']}, "
             f"{a['n_per_half']} per half): before {'PASSED' if b['passed'] else 'FAILED'}, "
             f"after {'PASSED' if a['passed'] else 'FAILED'}; extractor training + ladder "
             f"{res['before'][1]:.0f} s before, {res['after'][1]:.0f} s after.", "",
             "| rung | FID before | FID after | precision before | precision after "
             "| density before | density after | clearly worse before / after |",
             "|---|---:|---:|---:|---:|---:|---:|:---:|"]
    br, ar = b["real"], a["real"]
    lines.append(f"| real vs real | {br['fid']:.3g} | {ar['fid']:.3g} | {br['precision']:.2f} | "
                 f"{ar['precision']:.2f} | {br['density']:.2f} | {ar['density']:.2f} | |")
    for rung in a["rungs"]:
        rb, ra = b["rungs"][rung], a["rungs"][rung]
        cells = [f"{_cell(rb, m, br)} | {_cell(ra, m, ar)}" for m in ("fid", "precision",
                                                                          "density")]
        mark = f"{'yes' if rb['passed'] else 'no'} / {'yes' if ra['passed'] else 'no'}"
        lines.append(f"| {rung} | {' | '.join(cells)} | {mark} |")
    return "\n".join(lines)


def _verdict_sets(data: Path, work: Path) -> dict[str, str]:
    """The sets of ``--verdicts``: name -> what ``evaluate --synthetic`` reads."""
    from synthmed.config import load_config
    from synthmed.data.dataset import PreparedDataset
    from synthmed.sampling.sampler import generate
    from synthmed.training import train

    ds = PreparedDataset(data)
    rng = np.random.default_rng(0)
    val = np.asarray(ds.images[ds.indices("val")])[:, 0]
    train_imgs = np.asarray(ds.images[ds.indices("train")])[:, 0]
    sets = {"held-out real (`breast:val`, 78)": f"{data}:val"}
    arrays = {
        "uniform noise (.npz, 156)": rng.integers(0, 256, (156, 28, 28), dtype=np.uint8),
        "dark 4x4 blocks (.npz, 156)": np.kron(rng.integers(0, 40, (156, 7, 7)),
                                               np.ones((4, 4))).astype(np.uint8),
        "16 exact training copies + 78 val (.npz)": np.concatenate(
            [train_imgs[rng.choice(len(train_imgs), 16, replace=False)], val]),
    }
    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "breastmnist_cgan.yaml",
                      [f"data.path={data}", "train.steps=90", "train.sample_every=90",
                       "train.checkpoint_every=90", "train.log_every=30", "train.num_threads=1"])
    run = train(cfg, runs_dir=work / "runs", progress=False)
    gen = generate(run, n=156, match_train=True, size=28)
    arrays["cgan after 90 steps (156)"] = \
        ((gen.images[:, 0] + 1) * 127.5).round().clamp(0, 255).byte().numpy()
    for name, imgs in arrays.items():
        path = work / f"set{len(sets)}.npz"
        np.savez(path, images=imgs)
        sets[name] = str(path)
    return sets


def verdicts(work: Path) -> str:
    """Known-verdict sets through ``evaluate`` on BreastMNIST, as a Markdown table."""
    from synthmed.metrics.evaluate import evaluate

    data = prepare("BreastMNIST", work, None)
    if data is None:
        return ""
    lines = ["| synthetic set | relative FD | FID corrected [95 % CI] | precision / density "
             "| recall / coverage | copy rate pixel / features | verdict (fidelity / diversity "
             "/ privacy) |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, ref in _verdict_sets(data, work).items():
        m = evaluate(f"{data}:test", ref, train=f"{data}:train", metrics="fid,kid,prdc,privacy",
                     out=work / "eval", cache_dir=work / "cache", n_bootstrap=30, plots=False)
        v = m["verdict"]
        lines.append(
            f"| {name} | {m['relative_fd']:.3g} | {m['fid_corrected']:.3g} "
            f"[{m['fid_ci_low']:.3g}, {m['fid_ci_high']:.3g}] | {m['precision']:.2f} / "
            f"{m['density']:.2f} | {m['recall']:.2f} / {m['coverage']:.2f} | "
            f"{m['copy_rate']:.3f} / {m['copy_rate_features']:.3f} | "
            f"{' / '.join(v[k]['rating'] for k in ('fidelity', 'diversity', 'privacy'))} |")
    sanity = m["sanity"]
    lines.append(f"\nextractor {m['extractor']} ({m['feature_dim']}-d), ladder "
                 f"{'passed' if sanity and sanity['passed'] else 'failed'}; "
                 f"n_heldout_duplicates {m['n_heldout_duplicates']}")
    return "\n".join(lines)


def realism_tables(work: Path, classifiers: list[str], max_images: int = 1000) -> str:
    """The realism ladder per dataset and classifier, as Markdown."""
    from synthmed.data.dataset import PreparedDataset
    from synthmed.metrics.realism import LADDER_RULE, realism_ladder

    lines = [f"Rule: {LADDER_RULE}.", ""]
    for name in DATASETS:
        data = prepare(name, work, None)
        if data is None:
            continue
        ds = PreparedDataset(data)
        idx = np.concatenate([ds.indices("val"), ds.indices("test")])
        if len(idx) > max_images:
            idx = np.sort(np.random.default_rng(0).permutation(idx)[:max_images])
        images = np.asarray(ds.images[idx])
        res = {}
        for clf in classifiers:
            t0 = time.process_time()
            res[clf] = (realism_ladder(images, seed=0, classifier=clf), time.process_time() - t0)
        head = " | ".join(f"AUC [95 % CI] {c}" for c in classifiers)
        lines += [f"**{name}** ({len(images)} held-out images at {ds.size[0]} px, "
                  f"{res[classifiers[0]][0]['n_per_half']} per half; CPU s for the whole ladder: "
                  + ", ".join(f"{c} {t:.1f}" for c, (_, t) in res.items()) + ")", "",
                  f"| rung | {head} | flagged ({' / '.join(classifiers)}) |",
                  "|---|" + "---:|" * len(classifiers) + ":---:|"]
        first = res[classifiers[0]][0]
        for rung in ["real", *first["rungs"]]:
            cells, flags = [], []
            for c in classifiers:
                lad = res[c][0]
                row = lad["real"] if rung == "real" else lad["rungs"][rung]
                if row["auc"] is None:
                    cells.append("not testable: one distinct image")
                    flags.append("n/a")
                    continue
                cells.append(f"{row['auc']:.3f} [{row['auc_ci_low']:.2f}, "
                             f"{row['auc_ci_high']:.2f}]")
                flags.append("" if rung == "real" else ("yes" if row["flagged"] else "no"))
            label = "real vs real" if rung == "real" else rung
            lines.append(f"| {label} | {' | '.join(cells)} | {' / '.join(flags)} |")
        lines.append("")
    return "\n".join(lines)


def c2st_cost(work: Path) -> str:
    """CPU seconds of evaluate's realism block for 500 vs 500 images at 64 px (DDTI)."""
    from synthmed.data.dataset import PreparedDataset
    from synthmed.metrics.realism import realism_block
    from synthmed.metrics.sanity import gaussian_blur

    data = prepare("DDTI", work, None)
    if data is None:
        return ""
    imgs = np.asarray(PreparedDataset(data).images)
    rng = np.random.default_rng(0)
    real = imgs[rng.permutation(len(imgs))[:500]]
    fake = gaussian_blur(imgs[rng.permutation(len(imgs))[:500]], 1.0)
    t0 = time.process_time()
    block, _ = realism_block(real, fake, seed=0)
    cpu = time.process_time() - t0
    return (f"C2ST of 500 vs 500 DDTI images at 64 px (blur 1 as the synthetic set), floor and "
            f"{block['n_permutations']} permutations: {cpu:.1f} CPU s (test alone "
            f"{block['cpu_s']:.1f} s as recorded; AUC {block['auc']:.3f}, floor "
            f"{block['floor']['auc']:.3f})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=None, help="Scratch folder (default: a temp dir).")
    ap.add_argument("--pneumonia-train", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--verdicts", action="store_true",
                    help="Evaluate known-verdict sets on BreastMNIST instead of the ladders.")
    ap.add_argument("--realism", action="store_true",
                    help="Run the realism judge's ladder (C2ST) and its cost instead.")
    ap.add_argument("--classifier", action="append", default=None,
                    help="--realism: classifier(s) to compare (logistic, boosting).")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.realism:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.process_time()
            print(realism_tables(args.work or Path(tmp), args.classifier or ["logistic"]))
            print(c2st_cost(args.work or Path(tmp)))
            print(f"{time.process_time() - t0:.0f} s CPU, {args.threads} threads")
        return 0
    if args.verdicts:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.process_time()
            print(verdicts(args.work or Path(tmp)))
            print(f"{time.process_time() - t0:.0f} s CPU, {args.threads} threads")
        return 0
    from synthmed.data.dataset import PreparedDataset

    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        t0 = time.perf_counter()
        for name in DATASETS:
            cap = args.pneumonia_train if name == "PneumoniaMNIST" else None
            data = prepare(name, work, cap)
            if data is None:
                continue
            n_train = len(PreparedDataset(data).indices("train"))
            print(table(name, ladders(data, work), n_train) + "\n", flush=True)
        print(f"total {time.perf_counter() - t0:.0f} s, {args.threads} threads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
