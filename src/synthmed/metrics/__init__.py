"""synthmed.metrics: fidelity, diversity and privacy of synthetic image sets.

``evaluate`` (the ``synthmed evaluate`` command) compares a synthetic set with held-out real images
in the feature space of one or more extractors (``domain``: trained on the user's real training
split, offline; ``inception``: the standard FID network, optional) and audits it for copies of
training images. See docs/metrics.md for what each number means.
"""

from __future__ import annotations

from synthmed.metrics.features import (
    FEATURE_EXTRACTORS,
    FeatureExtractor,
    Features,
    build_extractor,
    import_extractor,
    prepare_images,
    register_extractor,
)
from synthmed.metrics.fidelity import fid, frechet_distance, inception_score, kid, prdc
from synthmed.metrics.privacy import membership_auc, near_copy_mask

__all__ = [
    "FEATURE_EXTRACTORS", "FeatureExtractor", "Features", "build_extractor", "import_extractor",
    "prepare_images", "register_extractor", "fid", "frechet_distance", "inception_score", "kid",
    "prdc", "membership_auc", "near_copy_mask", "evaluate", "train_domain_extractor",
    "load_domain_extractor",
]


def evaluate(*args, **kwargs):
    """See :func:`synthmed.metrics.evaluate.evaluate`."""
    from synthmed.metrics.evaluate import evaluate as _evaluate

    return _evaluate(*args, **kwargs)


def train_domain_extractor(*args, **kwargs):
    """See :func:`synthmed.metrics.domain.train_domain_extractor`."""
    from synthmed.metrics.domain import train_domain_extractor as _train

    return _train(*args, **kwargs)


def load_domain_extractor(*args, **kwargs):
    """See :func:`synthmed.metrics.domain.load_domain_extractor`."""
    from synthmed.metrics.domain import load_domain_extractor as _load

    return _load(*args, **kwargs)
