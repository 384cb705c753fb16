"""Fixtures for the metrics tests: an isolated cache, fake synthetic sets, a tiny extractor."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Never touch ~/.cache/synthmed from tests."""
    monkeypatch.setenv("SYNTHMED_CACHE", str(tmp_path / "cache"))


def write_fake_synthetic(out: Path, images: np.ndarray, labels: np.ndarray,
                         class_names: list[str]) -> Path:
    """A synthetic set in the PNG layout `synthmed generate` writes (see sampling/io.py)."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed, (img, lab) in enumerate(zip(images, labels, strict=True)):
        c = class_names[lab] if lab >= 0 else ""
        rel = f"images/{c}/{c}_seed{seed}.png" if c else f"images/seed{seed}.png"
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[0]).save(out / rel)
        rows.append((rel, c, seed))
    with open(out / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["file", "class", "seed"])
        w.writerows(rows)
    meta = {"format": "png", "class_names": list(class_names), "n": len(images)}
    (out / "generation.json").write_text(json.dumps(meta), encoding="utf-8")
    return out


@pytest.fixture
def fake_set_writer():
    """:func:`write_fake_synthetic`, for tests that need their own synthetic set."""
    return write_fake_synthetic


@pytest.fixture(scope="session")
def fake_synthetic(phantom_dataset, tmp_path_factory) -> Path:
    """12 'synthetic' images: 6 noisy copies of training images and 6 new phantom images."""
    from synthmed.data.dataset import PreparedDataset
    from synthmed.data.phantom import CLASS_NAMES, make_phantom

    data = PreparedDataset(phantom_dataset)
    train = data.indices("train")
    tr = np.concatenate([train[data.labels[train] == k][:3] for k in (0, 1)])
    rng = np.random.default_rng(1)
    copies = np.clip(data.images[tr].astype(int) + rng.integers(-3, 4, (6, 1, 32, 32)), 0, 255)
    ph = make_phantom(n=24, size=32, seed=5)
    new = np.concatenate([np.flatnonzero(ph["labels"] == k)[:3] for k in (0, 1)])
    images = np.concatenate([copies.astype(np.uint8), ph["images"][new][:, None]])
    labels = np.concatenate([data.labels[tr], ph["labels"][new]])
    out = tmp_path_factory.mktemp("synthetic") / "set"
    return write_fake_synthetic(out, images, labels, list(CLASS_NAMES))


@pytest.fixture(scope="session")
def tiny_extractor(phantom_dataset, tmp_path_factory) -> Path:
    """A domain extractor trained for 2 epochs on the phantom's train split (about a second)."""
    from synthmed.metrics.domain import train_domain_extractor

    cache = tmp_path_factory.mktemp("extractor-cache")
    return train_domain_extractor(phantom_dataset, "train", epochs=2, seed=0, cache_dir=cache,
                                  out=cache / "domain.pt")
