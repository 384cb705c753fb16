"""Shared fixtures: tiny data written to tmp_path, and the optional real datasets."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """``../shared/datasets`` beside the checkout; tests using it skip cleanly when absent."""
    if not SHARED.is_dir():
        pytest.skip(f"real datasets not found at {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def phantom_dataset(tmp_path_factory) -> Path:
    """A small prepared phantom dataset (48 images, 32x32, with masks), built once per session."""
    from synthmed.data.dataset import write_prepared
    from synthmed.data.phantom import CLASS_NAMES, make_phantom
    from synthmed.data.splits import group_stratified_split

    ph = make_phantom(n=48, size=32, seed=0)
    splits = group_stratified_split(ph["labels"], ph["groups"], seed=0)
    out = tmp_path_factory.mktemp("phantom") / "prepared"
    return write_prepared(out, images=ph["images"][:, None], labels=ph["labels"], splits=splits,
                          class_names=CLASS_NAMES, ids=ph["ids"], groups=ph["groups"],
                          masks=ph["masks"], name="phantom-test")
