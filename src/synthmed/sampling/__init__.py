"""Sampling: generate synthetic sets from trained runs, and read them back."""

from synthmed.sampling.io import FORMATS, SyntheticSet, load_synthetic
from synthmed.sampling.sampler import GeneratedImages, generate, load_generator
from synthmed.sampling.writer import write_synthetic

__all__ = ["FORMATS", "GeneratedImages", "SyntheticSet", "generate", "load_generator",
           "load_synthetic", "write_synthetic"]
