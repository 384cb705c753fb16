"""Training data held in memory as tensors, and a resumable, shardable batch stream."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DistributedSampler

from synthmed.config import DataConfig
from synthmed.data.dataset import PreparedDataset, to_model_range
from synthmed.errors import ConfigError


def cache_dir() -> Path:
    return Path(os.environ.get("SYNTHMED_CACHE", Path.home() / ".cache" / "synthmed"))


def phantom_dataset(n: int, size: int, seed: int) -> PreparedDataset:
    """The built-in phantom as a prepared dataset, built once into the cache (atomically)."""
    from synthmed.data.dataset import write_prepared
    from synthmed.data.phantom import CLASS_NAMES, PHANTOM_VERSION, make_phantom
    from synthmed.data.splits import group_stratified_split

    path = cache_dir() / "phantom" / f"n{n}-s{size}-seed{seed}-v{PHANTOM_VERSION}"
    if not (path / "dataset.json").is_file():
        ph = make_phantom(n, size, seed)
        splits = group_stratified_split(ph["labels"], ph["groups"], seed=seed)
        write_prepared(path, images=ph["images"][:, None], labels=ph["labels"], splits=splits,
                       class_names=CLASS_NAMES, ids=ph["ids"], groups=ph["groups"],
                       masks=ph["masks"], name="phantom", force=True,
                       source={"type": "phantom", "n": n, "size": size, "seed": seed,
                               "version": PHANTOM_VERSION})
    return PreparedDataset(path)


def resolve_dataset(cfg: DataConfig) -> PreparedDataset:
    """``data.path``: a prepared dataset directory, or ``phantom``."""
    if cfg.path == "phantom":
        return phantom_dataset(cfg.phantom_n, cfg.phantom_size, cfg.phantom_seed)
    if not Path(cfg.path).exists():
        raise ConfigError(f"data.path: {cfg.path} does not exist; point it at a prepared dataset "
                          "(synthmed data import) or use 'phantom'")
    return PreparedDataset(cfg.path)


@dataclass
class TrainingData:
    # (N, C, S, S) on the training device: uint8 pixels when the split is used at its stored
    # size (4x less memory, e.g. on a GPU; :meth:`rows` converts per batch), else float32 in
    # [-1, 1] (resized on load). Read images through :meth:`rows`.
    images: torch.Tensor
    labels: torch.Tensor  # (N,) int64, -1 when unlabelled
    class_names: list[str]
    dataset_hash: str
    dataset_path: str
    masks: torch.Tensor | None = None  # (N, 1, S, S) float32 in {0, 1}; only when asked for

    @property
    def labelled(self) -> bool:
        return bool(self.class_names) and bool((self.labels >= 0).all())

    def rows(self, idx: torch.Tensor) -> torch.Tensor:
        """Images ``idx`` as float32 (n, C, S, S) in [-1, 1], converted on the device with the
        same arithmetic as :func:`~synthmed.data.dataset.to_model_range` (bit-identical)."""
        x = self.images[idx]
        return to_model_range(x) if x.dtype == torch.uint8 else x


def load_training_data(cfg: DataConfig, image_size: int | None, device: torch.device, *,
                       masks: bool = False) -> TrainingData:
    """Decode the split once into a tensor (no per-step image decoding), resized if asked.

    With ``masks`` the split's segmentation masks come along (nearest-neighbour resized), for
    mask-conditioned methods; a dataset without masks is then refused.
    """
    ds = resolve_dataset(cfg)
    idx = ds.indices(cfg.split)
    labels = torch.from_numpy(ds.labels[idx])
    if len(idx) == 0:
        raise ConfigError(f"data.split: split {cfg.split!r} of {ds.path} is empty")
    h, w = ds.images.shape[-2:]
    size = image_size or h
    if (h, w) != (size, size) or ds.images.dtype != np.uint8:
        images = to_model_range(np.asarray(ds.images[idx]))
        if (h, w) != (size, size):
            images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True,
                                   align_corners=False).clamp_(-1, 1)
    else:  # kept as stored: converted per batch
        images = torch.from_numpy(np.ascontiguousarray(ds.images[idx]))
    m = _masks(ds, cfg, size) if masks else None
    return TrainingData(images.contiguous().to(device), labels.to(device), ds.class_names,
                        ds.content_hash, str(ds.path), m.to(device) if m is not None else None)


def _masks(ds: PreparedDataset, cfg: DataConfig, size: int) -> torch.Tensor:
    if ds.masks is None:
        raise ConfigError(f"data.path: {ds.path} has no masks (masks.npy); this model is "
                          "mask-conditioned: import the data with its masks")
    m = torch.from_numpy(np.asarray(ds.masks[ds.indices(cfg.split)], dtype=np.float32))[:, None]
    if m.shape[-2:] != (size, size):
        m = F.interpolate(m, size=(size, size), mode="nearest")
    return m.contiguous()


class BatchStream:
    """Endless batches of row indices: epochs of DistributedSampler permutations, concatenated.

    Batches may cross epoch boundaries, so a dataset smaller than the batch still works. The
    position ``(epoch, offset)`` is the whole state: restoring it resumes the exact same order.
    """

    def __init__(self, n: int, batch_size: int, *, seed: int, rank: int = 0, world_size: int = 1):
        self.sampler = DistributedSampler(range(n), num_replicas=world_size, rank=rank,
                                          shuffle=True, seed=seed, drop_last=False)
        self.batch_size = batch_size
        self.epoch, self.offset = 0, 0
        self._order = self._epoch_order()

    def _epoch_order(self) -> torch.Tensor:
        self.sampler.set_epoch(self.epoch)
        return torch.tensor(list(iter(self.sampler)), dtype=torch.long)

    def next(self) -> torch.Tensor:
        parts, need = [], self.batch_size
        while need:
            take = self._order[self.offset:self.offset + need]
            parts.append(take)
            need -= len(take)
            self.offset += len(take)
            if self.offset >= len(self._order):
                self.epoch, self.offset = self.epoch + 1, 0
                self._order = self._epoch_order()
        return torch.cat(parts)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "offset": self.offset}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.offset = int(state["epoch"]), int(state["offset"])
        self._order = self._epoch_order()


def draw_batches(data: TrainingData, stream: BatchStream, k: int, device: torch.device,
                 host_labels: torch.Tensor | None) -> list:
    """``k`` batches of the split, gathered on the device from the stream's row indices.

    The indices go to the device with a pinned, non-blocking copy on CUDA; per-class counts come
    from ``host_labels`` (a CPU copy of the labels), so nothing here waits for the device.
    """
    from synthmed.training.method import Batch

    out = []
    k_classes = len(data.class_names)
    for _ in range(k):
        idx_cpu = stream.next()
        if device.type == "cuda":
            idx = idx_cpu.pin_memory().to(device, non_blocking=True)
        else:
            idx = idx_cpu.to(device)
        counts = (torch.bincount(host_labels[idx_cpu], minlength=k_classes).tolist()
                  if host_labels is not None else None)
        out.append(Batch(images=data.rows(idx),
                         labels=data.labels[idx] if data.labelled else None,
                         masks=data.masks[idx] if data.masks is not None else None,
                         indices=idx, class_counts=counts))
    return out


def drop_unlabelled(data: TrainingData, model: str) -> tuple[TrainingData, str | None]:
    """A class-conditional model on partly labelled data trains on the labelled images only.

    Before, 5 labelled classes plus 6 blank labels made the split "unlabelled": a cgan trained
    unconditionally ("0 classes") without a word, and the utility stage failed afterwards.
    Returns the data and the notice to print (None when nothing was dropped).
    """
    from synthmed import generators

    known = data.labels >= 0
    d = generators.find(model)  # label-blind models (not conditional) train on every image
    blind = d is not None and not d.caps(model).conditional
    if blind or not data.class_names or bool(known.all()) or not bool(known.any()):
        return data, None
    keep = known.nonzero(as_tuple=True)[0]
    n_drop = len(data.labels) - len(keep)
    data = dataclasses.replace(
        data, images=data.images[keep].contiguous(), labels=data.labels[keep],
        masks=data.masks[keep].contiguous() if data.masks is not None else None)
    return data, (f"{n_drop} of {n_drop + len(keep)} training images have no label; {model} is "
                  f"class-conditional, so it trains on the {len(keep)} labelled ones (label the "
                  "rest, or use model.name=dcgan to train on all without classes)")


def fit_batch_size(cfg_train, n_images: int, world_size: int) -> str | None:
    """Clamp ``train.batch_size`` to the training split (a batch of 100,000 on 48 images was
    killed by the kernel at ~23 GB with no message); returns the notice, None when unchanged.
    The clamped size is what the run's config.yaml and checkpoints record, so a resume agrees."""
    if cfg_train.batch_size <= n_images:
        return None
    new = max(world_size, n_images // world_size * world_size)
    old, cfg_train.batch_size = cfg_train.batch_size, new
    return (f"train.batch_size {old:,} is larger than the training split ({n_images:,} images); "
            f"training with batch size {new:,}")


def check_step_memory(batch_size: int, size: int, width: int, device: torch.device) -> None:
    """Refuse a batch whose activations cannot fit, before the first step (as ``data import
    --size`` does for arrays). A lower bound: the full-resolution feature maps of the first and
    last layers (``width`` channels at ``size``/2, forward and backward, float32, G and D)."""
    from synthmed.data.preprocess import _gib, available_memory

    need = 4 * batch_size * width * (size // 2) ** 2 * 4
    if device.type == "cuda":
        try:
            have = int(torch.cuda.mem_get_info(device)[0])
        except (RuntimeError, AssertionError):
            return
    else:
        have = available_memory()
    if have is not None and need > have:
        raise ConfigError(f"train.batch_size: {batch_size:,} images of {size}x{size} px need at "
                          f"least {_gib(need)} of {device.type} memory per step but {_gib(have)} "
                          "is available; lower train.batch_size (or model.base_width)")
