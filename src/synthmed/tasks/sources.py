"""Synthetic sources for the utility arms, checked against the real dataset before any training.

A source is a synthetic set written by ``synthmed generate`` (any format) or a prepared dataset
used as one (e.g. image+mask pairs for segmentation). Three guards keep val/test patients out of
training through the synthetic door: a source that *is* the real dataset is refused; a generator
whose ``generation.json`` says it was trained on a split other than ``train`` of this dataset is
refused; and any synthetic image pixel-identical to a real val/test image is refused.

A source whose images have another side length than the real ones (a 32 px set for 28 px
MedMNIST) is resized to the real size with :func:`synthmed.resize.resize_array` (masks: nearest
neighbour), and the one notice saying so is recorded in utility.json; a different number of
channels is refused.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from synthmed.data.dataset import PreparedDataset
from synthmed.errors import DataError
from synthmed.resize import RESIZE_METHOD, resize_array
from synthmed.tasks.train import Images


def _digests(images: np.ndarray, rows: np.ndarray | None = None) -> list[bytes]:
    rows = np.arange(len(images)) if rows is None else np.asarray(rows)
    return [hashlib.blake2b(np.ascontiguousarray(images[r]).tobytes(), digest_size=16).digest()
            for r in rows]


def held_out_copies(images: np.ndarray, real: np.ndarray, held_out_rows: np.ndarray
                    ) -> np.ndarray:
    """Indices of ``images`` that are pixel-identical to a held-out (val/test) real image."""
    held = set(_digests(real, held_out_rows))
    return np.array([i for i, d in enumerate(_digests(images)) if d in held], np.int64)


def _read(p: Path, ds: PreparedDataset):
    if (p / "dataset.json").is_file():
        other = PreparedDataset(p)
        if other.content_hash == ds.content_hash:
            raise DataError(f"{p}: this is the real dataset itself (same content hash); its val "
                            "and test images would enter training; pass a synthetic set")
        return other.images, other.labels, other.class_names, {}, other.masks
    from synthmed.sampling.io import load_synthetic

    s = load_synthetic(p)
    return s.images, s.labels, s.class_names, s.meta, getattr(s, "masks", None)


def _map_labels(p: Path, labels: np.ndarray, names: list[str], real_names: list[str]
                ) -> np.ndarray:
    mapped = np.array([real_names.index(names[k]) if 0 <= k < len(names) and names[k] in
                       real_names else -1 for k in labels], np.int64)
    if len(labels) and (np.asarray(labels) < 0).all():
        raise DataError(f"{p}: unconditional set (no class labels); classification arms need "
                        "labelled images: generate with a conditional model (cgan, acgan)")
    if (mapped < 0).any():
        unknown = sorted({names[k] if 0 <= k < len(names) else "(none)"
                          for k, m in zip(labels, mapped, strict=True) if m < 0})
        raise DataError(f"{p}: classes {', '.join(unknown)} are not classes of the real dataset "
                        f"({', '.join(real_names)}); generate from a model trained on it")
    return mapped


def match_size(p: Path, images: np.ndarray, masks: np.ndarray | None, real: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray | None, str | None]:
    """Resize a source to the real images' (H, W); returns the notice to record, if any."""
    if images.shape[1] != real.shape[1]:
        raise DataError(f"{p}: images have {images.shape[1]} channel(s) but the real dataset's "
                        f"have {real.shape[1]}; generate from a model trained on this dataset")
    (h, w), (rh, rw) = images.shape[2:], real.shape[2:]
    if (h, w) == (rh, rw):
        return images, masks, None
    images = resize_array(images, (rh, rw))
    if masks is not None:  # nearest neighbour keeps masks binary
        masks = _resize_masks(masks, rh, rw)
    return images, masks, (f"{p}: synthetic images resized from {h}x{w} to the real {rh}x{rw} "
                           f"({RESIZE_METHOD})")


def _resize_masks(masks: np.ndarray, h: int, w: int) -> np.ndarray:
    """(N, H0, W0) label masks -> (N, h, w) by nearest neighbour (pixel centres)."""
    x = torch.from_numpy(np.ascontiguousarray(masks)[:, None]).float()
    return F.interpolate(x, size=(h, w), mode="nearest-exact")[:, 0].numpy().astype(masks.dtype)
def memorization(images: np.ndarray, ds: PreparedDataset, held_out_rows: np.ndarray
                 ) -> dict[str, Any]:
    """The pixel-space memorization audit of a source against the real train split
    (:func:`synthmed.metrics.privacy.audit`): nearest training image per synthetic image, copy
    rate (closer than 95 % of held-out patients are) and distance-attack membership AUC. A
    segmenter trained on synthetic pairs alone is only an anonymised stand-in if both its Dice
    and these numbers are good."""
    from synthmed.metrics.privacy import audit, pixel_vectors

    c, h, w = ds.images.shape[1:]

    def vec(x):
        return pixel_vectors(np.asarray(x), size=(h, w), channels=c)

    train = np.asarray(ds.images[ds.indices("train")])
    held = np.asarray(ds.images[np.sort(held_out_rows)]) if len(held_out_rows) else None
    groups = np.asarray(ds.groups)
    res = audit(vec(images), vec(train), vec(held) if held is not None else None,
                train_groups=groups[ds.indices("train")],
                heldout_groups=groups[np.sort(held_out_rows)] if held is not None else None)
    return {"space": "pixel RMS", "n_train": int(len(train)),
            "n_heldout": int(len(held)) if held is not None else 0, **res.summary()}


def load_source(path: str, ds: PreparedDataset, task: str, held_out_rows: np.ndarray
                ) -> tuple[Images, dict[str, Any]]:
    """Read one source; labels are mapped to the real class order (segmentation: one
    pseudo-class 0). Returns the images and a provenance record for utility.json."""
    p = Path(path)
    images, labels, names, meta, masks = _read(p, ds)
    trained = (meta.get("config") or {}).get("data", {}).get("split")
    if meta.get("dataset_hash") == ds.content_hash and trained not in (None, "train"):
        raise DataError(f"{p}: its generator was trained on the {trained!r} split of this "
                        "dataset, so val/test images leaked into it; train the GAN on 'train'")
    size = [int(images.shape[2]), int(images.shape[3])]
    images, masks, notice = match_size(p, images, masks, ds.images)
    if task == "segmentation":
        if masks is None:
            raise DataError(f"{p}: no masks; segmentation arms with synthetic data need "
                            "image+mask pairs (generate --masks-from with a pix2pix or ddpm-mask "
                            "run, or a prepared dataset with masks), or drop "
                            "real+classic+synthetic and synthetic-only from utility.arms")
        mapped = np.zeros(len(images), np.int64)
    else:
        mapped = _map_labels(p, np.asarray(labels), names, ds.class_names)
    copies = held_out_copies(images, ds.images, held_out_rows)
    if len(copies):
        raise DataError(f"{p}: {len(copies)} images are pixel-identical to real val/test images "
                        "(the generator saw them); train it on the train split only")
    names_out = ["all"] if task == "segmentation" else ds.class_names
    info = {"path": str(p), "n": int(len(images)),
            "class_counts": {c: int((mapped == k).sum()) for k, c in enumerate(names_out)},
            "dataset_hash": meta.get("dataset_hash"), "generator_split": trained,
            "checkpoint_sha256": meta.get("checkpoint_sha256")}
    if notice:
        info.update(resized_from=size, resize=RESIZE_METHOD, notice=notice)
    if task == "segmentation":
        info["privacy"] = memorization(images, ds, held_out_rows)
    return Images(images, mapped, masks), info
