"""Fixtures for the utility study: fake synthetic sets in the ``synthmed generate`` layout."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_synthetic(out: Path, images: np.ndarray, labels: np.ndarray, class_names: list[str],
                    **meta) -> Path:
    """images/<class>/<class>_seed<seed>.png + manifest.csv + generation.json (format png)."""
    rows = []
    for seed, (img, k) in enumerate(zip(images, labels, strict=True)):
        cls = class_names[k] if k >= 0 else ""
        rel = f"images/{cls}/{cls}_seed{seed}.png" if cls else f"images/seed{seed}.png"
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.asarray(img, np.uint8)).save(out / rel)
        rows.append((rel, cls, seed))
    with open(out / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file", "class", "seed"])
        w.writerows(rows)
    doc = {"format": "png", "class_names": list(class_names) if (labels >= 0).any() else [],
           **meta}
    (out / "generation.json").write_text(json.dumps(doc), encoding="utf-8")
    return out


@pytest.fixture(scope="session")
def synthetic_phantom(tmp_path_factory) -> Path:
    """40 'synthetic' images (another phantom seed: no pixel shared with the real fixture)."""
    from synthmed.data.phantom import CLASS_NAMES, make_phantom

    ph = make_phantom(n=40, size=32, seed=7)
    return write_synthetic(tmp_path_factory.mktemp("synthetic") / "set", ph["images"],
                           ph["labels"], list(CLASS_NAMES))


@pytest.fixture(scope="session")
def synthetic_pairs(tmp_path_factory) -> Path:
    """Image+mask pairs as a prepared dataset (for segmentation arms)."""
    from synthmed.data.dataset import write_prepared
    from synthmed.data.phantom import CLASS_NAMES, make_phantom

    ph = make_phantom(n=24, size=32, seed=9)
    return write_prepared(tmp_path_factory.mktemp("pairs") / "prepared",
                          images=ph["images"][:, None], labels=ph["labels"], splits=["train"] * 24,
                          class_names=CLASS_NAMES, masks=ph["masks"])


@pytest.fixture
def make_synthetic():
    """:func:`write_synthetic`, for tests that build odd sets."""
    return write_synthetic
