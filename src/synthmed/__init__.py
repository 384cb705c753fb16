"""synthmed: synthetic medical images you can measure.

Train generative models on small, imbalanced medical image sets, generate synthetic images for
augmentation and anonymized sharing, and evaluate fidelity, diversity, privacy and downstream
utility.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "generate", "run", "SynthmedError"]

from synthmed.errors import SynthmedError  # noqa: E402


def generate(*args: Any, **kwargs: Any):
    """Sample images from a trained run; see :func:`synthmed.sampling.generate`."""
    from synthmed.sampling import generate as _generate

    return _generate(*args, **kwargs)


def run(*args: Any, **kwargs: Any):
    """Run a whole experiment (import -> ... -> report); see :func:`synthmed.pipeline.run`."""
    from synthmed.pipeline import run as _run

    return _run(*args, **kwargs)
