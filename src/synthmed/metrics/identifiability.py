"""Identifiability filter: drop generated items that sit closer to a training patient than new
patients do.

The memorization audit (:mod:`synthmed.metrics.privacy`) *measures* whether a synthetic set
gives training patients away; this module *acts* at generation time. It follows the
identifiability idea of ADS-GAN (Yoon, Drumright & van der Schaar, "Anonymization through data
synthesis using generative adversarial networks (ADS-GAN)", IEEE JBHI 2020): a synthetic item
identifies a training item when it is closer to it than that training item is to anything
*else*. Here "anything else" is the nearest item of **another patient**: slices of one patient
are near each other by nature, so the radius of a training item is its distance to the nearest
training item of a different patient. Two calibrations, neither of which reads the test split
(the audit's held-out side: a filter calibrated on it would be graded on its own calibration
set):

- ``patients`` (default): per training item ``j`` the radius ``r_j`` = distance to the nearest
  training item of another patient; a synthetic item ``x`` is dropped when ``d(x, j) < r_j``
  for its nearest training item ``j`` (ADS-GAN's test). Training items only. A generator that
  draws genuinely new patients from the same population still loses a large share of its items
  (ADS-GAN: about half, since a new item's nearest training distance and a training item's
  nearest other-patient distance are alike), so this calibration costs samples, not privacy
  (``write_pairs_from_maps`` draws more seeds);
- ``val``: one threshold, the ``quantile`` (default 0.05) of the **val** patients' items'
  nearest-training distances (how close genuinely new patients come); a synthetic item closer
  than that to its nearest training item is dropped.

Distances are pixel RMS of [0, 1] intensities at the training size (as the audit's pixel space).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from synthmed.errors import SynthmedError
from synthmed.metrics.privacy import nearest

CALIBRATIONS = ("patients", "val")
VAL_QUANTILE = 0.05


@dataclass
class Identifiability:
    """Which synthetic rows identify a training item, and why (one entry per synthetic row)."""

    too_close: np.ndarray  # (N,) bool: drop
    nearest: np.ndarray  # (N,) index of the nearest training row
    distance: np.ndarray  # (N,) RMS distance to it
    calibration: str
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Calibration:
    """How close is too close, fixed once per training set: a radius per training row
    (``patients``) or one threshold (``val``)."""

    name: str
    radii: np.ndarray | None = None
    threshold: float | None = None
    info: dict[str, Any] = field(default_factory=dict)


def patient_radii(train: torch.Tensor, groups: np.ndarray | None, *, chunk: int = 1024
                  ) -> np.ndarray:
    """(N,) RMS distance of each training row to the nearest row of *another* group (patient);
    without groups every row is its own patient (the nearest other row). inf when one patient
    holds every row (then nothing can be told apart and the filter drops nothing by radius)."""
    g = np.asarray(groups) if groups is not None else np.arange(len(train))
    codes = torch.from_numpy(np.unique(g, return_inverse=True)[1])
    out = []
    for s in range(0, len(train), chunk):
        d = torch.cdist(train[s:s + chunk].double(), train.double()) / np.sqrt(train.shape[1])
        d[codes[s:s + chunk, None] == codes[None, :]] = float("inf")
        out.append(d.min(dim=1).values)
    return torch.cat(out).numpy() if out else np.zeros(0)


def calibrate(train: torch.Tensor, *, calibration: str = "patients",
              groups: np.ndarray | None = None, val: torch.Tensor | None = None,
              quantile: float = VAL_QUANTILE, chunk: int = 1024) -> Calibration:
    """The filter's limits for ``train`` (M, D) in [0, 1] (module docstring); computed once, so
    a generator that draws more items to replace dropped ones does not recompute them."""
    if calibration not in CALIBRATIONS:
        raise SynthmedError(f"identifiability calibration {calibration!r}: choose one of "
                            f"{', '.join(CALIBRATIONS)}")
    if not 0 < quantile < 1:
        raise SynthmedError(f"identifiability quantile {quantile}: give a number between 0 and 1 "
                            "(0.05: closer than 95 % of new patients come)")
    if len(train) == 0:
        raise SynthmedError("identifiability filter: no training items to compare with")
    info: dict[str, Any] = {"calibration": calibration, "n_train": len(train)}
    if calibration == "patients":
        radii = patient_radii(train, groups, chunk=chunk)
        finite = radii[np.isfinite(radii)]
        info.update({"n_patients": int(len(np.unique(groups))) if groups is not None
                     else len(train),
                     "radius_median": float(np.median(finite)) if len(finite) else None})
        return Calibration(calibration, radii=radii, info=info)
    if val is None or len(val) == 0:
        raise SynthmedError("identifiability filter (calibration val): the dataset has no "
                            "val items; use calibration patients")
    threshold = float(np.quantile(nearest(val, train, rms=True, chunk=chunk)[1], quantile))
    info.update({"n_val": len(val), "quantile": quantile, "threshold": threshold})
    return Calibration(calibration, threshold=threshold, info=info)


def flag(synth: torch.Tensor, train: torch.Tensor, cal: Calibration, *, chunk: int = 1024
         ) -> Identifiability:
    """Rows of ``synth`` (N, D) closer to their nearest ``train`` row than ``cal`` allows."""
    near, dist = nearest(synth, train, rms=True, chunk=chunk)
    limit = cal.radii[near] if cal.radii is not None else cal.threshold
    return Identifiability(np.asarray(dist < limit, bool), near, dist, cal.name, dict(cal.info))


def identifiable(synth: torch.Tensor, train: torch.Tensor, *, calibration: str = "patients",
                 groups: np.ndarray | None = None, val: torch.Tensor | None = None,
                 quantile: float = VAL_QUANTILE, chunk: int = 1024) -> Identifiability:
    """Rows of ``synth`` (N, D) in [0, 1] that identify a row of ``train`` (M, D) (module
    docstring). ``groups``: the training rows' patients (``patients``); ``val``: the val
    patients' rows (``val``)."""
    cal = calibrate(train, calibration=calibration, groups=groups, val=val, quantile=quantile,
                    chunk=chunk)
    return flag(synth, train, cal, chunk=chunk)
