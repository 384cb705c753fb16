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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=None, help="Scratch folder (default: a temp dir).")
    ap.add_argument("--pneumonia-train", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
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
