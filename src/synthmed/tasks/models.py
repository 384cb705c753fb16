"""Downstream models for the utility study: classifiers by name, and a MONAI U-Net segmenter.

- ``fridadar-cnn``: the small CNN of Frid-Adar et al., "GAN-based synthetic medical image
  augmentation for increased CNN performance in liver lesion classification" (Neurocomputing 2018):
  three conv + max-pool pairs, two dense layers, ReLU, dropout 0.5. Kernel sizes and widths
  (5x5/32, 5x5/64, 3x3/128, dense 256) are synthmed's choice where the paper leaves them open.
- ``resnet18``: ResNet-18 (He et al., CVPR 2016) built with MONAI's ``ResNet`` (no torchvision).
  Inputs of 64 px and more get the ImageNet stem (7x7 stride 2 + max pool); smaller ones the
  MedMNIST v2 stem (3x3 stride 1, no pool), as in the published ResNet-18 (28) baseline. Its state
  dict uses torchvision's key names, so a local torchvision ``resnet18`` weights file loads for
  transfer learning (``weights=PATH``).
- ``small-resnet``: a narrow 4-stage ResNet (16-128 channels, one block per stage, ~0.3 M
  parameters) for 28-64 px images on a CPU.

Every classifier maps float32 (B, C, H, W) in [-1, 1] to logits (B, num_classes).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from monai.networks.nets import ResNet, UNet
from torch import nn

from synthmed.errors import SynthmedError
from synthmed.registry import Registry

CLASSIFIERS: Registry = Registry("classifier")
SEGMENTERS = ("unet",)


class FridAdarCNN(nn.Module):
    """Three conv-pool blocks and two dense layers with dropout (Frid-Adar et al. 2018)."""

    def __init__(self, *, spatial_dims: int = 2, in_channels: int = 1, num_classes: int = 2,
                 image_size: int = 64, channels: tuple[int, int, int] = (32, 64, 128),
                 hidden: int = 256, dropout: float = 0.5) -> None:
        super().__init__()
        if spatial_dims != 2:
            raise ValueError("fridadar-cnn is 2D only")
        c1, c2, c3 = channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        side = image_size // 8
        if side < 1:
            raise ValueError(f"fridadar-cnn needs images of at least 8 px, got {image_size}")
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(c3 * side * side, hidden),
            nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [-1, 1] -> logits (B, num_classes)."""
        return self.classifier(self.features(x))


def _resnet(layers: list[int], widths: list[int], *, in_channels: int, num_classes: int,
            small_stem: bool) -> ResNet:
    return ResNet(block="basic", layers=layers, block_inplanes=widths, spatial_dims=2,
                  n_input_channels=in_channels, conv1_t_size=3 if small_stem else 7,
                  conv1_t_stride=1 if small_stem else 2, no_max_pool=small_stem,
                  bias_downsample=False, num_classes=num_classes)


@CLASSIFIERS.register("fridadar-cnn")
def fridadar_cnn(*, in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return FridAdarCNN(in_channels=in_channels, num_classes=num_classes, image_size=image_size)


@CLASSIFIERS.register("resnet18")
def resnet18(*, in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return _resnet([2, 2, 2, 2], [64, 128, 256, 512], in_channels=in_channels,
                   num_classes=num_classes, small_stem=image_size < 64)


@CLASSIFIERS.register("small-resnet")
def small_resnet(*, in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return _resnet([1, 1, 1, 1], [16, 32, 64, 128], in_channels=in_channels,
                   num_classes=num_classes, small_stem=True)


def load_weights(model: nn.Module, path: str | os.PathLike, *, min_fraction: float = 0.5) -> dict:
    """Load a local state-dict file into ``model`` for transfer learning; return what was used.

    Tolerant where transfer learning needs it: a final layer of another size is skipped (it is
    retrained), and 3-channel first-layer weights are summed over channels for 1-channel input.
    Raises a one-line :class:`SynthmedError` when the file is missing, unreadable, or when fewer
    than ``min_fraction`` of the model's tensors fit (weights of some other network).
    """
    path = Path(path)
    if not path.is_file():
        raise SynthmedError(f"{path}: weights file not found; pass a local state-dict file "
                            "(nothing is downloaded)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise SynthmedError(f"{path}: cannot read weights ({type(e).__name__}); pass a PyTorch "
                            "state dict saved with torch.save") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise SynthmedError(f"{path}: not a state dict; pass a file saved with "
                            "torch.save(model.state_dict(), PATH)")
    own = model.state_dict()
    loaded, skipped = {}, []
    for key, target in own.items():
        value = state.get(key, state.get(f"module.{key}"))
        if not isinstance(value, torch.Tensor):
            skipped.append(key)
            continue
        if value.shape != target.shape and value.ndim == 4 and target.ndim == 4 \
                and value.shape[0] == target.shape[0] and value.shape[2:] == target.shape[2:] \
                and target.shape[1] == 1:
            value = value.sum(dim=1, keepdim=True)  # RGB stem -> grayscale
        if value.shape != target.shape:
            skipped.append(key)
            continue
        loaded[key] = value.to(target.dtype)
    n_params = sum(1 for k in own if not k.endswith("num_batches_tracked"))
    n_loaded = sum(1 for k in loaded if not k.endswith("num_batches_tracked"))
    if n_loaded < min_fraction * n_params:
        raise SynthmedError(f"{path}: weights do not fit this model ({n_loaded} of {n_params} "
                            "tensors match); pass weights of the same architecture")
    model.load_state_dict(loaded, strict=False)
    return {"path": str(path), "loaded": n_loaded, "total": n_params,
            "skipped": [k for k in skipped if not k.endswith("num_batches_tracked")]}


def build_classifier(name: str, *, in_channels: int, num_classes: int, image_size: int,
                     weights: str | os.PathLike | None = None) -> nn.Module:
    """A registered classifier; ``weights`` is an optional local state-dict file."""
    model = CLASSIFIERS.build(name, key="utility.model", in_channels=in_channels,
                              num_classes=num_classes, image_size=image_size)
    if weights:
        model.weights_info = load_weights(model, weights)
    return model


def build_segmenter(name: str = "unet", *, in_channels: int = 1, out_channels: int = 2,
                    channels: tuple[int, ...] = (16, 32, 64, 128), image_size: int = 64,
                    weights: str | os.PathLike | None = None) -> nn.Module:
    """MONAI U-Net (Ronneberger et al. 2015; residual units of Kerfoot et al. 2018) that maps
    (B, C, H, W) in [-1, 1] to class logits (B, out_channels, H, W)."""
    if name not in SEGMENTERS:
        raise SynthmedError(f"utility.model: unknown segmenter {name!r}; choose one of "
                            f"{', '.join(SEGMENTERS)}")
    depth = len(channels)
    while depth > 2 and image_size % (2 ** (depth - 1)):
        depth -= 1  # every stride-2 level needs an even side
    model = UNet(spatial_dims=2, in_channels=in_channels, out_channels=out_channels,
                 channels=channels[:depth], strides=(2,) * (depth - 1), num_res_units=1)
    if weights:
        model.weights_info = load_weights(model, weights)
    return model
