"""Per-image preprocessing between reading and the prepared dataset.

Order (recorded in dataset.json): intensity normalization to [0, 1] -> denoising at the native
resolution (so filter sizes are in source pixels) -> optional padding to a square -> resizing ->
quantization to uint8 (or uint16). Masks are padded and resized with nearest neighbour only.

The classic pipeline of the GAN-augmentation studies this toolkit builds on (resize plus Gaussian,
median or bilateral denoising, e.g. Frid-Adar et al., Neurocomputing 2018) is available as options;
bilateral filtering follows Tomasi & Manduchi, ICCV 1998.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from synthmed.errors import DataError

NORMALIZE = ("auto", "none", "minmax", "percentile", "zscore", "window")
FILTERS = ("none", "gaussian", "median", "bilateral")
ZSCORE_CLIP = 3.0


def parse_window(text: str | Sequence[float] | None) -> tuple[float, float] | None:
    """``"40,400"`` -> (center 40, width 400), in the units after DICOM rescale (HU for CT)."""
    if text is None:
        return None
    try:
        values = [float(v) for v in (text.split(",") if isinstance(text, str) else text)]
    except ValueError:
        raise DataError(f"--window {text!r}: expected CENTER,WIDTH like 40,400") from None
    if len(values) != 2 or values[1] <= 0:
        raise DataError(f"--window {text!r}: expected CENTER,WIDTH with a positive width")
    return values[0], values[1]


def _rescale(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    if not hi > lo:
        return np.zeros_like(x)
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0)


def bilateral_filter(x: np.ndarray, *, sigma_space: float, sigma_color: float) -> np.ndarray:
    """Edge-preserving smoothing of a 2D float image in [0, 1] (Tomasi & Manduchi 1998).

    MONAI's BilateralFilter needs its compiled C++ extension, which pip wheels lack, so this is a
    small vectorized version: one pass per offset in a (2r+1)^2 window, r = ceil(2 sigma_space).
    """
    r = max(1, math.ceil(2 * sigma_space))
    h, w = x.shape
    pad = np.pad(x, r, mode="reflect")
    num = np.zeros_like(x)
    den = np.zeros_like(x)
    inv_c = -0.5 / sigma_color**2
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            shifted = pad[r + dy: r + dy + h, r + dx: r + dx + w]
            weight = np.exp(inv_c * (shifted - x) ** 2 - (dy * dy + dx * dx) / (2 * sigma_space**2))
            num += weight * shifted
            den += weight
    return num / den


def _resize(channel: np.ndarray, size: int, resample) -> np.ndarray:
    """One 2D channel to (size, size) with Pillow, whose bilinear filter widens its support when
    shrinking (antialiased, like a box/area filter) and runs single-threaded and fast; torch's
    antialiased interpolate was ~20x slower per small image on a busy 2-core CPU."""
    im = Image.fromarray(np.ascontiguousarray(channel))
    return np.asarray(im.resize((size, size), resample))


def median3(x: np.ndarray) -> np.ndarray:
    """3x3 median filter, same result as ``scipy.ndimage.median_filter(x, 3, mode='reflect')``.

    Sort each vertical triple once (shared by three neighbouring windows); the window median is
    then med3(max of lows, med3 of mids, min of highs) (Paeth, Graphics Gems 1990). 3-5x faster
    than scipy's generic rank filter on 300x300 images.
    """
    pad = np.pad(x, 1, mode="symmetric")
    a, b, c = pad[:-2], pad[1:-1], pad[2:]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    mid = np.maximum(lo, np.minimum(hi, c))
    lo, hi = np.minimum(lo, c), np.maximum(hi, c)
    lo = np.maximum(np.maximum(lo[:, :-2], lo[:, 1:-1]), lo[:, 2:])
    hi = np.minimum(np.minimum(hi[:, :-2], hi[:, 1:-1]), hi[:, 2:])
    mid = _med3(mid[:, :-2], mid[:, 1:-1], mid[:, 2:])
    return _med3(lo, mid, hi)


def _med3(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    return np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """(C, H, W) uint image -> ``channels`` channels (gray repeated, or ITU-R 601 luma)."""
    if image.shape[0] == channels:
        return image
    if channels == 3:
        return np.repeat(image, 3, axis=0)
    luma = np.tensordot(np.array([0.299, 0.587, 0.114]), image.astype(np.float64), axes=1)
    return np.round(luma)[None].astype(image.dtype)


class Preprocessor:
    """Turns one raw image (+ mask) into a (C, H, W) uint8/uint16 array (+ (H, W) mask)."""

    def __init__(self, *, size: int | None = None, keep_aspect: bool = False,
                 normalize: str = "auto", percentiles: Sequence[float] = (0.5, 99.5),
                 window: str | Sequence[float] | None = None, filter: str | None = None,
                 filter_sigma: float = 1.0, filter_size: int = 3, sigma_color: float = 0.1,
                 sigma_space: float = 1.5, bit_depth: int = 8) -> None:
        if size is not None and size <= 0:
            raise DataError(f"--size {size}: must be a positive number of pixels")
        if bit_depth not in (8, 16):
            raise DataError(f"--bit-depth {bit_depth}: choose 8 or 16")
        if normalize not in NORMALIZE:
            raise DataError(f"--normalize {normalize!r}: choose one of {', '.join(NORMALIZE)}")
        filter = filter or "none"
        if filter not in FILTERS:
            raise DataError(f"--filter {filter!r}: choose one of {', '.join(FILTERS)}")
        self.window = parse_window(window)
        if self.window is not None and normalize == "auto":
            normalize = "window"
        if (self.window is None) != (normalize != "window"):
            raise DataError("--window CENTER,WIDTH and --normalize window go together; "
                            "pass both (or neither)")
        lo, hi = (float(p) for p in percentiles)
        if not 0 <= lo < hi <= 100:
            raise DataError(f"--percentiles {lo:g},{hi:g}: need 0 <= low < high <= 100")
        for name, value in (("--filter-sigma", filter_sigma), ("--sigma-color", sigma_color),
                            ("--sigma-space", sigma_space)):
            if value <= 0:
                raise DataError(f"{name} {value:g}: must be positive")
        if filter_size < 1 or filter_size % 2 == 0:
            raise DataError(f"--filter-size {filter_size}: must be an odd number >= 1")
        self.size, self.keep_aspect, self.normalize = size, keep_aspect, normalize
        self.percentiles, self.filter = (lo, hi), filter
        self.filter_sigma, self.filter_size = float(filter_sigma), int(filter_size)
        self.sigma_color, self.sigma_space = float(sigma_color), float(sigma_space)
        self.bit_depth = bit_depth
        self.dtype = np.uint16 if bit_depth == 16 else np.uint8
        self.resolved: Counter = Counter()
        self.masks_emptied = 0  # masks whose foreground vanished when resized

    # -- steps -----------------------------------------------------------------------------------
    def _method(self, image: np.ndarray) -> str:
        if self.normalize != "auto":
            return self.normalize
        if image.dtype == np.uint8 or image.dtype == bool:
            return "none"
        return "none" if image.dtype == np.uint16 and self.bit_depth == 16 else "minmax"

    def normalize_image(self, image: np.ndarray) -> np.ndarray:
        """Raw values -> float32 in [0, 1] with the configured (or auto-resolved) method."""
        method = self._method(image)
        self.resolved[method] += 1
        x = image.astype(np.float32)
        if method == "none":
            if image.dtype.kind in "ub" or (image.dtype.kind == "i" and x.min() >= 0):
                top = 255.0 if image.dtype in (np.uint8, np.bool_) else 65535.0
            else:
                top = 255.0 if self.bit_depth == 8 else 65535.0
            return np.clip(x / top, 0.0, 1.0)
        if method == "minmax":
            return _rescale(x, float(x.min()), float(x.max()))
        if method == "percentile":
            lo, hi = np.percentile(x, self.percentiles)
            return _rescale(x, float(lo), float(hi))
        if method == "zscore":
            z = (x - x.mean()) / max(float(x.std()), 1e-12)
            return _rescale(z, -ZSCORE_CLIP, ZSCORE_CLIP)
        center, width = self.window  # type: ignore[misc]
        return _rescale(x, center - width / 2, center + width / 2)

    def denoise(self, x: np.ndarray) -> np.ndarray:
        """Filter each channel of an (H, W[, C]) float image."""
        if self.filter == "none":
            return x
        if x.ndim == 3:
            return np.stack([self.denoise(x[..., c]) for c in range(x.shape[2])], axis=-1)
        if self.filter == "gaussian":
            from scipy import ndimage  # here: training imports this module, not scipy

            return ndimage.gaussian_filter(x, sigma=self.filter_sigma, mode="reflect")
        if self.filter == "median":
            if self.filter_size == 3:
                return median3(x)
            from scipy import ndimage

            return ndimage.median_filter(x, size=self.filter_size, mode="reflect")
        return bilateral_filter(x, sigma_space=self.sigma_space, sigma_color=self.sigma_color)

    def geometry(self, x: np.ndarray, mask: np.ndarray | None
                 ) -> tuple[np.ndarray, np.ndarray | None]:
        """Pad to square (``keep_aspect``) and resize: (H, W[, C]) -> (C, S, S)."""
        chw = x[None] if x.ndim == 2 else np.moveaxis(x, -1, 0)
        if self.keep_aspect and chw.shape[1] != chw.shape[2]:
            chw = _pad_square(chw)
            mask = _pad_square(mask[None])[0] if mask is not None else None
        if self.size is None or chw.shape[1:] == (self.size, self.size):
            return chw, mask
        out = np.stack([_resize(c, self.size, Image.BILINEAR) for c in chw])
        if mask is not None:
            small = _resize(mask.astype(np.uint8), self.size, Image.NEAREST)
            if mask.any() and not small.any():
                self.masks_emptied += 1
            mask = small
        return out, mask

    def __call__(self, image: np.ndarray, mask: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray | None]:
        """(H, W[, C]) raw image (+ (H, W) mask) -> ((C, H', W') uint, (H', W') uint8 mask)."""
        x = self.denoise(self.normalize_image(image))
        chw, mask = self.geometry(x, mask)
        top = 65535.0 if self.bit_depth == 16 else 255.0
        out = np.round(np.clip(chw, 0.0, 1.0) * top).astype(self.dtype)
        return out, (mask.astype(np.uint8) if mask is not None else None)

    def describe(self) -> dict[str, Any]:
        """Every step and its parameters, for dataset.json ``preprocessing``."""
        norm: dict[str, Any] = {"method": self.normalize, "per_image": dict(self.resolved)}
        if self.normalize in ("auto", "percentile"):
            norm["percentiles"] = list(self.percentiles)
        if self.normalize in ("auto", "zscore"):
            norm["zscore_clip"] = ZSCORE_CLIP
        if self.window is not None:
            norm["window"] = {"center": self.window[0], "width": self.window[1]}
        filt: dict[str, Any] = {"name": self.filter}
        if self.filter == "gaussian":
            filt["sigma"] = self.filter_sigma
        elif self.filter == "median":
            filt["size"] = self.filter_size
        elif self.filter == "bilateral":
            filt.update(sigma_space=self.sigma_space, sigma_color=self.sigma_color,
                        radius=max(1, math.ceil(2 * self.sigma_space)))
        return {
            "order": ["normalize", "filter", "pad", "resize", "quantize", "channels"],
            "normalize": norm,
            "filter": filt,
            "resize": None if self.size is None else {
                "size": [self.size, self.size], "image": "bilinear (antialiased)",
                "mask": "nearest"},
            "keep_aspect": self.keep_aspect,
            "bit_depth": self.bit_depth,
            "mask_threshold": ">0 -> 1",
            "masks_emptied_by_resize": self.masks_emptied,
        }


def _pad_square(chw: np.ndarray) -> np.ndarray:
    """Zero-pad (C, H, W) symmetrically to (C, S, S), S = max(H, W)."""
    _, h, w = chw.shape
    s = max(h, w)
    top, left = (s - h) // 2, (s - w) // 2
    return np.pad(chw, ((0, 0), (top, s - h - top), (left, s - w - left)))


def describe_short(pre: dict[str, Any]) -> str:
    """One line for ``synthmed data info`` from a dataset.json ``preprocessing`` entry."""
    if "normalize" not in pre:  # written by something else: show it as it is
        return ", ".join(f"{k}={v}" for k, v in pre.items())
    norm = pre["normalize"]
    per = ", ".join(f"{k} x{v}" for k, v in norm.get("per_image", {}).items())
    parts = [f"normalize {norm.get('method')}" + (f" ({per})" if per else "")]
    filt = pre.get("filter") or {}
    params = ", ".join(f"{k}={v}" for k, v in filt.items() if k != "name")
    parts.append(f"filter {filt.get('name', 'none')}" + (f" ({params})" if params else ""))
    size = (pre.get("resize") or {}).get("size")
    parts.append(f"resize {size[0]}x{size[1]}" if size else "native size")
    if pre.get("keep_aspect"):
        parts.append("padded to square")
    parts.append(f"{pre.get('bit_depth', 8)}-bit")
    return ", ".join(parts)


def available_memory() -> int | None:
    """Bytes this process can still allocate without swapping: MemAvailable from /proc/meminfo,
    else physical memory (os.sysconf); None where neither is known."""
    import os

    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(n_images: int, size: int | None, channels: int | None, bit_depth: int) -> None:
    """Refuse a ``--size`` whose arrays cannot fit in memory, before anything is allocated.

    The estimate is a lower bound: one image's float32 working copies (resize output, stacked
    channels, mask: about 3 x 4 bytes per pixel and channel) plus the stacked dataset held twice
    (the per-image list and ``np.stack``'s copy). Without this, ``--size 100000`` was killed by
    the kernel (exit 137) with no message.
    """
    if size is None:
        return
    c = channels or 1
    pixels = size * size
    need = 12 * c * pixels + 2 * n_images * pixels * (c * bit_depth // 8 + 1)
    have = available_memory()
    if have is not None and need > have:
        raise DataError(f"--size {size}: {n_images} image(s) at {size}x{size} need at least "
                        f"{_gib(need)} of memory but {_gib(have)} is available; choose a smaller "
                        "--size")


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"
