"""``synthmed generate``: write a synthetic set (PNG, MedMNIST-layout npz, or DICOM) with its
manifest and provenance (see :mod:`synthmed.sampling.io` for the layout)."""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from synthmed import __version__
from synthmed.data.dataset import from_model_range
from synthmed.errors import DataError, SynthmedError
from synthmed.fileio import atomic_directory
from synthmed.sampling.io import FORMATS, relative_file, write_manifest
from synthmed.sampling.sampler import GeneratedImages, generate


def _check_out(out: Path, force: bool) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise SynthmedError(f"{out}: output directory is not empty; pass --force to replace it")


def write_synthetic(run_dir: str | os.PathLike, out: str | os.PathLike, *, n: int | None = None,
                    per_class: int | None = None, class_name: str | None = None,
                    seeds: str | None = None, checkpoint: str = "latest", fmt: str = "png",
                    device: str = "cpu", force: bool = False, exclude_near_copies: bool = False,
                    train_dataset: str | os.PathLike | None = None,
                    match_train: bool = False) -> Path:
    """Generate and write a synthetic set atomically; returns ``out``.

    ``exclude_near_copies`` drops images closer to a training image than the held-out threshold
    (:func:`synthmed.metrics.near_copy_mask`); the training images are ``train_dataset``
    (``DATASET_DIR[:split]``, default split: the run's) or, without it, the run's own data.
    """
    out = Path(out)
    if fmt not in FORMATS:
        raise SynthmedError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    _check_out(out, force)
    if train_dataset is not None and not exclude_near_copies:
        raise SynthmedError("--train is only used with --exclude-near-copies; add that option "
                            "or drop --train")
    if train_dataset is not None:
        _check_train(train_dataset)  # fail before generating, not after
    gen = generate(run_dir, n, per_class=per_class, class_name=class_name, seeds=seeds,
                   checkpoint=checkpoint, device=device, match_train=match_train)
    images = from_model_range(gen.images)  # (N, C, H, W) uint8
    labels, seeds_arr = gen.labels.numpy(), gen.seeds.numpy()
    excluded = None
    if exclude_near_copies:
        keep, excluded = _near_copy_filter(images, gen, train_dataset)
        images, labels, seeds_arr = images[keep], labels[keep], seeds_arr[keep]
    names = gen.class_names
    cls = [names[k] if k >= 0 else "" for k in labels]
    meta = _provenance(gen, fmt, images, cls, seeds, excluded)
    with atomic_directory(out, force=True) as tmp:
        files = [relative_file(fmt, c or None, int(s)) for c, s in zip(cls, seeds_arr, strict=True)]
        if fmt == "npz":
            files = [f"synthetic.npz#{i}" for i in range(len(images))]
            _write_npz(tmp, images, labels, seeds_arr, names)
        uids = _series_uids() if fmt == "dicom" else {}
        for i, rel in enumerate(files if fmt != "npz" else []):
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            tags = {"seed": int(seeds_arr[i]), "class": cls[i], "number": i + 1,
                    "checkpoint_sha256": gen.source.checkpoint_sha256, **uids}
            (_write_png if fmt == "png" else _write_dcm)(tmp / rel, images[i], tags)
        write_manifest(tmp, files, cls, [int(s) for s in seeds_arr])
        (tmp / "generation.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return out


def _provenance(gen: GeneratedImages, fmt: str, images: np.ndarray, cls: list[str],
                seeds: str | None, excluded: dict | None) -> dict[str, Any]:
    src = gen.source
    return {
        "format": fmt,
        "n": int(len(images)),
        "class_names": gen.class_names,
        "classes": {c: cls.count(c) for c in gen.class_names},
        "size": [int(images.shape[2]), int(images.shape[3])],
        "channels": int(images.shape[1]),
        "seeds": seeds if seeds is not None else f"0-{int(gen.seeds.max())}",
        "run_dir": str(src.checkpoint.parent.parent),
        "checkpoint": str(src.checkpoint),
        "checkpoint_sha256": src.checkpoint_sha256,
        "step": src.step,
        "ema": bool(src.meta.get("ema")),
        "model": src.config.model.name,
        "dataset_hash": src.meta.get("dataset_hash"),
        "config": src.config.model_dump(mode="json"),
        "excluded_near_copies": excluded,
        "synthmed_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _write_npz(tmp: Path, images: np.ndarray, labels: np.ndarray, seeds: np.ndarray,
               names: list[str]) -> None:
    arr = images[:, 0] if images.shape[1] == 1 else images.transpose(0, 2, 3, 1)
    np.savez_compressed(tmp / "synthetic.npz", train_images=arr,
                        train_labels=labels.reshape(-1, 1).astype(np.int64),
                        seeds=seeds.astype(np.int64), class_names=np.array(names, dtype=str))


def _write_png(path: Path, image: np.ndarray, tags: dict[str, Any]) -> None:
    info = PngImagePlugin.PngInfo()
    for k in ("seed", "class", "checkpoint_sha256"):
        info.add_text(f"synthmed:{k}", str(tags[k]))
    arr = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
    Image.fromarray(arr).save(path, pnginfo=info)


def _series_uids() -> dict[str, str]:
    from pydicom.uid import generate_uid

    return {"study_uid": generate_uid(), "series_uid": generate_uid()}


def _write_dcm(path: Path, image: np.ndarray, tags: dict[str, Any]) -> None:
    """Secondary Capture with fresh UIDs and no patient identity (PatientIdentityRemoved YES,
    ConversionType SYN: pixels that never came from a scanner); seed and checkpoint hash in the
    series description and image comments."""
    from synthmed.data.export import secondary_capture

    desc = f"synthmed synthetic seed={tags['seed']} sha256={tags['checkpoint_sha256'][:16]}"
    ds = secondary_capture(image, study_uid=tags["study_uid"], series_uid=tags["series_uid"],
                           number=tags["number"], description=desc[:64], conversion_type="SYN")
    ds.ImageComments = (f"synthetic image; class={tags['class']} seed={tags['seed']} "
                        f"checkpoint_sha256={tags['checkpoint_sha256']}")
    ds.save_as(path, enforce_file_format=True)


def _check_train(train_dataset: str | os.PathLike) -> None:
    from synthmed.data.dataset import PreparedDataset
    from synthmed.metrics.inputs import parse_ref

    try:
        PreparedDataset(parse_ref(train_dataset, "train")[0])
    except DataError as e:
        raise DataError(f"--train {train_dataset}: {e}") from None


def _near_copy_filter(images: np.ndarray, gen: GeneratedImages,
                      train_dataset: str | os.PathLike | None):
    """(keep mask, what generation.json records) for ``exclude_near_copies``. The held-out images
    that set the threshold are the first of the dataset's val/test splits not used as training."""
    from synthmed.data.dataset import PreparedDataset
    from synthmed.metrics.inputs import load_split, parse_ref
    from synthmed.metrics.privacy import near_copy_mask
    from synthmed.training.data import resolve_dataset

    data_cfg = gen.source.config.data
    if train_dataset is not None:
        path, split = parse_ref(train_dataset, data_cfg.split)
    else:
        path, split = resolve_dataset(data_cfg).path, data_cfg.split
    train = load_split(path, split)
    used, ds = set(split.split("+")), PreparedDataset(path)
    held_split = next((s for s in ("val", "test") if len(ds.indices(s)) and not used & {s, "all"}),
                      None)
    held = load_split(path, held_split).images if held_split else None
    mask, threshold = near_copy_mask(images, train.images, heldout_uint8=held)
    keep = ~np.asarray(mask, bool)
    return keep, {"count": int((~keep).sum()), "threshold": float(threshold),
                  "reference": str(train.path), "train_split": split, "n_train": len(train),
                  "heldout_split": held_split, "space": "pixel RMS at the training size"}
