"""Fixed-seed sample grids written during training (the same noise every time, so grids from
different steps are comparable)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from synthmed.data.dataset import from_model_range
from synthmed.fileio import atomic_path

GRID_IMAGES = 64


def fixed_inputs(meta: dict[str, Any], seed: int, device: torch.device, n: int = GRID_IMAGES
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Noise from its own generator (the global RNG stream is untouched) and cycling labels."""
    gen = torch.Generator().manual_seed(int(seed) + 7919)
    z = torch.randn(n, meta["latent_dim"], generator=gen).to(device)
    y = None
    if meta["conditional"]:
        k = max(int(meta["n_classes"]), 1)
        rows = int(math.sqrt(n))
        y = (torch.arange(n) // rows % k).to(device)  # one class per row band
    return z, y


def tile(images: np.ndarray, cols: int | None = None, pad: int = 2) -> np.ndarray:
    """(N, C, H, W) uint8 -> one (H', W') or (H', W', C) image with ``pad`` px gutters."""
    n, c, h, w = images.shape
    cols = cols or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    grid = np.zeros((rows * (h + pad) + pad, cols * (w + pad) + pad, c), np.uint8)
    for i, img in enumerate(images):
        r, q = divmod(i, cols)
        y0, x0 = pad + r * (h + pad), pad + q * (w + pad)
        grid[y0:y0 + h, x0:x0 + w] = img.transpose(1, 2, 0)
    return grid[..., 0] if c == 1 else grid


@torch.no_grad()
def write_sample_grid(generator: torch.nn.Module, z: torch.Tensor, y: torch.Tensor | None,
                      path: str | os.PathLike) -> Path:
    """Render ``generator(z, y)`` in eval mode (no batch-statistics side effects) to a PNG."""
    was_training = generator.training
    generator.eval()
    try:
        x = generator(z, y)
    finally:
        generator.train(was_training)
    grid = tile(from_model_range(x))
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(grid).save(tmp, format="PNG")
    return path
