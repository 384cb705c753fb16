"""Synthetic image sets on disk: what ``synthmed generate`` writes and every evaluator reads.

Layout of a synthetic set directory::

    OUT/
      images/<class>/<class>_seed<seed>.png   (--format png; unconditional: images/seed<seed>.png)
      synthetic.npz                            (--format npz: MedMNIST layout, train_images and
                                                train_labels, plus class_names and seeds)
      dicom/<class>/<class>_seed<seed>.dcm     (--format dicom: secondary capture, no identity)
      masks/seed<seed>.png                     paired sets only (--masks-from): the label maps
      manifest.csv                             file, class, seed (file relative to OUT); paired
                                               sets add mask_file, source_id, edit, ...
      generation.json                          checkpoint sha256, config, version, counts, ...

``<class>`` is the class name made safe as a folder name (``synthmed.paths.safe_component``);
manifest.csv keeps the real class name. The PNG/DICOM files carry their seed and checkpoint
hash in metadata too.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synthmed.errors import DataError
from synthmed.paths import member_path

FORMATS = ("png", "npz", "dicom")


@dataclass
class SyntheticSet:
    """Images (N, C, H, W) uint8, labels (N,) int64 (-1 when unconditional), and provenance."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    seeds: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    masks: np.ndarray | None = None  # (N, H, W) uint8 label maps of a paired set (--masks-from)

    def __len__(self) -> int:
        return len(self.images)


def relative_file(fmt: str, class_name: str | None, seed: int) -> str:
    """Where image ``seed`` of ``class_name`` goes inside the set directory; ``class_name`` must
    already be a safe folder name (:func:`synthmed.paths.unique_components`)."""
    stem = f"{class_name}_seed{seed}" if class_name else f"seed{seed}"
    sub = f"{class_name}/" if class_name else ""
    if fmt == "png":
        return f"images/{sub}{stem}.png"
    if fmt == "dicom":
        return f"dicom/{sub}{stem}.dcm"
    return "synthetic.npz"


def write_manifest(tmp: Path, files: list[str], classes: list[str], seeds: list[int]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["file", "class", "seed"])
    for row in zip(files, classes, seeds, strict=True):
        w.writerow(row)
    (tmp / "manifest.csv").write_text(buf.getvalue(), encoding="utf-8")


def load_synthetic(path: str | os.PathLike) -> SyntheticSet:
    """Read a synthetic set written by ``synthmed generate`` (any of its formats)."""
    path = Path(path)
    meta_path = path / "generation.json"
    if not meta_path.is_file():
        raise DataError(f"{path}: not a synthetic set (no generation.json); "
                        "create one with `synthmed generate`")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    class_names = list(meta.get("class_names") or [])
    npz = path / "synthetic.npz"
    if meta.get("format") == "npz" and npz.is_file():
        npz = member_path(path, "synthetic.npz", str(meta_path))  # not a link out of the set
        with np.load(npz, allow_pickle=False) as z:
            imgs = z["train_images"]
            labels = z["train_labels"].reshape(-1).astype(np.int64)
            seeds = z["seeds"].astype(np.int64)
            masks = z["train_masks"].astype(np.uint8) if "train_masks" in z.files else None
        imgs = imgs[:, None] if imgs.ndim == 3 else imgs.transpose(0, 3, 1, 2)
        if not class_names:
            labels = np.full(len(imgs), -1, np.int64)
        return SyntheticSet(np.ascontiguousarray(imgs), labels, class_names, seeds, meta, masks)
    with open(path / "manifest.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise DataError(f"{path / 'manifest.csv'}: no images listed")
    where = path / "manifest.csv"
    files = [member_path(path, r.get("file") or "", f"{where} line {i}")
             for i, r in enumerate(rows, start=2)]
    images = np.stack([_read_image(f) for f in files])
    index = {c: k for k, c in enumerate(class_names)}
    labels = np.array([index.get(r["class"], -1) for r in rows], np.int64)
    seeds = np.array([int(r["seed"]) for r in rows], np.int64)
    masks = None
    if rows[0].get("mask_file"):  # a paired set: masks/seed<seed>.png beside each image
        masks = np.stack([_read_image(member_path(path, r["mask_file"], f"{where} line {i}"))[0]
                          for i, r in enumerate(rows, start=2)])
        if int(meta.get("mask_labels") or 1) == 1:
            masks = (masks > 0).astype(np.uint8)
    return SyntheticSet(images, labels, class_names, seeds, meta, masks)


def _read_image(file: Path) -> np.ndarray:
    """One image file -> (C, H, W) uint8."""
    if not file.is_file():
        raise DataError(f"{file}: listed in manifest.csv but missing; regenerate the set")
    if file.suffix == ".dcm":
        import pydicom

        arr = pydicom.dcmread(file).pixel_array
    else:
        from PIL import Image

        with Image.open(file) as im:
            arr = np.asarray(im)
    arr = arr.astype(np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
