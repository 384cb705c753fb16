"""The prepared dataset: one directory every later stage reads.

Layout (``format_version`` 1)::

    DATASET_DIR/
      images.npy     (N, C, H, W) uint8 or uint16, memory-mappable
      masks.npy      (N, H, W) uint8 in {0, 1}; only when some image has a mask
      labels.npy     (N,) int64 class index, -1 = unlabelled
      manifest.csv   id, split, label, group, source, has_mask (one row per image)
      dataset.json   classes, counts, size, channels, preprocessing, split, content hash

Models see float32 in [-1, 1]: :func:`to_model_range` is the single conversion.
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import io
import json
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from synthmed import __version__
from synthmed.data.splits import SPLITS
from synthmed.errors import DataError
from synthmed.fileio import atomic_directory, disk_errors
from synthmed.paths import check_output

FORMAT = "synthmed-dataset"
FORMAT_VERSION = 1
MANIFEST_FIELDS = ("id", "split", "label", "group", "source", "has_mask")


def to_model_range(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8/uint16 images -> float32 tensor in [-1, 1] (same shape); tensors are taken as uint8."""
    if isinstance(images, np.ndarray):
        top = 65535.0 if images.dtype == np.uint16 else 255.0
        t = torch.from_numpy(np.array(images, dtype=np.float32))
    else:
        top, t = 255.0, images.float()
    return t.mul_(2.0 / top).sub_(1.0)


def from_model_range(x: torch.Tensor, dtype: np.dtype = np.uint8) -> np.ndarray:
    """float tensor in [-1, 1] -> uint8 (or uint16) numpy array, clipped and rounded."""
    top = 65535.0 if np.dtype(dtype) == np.uint16 else 255.0
    y = ((x.detach().float().clamp(-1, 1) + 1) * (top / 2)).round()
    return y.cpu().numpy().astype(dtype)


def content_hash(images: np.ndarray, labels: np.ndarray, masks: np.ndarray | None,
                 splits: Sequence[str]) -> str:
    """sha256 over pixels, labels, masks and split assignment: equal hash, equal content."""
    h = hashlib.sha256()
    h.update(str((images.shape, str(images.dtype))).encode())
    h.update(np.ascontiguousarray(images).tobytes())
    h.update(np.ascontiguousarray(labels.astype(np.int64)).tobytes())
    if masks is not None:
        h.update(np.ascontiguousarray(masks).tobytes())
    h.update("\n".join(splits).encode())
    return h.hexdigest()


def _manifest_text(rows, class_names: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(MANIFEST_FIELDS)
    for id_, split, label, group, source, has_mask in rows:
        name = class_names[label] if label >= 0 else ""
        w.writerow([id_, split, name, group, source, int(bool(has_mask))])
    return buf.getvalue()


def _summary(images: np.ndarray, labels: np.ndarray, splits: list[str],
             class_names: Sequence[str], groups: list[str], has_mask: list[bool],
             masks_given: bool) -> dict[str, Any]:
    """The counts and shapes ``dataset.json`` reports (what ``data info`` prints)."""
    split_arr = np.asarray(splits)
    return {
        "n": len(images),
        "splits": {s: splits.count(s) for s in SPLITS},
        "classes": {c: int((labels == k).sum()) for k, c in enumerate(class_names)},
        "class_names": list(class_names),
        "class_counts_by_split": {
            s: {c: int(((labels == k) & (split_arr == s)).sum())
                for k, c in enumerate(class_names)} for s in SPLITS},
        "n_groups": len(set(groups)),
        "size": [int(images.shape[2]), int(images.shape[3])],
        "channels": int(images.shape[1]),
        "dtype": str(images.dtype),
        "has_masks": masks_given and any(has_mask),
        "n_masks": int(sum(bool(x) for x in has_mask)),
    }


def write_prepared(
    out: str | os.PathLike,
    *,
    images: np.ndarray,
    labels: np.ndarray,
    splits: Sequence[str],
    class_names: Sequence[str],
    ids: Sequence[str] | None = None,
    groups: Sequence[str] | None = None,
    sources: Sequence[str] | None = None,
    masks: np.ndarray | None = None,
    has_mask: Sequence[bool] | None = None,
    preprocessing: dict[str, Any] | None = None,
    source: dict[str, Any] | None = None,
    split_info: dict[str, Any] | None = None,
    name: str | None = None,
    force: bool = False,
) -> Path:
    """Write a prepared dataset atomically (built in a hidden sibling, fsynced, swapped in).

    With ``force`` only an earlier prepared dataset (or an empty folder) is replaced; a full
    disk is one :class:`synthmed.errors.DiskFullError` line and the old dataset stays intact.

    ``images`` is (N, C, H, W) uint8/uint16; ``labels`` (N,) with -1 for unlabelled.
    """
    out = check_output(out, force=force, kind="dataset")
    images = np.asarray(images)
    if images.ndim != 4 or images.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"images must be (N, C, H, W) uint8/uint16, "
                         f"got {images.shape} {images.dtype}")
    n = len(images)
    labels = np.asarray(labels, dtype=np.int64)
    ids = list(ids) if ids is not None else [f"{i:06d}" for i in range(n)]
    groups = list(groups) if groups is not None else list(ids)
    sources = list(sources) if sources is not None else [""] * n
    if masks is not None:
        masks = np.asarray(masks, dtype=np.uint8)
        has_mask = list(has_mask) if has_mask is not None else [bool(m.any()) for m in masks]
    else:
        has_mask = [False] * n
    splits = [str(s) for s in splits]
    for arr, what in ((labels, "labels"), (ids, "ids"), (groups, "groups"), (splits, "splits"),
                      (sources, "sources"), (has_mask, "has_mask")):
        if len(arr) != n:
            raise ValueError(f"{what} has {len(arr)} entries for {n} images")

    needed = images.nbytes + labels.nbytes + (masks.nbytes if masks is not None else 0) + 65536
    with disk_errors(out, needed), \
            atomic_directory(out, force=force, kind="dataset", fsync=True) as tmp:
        np.save(tmp / "images.npy", np.ascontiguousarray(images))
        np.save(tmp / "labels.npy", labels)
        if masks is not None:
            np.save(tmp / "masks.npy", np.ascontiguousarray(masks))
        rows = zip(ids, splits, labels, groups, sources, has_mask, strict=True)
        (tmp / "manifest.csv").write_text(_manifest_text(rows, class_names), encoding="utf-8")
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "name": name or out.name,
                **_summary(images, labels, splits, class_names, groups, has_mask,
                           masks is not None),
                "preprocessing": preprocessing or {}, "source": source or {},
                "split": split_info or {},
                "content_hash": content_hash(images, labels, masks, splits),
                "synthmed_version": __version__,
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        (tmp / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return out


class PreparedDataset:
    """Read access to a prepared dataset directory (arrays are memory-mapped)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        meta_path = self.path / "dataset.json"
        if not self.path.exists():
            raise DataError(f"{self.path}: path does not exist")
        if not meta_path.is_file():
            raise DataError(f"{self.path}: not a prepared dataset (no dataset.json); "
                            "create one with `synthmed data import`")
        try:
            self.meta: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            raise DataError(f"{meta_path}: corrupt dataset.json; "
                            "re-run `synthmed data import`") from None
        if self.meta.get("format") != FORMAT:
            raise DataError(f"{meta_path}: not a synthmed dataset.json; "
                            "re-run `synthmed data import`")
        try:
            self.images = np.load(self.path / "images.npy", mmap_mode="r")
            self.labels = np.load(self.path / "labels.npy")
            mpath = self.path / "masks.npy"
            self.masks = np.load(mpath, mmap_mode="r") if mpath.exists() else None
            with open(self.path / "manifest.csv", newline="", encoding="utf-8") as f:
                self.manifest = list(csv.DictReader(f))
        except (OSError, ValueError) as e:
            raise DataError(f"{self.path}: incomplete prepared dataset ({e}); "
                            "re-import it") from None
        self.splits = np.array([r["split"] for r in self.manifest])
        self.groups = np.array([r["group"] for r in self.manifest])
        self.has_mask = np.array([r["has_mask"] == "1" for r in self.manifest])

    @property
    def class_names(self) -> list[str]:
        return list(self.meta.get("class_names", []))

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        return int(self.meta["channels"])

    @property
    def size(self) -> tuple[int, int]:
        h, w = self.meta["size"]
        return int(h), int(w)

    @property
    def content_hash(self) -> str:
        return str(self.meta["content_hash"])

    def __len__(self) -> int:
        return len(self.labels)

    def indices(self, split: str = "all") -> np.ndarray:
        """Row indices of ``split`` ('train', 'val', 'test' or 'all')."""
        if split == "all":
            return np.arange(len(self))
        if split not in SPLITS:
            raise DataError(f"split {split!r}: choose one of train, val, test, all")
        return np.flatnonzero(self.splits == split)

    def tensors(self, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
        """All images of ``split`` as float32 (N, C, H, W) in [-1, 1] and labels (N,) int64."""
        idx = self.indices(split)
        return to_model_range(np.asarray(self.images[idx])), torch.from_numpy(self.labels[idx])

    def summary(self) -> dict[str, Any]:
        """The JSON that ``synthmed data info --json`` prints."""
        m = self.meta
        return {
            "path": str(self.path),
            "name": m.get("name"),
            "n": m["n"],
            "splits": m["splits"],
            "classes": m["classes"],
            "class_counts_by_split": m.get("class_counts_by_split", {}),
            "n_groups": m.get("n_groups"),
            "size": m["size"],
            "channels": m["channels"],
            "dtype": m.get("dtype"),
            "has_masks": m["has_masks"],
            "n_masks": m.get("n_masks", 0),
            "preprocessing": m.get("preprocessing", {}),
            "source": m.get("source", {}),
            "split": m.get("split", {}),
            "content_hash": m["content_hash"],
        }

    def class_counts(self, split: str = "all") -> dict[str, int]:
        counts = Counter(self.labels[self.indices(split)].tolist())
        return {c: counts.get(k, 0) for k, c in enumerate(self.class_names)}


class SynthmedDataset(Dataset):
    """A ``torch.utils.data.Dataset`` over one split of a prepared dataset.

    Items are dicts: ``image`` (C, H, W) float32 in [-1, 1], ``label`` int64 scalar (-1 when
    unlabelled), ``index`` (row in the dataset) and, with ``with_masks``, ``mask`` (1, H, W) float32
    in {0, 1}. ``transform`` (e.g. a MONAI dictionary transform) is applied to the dict.
    """

    def __init__(self, data: str | os.PathLike | PreparedDataset, split: str = "train", *,
                 with_masks: bool = False, transform=None) -> None:
        self.data = data if isinstance(data, PreparedDataset) else PreparedDataset(data)
        if with_masks and self.data.masks is None:
            raise DataError(f"{self.data.path}: dataset has no masks; import it with --mask-dir "
                            "or --mask-suffix")
        self.split = split
        self.rows = self.data.indices(split)
        self.with_masks = with_masks
        self.transform = transform

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = int(self.rows[i])
        item: dict[str, Any] = {
            "image": to_model_range(np.array(self.data.images[row])),
            "label": torch.tensor(int(self.data.labels[row])),
            "index": row,
        }
        if self.with_masks:
            item["mask"] = torch.from_numpy(np.array(self.data.masks[row], dtype=np.float32))[None]
        if self.transform is not None:
            item = self.transform(item)
        return item
