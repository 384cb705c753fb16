""":class:`ImageSet`: images, labels and where they came from (a leaf module, shared by
:mod:`synthmed.metrics.inputs` and :mod:`synthmed.metrics.folders` without an import circle)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synthmed.resize import RESIZE_METHOD


@dataclass
class ImageSet:
    """Images (N, C, H, W) uint8/uint16, labels (N,) int64 (-1 unlabelled) and their origin."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    kind: str  # "dataset" or "synthetic"
    path: Path
    split: str | None = None
    content_hash: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    ids: list[str] | None = None  # manifest ids (datasets) or <class>_seed<seed> (synthetic sets)
    resized_from: list[int] | None = None  # (H, W) before :func:`match_size`, when it resized
    groups: np.ndarray | None = None  # patient of each image (datasets), for patient bootstraps

    def __len__(self) -> int:
        return len(self.images)

    @property
    def size(self) -> tuple[int, int]:
        return int(self.images.shape[2]), int(self.images.shape[3])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def labelled(self) -> bool:
        return bool(self.class_names) and bool((self.labels >= 0).any())

    def subset(self, mask: np.ndarray) -> ImageSet:
        ids = [i for i, m in zip(self.ids, mask, strict=True) if m] if self.ids else None
        return ImageSet(self.images[mask], self.labels[mask], self.class_names, self.kind,
                        self.path, self.split, None, self.meta, ids, self.resized_from,
                        None if self.groups is None else self.groups[mask])

    def describe(self) -> dict[str, Any]:
        """What metrics.json records about this set."""
        out = {"path": str(self.path), "kind": self.kind, "split": self.split, "n": len(self),
               "size": list(self.size), "channels": self.channels,
               "dtype": str(self.images.dtype), "class_names": self.class_names,
               "class_counts": {c: int((self.labels == k).sum())
                                for k, c in enumerate(self.class_names)},
               "content_hash": self.content_hash}
        if self.resized_from:
            out.update(resized_from=self.resized_from, resize=RESIZE_METHOD)
        if self.kind == "synthetic":
            keys = ("checkpoint", "checkpoint_sha256", "run_dir", "step", "model", "seeds",
                    "excluded_near_copies", "synthmed_version")
            out["generation"] = {k: self.meta[k] for k in keys if k in self.meta}
        if "notice" in self.meta:
            out["notice"] = self.meta["notice"]
        return out
