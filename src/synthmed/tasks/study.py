"""The resolved utility study and its jobs: plain data shared by :mod:`synthmed.tasks.utility`
(which builds and runs them) and :mod:`synthmed.tasks.filtering` (which filters their synthetic
sources), kept in this leaf module so neither imports the other."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from synthmed.config import UtilityConfig
from synthmed.tasks.metrics import (
    CLASSIFICATION_METRICS,
    ORDINAL_METRICS,
    SEGMENTATION_METRICS,
)
from synthmed.tasks.train import Images


@dataclass
class Study:
    """Everything one utility study needs, resolved and checked once."""

    cfg: UtilityConfig
    real: Images
    rows: dict[str, np.ndarray]
    class_names: list[str]
    positive: int
    select: str
    seeds: list[int]
    device: torch.device
    dataset: dict[str, Any]
    sources: dict[str, Images] = field(default_factory=dict)
    source_info: list[dict[str, Any]] = field(default_factory=list)

    @property
    def task(self) -> str:
        return self.cfg.task

    @property
    def model(self) -> str:
        return self.cfg.model or ("unet" if self.task == "segmentation" else "small-resnet")

    @property
    def metrics(self) -> tuple[str, ...]:
        if self.task == "segmentation":
            return SEGMENTATION_METRICS
        return CLASSIFICATION_METRICS + (ORDINAL_METRICS if self.cfg.ordinal else ())


@dataclass
class Job:
    kind: str
    label: str
    ratio: float
    source: str | None = None
