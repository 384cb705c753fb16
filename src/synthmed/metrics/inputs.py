"""The image sets an evaluation compares: prepared-dataset splits and synthetic sets.

``DATASET_DIR[:split]`` names a split of a prepared dataset (``train``, ``val``, ``test``, ``all``
or a union such as ``val+test``); a directory with ``generation.json`` is a synthetic set written
by ``synthmed generate``. Images from other tools are read as torch-fidelity reads them: a plain
folder of PNG/JPEG/DICOM files (one level of class subfolders read as classes) or an ``.npz``
with an ``images`` array (optional ``labels`` and ``class_names``); ``meta["notice"]`` says what
was read. A synthetic set of another image size than the real one is resized to the real size
once (:func:`match_size`), before any metric, and ``metrics.json`` says so.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import numpy as np

from synthmed.errors import DataError
from synthmed.metrics.folders import load_folder, load_npz
from synthmed.metrics.imageset import ImageSet
from synthmed.resize import RESIZE_METHOD, resize_array

SPLIT_NAMES = ("train", "val", "test", "all")


def parse_ref(ref: str | os.PathLike, default_split: str) -> tuple[Path, str]:
    """``"DIR:test"`` -> (DIR, "test"); ``"DIR"`` -> (DIR, default_split). A path that merely
    contains ':' (e.g. ``C:\\data``) is kept whole unless the suffix is a split name."""
    text = str(ref)
    head, sep, tail = text.rpartition(":")
    if sep and head and tail and all(p in SPLIT_NAMES for p in tail.split("+")):
        return Path(head), tail
    if sep and head and re.fullmatch(r"[A-Za-z_+-]+", tail) and not Path(text).exists():
        bad = next(p for p in tail.split("+") if p not in SPLIT_NAMES)
        raise DataError(f"{text}: unknown split {bad!r} (train, val, test, all, or a union such "
                        "as val+test)")
    return Path(text), default_split


def match_size(synth: ImageSet, real: ImageSet) -> tuple[ImageSet, str | None]:
    """``synth`` at the real images' (H, W), and the one notice to record when it was resized.

    Resizing once, up front, means every metric (features, MS-SSIM, pixel privacy) compares the
    same pixels, instead of each extractor or audit resizing on its own without saying so."""
    if synth.size == real.size:
        return synth, None
    (h, w), (rh, rw) = synth.size, real.size
    out = dataclasses.replace(synth, images=resize_array(synth.images, (rh, rw)),
                              content_hash=None, resized_from=[h, w])
    return out, (f"synthetic images resized from {h}x{w} to the real images' {rh}x{rw} "
                 f"({RESIZE_METHOD}) before every metric")


def _indices(data, split: str) -> np.ndarray:
    parts = split.split("+")
    return np.unique(np.concatenate([data.indices(p) for p in parts]))


def load_split(path: str | os.PathLike, split: str) -> ImageSet:
    """One split (or union of splits) of a prepared dataset, read into memory."""
    from synthmed.data.dataset import PreparedDataset

    data = PreparedDataset(path)
    idx = _indices(data, split)
    if len(idx) == 0:
        raise DataError(f"{data.path}:{split}: no images in this split; name another one, e.g. "
                        f"{data.path}:val+test")
    return ImageSet(np.asarray(data.images[idx]), np.asarray(data.labels[idx], np.int64),
                    data.class_names, "dataset", data.path, split, data.content_hash,
                    {"name": data.meta.get("name")}, [data.manifest[i]["id"] for i in idx],
                    groups=np.asarray(data.groups)[idx])


def load_images(ref: str | os.PathLike, default_split: str) -> ImageSet:
    """A synthetic set directory (``generation.json``) or ``DATASET_DIR[:split]``."""
    path, split = parse_ref(ref, default_split)
    if (path / "generation.json").is_file():
        from synthmed.sampling.io import load_synthetic

        s = load_synthetic(path)
        names = list(s.class_names)
        ids = [f"{names[k]}_seed{seed}" if 0 <= k < len(names) else f"seed{seed}"
               for k, seed in zip(s.labels.tolist(), s.seeds.tolist(), strict=True)]
        return ImageSet(s.images, s.labels.astype(np.int64), names, "synthetic", path, None,
                        None, dict(s.meta), ids)
    if (path / "dataset.json").is_file():
        return load_split(path, split)
    if not path.exists():
        raise DataError(f"{path}: path does not exist")
    if path.is_file() and path.suffix.lower() == ".npz":
        return load_npz(path)
    if path.is_dir():
        return load_folder(path)
    raise DataError(f"{path}: neither a synthetic set (generation.json), a prepared dataset "
                    "(dataset.json), a folder of PNG/JPEG/DICOM images nor an .npz; pass one "
                    "of those")
