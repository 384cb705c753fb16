"""The extractor contract (a leaf module): :class:`FeatureExtractor`, :func:`prepare_images` and
the :data:`FEATURE_EXTRACTORS` registry.

Nothing here imports another ``synthmed.metrics`` module, so the extractors themselves
(:mod:`~synthmed.metrics.domain`, :mod:`~synthmed.metrics.inception`, the TorchScript loader in
:mod:`~synthmed.metrics.features`) import this module and register themselves, as torch-fidelity's
extractors do, and the metrics (:mod:`~synthmed.metrics.fidelity`, privacy) share
:func:`prepare_images` without an import circle.

Every image goes through :func:`prepare_images`: the one place where dtype, channels (gray is
repeated to 3 channels for RGB networks) and size (``torch.nn.functional.interpolate``) are adapted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from synthmed.errors import SynthmedError
from synthmed.registry import Registry

InputRange = Literal["model", "unit", "uint8"]
RESIZE_METHOD = ("torch.nn.functional.interpolate(mode='bilinear', antialias=True, "
                 "align_corners=False)")


def state_dict_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """A hash of the weights themselves (names, dtypes, shapes, values), independent of the file."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def prepare_images(images: np.ndarray | torch.Tensor, *, size: tuple[int, int] | None = None,
                   channels: int | None = None, input_range: InputRange = "model") -> torch.Tensor:
    """(N, C, H, W) uint8/uint16 images -> what a network expects: the single conversion point.

    ``channels``: 1 -> 3 repeats the gray channel, 3 -> 1 averages; ``size`` resizes with bilinear
    antialiased interpolation; ``input_range``: ``model`` float32 [-1, 1] (synthmed networks),
    ``unit`` float32 [0, 1] (pixel-space comparisons, MS-SSIM), ``uint8`` uint8 [0, 255]
    (torch-fidelity's Inception, which does its own resize to 299 px).
    """
    if isinstance(images, np.ndarray):
        top = 65535.0 if images.dtype == np.uint16 else 255.0
        x = torch.from_numpy(np.array(images, dtype=np.float32)) / top
    else:  # tensors: uint8 in [0, 255], or float already in [0, 1]
        x = images.float() / (255.0 if not images.is_floating_point() else 1.0)
    if x.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(x.shape)}")
    if channels is not None and x.shape[1] != channels:
        if x.shape[1] == 1:
            x = x.repeat(1, channels, 1, 1)
        elif channels == 1:
            x = x.mean(dim=1, keepdim=True)
        else:
            raise SynthmedError(f"cannot adapt {x.shape[1]}-channel images to {channels} channels")
    if size is not None and tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=tuple(size), mode="bilinear", antialias=True, align_corners=False)
        x = x.clamp_(0.0, 1.0)
    if input_range == "model":
        return x.mul_(2.0).sub_(1.0)
    if input_range == "uint8":
        return x.mul_(255.0).round_().to(torch.uint8)
    return x


@dataclass
class Features:
    """Penultimate-layer features (N, D) float32 and, for classifiers, posteriors (N, K)."""

    features: np.ndarray
    probs: np.ndarray | None = None


class FeatureExtractor:
    """A frozen network plus the preprocessing that feeds it.

    ``module(x)`` gets (B, in_channels, *input_size) in ``input_range`` and returns features (B, D)
    or a tuple ``(features (B, D), logits (B, K))``; logits become class posteriors for the IS.
    """

    def __init__(self, module: nn.Module | Callable, *, name: str,
                 input_size: tuple[int, int] | None = None, in_channels: int = 1,
                 input_range: InputRange = "model", weights_sha256: str | None = None,
                 batch_size: int = 256, info: dict[str, Any] | None = None,
                 device: str | torch.device = "cpu") -> None:
        self.module = module
        self.name = name
        self.input_size = tuple(int(s) for s in input_size) if input_size is not None else None
        self.in_channels = int(in_channels)
        self.input_range = input_range
        if weights_sha256 is None and isinstance(module, nn.Module):
            weights_sha256 = state_dict_sha256(module.state_dict())
        self.weights_sha256 = weights_sha256 or "unknown"
        self.batch_size = int(batch_size)
        self.info = dict(info or {})
        self.device = torch.device("cpu")
        if isinstance(module, nn.Module):
            module.eval()
        self.to(device)

    def to(self, device: str | torch.device) -> FeatureExtractor:
        """Run the network on ``device`` (e.g. ``cuda``); features always come back on the CPU."""
        self.device = torch.device(device)
        if isinstance(self.module, nn.Module):
            self.module.to(self.device)
        return self

    @property
    def preprocessing(self) -> dict[str, Any]:
        """What happens to an image before the network: part of the feature-cache key."""
        return {"extractor": self.name, "input_size": list(self.input_size or []) or None,
                "in_channels": self.in_channels, "input_range": self.input_range,
                "resize": RESIZE_METHOD}

    def describe(self, image_size: tuple[int, int] | None = None) -> dict[str, Any]:
        """Extractor facts for metrics.json (name, weights hash, input size, any resize applied)."""
        out = {"extractor": self.name, "weights_sha256": self.weights_sha256,
               "input_size": list(self.input_size) if self.input_size else None,
               "in_channels": self.in_channels, **self.info}
        if image_size is not None and self.input_size and tuple(image_size) != self.input_size:
            out["resized_from"] = list(image_size)
        return out

    @torch.no_grad()
    def extract(self, images: np.ndarray, *, batch_size: int | None = None) -> Features:
        """(N, C, H, W) uint8/uint16 images -> :class:`Features` (computed in batches)."""
        bs = batch_size or self.batch_size
        feats, logits = [], []
        for start in range(0, len(images), bs):
            x = prepare_images(np.asarray(images[start:start + bs]), size=self.input_size,
                               channels=self.in_channels, input_range=self.input_range)
            out = self.module(x.to(self.device))
            if isinstance(out, (tuple, list)):
                f, lg = out[0], out[1] if len(out) > 1 else None
            else:
                f, lg = out, None
            feats.append(f.reshape(len(x), -1).float().cpu())
            if lg is not None:
                logits.append(lg.float().cpu())
        if not feats:
            return Features(np.zeros((0, 0), np.float32))
        probs = torch.cat(logits).softmax(dim=1).numpy() if logits else None
        return Features(torch.cat(feats).numpy(), probs)

    __call__ = extract


FEATURE_EXTRACTORS: Registry[Callable[..., FeatureExtractor]] = Registry("feature extractor")


def register_extractor(name: str, module: nn.Module | Callable[..., nn.Module], *,
                       input_size: tuple[int, int] | int | None = None, in_channels: int = 1,
                       input_range: InputRange = "model", overwrite: bool = False) -> None:
    """Make a custom network usable as ``features=name`` (Python API).

    ``module`` is an ``nn.Module`` or a zero-argument factory returning one; its forward follows
    the :class:`FeatureExtractor` contract. The weights hash (cache key) is taken from its
    state dict, so retrained weights never reuse stale cached features.
    """
    size = (input_size, input_size) if isinstance(input_size, int) else input_size

    def factory(**_: Any) -> FeatureExtractor:
        net = module if isinstance(module, nn.Module) else module()
        return FeatureExtractor(net, name=name, input_size=size, in_channels=in_channels,
                                input_range=input_range)

    FEATURE_EXTRACTORS.register(name, factory, overwrite=overwrite)
