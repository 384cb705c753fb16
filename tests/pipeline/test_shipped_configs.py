"""Every shipped configs/*.yaml loads, and the thyroid study's recipes run through `synthmed run`.

A config that no longer validates (a renamed key, a wrong type) would only be found by the first
user who runs it; these tests find it first.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthmed.config import load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SHIPPED = sorted(CONFIGS.glob("*.yaml"))
THYROID = sorted(CONFIGS.glob("thyroid_*.yaml"))


def test_the_configs_folder_is_found():
    assert len(SHIPPED) >= 10 and len(THYROID) >= 3, CONFIGS


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_config_loads_with_a_data_path(path, tmp_path):
    cfg = load_config(path, [f"data.path={tmp_path}"])
    assert cfg.name and cfg.data.path == str(tmp_path)


def test_thyroid_recipes_keep_what_the_study_compares():
    """The study's recipe is plain DCGAN; synthmed's adds DiffAugment, ADA and EMA; both 64 px
    and 550 generated images (docs/results.md, section 1)."""
    dcgan = load_config(CONFIGS / "thyroid_ddti_dcgan.yaml")
    cgan = load_config(CONFIGS / "thyroid_ddti_cgan.yaml")
    assert dcgan.model.name == "dcgan" and dcgan.model.diffaugment == "none"
    assert dcgan.model.ada is False and dcgan.model.ema is False
    assert cgan.model.name == "cgan" and cgan.model.ada and cgan.model.ema
    assert cgan.model.diffaugment == "translation,cutout,color"
    for path in THYROID:
        cfg = load_config(path)
        assert cfg.model.image_size == 64 and cfg.pipeline.n_generate == 550, path.name


@pytest.mark.slow
@pytest.mark.parametrize("path", THYROID, ids=lambda p: p.name)
def test_synthmed_run_accepts_the_thyroid_configs(path, phantom_dataset, tmp_path):
    """`synthmed run CONFIG --set data.path=...` through the CLI: train (2 steps, small batch
    and width) and generate 16 images (import reuses data.path); exit code 0. Each config's own
    550 images are checked above (n_generate), not generated here, to keep the test short."""
    from synthmed.cli import main

    run = tmp_path / "run"
    small = "model.channels=[8,16]" if load_config(path).model.name == "vae" else \
        "model.base_width=8"  # each model's own width key
    with pytest.raises(SystemExit) as e:
        main(["run", str(path), "--set", f"data.path={phantom_dataset}", "--set",
              "pipeline.stages=[import,train,generate]", "--set", "train.steps=2", "--set",
              "train.batch_size=8", "--set", "train.num_threads=1", "--set", "train.device=cpu",
              "--set", "pipeline.n_generate=16", "--set", small,
              "--run-dir", str(run), "--no-progress"])
    assert e.value.code in (0, None)
    marker = json.loads((run / "stages" / "generate.json").read_text())
    assert marker["outputs"]["n"] == 16 and (run / "synthetic").is_dir()


@pytest.mark.parametrize("name", ["breastmnist_cgan.yaml", "pneumoniamnist_cgan.yaml",
                                  "quickstart.yaml"])
def test_medmnist_configs_train_at_the_datas_size(name):
    """Issue 19 item 5: breastmnist_cgan trained at 32 px on 28 px data and resized back, so the
    report's synthetic thumbnails were larger than the real ones."""
    assert load_config(CONFIGS / name).model.image_size is None
