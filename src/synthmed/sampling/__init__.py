"""Sampling: generate synthetic sets from trained runs, and read them back."""

from synthmed.sampling.io import FORMATS, SyntheticSet, load_synthetic

__all__ = ["FORMATS", "SyntheticSet", "load_synthetic"]
