"""pix2pix through the engine on the phantom's nodule masks: smoke train, exact resume, grids,
paired generation (reproducible, edited, counted), and the round trip through data import."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from synthmed import generate
from synthmed.data.dataset import PreparedDataset
from synthmed.errors import SynthmedError
from synthmed.sampling.io import load_synthetic
from synthmed.sampling.pairs import write_pairs
from synthmed.training import train
from synthmed.training.checkpoint import load_checkpoint

EDITS = ["translate=0.15", "rotate=30", "scale=0.8:1.2", "flip=h", "elastic=2"]


@pytest.fixture(scope="module")
def p2p_run(tmp_path_factory, phantom_dataset):
    from synthmed.config import load_config

    cfg = load_config(None, [f"data.path={phantom_dataset}", "model.name=pix2pix", "name=p",
                             "model.base_width=4", "model.image_size=64", "train.batch_size=8",
                             "train.steps=4", "train.log_every=2", "train.sample_every=2",
                             "train.checkpoint_every=2", "train.num_threads=1"])
    return train(cfg, runs_dir=tmp_path_factory.mktemp("p2p"), progress=False)


def test_smoke_train_on_phantom_masks_writes_losses_grids_and_ema(p2p_run):
    state = load_checkpoint(p2p_run / "checkpoints" / "latest.pt")
    assert {"generator", "discriminator", "opt_g", "opt_d", "generator_ema"} <= set(state)
    assert state["meta"]["mask_conditional"] and state["meta"]["ema"] is True
    recs = [json.loads(x) for x in (p2p_run / "metrics.jsonl").read_text().splitlines()]
    assert {"loss_d", "loss_g", "loss_l1"} <= set(recs[-1]) and recs[-1]["loss_l1"] > 0
    with Image.open(p2p_run / "samples" / "step-00000004.png") as im:
        w, h = im.size
    assert w == 6 * 66 + 2 and h == 8 * 66 + 2  # 16 mask | real | synthetic triplets


def test_resume_is_bit_exact(tmp_path, tiny_config, p2p_run):
    straight = train(tiny_config("pix2pix", "train.steps=4", "train.checkpoint_every=2"),
                     runs_dir=tmp_path / "a", progress=False)
    half = train(tiny_config("pix2pix", "train.steps=2", "train.checkpoint_every=2"),
                 runs_dir=tmp_path / "b", progress=False)
    resumed = train(None, overrides=["train.steps=4"], resume=half, progress=False)
    a = load_checkpoint(straight / "checkpoints" / "latest.pt")
    b = load_checkpoint(resumed / "checkpoints" / "latest.pt")
    for part in ("generator", "discriminator", "generator_ema"):
        for k, v in a[part].items():
            assert torch.equal(v, b[part][k]), f"{part}.{k} differs after resume"


def test_pairs_are_reproducible_edited_and_counted(p2p_run, phantom_dataset, tmp_path):
    out = write_pairs(p2p_run, tmp_path / "pairs", masks_from=str(phantom_dataset), n=6,
                      edits=EDITS)
    s = load_synthetic(out)
    assert s.images.shape == (6, 1, 64, 64) and s.masks.shape == (6, 64, 64)
    assert set(np.unique(s.masks)) <= {0, 1}
    with open(out / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    ds = PreparedDataset(phantom_dataset)
    train_ids = {ds.manifest[i]["id"] for i in ds.indices("train")}
    assert all(r["source_id"] in train_ids for r in rows)
    params = [json.loads(r["edit"]) for r in rows]
    assert all({"dx", "dy", "rotate_deg", "scale"} <= set(p) for p in params if p)
    doc = json.loads((out / "generation.json").read_text())
    assert doc["paired"] and doc["edit"]["translate"] == [-0.15, 0.15]
    assert doc["rejected_edits"] == sum(int(r["rejected_edits"]) for r in rows)
    # one pair alone (seed 4) is the same as in the batch: (checkpoint, mask, edit, seed)
    one = load_synthetic(write_pairs(p2p_run, tmp_path / "one", masks_from=str(phantom_dataset),
                                     seeds="4", edits=EDITS))
    assert np.array_equal(one.images[0], s.images[4]) and np.array_equal(one.masks[0], s.masks[4])
    other = load_synthetic(write_pairs(p2p_run, tmp_path / "other", seeds="4", edits=EDITS,
                                       masks_from=str(phantom_dataset), force=True))
    assert np.array_equal(other.images[0], one.images[0])


@pytest.mark.parametrize("fmt", ["png", "npz", "dicom"])
def test_export_round_trip_through_data_import(p2p_run, phantom_dataset, tmp_path, fmt):
    from synthmed.data.importer import import_dataset

    out = write_pairs(p2p_run, tmp_path / "pairs", masks_from=str(phantom_dataset), n=5,
                      edits=["translate=0.1"], fmt=fmt)
    s = load_synthetic(out)
    if fmt == "npz":
        src, kw = out / "synthetic.npz", {}
    else:
        src, kw = out / ("images" if fmt == "png" else "dicom"), {"mask_dir": out / "masks"}
    ds = import_dataset(src, tmp_path / "imported", no_labels=True, seed=0, **kw)
    ds = PreparedDataset(ds) if not isinstance(ds, PreparedDataset) else ds
    assert ds.meta["has_masks"] and len(ds) == 5
    got = {tuple(np.asarray(ds.images[i]).ravel()[:64]): np.asarray(ds.masks[i])
           for i in range(5)}
    for img, m in zip(s.images, s.masks, strict=True):
        assert np.array_equal(got[tuple(img.ravel()[:64])], m)


def test_refusals_in_one_line(p2p_run, phantom_dataset, tmp_path, tiny_config):
    with pytest.raises(SynthmedError, match="val/test patients.*--allow-eval-masks"):
        write_pairs(p2p_run, tmp_path / "a", masks_from=f"{phantom_dataset}:val", n=2)
    write_pairs(p2p_run, tmp_path / "b", masks_from=f"{phantom_dataset}:val", n=2,
                allow_eval_masks=True)
    with pytest.raises(SynthmedError, match="add --masks-from"):
        generate(p2p_run, n=2)
    with pytest.raises(SynthmedError, match="no anatomy channel"):
        write_pairs(p2p_run, tmp_path / "c", masks_from=str(phantom_dataset), n=2,
                    edits=["transplant"])
    gan = train(tiny_config("dcgan", "train.steps=1"), runs_dir=tmp_path / "g", progress=False)
    with pytest.raises(SynthmedError, match="not mask-conditioned"):
        write_pairs(gan, tmp_path / "d", masks_from=str(phantom_dataset), n=2)


@pytest.mark.slow
def test_two_process_gloo_training(tmp_path, phantom_dataset):
    """torchrun, 2 CPU processes: the ranks train one model and rank 0 writes it."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"),
           "OMP_NUM_THREADS": "1"}
    cfg = tmp_path / "ddp.yaml"
    cfg.write_text("name: ddp\n")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "synthmed", "train", str(cfg), "--runs-dir", str(tmp_path / "runs"),
           "--no-progress", "--set", f"data.path={phantom_dataset}", "--set",
           "model.name=pix2pix", "--set", "model.base_width=4", "--set", "model.image_size=64",
           "--set", "train.batch_size=4", "--set", "train.steps=2", "--set",
           "train.checkpoint_every=2", "--set", "train.sample_every=2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    state = load_checkpoint(tmp_path / "runs" / "00000-ddp" / "checkpoints" / "latest.pt")
    assert state["step"] == 2 and state["world_size"] == 2
    assert all(torch.isfinite(v).all() for v in state["generator"].values()
               if v.is_floating_point())


def test_cli_generate_masks_from_and_one_line_errors(p2p_run, phantom_dataset, tmp_path, capsys):
    from synthmed.cli import main

    out = tmp_path / "pairs"
    with pytest.raises(SystemExit) as ok:
        main(["generate", str(p2p_run), "--masks-from", f"{phantom_dataset}:train", "--n", "3",
              "--edit", "translate=0.1", "--edit", "flip=h", "--out", str(out)])
    assert ok.value.code == 0 and "image+mask pairs" in capsys.readouterr().out
    assert len(list((out / "masks").iterdir())) == 3
    for args, msg in ((["--edit", "rotate=10"], "only with --masks-from"),
                      (["--masks-from", str(phantom_dataset), "--per-class", "2"],
                       "do not apply to image+mask pairs"),
                      (["--masks-from", f"{phantom_dataset}:test"], "--allow-eval-masks")):
        with pytest.raises(SystemExit) as e:
            main(["generate", str(p2p_run), "--n", "2", "--out", str(tmp_path / "x"), *args])
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.count("\n") == 1 and msg in err, err


def test_anatomy_channel_run_transplants_lesions_into_other_cases(tmp_path, tiny_config,
                                                                   phantom_dataset):
    run = train(tiny_config("pix2pix", "model.anatomy_factor=8", "train.steps=1"),
                runs_dir=tmp_path, progress=False)
    out = write_pairs(run, tmp_path / "pairs", masks_from=str(phantom_dataset), n=8,
                      edits=["transplant", "translate=0.05"])
    with open(out / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert any(r["anatomy_id"] != r["source_id"] for r in rows)
    assert json.loads((out / "generation.json").read_text())["edit"]["transplant"] is True
    again = write_pairs(run, tmp_path / "again", masks_from=str(phantom_dataset), seeds="5",
                        edits=["transplant", "translate=0.05"])
    assert np.array_equal(load_synthetic(again).images[0], load_synthetic(out).images[5])
