"""``synthmed run`` with a mask-to-image generator (pix2pix) on the phantom's nodule masks: the
generate stage writes image+mask pairs from the training split's edited masks, evaluate and the
segmentation utility read them, and the report shows mask | real | synthetic and the Dice table.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from synthmed.config import DEFAULT_EDITS, STAGES, load_config
from synthmed.errors import ConfigError
from synthmed.pipeline import run
from synthmed.pipeline.markers import read_marker

PIX = {
    "name": "tiny-pix2pix",
    "data": {"path": "phantom", "phantom_n": 60, "phantom_size": 64},
    "model": {"name": "pix2pix", "base_width": 4},
    "train": {"batch_size": 8, "steps": 2, "log_every": 1, "sample_every": 2,
              "checkpoint_every": 2, "num_threads": 1},
    "utility": {"seeds": 2, "epochs": 1, "batch_size": 16, "num_threads": 1,
                "arms": ["real+classic", "real+classic+synthetic"]},
    "pipeline": {"eval_bootstrap": 10, "eval_extractor_epochs": 1},
}


@pytest.fixture(scope="module")
def pix_run(tmp_path_factory, pipeline_cache) -> Path:
    return run(PIX, run_dir=tmp_path_factory.mktemp("pipeline") / "pix", progress=False)


def _tokens(run_dir: Path) -> dict[str, str | None]:
    return {s: (read_marker(run_dir, s) or {}).get("token") for s in STAGES}


@pytest.mark.slow
def test_pix2pix_run_goes_through_every_stage_with_pairs(pix_run):
    from synthmed.data.dataset import PreparedDataset

    for stage in STAGES:
        assert read_marker(pix_run, stage) is not None, stage
    syn = pix_run / "synthetic"
    gen = json.loads((syn / "generation.json").read_text())
    ds = PreparedDataset(read_marker(pix_run, "import")["outputs"]["dataset"])
    n_train = len(ds.indices("train"))
    assert gen["paired"] and gen["n"] == n_train
    assert gen["masks_from"]["split"] == "train" and gen["edited"] > 0
    assert len(list((syn / "masks").glob("seed*.png"))) == n_train
    assert json.loads((pix_run / "evaluate" / "metrics.json").read_text())
    doc = json.loads(next((pix_run / "utility").rglob("utility.json")).read_text())
    assert doc["task"] == "segmentation" and doc["model"] == "unet"
    assert all(0 <= r["test"]["dice"] <= 1 for r in doc["runs"])
    html = (pix_run / "report.html").read_text()
    assert "mask | real image" in html and "mask given | synthetic image" in html
    assert "Segmentation per arm" in html and "mask-to-image GAN (pix2pix)" in html


@pytest.mark.slow
def test_changing_the_edits_reruns_generate_and_what_reads_it(pix_run, tmp_path):
    rd = Path(shutil.copytree(pix_run, tmp_path / "pix"))
    before = _tokens(rd)
    run(PIX, run_dir=rd, progress=False, overrides=["pipeline.edits=[]"])
    after = _tokens(rd)
    assert {s for s in STAGES if after[s] != before[s]} == {"generate", "evaluate", "utility",
                                                            "report"}
    gen = json.loads((rd / "synthetic" / "generation.json").read_text())
    assert gen["edited"] == 0


def test_mask_models_default_to_segmentation_utility():
    cfg = load_config(None, ["model.name=pix2pix"])
    assert cfg.utility.task == "segmentation" and cfg.pipeline.edits == DEFAULT_EDITS
    assert load_config(None, ["model.name=cgan"]).utility.task == "classification"
    again = load_config(None, ["model.name=ddpm-mask", "utility.task=classification"])
    assert again.utility.task == "classification"  # said on purpose: kept (and refused by run)


def test_mask_models_are_the_generators_that_need_masks():
    from synthmed import generators

    assert {n for n in generators.names() if generators.needs_masks(n)} == {"pix2pix",
                                                                             "ddpm-mask"}


def test_classification_utility_with_a_mask_model_is_refused_before_training(tmp_path):
    cfg = copy.deepcopy(PIX)
    cfg["utility"]["task"] = "classification"
    with pytest.raises(ConfigError, match=r"^utility.task: classification") as e:
        run(cfg, run_dir=tmp_path / "r", progress=False)
    assert "\n" not in str(e.value) and not (tmp_path / "r" / "train").exists()
    from synthmed.config import config_from_dict
    from synthmed.pipeline.runner import check_run_config

    cfg["pipeline"]["stages"] = ["import", "train", "generate"]  # no utility stage: no refusal
    check_run_config(config_from_dict(cfg))


def test_force_replaces_a_pair_set(tmp_path):
    """A pair set has masks/ beside images/: --force (and the generate stage, which always
    replaces its own set) may replace it like any synthetic set."""
    from synthmed.paths import check_output

    out = tmp_path / "pairs"
    (out / "images").mkdir(parents=True)
    (out / "masks").mkdir()
    (out / "generation.json").write_text(json.dumps({"synthmed_version": "0", "paired": True}))
    assert check_output(out, force=True, kind="synthetic") == out
