"""One image resize for the whole toolkit: bilinear with antialiasing.

Used where two image sizes must meet: inside the GANs (a network built at a power of two serving
a data size that is not one), by ``synthmed generate --size``, and where ``utility`` and
``evaluate`` match a synthetic set to the real images' size. Antialiasing (a triangle filter
widened by the scale factor when shrinking) avoids the aliasing of plain bilinear downsampling;
its weights are non-negative and sum to one, so an image in [-1, 1] stays in [-1, 1].
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

#: What outputs record about the resize they applied.
RESIZE_METHOD = "bilinear, antialiased (torch.nn.functional.interpolate, align_corners=False)"


def resize_tensor(x: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """(N, C, H, W) float -> (N, C, *size) float; returns ``x`` itself when already that size.

    Each image is resized on its own (no mixing across the batch), so an image's result does
    not depend on the other images in the batch."""
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(x.shape[-2:]) == hw:
        return x
    # float32 math: the antialiased kernel has no bf16/fp16 CPU version (mixed precision, train.amp)
    y = F.interpolate(x.float(), size=hw, mode="bilinear", antialias=True, align_corners=False)
    return y.to(x.dtype)


def resize_array(images: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """(N, C, H, W) uint8/uint16 (or float) array -> same dtype at ``size``, rounded and clipped."""
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(images.shape[-2:]) == hw:
        return images
    dtype = images.dtype
    out = []
    for i in range(0, len(images), 256):  # bounded memory for large sets
        x = torch.from_numpy(np.ascontiguousarray(images[i:i + 256]).astype(np.float32))
        out.append(resize_tensor(x, hw).numpy())
    y = np.concatenate(out) if out else np.zeros((0, *images.shape[1:2], *hw), np.float32)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        y = np.clip(np.rint(y), info.min, info.max)
    return y.astype(dtype)
