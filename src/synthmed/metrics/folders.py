"""Image sets from other tools for ``synthmed evaluate --synthetic``: a plain folder of
PNG/JPEG/DICOM images (class subfolders read as classes) or an ``.npz`` array file, as
torch-fidelity accepts them. Every set comes with a one-line notice of what was read."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from synthmed.errors import DataError
from synthmed.metrics.imageset import ImageSet

FOLDER_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm", ".dicom")


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in FOLDER_EXTS and not p.name.startswith("."))


def to_integer_images(x: np.ndarray) -> tuple[np.ndarray, str | None]:
    """uint8/uint16 kept; floats in [0, 1] or [-1, 1] and other integer types -> uint8 (the
    evaluation's input types), with a note saying how."""
    if x.dtype in (np.uint8, np.uint16):
        return x, None
    lo, hi = float(np.min(x)), float(np.max(x))
    if np.issubdtype(x.dtype, np.floating) and lo >= -1.0 and hi <= 1.0:
        src = (-1.0, 1.0) if lo < 0 else (0.0, 1.0)
    else:
        src = (lo, hi if hi > lo else lo + 1)
    y = np.clip((x.astype(np.float64) - src[0]) / (src[1] - src[0]), 0, 1)
    return (y * 255).round().astype(np.uint8), f"{x.dtype} values [{src[0]:g}, {src[1]:g}] " \
                                               "scaled to uint8"


def _nchw(arr: np.ndarray, where: str) -> np.ndarray:
    """(H, W) / (H, W, C) per image or (N, H, W) / (N, H, W, C) / (N, C, H, W) -> (N, C, H, W)."""
    if arr.ndim == 3:
        return arr[:, None]
    if arr.ndim == 4 and arr.shape[-1] in (1, 3) and arr.shape[1] not in (1, 3):
        return np.ascontiguousarray(arr.transpose(0, 3, 1, 2))
    if arr.ndim == 4 and arr.shape[1] in (1, 3):
        return arr
    raise DataError(f"{where}: images of shape {arr.shape}; expected (N, H, W), (N, H, W, C) or "
                    "(N, C, H, W) with 1 or 3 channels")


def _read_one(path: Path) -> np.ndarray:
    from synthmed.data.readers import read_frames

    frame = read_frames(path).frames[0]
    return frame[None] if frame.ndim == 2 else frame.transpose(2, 0, 1)


def load_folder(path: Path) -> ImageSet:
    """A folder of images; one level of subfolders with images are the classes (sorted)."""
    classes = [d for d in sorted(path.iterdir()) if d.is_dir() and _files(d)]
    items = [(f, -1) for f in _files(path)]
    items += [(f, k) for k, d in enumerate(classes) for f in _files(d)]
    if not items:
        raise DataError(f"{path}: no PNG/JPEG/DICOM images in this folder or its subfolders, and "
                        "it is not a synthetic set (generation.json) or a prepared dataset")
    imgs = [_read_one(f) for f, _ in items]
    shapes = Counter(im.shape for im in imgs)
    if len(shapes) > 1:
        (common, _), = shapes.most_common(1)
        odd, shape = next((f, im.shape) for (f, _), im in zip(items, imgs, strict=True)
                          if im.shape != common)
        raise DataError(f"{odd}: shape {shape} (channels, height, width) differs from the folder's "
                        f"usual {common}; give all images one size (e.g. import them with "
                        "`synthmed data import --size`)")
    images, note = to_integer_images(np.stack(imgs))
    labels = np.array([k for _, k in items], np.int64)
    names = [d.name for d in classes]
    counts = ", ".join(f"{n} {int((labels == k).sum())}" for k, n in enumerate(names))
    text = (f"read {len(images)} images ({images.shape[1]}x{images.shape[2]}x{images.shape[3]}, "
            f"{images.dtype}) from folder {path}"
            + (f", classes from subfolders: {counts}" if names else ", no class subfolders")
            + (f"; {note}" if note else ""))
    return ImageSet(images, labels, names, "folder", path, None, None, {"notice": text},
                    [str(f.relative_to(path)) for f, _ in items])


def load_npz(path: Path) -> ImageSet:
    """An .npz with ``images`` (or its only array), optional ``labels`` and ``class_names``."""
    with np.load(path, allow_pickle=False) as z:
        keys = list(z.files)
        key = "images" if "images" in keys else (keys[0] if len(keys) == 1 else None)
        if key is None:
            raise DataError(f"{path}: no 'images' array among {', '.join(keys)}; save the images "
                            "as images= (and labels=, class_names= if any)")
        raw = _nchw(np.asarray(z[key]), str(path))
        labels = np.asarray(z["labels"], np.int64).reshape(-1) if "labels" in keys else None
        names = [str(c) for c in z["class_names"]] if "class_names" in keys else []
    if labels is not None and len(labels) != len(raw):
        raise DataError(f"{path}: {len(labels)} labels for {len(raw)} images; save one label per "
                        "image (or no labels=)")
    if labels is None:
        labels = np.full(len(raw), -1, np.int64)
    elif not names:
        names = [str(k) for k in range(int(labels.max()) + 1)] if len(labels) else []
    images, note = to_integer_images(raw)
    text = (f"read {len(images)} images ({images.shape[1]}x{images.shape[2]}x{images.shape[3]}, "
            f"{images.dtype}) from {path}:{key}"
            + (f", {len(names)} classes" if names else ", unlabelled")
            + (f"; {note}" if note else ""))
    return ImageSet(images, labels, names, "npz", path, None, None, {"notice": text},
                    [f"{key}[{i}]" for i in range(len(images))])
