"""Import speed of ``synthmed data import`` on DDTI (655 thyroid ROIs, 300x300), images/s.

Times the import of ``ddti_roi_300.npz`` and of a PNG folder exported from it, resized to 64 and
128, with and without a 3x3 median filter. Each case is reported as images/s and as a ratio to a
bare reference on the same input (decode + PIL bilinear resize in a loop, no bookkeeping), so the
numbers compare across machines. Best of ``--repeat`` runs.

    .venv/bin/python benchmarks/import_speed.py [--ddti PATH] [--repeat 3]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import timeit
from pathlib import Path

import numpy as np
from PIL import Image

from synthmed.data import export_dataset, import_dataset

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ddti_thyroid_roi" / \
    "ddti_roi_300.npz"
NPZ_KEYS = ["labels=label_binary", "groups=case_id", "ids=names"]


def best_time(fn, repeat: int) -> float:
    """Best wall time of ``repeat`` single calls (the least disturbed by other jobs)."""
    return min(timeit.repeat(fn, number=1, repeat=repeat))


def reference_npz(path: Path, size: int) -> None:
    with np.load(path) as z:
        images = z["images"]
    for img in images:
        Image.fromarray(img).resize((size, size), Image.BILINEAR)


def reference_png(folder: Path, size: int) -> None:
    for p in sorted(folder.rglob("*.png")):
        with Image.open(p) as im:
            im.convert("L").resize((size, size), Image.BILINEAR)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ddti", type=Path, default=DEFAULT)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    logging.getLogger("synthmed.data").setLevel(logging.ERROR)  # notices are not timings
    if not args.ddti.is_file():
        print(f"skipped: {args.ddti} not found (see ../shared/datasets/README.md)")
        return 0
    with np.load(args.ddti) as z:
        n = len(z["images"])
    tmp = Path(tempfile.mkdtemp(prefix="synthmed-bench-"))
    try:
        native = import_dataset(args.ddti, tmp / "native", npz_keys=NPZ_KEYS, progress=False)
        png = export_dataset(native, tmp / "png", "png")
        sources = {
            "npz": dict(source=args.ddti, npz_keys=NPZ_KEYS),
            "png folder": dict(source=png / "images", labels_csv=png / "manifest.csv",
                               mask_dir=png / "masks"),
        }
        print(f"DDTI: {n} images 300x300, best of {args.repeat}\n")
        print(f"{'source':<11} {'size':>4} {'filter':<7} {'seconds':>8} {'images/s':>9} "
              f"{'reference img/s':>15} {'ratio':>6}")
        for label, kw in sources.items():
            for size in (64, 128):
                ref_fn = (lambda s=size: reference_npz(args.ddti, s)) if label == "npz" else \
                    (lambda s=size: reference_png(png / "images", s))
                ref = best_time(ref_fn, args.repeat)
                for filt in ("none", "median"):
                    def run(kw=kw, size=size, filt=filt):
                        import_dataset(kw["source"], tmp / "out", size=size, filter=filt,
                                       force=True, progress=False,
                                       **{k: v for k, v in kw.items() if k != "source"})
                    t = best_time(run, args.repeat)
                    print(f"{label:<11} {size:>4} {filt:<7} {t:>8.2f} {n / t:>9.0f} "
                          f"{n / ref:>15.0f} {ref / t:>6.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
