"""Sampling trained generators: every image reproducible from (checkpoint, class, seed).

Image ``seed`` uses noise drawn from ``torch.Generator().manual_seed(seed)`` alone, and the
generator runs in eval mode (no batch statistics), so an image never depends on which other images
were generated with it. Sampling uses the EMA weights when the run kept them.
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
from synthmed.models import build_gan
from synthmed.training.checkpoint import checkpoint_hash, load_checkpoint, resolve_checkpoint


@dataclass
class LoadedGenerator:
    generator: torch.nn.Module
    meta: dict[str, Any]
    config: Any
    checkpoint: Path
    checkpoint_sha256: str
    step: int

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
                   device: str | torch.device = "cpu") -> LoadedGenerator:
    """Rebuild the generator of a run from its checkpoint (EMA weights when present)."""
    path = resolve_checkpoint(run_dir, checkpoint)
    state = load_checkpoint(path)
    cfg = config_from_dict(state["config"], source=str(path))
    meta = state["meta"]
    pair = build_gan(cfg.model, in_channels=meta["in_channels"], image_size=meta["image_size"],
                     n_classes=meta["n_classes"])
    G = pair.generator
    if state.get("generator_ema") is not None:
        ema = {k[len("module."):]: v for k, v in state["generator_ema"].items()
               if k.startswith("module.")}
        G.load_state_dict(ema)
    else:
        G.load_state_dict(state["generator"])
    # NHWC: +30% img/s for the DCGAN generator on 2 CPU cores (benchmarks/train_speed.py).
    G.to(device, memory_format=torch.channels_last).eval()
    return LoadedGenerator(G, meta, cfg, path, checkpoint_hash(path), int(state["step"]))


def parse_seeds(text: str | None, n: int | None) -> list[int]:
    """``"0-549"``, ``"1,5,9"``, ``"0-9,100-109"``; or ``range(n)`` when ``text`` is None."""
    if text is None:
        if n is None or n < 1:
            raise SynthmedError("--n: give a positive number of images (or --seeds / --per-class)")
        return list(range(n))
    seeds: list[int] = []
    for part in str(text).split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m:
            raise SynthmedError(f"--seeds {text!r}: expected ranges like 0-549 or lists like 1,5,9")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise SynthmedError(f"--seeds {text!r}: range {lo}-{hi} is empty")
        seeds.extend(range(lo, hi + 1))
    return seeds


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


@torch.no_grad()
def sample(loaded: LoadedGenerator, seeds: list[int], labels: list[int], *,
           batch_size: int = 256) -> torch.Tensor:
    """Images (N, C, H, W) in [-1, 1] on CPU for the given seeds and labels."""
    device = next(loaded.generator.parameters()).device
    latent = loaded.meta["latent_dim"]
    out = []
    for i in range(0, len(seeds), batch_size):
        chunk = seeds[i:i + batch_size]
        z = torch.stack([torch.randn(latent, generator=torch.Generator().manual_seed(int(s)))
                         for s in chunk]).to(device)
        y = (torch.tensor(labels[i:i + batch_size], device=device)
             if loaded.meta["conditional"] else None)
        out.append(loaded.generator(z, y).float().clamp_(-1, 1).cpu())
    if not out:
        raise SynthmedError("nothing to generate: the request selects no images")
    return torch.cat(out)


def generate(run_dir: str | os.PathLike, n: int | None = None, *, per_class: int | None = None,
             class_name: str | None = None, seeds: str | list[int] | None = None,
             checkpoint: str = "latest", device: str | torch.device = "cpu",
             batch_size: int = 256, match_train: bool = False) -> GeneratedImages:
    """Generate images in memory (no files): the Python API behind ``synthmed generate``.
    ``match_train``: class counts follow the training split (:func:`match_train_labels`)."""
    loaded = load_generator(run_dir, checkpoint, device)
    if isinstance(seeds, list):
        seed_list = [int(s) for s in seeds]
    else:
        seed_list = parse_seeds(seeds, per_class if per_class is not None else n)
    seed_list, labels = plan_labels(loaded, seed_list, n=n, per_class=per_class,
                                    class_name=class_name)
    if match_train and loaded.meta["conditional"] and per_class is None and class_name is None:
        labels = match_train_labels(loaded, len(seed_list))
    images = sample(loaded, seed_list, labels, batch_size=batch_size)
    return GeneratedImages(images, torch.tensor(labels, dtype=torch.long),
                           torch.tensor(seed_list, dtype=torch.long), loaded.class_names, loaded)
