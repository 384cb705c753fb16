"""Sampling trained generators: every image reproducible from (checkpoint, class, seed).

The run's training method (:mod:`synthmed.training.method`) supplies the sampler; for a GAN,
image ``seed`` uses noise drawn from ``torch.Generator().manual_seed(seed)`` alone, and the
generator runs in eval mode (no batch statistics), so an image never depends on which other images
were generated with it. Sampling uses the EMA weights when the run kept them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from synthmed.config import config_from_dict
from synthmed.errors import SynthmedError
from synthmed.training.checkpoint import checkpoint_hash, load_checkpoint, resolve_checkpoint
from synthmed.training.method import Sampler, resolve_method


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
                   device: str | torch.device = "cpu", **options: Any) -> LoadedGenerator:
    """Rebuild a run's sampler from its checkpoint through its training method (EMA weights
    when present); ``options`` are the method's generation options (e.g. diffusion steps)."""
    device = resolve_device(device)
    path = resolve_checkpoint(run_dir, checkpoint)
    state = load_checkpoint(path)
    cfg = config_from_dict(state["config"], source=str(path))
    sampler, net = resolve_method(cfg.model.name).build_sampler(state, cfg, device, **options)
    return LoadedGenerator(net, state["meta"], cfg, path, checkpoint_hash(path),
                           int(state["step"]), sampler, device)


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
    """``--device``: cpu, cuda, cuda:N or mps, refused in one line when this machine lacks it."""
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise SynthmedError(f"--device {name!r}: unknown device; use cpu, cuda, cuda:N or "
                            "mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise SynthmedError(f"--device {name}: CUDA is not available on this machine; use "
                                "--device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise SynthmedError(f"--device {name}: this machine has {torch.cuda.device_count()} "
                                "CUDA device(s); use cuda:0 or cpu")
    elif dev.type == "mps" and not (getattr(torch.backends, "mps", None)
                                    and torch.backends.mps.is_available()):
        raise SynthmedError(f"--device {name}: MPS is not available on this machine; use "
                            "--device cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise SynthmedError(f"--device {name}: unsupported device; use cpu, cuda, cuda:N or mps")
    return dev


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


@torch.no_grad()
def sample(loaded: LoadedGenerator, seeds: list[int], labels: list[int], *,
           batch_size: int = 256) -> torch.Tensor:
    """Images (N, C, H, W) in [-1, 1] on CPU for the given seeds and labels."""
    device = loaded.device
    out = []
    for i in range(0, len(seeds), batch_size):
        chunk = seeds[i:i + batch_size]
        y = (torch.tensor(labels[i:i + batch_size], device=device)
             if loaded.meta["conditional"] else None)
        out.append(loaded.sampler(chunk, y).float().clamp_(-1, 1).cpu())
    if not out:
        raise SynthmedError("nothing to generate: the request selects no images")
    return torch.cat(out)


def generate(run_dir: str | os.PathLike, n: int | None = None, *, per_class: int | None = None,
             class_name: str | None = None, seeds: str | list[int] | None = None,
             checkpoint: str = "latest", device: str | torch.device = "cpu",
             batch_size: int = 256, **options: Any) -> GeneratedImages:
    """Generate images in memory (no files): the Python API behind ``synthmed generate``.

    ``options`` go to the run's training method (:meth:`TrainingMethod.build_sampler`), e.g.
    ``steps`` and ``guidance`` for diffusion models; GANs take none.
    """
    if isinstance(seeds, list):
        seeds = ",".join(str(int(s)) for s in seeds)
    seed_list = parse_seeds(seeds, per_class if per_class is not None else n)
    loaded = load_generator(run_dir, checkpoint, device, **options)
    seed_list, labels = plan_labels(loaded, seed_list, n=n, per_class=per_class,
                                    class_name=class_name)
    images = sample(loaded, seed_list, labels, batch_size=batch_size)
    return GeneratedImages(images, torch.tensor(labels, dtype=torch.long),
                           torch.tensor(seed_list, dtype=torch.long), loaded.class_names, loaded)
