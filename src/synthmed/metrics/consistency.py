"""Label consistency of an image+mask pair set: do the synthetic images show the lesions their
masks say? (``synthmed evaluate --metrics labels``, issue 21.)

A segmenter is trained on the *real* training split (or loaded from ``--segmenter FILE``) and run
on the synthetic images; its Dice/IoU against the pairs' own masks is put beside its Dice on the
real test slices. The ratio is the headline: 1.0 means the synthetic images show their lesions as
clearly as real test images show theirs; a generator that ignores its mask scores near 0. The
lesion detection rate is the share of pairs with a lesion of which the segmenter finds at least
:data:`DETECT_FRACTION` of the area (the same rule on the real test slices gives its reference).
Both are also given per edit type (``manifest.csv``'s ``edit`` column), split at the median
strength for translate / rotate / scale: edited masks are where a generator that copies its
source anatomy fails (the brain-MRI pix2pix study edited the maps to make new cases).

The segmenter is MONAI's ``BasicUNet`` (two plain convolutions per level, max-pool down), seeded
with :data:`SEED_OFFSET` + seed: another architecture and seed than the utility study's residual
``UNet``, so a generator cannot be tuned against the very network that scores it. It is cached
per (dataset content hash, split, settings) like the domain extractor.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from synthmed.errors import SynthmedError
from synthmed.fileio import atomic_save
from synthmed.metrics.cache import cache_key, cache_root
from synthmed.metrics.features import state_dict_sha256

FORMAT = "synthmed-segmenter"
VERSION = 1
FEATURES = (16, 16, 32, 64, 128, 16)  # BasicUNet widths (5 levels + the last up-sampling)
SEED_OFFSET = 1009  # never the utility study's seeds 0..N-1
DETECT_FRACTION = 0.25  # of a lesion's pixels predicted as lesion for it to count as found
STRENGTH = {"translate": lambda p: float(np.hypot(p.get("dx", 0), p.get("dy", 0))),
            "rotate": lambda p: abs(float(p.get("rotate_deg", 0.0))),
            "scale": lambda p: abs(float(np.log(p.get("scale", 1.0))))}


def build_consistency_segmenter(in_channels: int, out_channels: int = 2) -> nn.Module:
    """MONAI ``BasicUNet`` (B, C, H, W) in [-1, 1] -> logits (B, out_channels, H, W)."""
    from monai.networks.nets import BasicUNet

    return BasicUNet(spatial_dims=2, in_channels=in_channels, out_channels=out_channels,
                     features=FEATURES, upsample="nontrainable")


def train_segmenter(dataset_dir: str | os.PathLike, split: str = "train", *, epochs: int = 10,
                    seed: int = 0, batch_size: int = 16, lr: float = 2e-3,
                    cache_dir: str | os.PathLike | None = None,
                    log=None) -> Path:
    """Train the consistency segmenter on ``split`` (classic augmentation, epoch chosen on the
    val split when it has masks, else on ``split``) and cache it; returns the file."""
    from synthmed.data.dataset import PreparedDataset
    from synthmed.tasks.augment import classic_augmentation
    from synthmed.tasks.train import ArmDataset, Images, fit

    ds = PreparedDataset(dataset_dir)
    if ds.masks is None:
        raise SynthmedError(f"{ds.path}: no masks; the label-consistency segmenter needs a "
                            "dataset imported with its masks")
    rows = ds.indices(split)
    rows = rows[ds.has_mask[rows]]
    if len(rows) < 2:
        raise SynthmedError(f"{ds.path}:{split}: {len(rows)} images with masks; the segmenter "
                            "needs at least 2")
    val = ds.indices("val")
    val = val[ds.has_mask[val]] if split != "val" else val[:0]
    val = val if len(val) else rows
    channels, side = int(ds.images.shape[1]), int(ds.images.shape[-1])
    cfg = {"format": FORMAT, "version": VERSION, "content_hash": ds.content_hash, "split": split,
           "epochs": epochs, "seed": SEED_OFFSET + seed, "batch_size": batch_size, "lr": lr,
           "arch": "monai.BasicUNet", "features": list(FEATURES), "in_channels": channels,
           "image_size": side}
    path = cache_root(cache_dir) / "segmenters" / f"seg-{cache_key(cfg)[:32]}.pt"
    if path.is_file():
        try:
            read_segmenter(path)
            return path
        except SynthmedError:
            pass  # corrupt cache entry: retrain
    masks = (np.asarray(ds.masks) > 0).astype(np.uint8)
    data = Images(ds.images, ds.labels, masks)
    aug = classic_augmentation(image_size=side, with_mask=True, seed=cfg["seed"])
    res = fit(lambda: build_consistency_segmenter(channels), ArmDataset([(data, rows)],
              transform=aug, with_masks=True), data, val, task="segmentation", epochs=epochs,
              batch_size=batch_size, lr=lr, weight_decay=1e-4, seed=cfg["seed"],
              select_metric="dice", log=log)
    state = {k: v.detach().cpu() for k, v in res.model.state_dict().items()}
    payload = {**cfg, "state_dict": state, "sha256": state_dict_sha256(state),
               "val_dice": float(res.best_score), "best_epoch": int(res.best_epoch),
               "val_split": "val" if val is not rows else split}
    atomic_save(path, lambda tmp: torch.save(payload, tmp))
    return path


def read_segmenter(path: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """(model in eval mode, its settings) from a file written by :func:`train_segmenter`."""
    path = Path(path)
    if not path.is_file():
        raise SynthmedError(f"--segmenter {path}: file not found; leave the option out to "
                            "train one on --train")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        raise SynthmedError(f"--segmenter {path}: not readable ({type(e).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise SynthmedError(f"--segmenter {path}: not a synthmed label-consistency segmenter; "
                            "leave the option out to train one")
    if state_dict_sha256(payload["state_dict"]) != payload.get("sha256"):
        raise SynthmedError(f"--segmenter {path}: weights do not match their sha256 (corrupt)")
    model = build_consistency_segmenter(int(payload["in_channels"]))
    model.load_state_dict(payload["state_dict"])
    info = {k: v for k, v in payload.items() if k != "state_dict"}
    info["path"] = str(path)
    return model.eval(), info


@torch.no_grad()
def segment(model: nn.Module, images: np.ndarray, batch: int = 128) -> np.ndarray:
    """Binary lesion maps (N, H, W) uint8 of images (N, C, H, W) uint8/uint16."""
    from synthmed.data.dataset import to_model_range

    out = [model(to_model_range(np.asarray(images[i:i + batch]))).argmax(1) > 0
           for i in range(0, len(images), batch)]
    return torch.cat(out).to(torch.uint8).numpy() if out else np.zeros((0,), np.uint8)


def per_image(pred: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image Dice, IoU (both 1 when both maps are empty, as MONAI's ``ignore_empty=False``)
    and lesion found (None-free: NaN for an empty target)."""
    p, t = pred.reshape(len(pred), -1) > 0, target.reshape(len(target), -1) > 0
    inter, ps, ts = (p & t).sum(1), p.sum(1), t.sum(1)
    union = ps + ts - inter
    empty = (ps + ts) == 0
    dice = np.where(empty, 1.0, 2 * inter / np.maximum(ps + ts, 1))
    iou = np.where(empty, 1.0, inter / np.maximum(union, 1))
    found = np.where(ts > 0, (inter >= DETECT_FRACTION * ts).astype(float), np.nan)
    return {"dice": dice, "iou": iou, "found": found}


def _summary(m: dict[str, np.ndarray], sel: np.ndarray | None = None) -> dict[str, Any]:
    sel = np.ones(len(m["dice"]), bool) if sel is None else sel
    found = m["found"][sel]
    found = found[np.isfinite(found)]
    return {"n": int(sel.sum()),
            "dice": float(m["dice"][sel].mean()) if sel.any() else None,
            "iou": float(m["iou"][sel].mean()) if sel.any() else None,
            "detection_rate": float(found.mean()) if len(found) else None}


def edit_params(path: str | os.PathLike) -> list[dict[str, Any]] | None:
    """Each pair's edit parameters (manifest.csv ``edit`` column), or None if absent."""
    f = Path(path) / "manifest.csv"
    if not f.is_file():
        return None
    with open(f, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "edit" not in rows[0]:
        return None
    return [json.loads(r["edit"] or "{}") for r in rows]


def edit_names(p: dict[str, Any]) -> list[str]:
    """The edits applied in one pair ([] for an unedited mask)."""
    if not p or p.get("unedited"):
        return []
    names = []
    if p.get("dx") or p.get("dy"):
        names.append("translate")
    names += [n for n, k in (("rotate", "rotate_deg"), ("scale", "scale"),
                             ("elastic", "elastic_seed")) if k in p]
    if p.get("flip_h") or p.get("flip_v"):
        names.append("flip")
    return names


def by_edit(m: dict[str, np.ndarray], params: list[dict[str, Any]]) -> dict[str, Any]:
    """Summaries per edit applied (a pair with several edits counts in each), ``unedited``, and
    for translate / rotate / scale the weaker and stronger half (split at the median)."""
    names = [edit_names(p) for p in params]
    out: dict[str, Any] = {}
    none = np.array([not n for n in names])
    if none.any():
        out["unedited"] = _summary(m, none)
    for e in ("translate", "rotate", "scale", "flip", "elastic"):
        sel = np.array([e in n for n in names])
        if not sel.any():
            continue
        out[e] = _summary(m, sel)
        if e in STRENGTH:
            s = np.array([STRENGTH[e](p) for p in params])
            cut = float(np.median(s[sel]))
            out[e]["median_strength"] = cut
            out[e]["weaker_half"] = _summary(m, sel & (s <= cut))
            out[e]["stronger_half"] = _summary(m, sel & (s > cut))
    return out


def label_consistency(synth_images: np.ndarray, synth_masks: np.ndarray,
                      params: list[dict[str, Any]] | None, test_images: np.ndarray,
                      test_masks: np.ndarray, model: nn.Module, info: dict[str, Any]
                      ) -> dict[str, Any]:
    """The ``label_consistency`` block of metrics.json (images (N, C, H, W), masks (N, H, W))."""
    syn = per_image(segment(model, synth_images), synth_masks)
    real = per_image(segment(model, test_images), test_masks)
    s, r = _summary(syn), _summary(real)
    ratio = s["dice"] / r["dice"] if r["dice"] else None
    det = (s["detection_rate"] / r["detection_rate"]
           if s["detection_rate"] is not None and r["detection_rate"] else None)
    return {"dice_ratio": ratio, "detection_ratio": det,
            "synthetic": s, "real_test": r, "detect_fraction": DETECT_FRACTION,
            "by_edit": by_edit(syn, params) if params and len(params) == len(synth_masks)
            else {},
            "segmenter": {k: info.get(k) for k in ("path", "arch", "features", "seed", "epochs",
                                                    "split", "val_dice", "best_epoch", "sha256")}}


def _resize_masks(masks: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import torch.nn.functional as F

    if masks.shape[-2:] == tuple(size):
        return masks
    t = torch.from_numpy(masks.astype(np.float32))[:, None]
    return F.interpolate(t, size=size, mode="nearest")[:, 0].to(torch.uint8).numpy()


def consistency_block(synth, real, train, *, segmenter: str | os.PathLike | None,
                      epochs: int, seed: int, cache_dir, explicit: bool,
                      warnings: list[str]) -> dict[str, Any] | None:
    """:func:`label_consistency` for ``synthmed evaluate``'s image sets (ImageSets of
    :mod:`synthmed.metrics.inputs`), or None with a warning when it cannot run (a warning only
    when ``explicit``: ``--metrics`` named ``labels``)."""
    from synthmed.data.dataset import PreparedDataset
    from synthmed.sampling.io import load_synthetic

    def skip(why: str) -> None:
        if explicit:
            warnings.append(f"labels: {why}")

    if synth.kind != "synthetic" or not synth.meta.get("paired"):
        return skip("the synthetic set is not an image+mask pair set (generate --masks-from)")
    ds = PreparedDataset(real.path)
    if ds.masks is None:
        return skip(f"{real.path} has no masks: no real test Dice to compare with")
    masks = load_synthetic(synth.path).masks
    if masks is None:
        return skip(f"{synth.path}: no masks found in the pair set")
    masks = _resize_masks((masks > 0).astype(np.uint8), real.size)
    idx = np.unique(np.concatenate([ds.indices(p) for p in str(real.split).split("+")]))
    keep = ds.has_mask[idx]
    if not keep.any():
        return skip(f"{real.path}:{real.split}: no image has a mask")
    if segmenter is None:
        if train is None:
            return skip("no --train split to train the segmenter on (or pass --segmenter FILE)")
        segmenter = train_segmenter(train.path, str(train.split), epochs=epochs, seed=seed,
                                    cache_dir=cache_dir)
    model, info = read_segmenter(segmenter)
    test_masks = (np.asarray(ds.masks[idx[keep]]) > 0).astype(np.uint8)
    return label_consistency(synth.images, masks, edit_params(synth.path),
                             real.images[keep], test_masks, model, info)
