"""GAN training: the loop, losses, small-data augmentation, checkpoints, multi-process."""

from __future__ import annotations


def train(*args, **kwargs):
    """Train a GAN from a config and return its run directory (:mod:`synthmed.training.trainer`)."""
    from synthmed.training.trainer import train as _train

    return _train(*args, **kwargs)


__all__ = ["train"]
