"""On-disk cache of real-image features and trained domain extractors.

A cached entry is keyed by everything its value depends on: (dataset content hash, split,
preprocessing, extractor weights hash) for features; (dataset content hash, split, training config)
for extractors. A changed dataset has a new content hash, so stale features are never reused.
The cache lives under ``--cache-dir``, else ``$SYNTHMED_CACHE``, else ``~/.cache/synthmed``;
entries are written atomically, so an interrupted run leaves no half-written file.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from synthmed.fileio import atomic_save

CACHE_ENV = "SYNTHMED_CACHE"
FEATURES_VERSION = 1  # bump when feature extraction changes in a way the key cannot see


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir``, else ``$SYNTHMED_CACHE``, else ``~/.cache/synthmed``."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "synthmed"


def cache_key(parts: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``parts``: equal parts, equal key."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def feature_key(content_hash: str, split: str, preprocessing: dict[str, Any],
                weights_sha256: str) -> str:
    return cache_key({"content_hash": content_hash, "split": split,
                      "preprocessing": preprocessing, "weights_sha256": weights_sha256,
                      "version": FEATURES_VERSION})


def _feature_path(key: str, cache_dir: str | os.PathLike | None) -> Path:
    return cache_root(cache_dir) / "features" / f"{key[:32]}.npz"


def load_features(key: str, cache_dir: str | os.PathLike | None = None
                  ) -> tuple[np.ndarray, np.ndarray | None] | None:
    """(features, probs or None) stored under ``key``, or None (missing, corrupt, other key)."""
    path = _feature_path(key, cache_dir)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key:
                return None
            probs = z["probs"] if "probs" in z.files else None
            return z["features"], probs
    except (OSError, ValueError, KeyError):
        return None


def save_features(key: str, features: np.ndarray, probs: np.ndarray | None = None,
                  cache_dir: str | os.PathLike | None = None) -> Path:
    """Store features (and posteriors) under ``key`` atomically; returns the file."""
    path = _feature_path(key, cache_dir)
    arrays = {"key": np.array(key), "features": features}
    if probs is not None:
        arrays["probs"] = probs

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    atomic_save(path, write)
    return path


def extractor_path(key: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the domain extractor trained under ``key`` is cached."""
    return cache_root(cache_dir) / "extractors" / f"domain-{key[:32]}.pt"
