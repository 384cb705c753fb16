"""Sampling trained generators: every image reproducible from (checkpoint, class, seed).

The run's training method (:mod:`synthmed.training.method`) supplies the sampler; for a GAN,
image ``seed`` uses noise drawn from ``torch.Generator().manual_seed(seed)`` alone, and the
generator runs in eval mode (no batch statistics). That alone is not enough for identical bytes:
convolution and matrix kernels pick their blocking (and summation order) from the batch shape, so
the same image computed in a batch of 256 and alone differed by float rounding, i.e. one grey
level in a few percent of images. Sampling therefore always calls the sampler on micro-batches of
exactly :data:`MICRO_BATCH` images of one class (the last one padded by repeating a request),
with cuDNN autotuning off: the image for (checkpoint, class, seed[, method options]) is then the
same bytes whatever was generated with it, on a given machine and software stack. Sampling uses
the EMA weights when the run kept them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthmed.config import config_from_dict
from synthmed.errors import SynthmedError
from synthmed.models.base import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE
from synthmed.resize import resize_tensor
from synthmed.training.checkpoint import checkpoint_hash, load_checkpoint, resolve_checkpoint
from synthmed.training.method import Sampler, check_options, resolve_method

#: Images per generator call while sampling. Part of the exact-image contract: changing it may
#: change an image by float rounding, so generation.json records it.
MICRO_BATCH = 32


@dataclass
class LoadedGenerator:
    generator: torch.nn.Module  # the network the sampler runs (EMA weights when kept)
    meta: dict[str, Any]
    config: Any
    checkpoint: Path
    checkpoint_sha256: str
    step: int
    sampler: Sampler  # the training method's: (seeds, labels) -> images in [-1, 1]
    device: torch.device
    options: dict[str, Any]  # the generation options in effect (recorded in generation.json)

    @property
    def class_names(self) -> list[str]:
        return list(self.meta.get("class_names") or []) if self.meta["conditional"] else []


@dataclass
class GeneratedImages:
    images: torch.Tensor  # (N, C, H, W) float32 in [-1, 1], on CPU
    labels: torch.Tensor  # (N,) int64; -1 for unconditional models
    seeds: torch.Tensor  # (N,) int64
    class_names: list[str]
    source: LoadedGenerator


def load_generator(run_dir: str | os.PathLike, checkpoint: str = "latest",
                   device: str | torch.device = "auto", **options: Any) -> LoadedGenerator:
    """Rebuild a run's sampler from its checkpoint through its training method (EMA weights
    when present); ``options`` are the method's generation options (e.g. diffusion steps)."""
    device = resolve_device(device)
    path = resolve_checkpoint(run_dir, checkpoint)
    state = load_checkpoint(path)
    cfg = config_from_dict(state["config"], source=str(path), saved=True)
    method = resolve_method(cfg.model.name)
    resolved = method.resolve_options(check_options(cfg.model.name, options), cfg, state, device)
    sampler, net = method.build_sampler(state, cfg, device, **resolved)
    return LoadedGenerator(net, state["meta"], cfg, path, checkpoint_hash(path),
                           int(state["step"]), sampler, device, resolved)


MAX_SEED = 2**63 - 1  # torch.Generator seeds and the int64 seeds column
MAX_IMAGES = 1_000_000  # per call: every image is held in memory before it is written


def parse_seeds(text: str | None, n: int | None) -> list[int]:
    """``"0-549"``, ``"1,5,9"``, ``"0-9,100-109"``; or ``range(n)`` when ``text`` is None.

    Seeds are 0..2**63-1 and distinct: an image is defined by (checkpoint, class, seed), so a
    repeated seed would only list the same image twice.
    """
    if text is None:
        if n is None or n < 1:
            raise SynthmedError("--n: give a positive number of images (or --seeds / --per-class)")
        if n > MAX_IMAGES:
            raise SynthmedError(f"--n {n}: at most {MAX_IMAGES:,} images per call; generate "
                                "in parts with --seeds ranges")
        return list(range(n))
    ranges: list[tuple[int, int]] = []
    for part in str(text).split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m:
            raise SynthmedError(f"--seeds {text!r}: expected ranges like 0-549 or lists like 1,5,9")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi > MAX_SEED:
            raise SynthmedError(f"--seeds {text!r}: seed {hi} is too large; seeds go from 0 to "
                                f"{MAX_SEED}")
        if hi < lo:
            raise SynthmedError(f"--seeds {text!r}: range {lo}-{hi} is empty")
        ranges.append((lo, hi))
    if sum(hi - lo + 1 for lo, hi in ranges) > MAX_IMAGES:
        raise SynthmedError(f"--seeds {text!r}: more than {MAX_IMAGES:,} images per call; "
                            "generate in parts")
    seeds = [s for lo, hi in ranges for s in range(lo, hi + 1)]
    if len(set(seeds)) != len(seeds):
        seen: set[int] = set()
        dup = next(s for s in seeds if s in seen or seen.add(s))
        raise SynthmedError(f"--seeds {text!r}: seed {dup} is listed {seeds.count(dup)} times; "
                            "each seed gives one image, so list every seed once")
    return seeds


def resolve_device(name: str | torch.device) -> torch.device:
    """``--device``: auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps, refused in one
    line when this machine lacks it (:func:`synthmed.device.resolve_device`)."""
    from synthmed.device import resolve_device as resolve

    return resolve(name, key="--device")


def plan_labels(loaded: LoadedGenerator, seeds: list[int], *, n: int | None = None,
                per_class: int | None = None, class_name: str | None = None
                ) -> tuple[list[int], list[int]]:
    """(seeds, labels) for the request; conditional models need a class for every image."""
    names = loaded.class_names
    if not loaded.meta["conditional"]:
        if per_class is not None or class_name is not None:
            raise SynthmedError("--per-class/--class: this run's model is unconditional; "
                                "use --n (train acgan or cgan for class-conditional sampling)")
        return seeds, [-1] * len(seeds)
    if class_name is not None:
        if class_name not in names:
            raise SynthmedError(f"--class {class_name!r}: unknown class; choose one of "
                                f"{', '.join(names)}")
        return seeds, [names.index(class_name)] * len(seeds)
    if per_class is not None:
        return [s for _ in names for s in seeds], [k for k in range(len(names)) for _ in seeds]
    return seeds, [s % len(names) for s in seeds]  # class follows the seed: reproducible alone


def _micro_batches(labels: torch.Tensor | None, n: int, micro_batch: int):
    """Index groups of at most ``micro_batch`` images sharing one label (per-class models route
    each class to its own network, so mixed batches would give it sub-batches of varying size)."""
    if labels is None:
        groups = [torch.arange(n)]
    else:
        groups = [(labels == k).nonzero(as_tuple=True)[0] for k in torch.unique(labels).tolist()]
    for idx in groups:
        yield from idx.split(micro_batch)


def match_train_labels(loaded: LoadedGenerator, n: int) -> list[int]:
    """Class of each of ``n`` images so that class counts follow the training split's proportions
    (largest-remainder rounding); the first images take class 0, then class 1, and so on.

    Augmenting with synthetic images in the real class mix keeps the prior a downstream model
    learns unchanged (the thyroid and liver-lesion studies generate per class in proportion)."""
    from synthmed.training.data import resolve_dataset

    data = loaded.config.data
    ds = resolve_dataset(data)
    idx = ds.indices(data.split) if data.split != "all" else np.arange(len(ds))
    counts = np.bincount(ds.labels[idx][ds.labels[idx] >= 0], minlength=len(loaded.class_names))
    if counts.sum() == 0:
        raise SynthmedError(f"--match-train: {ds.path} split {data.split!r} has no labels")
    exact = counts / counts.sum() * n
    take = np.floor(exact).astype(int)
    for k in np.argsort(-(exact - take), kind="stable")[: n - take.sum()]:
        take[k] += 1
    return [k for k, c in enumerate(take) for _ in range(int(c))]


def _train_split_size(loaded: LoadedGenerator) -> int:
    from synthmed.training.data import resolve_dataset

    data = loaded.config.data
    ds = resolve_dataset(data)
    return len(ds) if data.split == "all" else len(ds.indices(data.split))


@torch.no_grad()
def _run_in_micro_batches(call, n: int, labels: torch.Tensor | None, *, micro_batch: int,
                          size: int | None) -> torch.Tensor:
    """``call(idx)`` on index groups of exactly ``micro_batch`` rows of one label (the last
    group padded by repeating its first row); returns (N, C, S, S) float32 on the CPU.

    The fixed shape fixes the kernels and their summation order, and in eval mode no row
    influences another, so an image's bytes do not depend on the request's size or order.
    """
    out: torch.Tensor | None = None
    with torch.backends.cudnn.flags(enabled=torch.backends.cudnn.enabled, benchmark=False,
                                    deterministic=True):
        for idx in _micro_batches(labels, n, micro_batch):
            padded = torch.cat([idx, idx[:1].expand(micro_batch - len(idx))])
            x = call(padded)[:len(idx)].float()
            if size is not None:
                x = resize_tensor(x, size)
            if not bool(torch.isfinite(x).all()):  # a diverged checkpoint gave black images
                raise SynthmedError("the generator returned NaN or Inf values (its training "
                                    "diverged); generate from an earlier checkpoint "
                                    "(--checkpoint step-XXXXXXXX) or retrain with lower "
                                    "learning rates")
            x = x.clamp_(-1, 1).cpu()
            if out is None:
                out = torch.empty((n, *x.shape[1:]), dtype=torch.float32)
            out[idx] = x
    if out is None:
        raise SynthmedError("nothing to generate: the request selects no images")
    return out


def run_generator(generator: torch.nn.Module, z: torch.Tensor, y: torch.Tensor | None = None, *,
                  micro_batch: int = MICRO_BATCH, size: int | None = None) -> torch.Tensor:
    """Run an eval-mode generator so each image is independent of the others requested with it.

    z (N, latent) and y (N,) int64 | None on the generator's device -> images (N, C, S, S)
    float32 in [-1, 1] on the CPU, S = ``size`` (antialiased resize) or the generator's own.
    """
    def call(idx: torch.Tensor) -> torch.Tensor:
        return generator(z[idx.to(z.device)], None if y is None else y[idx.to(y.device)])

    return _run_in_micro_batches(call, z.shape[0], None if y is None else y.cpu(),
                                 micro_batch=micro_batch, size=size)


def check_size(size: int | None) -> None:
    """``--size`` must be a side the toolkit handles (the models' range)."""
    if size is not None and not MIN_IMAGE_SIZE <= int(size) <= MAX_IMAGE_SIZE:
        raise SynthmedError(f"--size {size}: choose a side between {MIN_IMAGE_SIZE} and "
                            f"{MAX_IMAGE_SIZE} px (default: the size the run was trained at)")


def sample(loaded: LoadedGenerator, seeds: list[int], labels: list[int], *,
           size: int | None = None, micro_batch: int = MICRO_BATCH) -> torch.Tensor:
    """Images (N, C, S, S) in [-1, 1] on CPU for the given seeds and labels; S is ``size`` or,
    by default, the size the run was trained at (the training data's)."""
    check_size(size)
    if not seeds:
        raise SynthmedError("nothing to generate: the request selects no images")
    device = loaded.device
    y = (torch.tensor(labels, dtype=torch.long, device=device)
         if loaded.meta["conditional"] else None)
    seed_t = torch.tensor([int(s) for s in seeds], dtype=torch.long)

    def call(idx: torch.Tensor) -> torch.Tensor:
        return loaded.sampler(seed_t[idx].tolist(), None if y is None else y[idx.to(device)])

    return _run_in_micro_batches(call, len(seeds), None if y is None else y.cpu(),
                                 micro_batch=micro_batch, size=size)


def generate(run_dir: str | os.PathLike, n: int | None = None, *, per_class: int | None = None,
             class_name: str | None = None, seeds: str | list[int] | None = None,
             checkpoint: str = "latest", device: str | torch.device = "auto",
             size: int | None = None, match_train: bool = False,
             **options: Any) -> GeneratedImages:
    """Generate images in memory (no files): the Python API behind ``synthmed generate``.

    ``size``: side in pixels of the images returned; default the size the run was trained at.
    ``match_train``: class counts follow the training split (:func:`match_train_labels`).
    ``options`` go to the run's training method (:meth:`TrainingMethod.build_sampler`), e.g.
    ``steps`` and ``guidance`` for diffusion models; GANs take none.
    """
    check_size(size)
    if isinstance(seeds, list):
        seeds = ",".join(str(int(s)) for s in seeds)
    # --match-train alone means what `synthmed run` does by default: as many images as the
    # training split, in its class mix
    by_train = match_train and n is None and seeds is None and per_class is None
    seed_list = [] if by_train else parse_seeds(seeds, per_class if per_class is not None else n)
    loaded = load_generator(run_dir, checkpoint, device, **options)
    if by_train:
        seed_list = parse_seeds(None, _train_split_size(loaded))
    seed_list, labels = plan_labels(loaded, seed_list, n=n, per_class=per_class,
                                    class_name=class_name)
    if match_train and loaded.meta["conditional"] and per_class is None and class_name is None:
        labels = match_train_labels(loaded, len(seed_list))
    images = sample(loaded, seed_list, labels, size=size)
    return GeneratedImages(images, torch.tensor(labels, dtype=torch.long),
                           torch.tensor(seed_list, dtype=torch.long), loaded.class_names, loaded)
