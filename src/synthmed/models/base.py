"""What every GAN model hands the trainer, the model registry and :func:`build_gan`.

A model is a name in :data:`GAN_MODELS` mapping to a factory
``factory(cfg, *, in_channels, image_size, n_classes) -> GANPair``. The pair carries the two
networks plus the defaults the paper behind the model trains with (loss, DiffAugment policy, ADA,
EMA), so the trainer resolves ``model.loss: null`` and friends without knowing any model by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from synthmed.errors import ConfigError
from synthmed.generators import ModelSection
from synthmed.registry import Registry
from synthmed.resize import resize_tensor

#: Smallest and largest image side the models accept (any size in between works).
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 16, 512

#: Sizes the networks are built at: 4x4 features up/down-sampled by a power of two. Any other
#: size in [MIN_IMAGE_SIZE, MAX_IMAGE_SIZE] is served by the next one up (see :func:`render_size`).
SUPPORTED_SIZES = (16, 32, 64, 128, 256, 512)


@dataclass
class GANPair:
    """A generator, a discriminator and how they are meant to be trained.

    ``generator(z, y=None)``: z (N, latent_dim) float32, y (N,) int64 -> (N, C, H, W) in [-1, 1].
    ``discriminator(x, y=None)`` -> ``(adv_logits (N,), class_logits (N, K) | None)``; logits are
    raw (no sigmoid): the loss applies its own link.
    """

    generator: nn.Module
    discriminator: nn.Module
    latent_dim: int
    n_classes: int  # 0 when unconditional
    conditional: bool  # G (and D) take class labels y
    aux_classifier: bool  # D returns class logits (ACGAN)
    default_loss: str
    default_diffaugment: str | None
    default_ada: bool
    default_ema: bool


GanFactory = Callable[..., GANPair]

#: Registered GAN models ("model.name" in YAML): dcgan, acgan, cgan.
GAN_MODELS: Registry[GanFactory] = Registry("model")


def render_size(image_size: int) -> int:
    """The power of two a network for ``image_size`` is built at: the smallest one >= it.

    A data size that is not a power of two (MedMNIST's 28, 100, ...) is served by building the
    network one size up and resizing at its boundary (:func:`to_data_size`,
    :func:`to_render_size`) rather than by changing the architecture: every model keeps the
    layer layout of its paper, works for every size in range the same way, and a 28 px model
    renders detail at 32 px and shrinks it (antialiased) instead of enlarging a 16 px image.
    Cost: at most 4x the pixels of the data (257 -> 512); sizes at or just under a power of two
    are cheapest.
    """
    if not MIN_IMAGE_SIZE <= int(image_size) <= MAX_IMAGE_SIZE:
        raise ValueError(f"image_size must lie in [{MIN_IMAGE_SIZE}, {MAX_IMAGE_SIZE}], "
                         f"got {image_size}")
    return 1 << (int(image_size) - 1).bit_length()


def num_stages(image_size: int) -> int:
    """Number of stride-2 stages between a 4x4 map and ``render_size(image_size)`` (2 to 7)."""
    return render_size(image_size).bit_length() - 3


def to_data_size(x: torch.Tensor, image_size: int) -> torch.Tensor:
    """Generator output (N, C, R, R) at the render size -> (N, C, S, S) at the data's size.

    Antialiased bilinear shrinking (a no-op when R == S): convex weights, so tanh outputs stay
    in [-1, 1], and differentiable, so the generator learns what the discriminator sees."""
    return resize_tensor(x, image_size)


def to_render_size(x: torch.Tensor, image_size: int) -> torch.Tensor:
    """Discriminator input (N, C, S, S) at the data's size -> (N, C, R, R) at the render size.

    Real and generated images both arrive at the data's size and pass through the same fixed
    bilinear enlargement, so the discriminator compares them at the data's resolution and sees
    nothing a data-size image does not contain. Any other input size is a caller error."""
    if tuple(x.shape[-2:]) != (image_size, image_size):
        raise ValueError(f"discriminator built for {image_size}x{image_size} images, "
                         f"got {tuple(x.shape[-2:])}")
    return resize_tensor(x, render_size(image_size))


def check_spatial_dims(spatial_dims: int) -> None:
    """The networks are 2D; the MONAI-style argument is kept so 3D variants fit the same API."""
    if spatial_dims != 2:
        raise ValueError(f"only spatial_dims=2 is implemented, got {spatial_dims}")


def dcgan_init_(module: nn.Module) -> nn.Module:
    """Radford et al. 2016 init: conv weights ~ N(0, 0.02), BatchNorm scale ~ N(1, 0.02), bias 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return module


def require_labels(n_classes: int, *, model: str, key: str = "model.name",
                   fix: str = "use model.name: dcgan (or cgan, which also runs without labels)"
                   ) -> None:
    """Conditional models need at least two classes; say what to use instead."""
    if n_classes < 2:
        raise ConfigError(
            f"{key}: {model} is class-conditional but the dataset has no labels "
            f"({n_classes} class(es)); {fix}"
        )


def build_gan(cfg: ModelSection, *, in_channels: int, image_size: int, n_classes: int) -> GANPair:
    """Build the GAN named by ``cfg.name`` for images of ``in_channels`` x ``image_size``^2.

    ``image_size`` is the resolved size the data are fed at (``model.image_size`` or the data's);
    ``n_classes`` is the number of labelled classes in the dataset (0 when unlabelled).
    """
    factory = GAN_MODELS.get(cfg.name, key="model.name")
    if not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE:
        raise ConfigError(
            f"model.image_size: {image_size} px is not supported; set model.image_size between "
            f"{MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE} (the images are resized to it)"
        )
    return factory(cfg, in_channels=in_channels, image_size=image_size, n_classes=n_classes)
