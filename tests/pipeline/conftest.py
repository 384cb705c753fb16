"""One tiny ``synthmed run`` (phantom at 32 px, 20 steps, 2 utility seeds of 1 epoch), built once
per session and copied by tests that change it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

TINY = {
    "name": "tiny",
    "data": {"path": "phantom", "phantom_n": 120, "phantom_size": 32},
    "model": {"name": "cgan", "base_width": 8, "latent_dim": 16},
    "train": {"batch_size": 16, "steps": 20, "log_every": 5, "sample_every": 10,
              "checkpoint_every": 10, "num_threads": 1},
    "utility": {"seeds": 2, "epochs": 1, "arms": ["real+classic", "real+classic+synthetic"],
                "num_threads": 1},
    "pipeline": {"eval_bootstrap": 10, "eval_extractor_epochs": 1},
}


@pytest.fixture
def tiny_config() -> dict:
    import copy

    return copy.deepcopy(TINY)


@pytest.fixture(scope="session")
def pipeline_cache(tmp_path_factory) -> Path:
    """A private SYNTHMED_CACHE (phantom, domain extractors) for the whole session."""
    import os

    path = tmp_path_factory.mktemp("cache")
    old = os.environ.get("SYNTHMED_CACHE")
    os.environ["SYNTHMED_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("SYNTHMED_CACHE", None)
    else:
        os.environ["SYNTHMED_CACHE"] = old


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, pipeline_cache) -> Path:
    from synthmed.pipeline import run

    return run(TINY, run_dir=tmp_path_factory.mktemp("pipeline") / "tiny", progress=False)


@pytest.fixture
def tiny_copy(tiny_run, tmp_path) -> Path:
    """A private copy of the tiny run, for tests that re-run or break stages."""
    return Path(shutil.copytree(tiny_run, tmp_path / "tiny"))
