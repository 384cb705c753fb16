"""The GAN family's networks: DCGAN, AC-GAN (and one DCGAN per class), projection cGAN (the
diffusion, VAE and pix2pix networks are in their own modules here).

``build_gan(cfg.model, in_channels=..., image_size=..., n_classes=...)`` returns a
:class:`GANPair`; ``GAN_MODELS`` holds the names YAML can use.
"""

# Importing the model modules registers them in GAN_MODELS.
from synthmed.models import acgan, cgan, dcgan  # noqa: F401
from synthmed.models.base import GAN_MODELS, SUPPORTED_SIZES, GANPair, build_gan

__all__ = ["GAN_MODELS", "SUPPORTED_SIZES", "GANPair", "build_gan"]
