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
from synthmed.fileio import atomic_directory, disk_errors
from synthmed.paths import check_output, ensure_inside, unique_components
from synthmed.sampling.io import FORMATS, relative_file, write_manifest
from synthmed.sampling.sampler import MICRO_BATCH, GeneratedImages, generate


def _inputs(run_dir, train_dataset, gen: GeneratedImages | None = None) -> dict:
    """What ``generate`` reads: the run (and its runs/ folder through "contains"), the
    checkpoint, the --train dataset and the run's own dataset."""
    from synthmed.metrics.inputs import parse_ref

    inputs = {"run directory": run_dir,
              "--train dataset": parse_ref(train_dataset, "train")[0] if train_dataset else None}
    if gen is not None:
        data_path = gen.source.config.data.path
        inputs.update({"checkpoint": gen.source.checkpoint,
                       "run's dataset": data_path if data_path != "phantom" else None})
    return inputs


def write_synthetic(run_dir: str | os.PathLike, out: str | os.PathLike, *, n: int | None = None,
                    per_class: int | None = None, class_name: str | None = None,
                    seeds: str | None = None, checkpoint: str = "latest", fmt: str = "png",
                    device: str = "auto", force: bool = False, exclude_near_copies: bool = False,
                    train_dataset: str | os.PathLike | None = None,
                    size: int | None = None, match_train: bool = False, **options: Any) -> Path:
    """Generate and write a synthetic set atomically; returns ``out``.

    ``size``: image side in pixels; default the size the run was trained at (the training data's).

    ``exclude_near_copies`` drops images closer to a training image than the held-out threshold
    (:func:`synthmed.metrics.near_copy_mask`); the training images are ``train_dataset``
    (``DATASET_DIR[:split]``, default split: the run's) or, without it, the run's own data.
    ``options`` are the run's training method's generation options (diffusion: ``steps``,
    ``guidance``, ``bf16``); the values used are recorded in generation.json.
    """
    out = Path(out)
    if fmt not in FORMATS:
        raise SynthmedError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    check_output(out, force=force, kind="synthetic", inputs=_inputs(run_dir, train_dataset))
    if train_dataset is not None and not exclude_near_copies:
        raise SynthmedError("--train is only used with --exclude-near-copies; add that option "
                            "or drop --train")
    if train_dataset is not None:
        _check_train(train_dataset)  # fail before generating, not after
    gen = generate(run_dir, n, per_class=per_class, class_name=class_name, seeds=seeds,
                   checkpoint=checkpoint, device=device, size=size, match_train=match_train,
                   **options)
    images = from_model_range(gen.images)  # (N, C, H, W) uint8
    labels, seeds_arr = gen.labels.numpy(), gen.seeds.numpy()
    excluded = None
    if exclude_near_copies:
        keep, excluded = _near_copy_filter(images, gen, train_dataset)
        images, labels, seeds_arr = images[keep], labels[keep], seeds_arr[keep]
    names = gen.class_names
    check_output(out, force=force, kind="synthetic", inputs=_inputs(run_dir, train_dataset, gen))
    cls = [names[k] if k >= 0 else "" for k in labels]
    meta = _provenance(gen, fmt, images, cls, seeds, excluded)
    with disk_errors(out, int(images.nbytes) + (1 << 16)), \
            atomic_directory(out, force=True, kind="synthetic") as tmp:
        _write_files(tmp, fmt, images, labels, seeds_arr, names, cls, gen)
        (tmp / "generation.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return out


def _write_files(tmp: Path, fmt: str, images: np.ndarray, labels: np.ndarray,
                 seeds_arr: np.ndarray, names: list[str], cls: list[str],
                 gen: GeneratedImages) -> None:
    """Image files and manifest.csv. Folder names come from class names, which a dataset can
    set to anything (``../x``, ``/etc``): they are sanitized and each path checked to stay in."""
    folder = dict(zip(names, unique_components(names), strict=True))
    files = [relative_file(fmt, folder[c] if c else None, int(s))
             for c, s in zip(cls, seeds_arr, strict=True)]
    if fmt == "npz":
        files = [f"synthetic.npz#{i}" for i in range(len(images))]
        _write_npz(tmp, images, labels, seeds_arr, names)
    uids = _series_uids() if fmt == "dicom" else {}
    for i, rel in enumerate(files if fmt != "npz" else []):
        path = ensure_inside(tmp, tmp / rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        tags = {"seed": int(seeds_arr[i]), "class": cls[i], "number": i + 1,
                "checkpoint_sha256": gen.source.checkpoint_sha256, **uids}
        (_write_png if fmt == "png" else _write_dcm)(path, images[i], tags)
    write_manifest(tmp, files, cls, [int(s) for s in seeds_arr])


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
        "generator_size": int(src.meta["image_size"]),
        "micro_batch": MICRO_BATCH,
        "seeds": seeds if seeds is not None else f"0-{int(gen.seeds.max())}",
        "run_dir": str(src.checkpoint.parent.parent),
        "checkpoint": str(src.checkpoint),
        "checkpoint_sha256": src.checkpoint_sha256,
        "step": src.step,
        "ema": bool(src.meta.get("ema")),
        "model": src.config.model.name,
        "dataset_hash": src.meta.get("dataset_hash"),
        "config": src.config.model_dump(mode="json"),
        "sampling_options": dict(src.options),
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
    if not tags["class"].isascii():
        ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8, so a non-Latin class name survives
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
