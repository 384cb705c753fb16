"""Training every generator (GANs, diffusion, VAE, pix2pix) with one engine: the loop, losses,
small-data augmentation, checkpoints, exact resume, multi-process."""

from __future__ import annotations


def train(*args, **kwargs):
    """Train the generator a config describes and return its run directory
    (:mod:`synthmed.training.trainer`)."""
    from synthmed.training.trainer import train as _train

    return _train(*args, **kwargs)


__all__ = ["train"]
