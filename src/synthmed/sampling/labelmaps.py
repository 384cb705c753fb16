"""Fully synthetic label maps (issue 21, conditioning (d)): no pair starts from a patient's map.

``--masks-from`` pairs start from a real training mask (and, for ``brain``/``prior``
conditioning, the source slice's head outline), so every pair still carries one patient's
geometry. brainSPADE (Fernandez et al., "Can segmentation models be trained with fully
synthetically generated data?", SASHIMI 2022) instead samples the label maps themselves with a
generative model and feeds them to the image generator. synthmed does it with its own engine:

1. :func:`write_labelmap_dataset` (``synthmed data labelmaps DATASET --out MAPS``): a prepared
   dataset whose images are the label maps of DATASET's images: background 0, head (the brain
   mask of :func:`synthmed.models.conditioning.brain_masks`, the one the ``brain``/``prior``
   channels use) 127, lesion 255; same ids, patients and splits;
2. any unconditional method trains on MAPS (``synthmed train configs/lgg_labelmaps.yaml``);
3. :func:`write_pairs_from_maps` (``synthmed generate RUN --masks-from-run MAPS_RUN``): seed s
   draws a map from MAPS_RUN with seed s, decodes it (:func:`decode_labelmaps`: head > -0.5,
   lesion > 0.5 in model range, lesion kept inside the head) and makes the image from the
   lesion mask and that head with the image run's noise seed s. The pair set has the layout of
   ``--masks-from`` pairs (:mod:`synthmed.sampling.pairs`); ``source_id`` is ``synthetic-map``.

Runs with ``model.conditioning: anatomy`` need a real slice and are refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from synthmed.data.dataset import PreparedDataset, from_model_range, to_model_range, write_prepared
from synthmed.errors import SynthmedError
from synthmed.fileio import atomic_directory, disk_errors
from synthmed.paths import check_output
from synthmed.sampling.sampler import (
    MICRO_BATCH,
    GeneratedImages,
    _run_in_micro_batches,
    load_generator,
    parse_seeds,
)
from synthmed.training.method import MaskSampler

HEAD, LESION = 127, 255  # gray levels of the label-map images (background 0)
SMOOTH = 1.0  # px, Gaussian blur of a generated map before its levels are thresholded


def encode_labelmaps(images: torch.Tensor, masks: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) images in [-1, 1] and (N, 1, H, W) lesion masks -> (N, 1, H, W) uint8 maps:
    0 background, :data:`HEAD` head, :data:`LESION` lesion (a lesion is always head)."""
    from synthmed.models.conditioning import brain_masks

    head = brain_masks(images).cpu().numpy() > 0
    lesion = masks.cpu().numpy() > 0
    return np.where(lesion, LESION, np.where(head, HEAD, 0)).astype(np.uint8)


def decode_labelmaps(maps: torch.Tensor, smooth: float = SMOOTH
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Generated maps (N, C, H, W) in [-1, 1] -> (lesion, head) masks (N, 1, H, W) float {0, 1}:
    after a Gaussian blur of ``smooth`` px (a generator's pixel-scale artefacts, such as the
    VAE's row stripes, averaged out; 0: none), the head is the largest connected region above
    -0.5 (halfway to the head level) with holes filled (stray specks dropped), the lesion above
    0.5 and inside the head."""
    x = maps.detach().float().mean(1).cpu().numpy()
    if smooth > 0:
        x = np.stack([ndimage.gaussian_filter(m, smooth) for m in x]) if len(x) else x
    head = np.stack([_largest_filled(m > -0.5) for m in x]) if len(x) else x > 0
    lesion = (x > 0.5) & head
    as_t = [torch.from_numpy(a.astype(np.float32))[:, None] for a in (lesion, head)]
    return as_t[0], as_t[1]


def _largest_filled(m: np.ndarray) -> np.ndarray:
    lab, n = ndimage.label(m)
    if n > 1:
        m = lab == 1 + int(np.argmax(ndimage.sum(m, lab, range(1, n + 1))))
    return ndimage.binary_fill_holes(m)


def write_labelmap_dataset(dataset: str | os.PathLike, out: str | os.PathLike, *,
                           force: bool = False, batch: int = 256) -> Path:
    """The label maps of a prepared dataset with masks as a prepared dataset of gray images
    (same ids, patients, labels and splits; no masks), for an unconditional generator."""
    ds = PreparedDataset(dataset)
    if ds.masks is None:
        raise SynthmedError(f"{dataset}: the dataset has no masks; import it with --mask-dir "
                            "(label maps are the head and lesion of each image)")
    maps = [encode_labelmaps(to_model_range(np.asarray(ds.images[i:i + batch])),
                             torch.from_numpy(np.array(ds.masks[i:i + batch]))[:, None])
            for i in range(0, len(ds), batch)]
    ids = [r["id"] for r in ds.manifest]
    return write_prepared(out, images=np.concatenate(maps), labels=ds.labels,
                          splits=ds.splits.tolist(), class_names=ds.class_names, ids=ids,
                          groups=ds.groups.tolist(), name=f"{ds.path.name}-labelmaps",
                          source={"labelmaps_of": str(ds.path), "dataset_hash": ds.content_hash,
                                  "levels": {"background": 0, "head": HEAD, "lesion": LESION}},
                          force=force)


def sample_labelmaps(maps_run: str | os.PathLike, seeds: list[int], size: int,
                     device: str = "auto", micro_batch: int = MICRO_BATCH
                     ) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """(lesion, head, provenance) for ``seeds`` from an unconditional run trained on label maps,
    at ``size`` px (maps of another size are resized bilinearly before decoding)."""
    loaded = load_generator(maps_run, device=device)
    if isinstance(loaded.sampler, MaskSampler) or loaded.meta.get("conditional"):
        raise SynthmedError(f"--masks-from-run {maps_run}: train an unconditional generator "
                            "(e.g. dcgan) on a label-map dataset (synthmed data labelmaps)")
    s = torch.tensor(seeds)
    maps = _run_in_micro_batches(lambda idx: loaded.sampler(s[idx].tolist(), None), len(seeds),
                                 None, micro_batch=micro_batch, size=size)
    lesion, head = decode_labelmaps(maps)
    info = {"run": str(Path(maps_run).resolve()), "checkpoint": str(loaded.checkpoint),
            "checkpoint_sha256": loaded.checkpoint_sha256, "step": loaded.step,
            "model": loaded.config.model.name}
    return lesion, head, info


def write_pairs_from_maps(run_dir: str | os.PathLike, out: str | os.PathLike, *,
                          maps_run: str | os.PathLike, n: int | None = None,
                          seeds: str | None = None, checkpoint: str = "latest", fmt: str = "png",
                          device: str = "auto", force: bool = False,
                          micro_batch: int = MICRO_BATCH) -> Path:
    """Image+mask pairs whose label maps come from ``maps_run`` (no real mask, no real slice)."""
    from synthmed.sampling.io import FORMATS
    from synthmed.sampling.pairs import _write
    from synthmed.sampling.writer import _provenance

    out = Path(out)
    if fmt not in FORMATS:
        raise SynthmedError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    check_output(out, force=force, kind="synthetic",
                 inputs={"run directory": run_dir, "--masks-from-run": maps_run})
    seed_list = parse_seeds(seeds, n)
    loaded = load_generator(run_dir, checkpoint, device)
    sampler = loaded.sampler
    if not isinstance(sampler, MaskSampler):
        raise SynthmedError(f"--masks-from-run: run {run_dir} ({loaded.config.model.name}) is "
                            "not mask-conditioned; train model.name: pix2pix or ddpm-mask")
    if loaded.meta.get("conditional"):
        raise SynthmedError(f"--masks-from-run: run {run_dir} is class-conditional; synthetic "
                            "label maps have no class")
    if int(loaded.meta.get("mask_labels", 1)) != 1:
        raise SynthmedError(f"--masks-from-run: run {run_dir} has model.mask_labels "
                            f"{loaded.meta['mask_labels']}; synthetic label maps hold one lesion "
                            "label (binary masks)")
    if loaded.meta.get("conditioning") == "anatomy":
        raise SynthmedError(f"--masks-from-run: run {run_dir} conditions on the down-sampled "
                            "source slice (model.conditioning: anatomy), which a synthetic map "
                            "does not have; use a mask, brain or prior run")
    lesion, head, maps_info = sample_labelmaps(maps_run, seed_list,
                                               int(loaded.meta["image_size"]), device,
                                               micro_batch)
    heads = {"heads": head} if getattr(sampler, "uses_heads", False) else {}
    s = torch.tensor(seed_list)

    def call(idx: torch.Tensor) -> torch.Tensor:
        kw = {k: v[idx] for k, v in heads.items()}
        return sampler.from_masks(s[idx].tolist(), lesion[idx], None, None, **kw)

    synth = from_model_range(_run_in_micro_batches(call, len(seed_list), None,
                                                   micro_batch=micro_batch, size=None))
    masks = lesion[:, 0].numpy().astype(np.uint8)
    plan = [{"seed": x, "params": {"synthetic_map": True}, "rejected": 0,
             "source_id": "synthetic-map", "source_row": -1, "anatomy_id": ""}
            for x in seed_list]
    gen = GeneratedImages(torch.from_numpy(synth), torch.full((len(plan),), -1), s,
                          loaded.class_names, loaded)
    info = _provenance(gen, fmt, synth, [""] * len(plan), seeds, None)
    info.update({"paired": True, "mask_labels": 1, "masks_from_run": maps_info,
                 "micro_batch": int(micro_batch),
                 "empty_lesion_maps": int(sum(not m.any() for m in masks))})
    with disk_errors(out, int(synth.nbytes + masks.nbytes) + (1 << 16)), \
            atomic_directory(out, force=True, kind="synthetic") as tmp:
        _write(tmp, fmt, synth, masks, plan, loaded, 1, gen.labels.numpy())
        (tmp / "generation.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return out
