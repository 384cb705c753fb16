"""A 2-D map of real and synthetic images in the domain extractor's feature space, for the report.

t-SNE (van der Maaten & Hinton 2008, via scikit-learn) on the same features as FID/PRDC: synthetic
points that sit apart from every real cluster, or pile up on a few real points (mode collapse),
are visible at a glance where a single number hides them. It is a picture, not a metric.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from synthmed.fileio import atomic_write_json

MAX_PER_SET = 300


def _subsample(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(n, size=k, replace=False)) if n > k else np.arange(n)


def write_embedding(out: str | os.PathLike, dataset: str, synthetic: str | os.PathLike,
                    train_ref: str, *, epochs: int = 15, seed: int = 0) -> Path:
    """``out`` (JSON): x, y, set (real/synthetic) and class of each plotted image."""
    from sklearn.manifold import TSNE

    from synthmed.metrics.domain import load_domain_extractor, train_domain_extractor
    from synthmed.metrics.inputs import load_images, load_split, parse_ref

    path, split = parse_ref(train_ref, "train")
    ex = load_domain_extractor(train_domain_extractor(path, split, epochs=epochs, seed=seed))
    real, synth = load_split(dataset, "test"), load_images(synthetic, "all")
    rng = np.random.default_rng(seed)
    ri = _subsample(len(real), MAX_PER_SET, rng)
    si = _subsample(len(synth), MAX_PER_SET, rng)
    feats = np.concatenate([ex.extract(real.images[ri]).features,
                            ex.extract(synth.images[si]).features]).astype(np.float64)
    n = len(feats)
    xy = TSNE(n_components=2, perplexity=float(min(30.0, max(2.0, (n - 1) / 3))), init="pca",
              random_state=seed).fit_transform(feats) if n >= 4 else np.zeros((n, 2))

    def names(s, idx) -> list[str]:
        return [s.class_names[k] if k >= 0 and s.class_names else "" for k in s.labels[idx]]

    doc = {"method": "t-SNE (scikit-learn) of domain-extractor features",
           "extractor": ex.name, "n_real": int(len(ri)), "n_synthetic": int(len(si)),
           "x": xy[:, 0].round(3).tolist(), "y": xy[:, 1].round(3).tolist(),
           "set": ["real"] * len(ri) + ["synthetic"] * len(si),
           "class": names(real, ri) + names(synth, si)}
    atomic_write_json(out, doc)
    return Path(out)
