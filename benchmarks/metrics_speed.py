"""Speed of the metrics: feature extraction (features/s) and a whole ``synthmed evaluate``.

Builds a phantom dataset of 64x64 images (500 train, 1,000 test, patient-grouped) and a synthetic
set of 1,000 PNGs in ``synthmed generate``'s layout (another phantom seed), then times:

- training the domain extractor on the 500 training images (default settings, sanity ladder on
  the 1,000 held-out images included), and, as the reference, the old ``supervised`` mode;
- features/s of the domain extractor, and of the Inception path when torch-fidelity and the
  weights are present (else the one-line reason it is skipped), each also as a ratio to a bare
  reference on the same batch (one 3x3 conv, 1->32 channels, at the extractor's input size), so
  the numbers compare across machines;
- ``evaluate`` of 1,000 synthetic vs 1,000 real images (all metrics, 100 bootstrap resamples):
  cold (extractor trained and every feature computed), with a given extractor file (features not
  cached) and warm (cached extractor and real features).

Every step prints wall and CPU seconds (this process, all threads): on a machine shared with other
jobs the CPU seconds are the stable number.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/metrics_speed.py [--repeat 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
import timeit
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from synthmed.data.dataset import write_prepared
from synthmed.data.phantom import CLASS_NAMES, make_phantom
from synthmed.data.splits import group_stratified_split
from synthmed.errors import SynthmedError
from synthmed.metrics.domain import load_domain_extractor, train_domain_extractor
from synthmed.metrics.evaluate import evaluate
from synthmed.metrics.features import FeatureExtractor, prepare_images


def make_inputs(root: Path, n_real: int, n_synth: int) -> tuple[Path, Path]:
    ph = make_phantom(n=n_real * 3 // 2, size=64, seed=0)
    splits = group_stratified_split(ph["labels"], ph["groups"], (1 / 3, 0.0, 2 / 3), seed=0)
    data = write_prepared(root / "data", images=ph["images"][:, None], labels=ph["labels"],
                          splits=splits, class_names=CLASS_NAMES, ids=ph["ids"],
                          groups=ph["groups"], name="bench")
    syn = make_phantom(n=n_synth, size=64, seed=1)
    out = root / "synthetic"
    rows = []
    for seed, (img, lab) in enumerate(zip(syn["images"], syn["labels"], strict=True)):
        c = CLASS_NAMES[lab]
        rel = f"images/{c}/{c}_seed{seed}.png"
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(out / rel)
        rows.append((rel, c, seed))
    with open(out / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["file", "class", "seed"])
        w.writerows(rows)
    (out / "generation.json").write_text(json.dumps({"format": "png",
                                                     "class_names": list(CLASS_NAMES)}))
    return data, out


def timed(fn):
    """(result, wall seconds, CPU seconds of this process) of one call."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def best(fn, repeat: int) -> float:
    """Best wall time of ``repeat`` single calls (the least disturbed by other jobs)."""
    return min(timeit.repeat(fn, number=1, repeat=repeat))


def reference(images: np.ndarray, size: tuple[int, int], batch: int) -> None:
    """The bare reference: one 3x3 conv (1 -> 32 channels) over the same batches."""
    w = torch.randn(32, 1, 3, 3)
    with torch.no_grad():
        for s in range(0, len(images), batch):
            x = prepare_images(images[s:s + batch], size=size, channels=1)
            torch.nn.functional.conv2d(x, w, padding=1)


def time_extractor(ex: FeatureExtractor, images: np.ndarray, repeat: int) -> None:
    t = best(lambda: ex.extract(images), repeat)
    size = ex.input_size or (299, 299)
    ref = best(lambda: reference(images, size, ex.batch_size), repeat)
    print(f"{ex.name:>9} features: {len(images) / t:8.0f} images/s  ({t:.2f} s for "
          f"{len(images)}; {t / ref:.1f}x the bare 3x3-conv reference at "
          f"{size[0]}x{size[1]})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    ap.add_argument("--inception-weights", type=Path, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data, syn = make_inputs(root, 1000, 1000)
        cache = root / "cache"
        runs = {}
        for mode in ("supervised", "auto"):
            runs[mode] = timed(lambda m=mode: train_domain_extractor(data, "train", mode=m,
                                                                     cache_dir=cache))
            sanity = load_domain_extractor(runs[mode][0]).info["sanity"]
            print(f"domain extractor training, mode {mode} (500 images, 64x64, 15 epochs, ladder "
                  f"on {2 * sanity['n_per_half']} held-out images included): "
                  f"{runs[mode][1]:.1f} s wall, {runs[mode][2]:.1f} s CPU; ladder "
                  f"{'passed' if sanity['passed'] else 'FAILED'}")
        print(f"  default / supervised CPU time: {runs['auto'][2] / runs['supervised'][2]:.1f}x")
        ext = runs["auto"][0]
        ex = load_domain_extractor(ext)
        images = np.load(data / "images.npy")[:1000]
        time_extractor(ex, images, args.repeat)
        try:
            from synthmed.metrics.inception import load_inception

            time_extractor(load_inception(args.inception_weights), images[:200], 1)
        except SynthmedError as e:
            print(f"inception features: skipped ({e})")
        for label, kw in (
            ("cold (trains the extractor, no cache)", {"cache_dir": root / "cold"}),
            ("given extractor, features not cached", {"cache_dir": root / "given",
                                                      "extractor": ext}),
            ("warm (cached extractor and real features)", {"cache_dir": cache}),
        ):
            m, wall, cpu = timed(lambda kw=kw: evaluate(f"{data}:test", syn,
                                                        out=root / "eval", **kw))
            print(f"evaluate {m['n_synthetic']} vs {m['n_real']} (n_train {m['n_train']}), "
                  f"{label}: {wall:.1f} s wall, {cpu:.1f} s CPU")
        print(f"  fid {m['fid']:.4g}, bias-corrected {m['fid_corrected']:.4g} "
              f"[{m['fid_ci_low']:.4g}, {m['fid_ci_high']:.4g}], "
              f"floor {m['fid_real_real']:.4g}, relative FD {m['relative_fd']:.3g}, "
              f"precision {m['precision']:.3f}, recall {m['recall']:.3f}, "
              f"copy rate {m['copy_rate']:.3f}, membership AUC {m['membership_auc']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
