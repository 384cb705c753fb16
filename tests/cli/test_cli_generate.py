"""`synthmed generate --exclude-near-copies --train DATASET_DIR[:split]` from the command line."""

from __future__ import annotations

import json
import shutil

import pytest

from synthmed.data.dataset import PreparedDataset


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, phantom_dataset):
    from synthmed.config import load_config
    from synthmed.training import train

    cfg = load_config(None, [f"data.path={phantom_dataset}", "model.name=dcgan", "name=gen",
                             "model.base_width=8", "model.latent_dim=8", "train.batch_size=8",
                             "train.steps=2", "train.log_every=1", "train.num_threads=1"])
    return train(cfg, runs_dir=tmp_path_factory.mktemp("runs"), progress=False)


def test_train_option_sets_the_reference_of_the_near_copy_filter(cli, tiny_run, phantom_dataset,
                                                                 tmp_path):
    other = shutil.copytree(phantom_dataset, tmp_path / "other")  # not the run's own dataset
    code, out, err = cli(["generate", tiny_run, "--n", 6, "--out", tmp_path / "syn",
                          "--exclude-near-copies", "--train", f"{other}:train+val"])
    assert code == 0, err
    ex = json.loads((tmp_path / "syn" / "generation.json").read_text())["excluded_near_copies"]
    ds = PreparedDataset(other)
    assert ex["reference"] == str(other) and ex["train_split"] == "train+val"
    assert ex["n_train"] == len(ds.indices("train")) + len(ds.indices("val"))
    assert ex["heldout_split"] == "test"  # val is training data here, so not the held-out set


@pytest.mark.parametrize("make,needle", [
    (lambda p: p.mkdir() or p, "not a prepared dataset"),
    (lambda p: p, "path does not exist"),
])
def test_train_that_is_not_a_prepared_dataset_is_one_line_exit_2(tiny_run, tmp_path, cli,
                                                                 make, needle):
    bad = make(tmp_path / "plain")
    code, _, err = cli(["generate", tiny_run, "--n", 2, "--out", tmp_path / "syn",
                        "--exclude-near-copies", "--train", f"{bad}:train"])
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: --train ")
    assert needle in lines[0] and "Traceback" not in err
    assert not (tmp_path / "syn").exists()


def test_train_without_exclude_near_copies_is_refused(tiny_run, phantom_dataset, tmp_path,
                                                      cli):
    code, _, err = cli(["generate", tiny_run, "--n", 2, "--out", tmp_path / "syn", "--train",
                        phantom_dataset])
    assert code == 2 and "--exclude-near-copies" in err
