"""``synthmed generate RUN_DIR --masks-from DATASET_DIR[:split] [--edit ...]``: image+mask pairs
from a mask-conditioned run, for segmentation augmentation and synthetic-only sharing. Any
training method whose sampler is a :class:`~synthmed.training.method.MaskSampler` (pix2pix,
ddpm-mask) is driven the same way: this module picks and edits the masks, the method turns them
into images.

Image ``seed`` uses source mask ``rows[seed % len(rows)]`` of the split (rows with a mask, in
dataset order), edit parameters drawn from ``numpy.random.default_rng(seed)`` (rejected draws
redrawn from the same stream), the source case's class (class-conditional runs) and the method's
noise from the seed (pix2pix: dropout under ``torch.manual_seed(seed)``; ddpm-mask: the starting
noise of DDIM). The method is called on micro-batches of a fixed size, as in
:mod:`synthmed.sampling.sampler`, so a pair is reproducible from (checkpoint, source mask, edit,
seed[, steps, guidance]) whatever else is generated with it. Layout, beside the usual
``manifest.csv`` and ``generation.json``::

    images/seed<seed>.png | dicom/seed<seed>.dcm   the images (--format png | dicom)
    masks/seed<seed>.png                           their masks (0/255; label ids if multi-label)
    synthetic.npz                                  --format npz: train_images and train_masks

``synthmed data import OUT/images --mask-dir OUT/masks --no-labels`` (or ``OUT/synthetic.npz``)
makes it a prepared dataset with masks.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import ndimage

from synthmed.data.dataset import PreparedDataset, from_model_range, to_model_range
from synthmed.errors import DataError, SynthmedError
from synthmed.fileio import atomic_directory, disk_errors
from synthmed.paths import check_output, ensure_inside
from synthmed.sampling.io import FORMATS, relative_file
from synthmed.sampling.masks import EditSpec, edit_mask, parse_edits
from synthmed.sampling.sampler import (
    MICRO_BATCH,
    GeneratedImages,
    LoadedGenerator,
    _run_in_micro_batches,
    load_generator,
    parse_seeds,
)
from synthmed.training.method import MaskSampler

HELD_OUT = {"val", "test", "all"}
MANIFEST = ("file", "mask_file", "class", "seed", "source_id", "source_row", "anatomy_id",
            "edit", "rejected_edits")


def _source_rows(masks_from: str, allow_eval_masks: bool) -> tuple[PreparedDataset, str,
                                                                   np.ndarray]:
    from synthmed.metrics.inputs import parse_ref

    path, split = parse_ref(masks_from, "train")
    if HELD_OUT & set(split.split("+")) and not allow_eval_masks:
        raise SynthmedError(f"--masks-from {masks_from}: split {split!r} holds val/test "
                            "patients, whose masks would then shape the synthetic set; use "
                            "the train split, or add --allow-eval-masks on purpose")
    try:
        ds = PreparedDataset(path)
    except DataError as e:
        raise DataError(f"--masks-from {masks_from}: {e}") from None
    if ds.masks is None:
        raise DataError(f"--masks-from {path}: dataset has no masks; import it with --mask-dir "
                        "or --mask-suffix")
    rows = np.concatenate([ds.indices(s) for s in split.split("+")])
    rows = np.sort(rows[ds.has_mask[rows]])
    if not len(rows):
        raise DataError(f"--masks-from {masks_from}: no image of split {split!r} has a mask")
    return ds, split, rows


def _resized(ds: PreparedDataset, rows: np.ndarray, size: int
             ) -> tuple[torch.Tensor, np.ndarray]:
    """Images (R, C, S, S) in [-1, 1] and masks (R, S, S) uint8 at the run's size."""
    imgs = to_model_range(np.asarray(ds.images[rows]))
    masks = torch.from_numpy(np.asarray(ds.masks[rows], np.float32))[:, None]
    if imgs.shape[-1] != size or imgs.shape[-2] != size:
        imgs = F.interpolate(imgs, size=(size, size), mode="bilinear", antialias=True,
                             align_corners=False).clamp_(-1, 1)
        masks = F.interpolate(masks, size=(size, size), mode="nearest")
    return imgs, masks[:, 0].round().numpy().astype(np.uint8)


def organ_mask(image: torch.Tensor) -> np.ndarray:
    """The organ of an anatomy image (C, S, S) in [-1, 1]: smoothed intensity above 10 % of the
    range, holes filled (the brain in a skull-stripped FLAIR slice, the gland in an ROI)."""
    x = ndimage.gaussian_filter((image.float().mean(0).numpy() + 1) / 2, 2)
    return ndimage.binary_fill_holes(x > 0.1)


def plan_pairs(ds: PreparedDataset, rows: np.ndarray, images: torch.Tensor, masks: np.ndarray,
               seeds: list[int], spec: EditSpec, anatomy: bool) -> list[dict]:
    """Per seed: source row, anatomy row, edited mask, parameters and rejected draws."""
    if spec.transplant and not anatomy:
        raise SynthmedError("--edit transplant: the run has no anatomy channel "
                            "(model.anatomy_factor); a lesion has no other anatomy to go into")
    ids = [r["id"] for r in ds.manifest]
    plan = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        k = seed % len(rows)
        a = int(rng.integers(len(rows))) if spec.transplant else k
        organ = organ_mask(images[a]) if anatomy and spec.active else None
        res = edit_mask(masks[k], spec, rng, organ=organ, strict=False)
        plan.append({"seed": seed, "k": k, "a": a, "mask": res.mask, "params": res.params,
                     "rejected": res.rejected, "source_id": ids[rows[k]],
                     "source_row": int(rows[k]), "anatomy_id": ids[rows[a]]})
    return plan


def write_pairs(run_dir: str | os.PathLike, out: str | os.PathLike, *, masks_from: str,
                n: int | None = None, seeds: str | None = None, edits: list[str] | None = None,
                checkpoint: str = "latest", fmt: str = "png", device: str = "auto",
                force: bool = False, allow_eval_masks: bool = False,
                micro_batch: int = MICRO_BATCH, **options: Any) -> Path:
    """Generate and write an image+mask pair set atomically; returns ``out``.

    ``options`` go to the run's training method like those of
    :func:`synthmed.sampling.sampler.generate` (``steps``, ``guidance``, ``bf16`` for
    ddpm-mask; pix2pix takes none).
    """
    out = Path(out)
    if fmt not in FORMATS:
        raise SynthmedError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    spec = parse_edits(edits)
    ds, split, rows = _source_rows(masks_from, allow_eval_masks)
    check_output(out, force=force, kind="synthetic",
                 inputs={"run directory": run_dir, "--masks-from dataset": ds.path})
    seed_list = parse_seeds(seeds, n)
    loaded = load_generator(run_dir, checkpoint, device, **options)
    meta = loaded.meta
    sampler = loaded.sampler
    if not isinstance(sampler, MaskSampler):
        raise SynthmedError(f"--masks-from: run {run_dir} ({loaded.config.model.name}) is not "
                            "mask-conditioned; train model.name: pix2pix or ddpm-mask")
    images, masks = _resized(ds, rows, int(meta["image_size"]))
    plan = plan_pairs(ds, rows, images, masks, seed_list, spec, sampler.anatomy)
    labels = _classes(ds, plan, loaded, masks_from)
    synth = _sample(loaded, plan, images, labels, micro_batch)
    out_masks = np.stack([p["mask"] for p in plan])
    gen = GeneratedImages(torch.from_numpy(synth), torch.tensor(
        [-1] * len(plan) if labels is None else labels), torch.tensor(seed_list),
        loaded.class_names, loaded)
    info = _provenance(gen, fmt, synth, seeds, plan, spec, masks_from, ds, split, rows)
    info["micro_batch"] = int(micro_batch)
    with disk_errors(out, int(synth.nbytes + out_masks.nbytes) + (1 << 16)), \
            atomic_directory(out, force=True, kind="synthetic") as tmp:
        _write(tmp, fmt, synth, out_masks, plan, loaded, int(meta.get("mask_labels", 1)),
               gen.labels.numpy())
        (tmp / "generation.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return out


def _classes(ds: PreparedDataset, plan: list[dict], loaded: LoadedGenerator,
             masks_from: str) -> list[int] | None:
    """The run's class id for each pair of a class-conditional run: its source case's class
    (matched by name, so the mask dataset may order its classes differently); None otherwise.
    Sets ``p["class"]`` for the manifest."""
    names = loaded.class_names
    if not loaded.meta.get("conditional"):
        return None
    out = []
    for p in plan:
        label = int(ds.labels[p["source_row"]])
        name = ds.class_names[label] if 0 <= label < len(ds.class_names) else None
        if name not in names:
            raise DataError(f"--masks-from {masks_from}: case {p['source_id']} has class "
                            f"{name!r}, not one of the run's classes ({', '.join(names)}); "
                            "this run is class-conditional: use masks of labelled cases of "
                            "those classes")
        p["class"] = name
        out.append(names.index(name))
    return out


def _sample(loaded: LoadedGenerator, plan: list[dict], images: torch.Tensor,
            labels: list[int] | None, micro_batch: int) -> np.ndarray:
    """The method's images for the planned masks, in fixed-size micro-batches (each pair's bytes
    then do not depend on the request; see :mod:`synthmed.sampling.sampler`)."""
    seeds = [p["seed"] for p in plan]
    y = None if labels is None else torch.tensor(labels, dtype=torch.long)
    sampler: MaskSampler = loaded.sampler  # type: ignore[assignment]

    def call(idx: torch.Tensor) -> torch.Tensor:
        rows = idx.tolist()
        m = torch.from_numpy(np.stack([plan[i]["mask"] for i in rows]).astype(np.float32))
        return sampler.from_masks([seeds[i] for i in rows], m[:, None],
                                  images[[plan[i]["a"] for i in rows]],
                                  None if y is None else y[idx])

    x = _run_in_micro_batches(call, len(plan), None, micro_batch=micro_batch, size=None)
    return from_model_range(x)


def _provenance(gen, fmt, synth, seeds, plan, spec, masks_from, ds, split, rows) -> dict:
    from synthmed.sampling.writer import _provenance as base

    info = base(gen, fmt, synth, [p.get("class", "") for p in plan], seeds, None)
    info.update({"paired": True, "mask_labels": gen.source.meta.get("mask_labels", 1),
                 "masks_from": {"path": str(ds.path), "split": split,
                                "dataset_hash": ds.content_hash, "n_masks": int(len(rows))},
                 "edit": spec.describe(),
                 "rejected_edits": int(sum(p["rejected"] for p in plan)),
                 "edited": int(sum(bool(p["params"]) and not p["params"].get("unedited")
                                   for p in plan)),
                 "unedited_after_max_rejections": int(sum(bool(p["params"].get("unedited"))
                                                          for p in plan))})
    return info


def _write(tmp: Path, fmt: str, images: np.ndarray, masks: np.ndarray, plan: list[dict],
           loaded: LoadedGenerator, mask_labels: int, labels: np.ndarray) -> None:
    from synthmed.sampling.writer import _series_uids, _write_dcm, _write_png

    stored = masks * 255 if mask_labels == 1 else masks
    if fmt == "npz":  # the MedMNIST layout of `generate --format npz`, plus train_masks
        arr = images[:, 0] if images.shape[1] == 1 else images.transpose(0, 2, 3, 1)
        np.savez_compressed(tmp / "synthetic.npz", train_images=arr,
                            train_labels=labels.reshape(-1, 1).astype(np.int64),
                            seeds=np.array([p["seed"] for p in plan], np.int64),
                            class_names=np.array(loaded.class_names, dtype=str),
                            train_masks=masks)
        files = [f"synthetic.npz#{i}" for i in range(len(images))]
        mask_files = [f"synthetic.npz#train_masks/{i}" for i in range(len(images))]
    else:
        uids = _series_uids() if fmt == "dicom" else {}
        files, mask_files = [], []
        for i, p in enumerate(plan):
            rel, mrel = relative_file(fmt, None, p["seed"]), f"masks/seed{p['seed']}.png"
            for r in (rel, mrel):
                ensure_inside(tmp, tmp / r).parent.mkdir(parents=True, exist_ok=True)
            tags = {"seed": p["seed"], "class": p.get("class", ""), "number": i + 1,
                    "checkpoint_sha256": loaded.checkpoint_sha256, **uids}
            (_write_png if fmt == "png" else _write_dcm)(tmp / rel, images[i], tags)
            Image.fromarray(stored[i]).save(tmp / mrel)
            files.append(rel)
            mask_files.append(mrel)
    _manifest(tmp, files, mask_files, plan)


def _manifest(tmp: Path, files: list[str], mask_files: list[str], plan: list[dict]) -> None:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(MANIFEST)
    for f, mf, p in zip(files, mask_files, plan, strict=True):
        w.writerow([f, mf, p.get("class", ""), p["seed"], p["source_id"], p["source_row"],
                    p["anatomy_id"], json.dumps(p["params"], sort_keys=True), p["rejected"]])
    (tmp / "manifest.csv").write_text(buf.getvalue(), encoding="utf-8")
