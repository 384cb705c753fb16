"""Fixed-input sample grids written during training (the same inputs every time, so grids from
different steps are comparable). What a grid shows is the training method's choice
(:meth:`~synthmed.training.method.TrainingMethod.render_grid`); this module renders and tiles."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from synthmed.data.dataset import from_model_range
from synthmed.fileio import atomic_path

GRID_IMAGES = 64


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
def write_sample_grid(method, inputs, network: torch.nn.Module, path: str | os.PathLike) -> Path:
    """Render ``method.render_grid(inputs, network)`` in eval mode (no batch-statistics side
    effects) and write it as a PNG atomically."""
    was_training = network.training
    network.eval()
    try:
        images, cols = method.render_grid(inputs, network)
    finally:
        network.train(was_training)
    grid = tile(from_model_range(images.float().clamp(-1, 1)), cols)
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(grid).save(tmp, format="PNG")
    return path
