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
4. ``--exclude-near-copies`` (``exclude_near_copies="patients"|"val"``): sampled maps that
   identify a training patient's map (:mod:`synthmed.metrics.identifiability`, ADS-GAN's
   identifiability test against the maps the map run trained on; calibrated on the training
   patients or the val patients, never the test split) are dropped before any image is made,
   and with ``--n`` further seeds are drawn until N maps are kept; generation.json records the
   kept seeds and what was dropped (``excluded_near_copies``). A small map generator memorizes
   its few patients' head outlines and tumour positions (LGG at 10 % of the patients: sampled
   maps vs training maps, membership AUC 0.86, docs/results.md section 4).

Runs with ``model.conditioning: anatomy`` need a real slice and are refused.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
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
MAX_DRAWS = 4.0  # --exclude-near-copies with --n: draw at most this many maps per map kept
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
                           force: bool = False, batch: int = 256, augment: int = 0,
                           augment_strength: float = 1.0, seed: int = 0) -> Path:
    """The label maps of a prepared dataset with masks as a prepared dataset of gray images
    (same ids, patients, labels and splits; no masks), for an unconditional generator.
    ``augment`` K > 0 adds K moved copies of every training map (:func:`moved_copies`, with
    ``augment_strength`` and ``seed``) as training rows of the same patient."""
    ds = PreparedDataset(dataset)
    if ds.masks is None:
        raise SynthmedError(f"{dataset}: the dataset has no masks; import it with --mask-dir "
                            "(label maps are the head and lesion of each image)")
    maps = [encode_labelmaps(to_model_range(np.asarray(ds.images[i:i + batch])),
                             torch.from_numpy(np.array(ds.masks[i:i + batch]))[:, None])
            for i in range(0, len(ds), batch)]
    rows = _Rows(np.concatenate(maps), np.asarray(ds.labels), ds.splits.tolist(),
                 ds.groups.tolist(), [r["id"] for r in ds.manifest])
    source = {"labelmaps_of": str(ds.path), "dataset_hash": ds.content_hash,
              "levels": {"background": 0, "head": HEAD, "lesion": LESION}}
    if augment:
        rows = _with_moved_copies(rows, ds.indices("train"), augment, augment_strength, seed)
        source["augment"] = {"copies": augment, "strength": augment_strength, "seed": seed}
    return write_prepared(out, images=rows.maps, labels=rows.labels, splits=rows.splits,
                          class_names=ds.class_names, ids=rows.ids, groups=rows.groups,
                          name=f"{ds.path.name}-labelmaps", source=source, force=force)


def augment_labelmap_dataset(maps: str | os.PathLike, out: str | os.PathLike, copies: int, *,
                             strength: float = 1.0, seed: int = 0, force: bool = False) -> Path:
    """An existing label-map dataset (:func:`write_labelmap_dataset`) with ``copies`` moved
    copies of every training map added, as ``write_labelmap_dataset(..., augment=copies)``
    would have made it (val/test rows unchanged)."""
    ds = PreparedDataset(maps)
    rows = _with_moved_copies(
        _Rows(np.asarray(ds.images), np.asarray(ds.labels), ds.splits.tolist(),
              ds.groups.tolist(), [r["id"] for r in ds.manifest]),
        ds.indices("train"), copies, strength, seed)
    return write_prepared(out, images=rows.maps, labels=rows.labels, splits=rows.splits,
                          class_names=ds.class_names, ids=rows.ids, groups=rows.groups,
                          name=Path(out).name, force=force,
                          source={"augmented_from": str(ds.path), "copies": copies,
                                  "strength": strength, "seed": seed})


@dataclass
class _Rows:
    maps: np.ndarray
    labels: np.ndarray
    splits: list[str]
    groups: list
    ids: list[str]


def _with_moved_copies(rows: _Rows, train: np.ndarray, copies: int, strength: float,
                       seed: int) -> _Rows:
    """``rows`` plus :func:`moved_copies` of its ``train`` rows as training rows of the same
    patient, copy-major (all training maps, then all again) in maps, labels, patients and ids."""
    extra = moved_copies(rows.maps, train, copies, strength=strength, seed=seed)
    return _Rows(np.concatenate([rows.maps, extra]),
                 np.concatenate([rows.labels, np.tile(rows.labels[train], copies)]),
                 rows.splits + ["train"] * len(extra),
                 rows.groups + [rows.groups[i] for _ in range(copies) for i in train],
                 rows.ids + [f"{rows.ids[i]}-aug{k}" for k in range(copies) for i in train])


def moved_copies(maps: np.ndarray, rows: np.ndarray, copies: int, *, strength: float = 1.0,
                 seed: int = 0) -> np.ndarray:
    """``copies`` randomly moved copies of the label maps ``maps[rows]`` ((N, 1, H, W) uint8),
    copy-major: (copies * len(rows), 1, H, W). Each is a horizontal flip (p 0.5), a rotation of
    up to 15 degrees, a scale of 0.85-1.15 and a shift of up to 6 px, nearest-neighbour so the
    levels stay; ``strength`` S multiplies the three ranges and, above 1, adds an elastic warp
    (a smooth random field, sigma 6 px, of up to 3 (S - 1) px) that bends the head outline.

    Why: an unconditional map generator trained on a few patients' maps draws those patients'
    heads and tumour positions (LGG at 10 % of the patients: sampled maps vs training maps,
    membership AUC 0.90; on 8 copies at strength 2: 0.59, about the no-leak level; at the price
    of more lesion blobs per map, docs/results.md section 4)."""
    rng = np.random.default_rng(seed)
    h, w = maps.shape[-2:]
    c = np.array([h, w]) / 2
    out = []
    for _ in range(copies):
        for i in rows:
            m = maps[i, 0][:, ::-1] if rng.random() < 0.5 else maps[i, 0]
            a = np.deg2rad(rng.uniform(-15, 15) * strength)
            sc = max(0.5, 1 + rng.uniform(-0.15, 0.15) * strength)
            rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) / sc
            lim = int(round(6 * strength))
            shift = rng.integers(-lim, lim + 1, 2)
            m = ndimage.affine_transform(m, rot, offset=c - rot @ (c + shift), order=0, cval=0)
            if strength > 1:
                m = _elastic(m, 3 * (strength - 1), rng)
            out.append(m)
    return np.stack(out)[:, None] if out else np.zeros((0, 1, h, w), maps.dtype)


def _elastic(m: np.ndarray, amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """A label map warped by a smooth random field (Gaussian-filtered noise, sigma 6 px) scaled
    to at most ``amplitude`` px, nearest-neighbour."""
    h, w = m.shape
    d = [ndimage.gaussian_filter(rng.normal(size=(h, w)), 6) for _ in range(2)]
    d = [x * amplitude / max(np.abs(x).max(), 1e-8) for x in d]
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return ndimage.map_coordinates(m, [yy + d[0], xx + d[1]], order=0, cval=0)


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
            "model": loaded.config.model.name,
            "data": {"path": str(loaded.config.data.path), "split": loaded.config.data.split}}
    return lesion, head, info


def encode_decoded(lesion: torch.Tensor, head: torch.Tensor) -> np.ndarray:
    """Decoded (lesion, head) masks (N, 1, H, W) -> uint8 label maps in the levels of
    :func:`encode_labelmaps`, comparable with a label-map dataset's images."""
    les, hd = lesion.cpu().numpy() > 0, head.cpu().numpy() > 0
    return np.where(les, LESION, np.where(hd, HEAD, 0)).astype(np.uint8)


def identifying_maps(lesion: torch.Tensor, head: torch.Tensor, data: dict, calibration: str,
                     quantile: float | None = None):
    """:class:`synthmed.metrics.identifiability.Identifiability` of decoded maps against the
    label-map dataset a map run trained on (``data``: ``{"path", "split"}``, as
    :func:`sample_labelmaps` records it): its ``split`` rows and their patients, and for
    ``calibration="val"`` the dataset's val rows (``quantile`` of their nearest-training
    distances, default 0.05). The test split is never read; the splits read are listed in
    ``info["splits_read"]``."""
    return map_filter(data, calibration, quantile)(lesion, head)


def map_filter(data: dict, calibration: str, quantile: float | None = None):
    """The test of :func:`identifying_maps` with the training maps read and calibrated once:
    a function (lesion, head) -> Identifiability, for the draws that replace dropped maps."""
    from synthmed.metrics.identifiability import calibrate, flag
    from synthmed.metrics.inputs import _indices
    from synthmed.metrics.privacy import pixel_vectors

    if data["path"] == "phantom":
        raise SynthmedError("--exclude-near-copies: the map run trained on the built-in "
                            "phantom; train it on a label-map dataset (synthmed data labelmaps)")
    ds = PreparedDataset(data["path"])
    split = data["split"]
    if "test" in split.split("+") or split == "all":
        raise SynthmedError(f"--exclude-near-copies: the map run trained on split {split!r}, "
                            "which holds the test patients; the filter never reads them")
    rows = _indices(ds, split)
    train_maps = np.asarray(ds.images[rows])
    size, ch = tuple(train_maps.shape[-2:]), train_maps.shape[1]

    def vec(x: np.ndarray) -> torch.Tensor:
        return pixel_vectors(x, size=size, channels=ch)

    train, val, read = vec(train_maps), None, [split]
    if calibration == "val":
        vrows = ds.indices("val")
        val, read = (vec(np.asarray(ds.images[vrows])) if len(vrows) else None), read + ["val"]
    cal = calibrate(train, calibration=calibration, groups=ds.groups[rows], val=val,
                    **({"quantile": quantile} if quantile is not None else {}))
    cal.info.update({"reference": str(ds.path), "splits_read": read,
                     "space": "pixel RMS of the label maps at the map dataset's size"})

    def test(lesion: torch.Tensor, head: torch.Tensor):
        return flag(vec(encode_decoded(lesion, head)), train, cal)
    return test


def write_pairs_from_maps(run_dir: str | os.PathLike, out: str | os.PathLike, *,
                          maps_run: str | os.PathLike, n: int | None = None,
                          seeds: str | None = None, checkpoint: str = "latest", fmt: str = "png",
                          device: str = "auto", force: bool = False,
                          micro_batch: int = MICRO_BATCH,
                          exclude_near_copies: str | None = None,
                          near_copy_quantile: float | None = None,
                          max_draws: float = MAX_DRAWS) -> Path:
    """Image+mask pairs whose label maps come from ``maps_run`` (no real mask, no real slice).

    ``exclude_near_copies``: ``"patients"`` or ``"val"``, the identifiability filter's
    calibration (module docstring, step 4), ``near_copy_quantile`` the val calibration's
    quantile (default 0.05; larger drops more); with ``n`` (no ``seeds``) up to
    ``max_draws * n`` maps are drawn to keep ``n``."""
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
    size = int(loaded.meta["image_size"])
    lesion, head, maps_info = sample_labelmaps(maps_run, seed_list, size, device, micro_batch)
    excluded = None
    if exclude_near_copies:
        lesion, head, seed_list, excluded = _exclude_identifying(
            maps_run, (lesion, head, seed_list), maps_info["data"],
            (exclude_near_copies, near_copy_quantile), n if seeds is None else None, max_draws,
            size, device, micro_batch)
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
    kept = ",".join(str(x) for x in seed_list) if excluded else seeds
    info = _provenance(gen, fmt, synth, [""] * len(plan), kept, excluded)
    info.update({"paired": True, "mask_labels": 1, "masks_from_run": maps_info,
                 "micro_batch": int(micro_batch),
                 "empty_lesion_maps": int(sum(not m.any() for m in masks))})
    with disk_errors(out, int(synth.nbytes + masks.nbytes) + (1 << 16)), \
            atomic_directory(out, force=True, kind="synthetic") as tmp:
        _write(tmp, fmt, synth, masks, plan, loaded, 1, gen.labels.numpy())
        (tmp / "generation.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return out


def _exclude_identifying(maps_run, drawn: tuple, data: dict, rule: tuple[str, float | None],
                         n: int | None, max_draws: float, size: int, device: str,
                         micro_batch: int) -> tuple[torch.Tensor, torch.Tensor, list[int], dict]:
    """Drop the identifying maps of ``drawn`` (lesion, head, seeds); with ``n``, draw the next
    seeds until ``n`` are kept or ``max_draws * n`` were drawn. (lesion, head, kept seeds, the
    generation.json record)."""
    from synthmed.metrics.identifiability import CALIBRATIONS

    calibration, quantile = rule
    if calibration not in CALIBRATIONS:
        raise SynthmedError(f"--exclude-near-copies calibration {calibration!r}: choose one of "
                            f"{', '.join(CALIBRATIONS)}")
    lesion, head, seeds = drawn
    keep_l, keep_h, kept, dropped, info = [], [], [], [], {}
    test = map_filter(data, calibration, quantile)
    while True:
        res = test(lesion, head)
        info = res.info
        ok = ~res.too_close
        keep_l.append(lesion[torch.from_numpy(ok)])
        keep_h.append(head[torch.from_numpy(ok)])
        kept += [s for s, k in zip(seeds, ok, strict=True) if k]
        dropped += [s for s, k in zip(seeds, ok, strict=True) if not k]
        drawn_n = len(kept) + len(dropped)
        if n is None or len(kept) >= n or drawn_n >= max_draws * n:
            break
        start = max(kept + dropped) + 1
        seeds = list(range(start, start + min(max(2 * (n - len(kept)), 8),
                                              int(max_draws * n) - drawn_n)))
        lesion, head, _ = sample_labelmaps(maps_run, seeds, size, device, micro_batch)
    lesion, head = torch.cat(keep_l), torch.cat(keep_h)
    if n is not None and len(kept) > n:  # seeds drawn past the n-th kept one do not count
        lesion, head, kept = lesion[:n], head[:n], kept[:n]
        dropped = [x for x in dropped if x < kept[-1]]
    n_drawn = len(kept) + len(dropped)
    if not kept:
        raise SynthmedError(f"--exclude-near-copies: every one of {len(dropped)} sampled maps "
                            "identifies a training patient's map; the map run memorizes (train "
                            "it with a larger model.kl_weight or fewer steps)")
    info = {**info, "count": len(dropped), "n_drawn": n_drawn,
            "dropped_seeds": dropped, "short": bool(n is not None and len(kept) < n)}
    return lesion, head, kept, info
