"""The identifiability filter (ADS-GAN's test against the nearest other patient; issue 21)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synthmed.errors import SynthmedError
from synthmed.metrics.identifiability import identifiable, patient_radii


def _patients(n_patients: int = 4, per: int = 5, dim: int = 64, seed: int = 0):
    """Rows in [0, 1]: each patient a cluster (slices near each other), patients far apart."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0.2, 0.8, (n_patients, dim))
    rows = np.concatenate([c + rng.normal(0, 0.02, (per, dim)) for c in centres])
    groups = np.repeat([f"p{i}" for i in range(n_patients)], per)
    return torch.from_numpy(rows), groups, centres, rng


def test_patient_radii_skip_the_patients_own_rows():
    train = torch.tensor([[0.0], [0.1], [1.0], [1.05]])
    r = patient_radii(train, np.array(["a", "a", "b", "b"]))
    # rows of one patient are 0.1 apart; the radius is the distance to the other patient
    assert np.allclose(r, [1.0, 0.9, 0.9, 0.95])
    # without patients every row is its own: the nearest other row
    assert np.allclose(patient_radii(train, None), [0.1, 0.1, 0.05, 0.05])
    assert np.isinf(patient_radii(train, np.array(["a"] * 4))).all()


def test_a_planted_copy_is_dropped_and_a_new_patient_kept():
    train, groups, _, rng = _patients()
    # a new patient away from the training patients (further than they are from each other)
    new_patient = torch.from_numpy(rng.normal(0.0, 0.02, (3, train.shape[1])))
    near_copy = train[7:8] + 0.005  # a training slice, slightly perturbed
    synth = torch.cat([train[2:3], near_copy, new_patient])
    res = identifiable(synth, train, calibration="patients", groups=groups)
    assert res.too_close.tolist() == [True, True, False, False, False]
    assert res.nearest[:2].tolist() == [2, 7] and res.distance[0] == 0
    assert res.info["calibration"] == "patients" and res.info["n_patients"] == 4


def test_the_nearest_training_items_radius_decides():
    # x is nearest to b; b's radius (to c) is 0.05, a's is 0.5
    train = torch.tensor([[0.0], [0.5], [0.55]])
    groups = np.array(["a", "b", "c"])
    x = torch.tensor([[0.3]])  # nearest b at 0.2 >= r_b 0.05: kept (inside a's radius is not it)
    assert identifiable(x, train, groups=groups).too_close.tolist() == [False]
    x = torch.tensor([[0.52]])  # nearest b at 0.02 < r_b 0.05: dropped
    assert identifiable(x, train, groups=groups).too_close.tolist() == [True]
    x = torch.tensor([[-0.2]])  # nearest a at 0.2 < r_a 0.5: dropped
    assert identifiable(x, train, groups=groups).too_close.tolist() == [True]


def test_val_calibration_uses_the_quantile_of_val_distances():
    train, groups, centres, rng = _patients()
    val = torch.from_numpy(centres[:2] + rng.normal(0, 0.05, (2, train.shape[1])))
    held = torch.cdist(val, train).min(1).values.numpy() / np.sqrt(train.shape[1])
    t = float(np.quantile(held, 0.5))
    synth = torch.cat([train[:1], torch.from_numpy(rng.uniform(0.2, 0.8, (2, train.shape[1])))])
    res = identifiable(synth, train, calibration="val", val=val, quantile=0.5)
    assert res.info["threshold"] == pytest.approx(t)
    assert res.too_close.tolist() == [True, False, False]


def test_errors_name_the_fix():
    train, groups, *_ = _patients()
    with pytest.raises(SynthmedError, match="calibration 'test'"):
        identifiable(train[:1], train, calibration="test")
    with pytest.raises(SynthmedError, match="no val items"):
        identifiable(train[:1], train, calibration="val")
    with pytest.raises(SynthmedError, match="quantile 1.5"):
        identifiable(train[:1], train, calibration="val", val=train, quantile=1.5)
