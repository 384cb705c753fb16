"""The configs the pipeline ships: each loads, and real-data ones take their data from --set."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthmed.config import load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
REAL = {"thyroid_ddti_dcgan": ("dcgan", "classification"),
        "breastmnist_cgan": ("cgan", "classification"),
        "breastmnist_ddpm": ("ddpm", "classification"),
        "pneumoniamnist_cgan": ("cgan", "classification"),
        "lgg_pix2pix": ("pix2pix", "segmentation")}


def test_quickstart_is_the_phantom():
    cfg = load_config(CONFIGS / "quickstart.yaml")
    assert cfg.data.path == "phantom" and cfg.pipeline.class_counts == "match-train"


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_data_configs_name_no_path_and_fit_their_study(name):
    """No hidden default dataset: the placeholder says to pass data.path or pipeline.source, and
    the utility task follows the model (pairs from pix2pix feed a segmentation study)."""
    cfg = load_config(CONFIGS / f"{name}.yaml", ["data.path=data/x"])
    assert (cfg.model.name, cfg.utility.task) == REAL[name]
    placeholder = load_config(CONFIGS / f"{name}.yaml").data.path
    assert "data.path" in placeholder and "pipeline.source" in placeholder
