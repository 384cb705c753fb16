"""``generate --masks-from/--edit`` for the mask-conditioned diffusion model (``ddpm-mask``): the
same pairs writer as pix2pix, with the method supplying "images given masks"."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from synthmed import generate
from synthmed.config import load_config
from synthmed.data.dataset import PreparedDataset
from synthmed.errors import SynthmedError
from synthmed.sampling.io import load_synthetic
from synthmed.sampling.masks import edit_mask, parse_edits
from synthmed.sampling.pairs import write_pairs
from synthmed.sampling.sampler import load_generator
from synthmed.training import train

EDITS = ["translate=0.15", "rotate=30", "scale=0.8:1.2", "flip=h"]
TINY = ["model.channels=[8,16]", "model.diffusion_steps=100", "model.sample_steps=2",
        "train.batch_size=8", "train.steps=2", "train.log_every=1", "train.num_threads=1"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, phantom_dataset):
    """A class- and mask-conditional ddpm-mask run and a class-only ddpm run (32 px phantom)."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for name in ("ddpm-mask", "ddpm"):
        cfg = load_config(None, [f"data.path={phantom_dataset}", f"model.name={name}",
                                 f"name={name}", *TINY])
        out[name] = train(cfg, runs_dir=root, progress=False)
    return out


def _rows(path):
    with open(path / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_pairs_masks_are_the_edited_source_masks(runs, phantom_dataset, tmp_path):
    out = write_pairs(runs["ddpm-mask"], tmp_path / "pairs", masks_from=str(phantom_dataset),
                      n=6, edits=EDITS)
    s = load_synthetic(out)
    assert s.images.shape == (6, 1, 32, 32) and s.masks.shape == (6, 32, 32)
    ds, spec = PreparedDataset(phantom_dataset), parse_edits(EDITS)
    train_rows = ds.indices("train")
    rows = np.sort(train_rows[ds.has_mask[train_rows]])
    manifest = _rows(out)
    for i, r in enumerate(manifest):
        seed = int(r["seed"])
        src = int(rows[seed % len(rows)])
        assert int(r["source_row"]) == src and r["source_id"] == ds.manifest[src]["id"]
        want = edit_mask(np.asarray(ds.masks[src]), spec, np.random.default_rng(seed),
                         strict=False)
        assert np.array_equal(s.masks[i], want.mask), f"seed {seed}: mask is not the edit"
        assert json.loads(r["edit"]) == json.loads(json.dumps(want.params))
        # a class-conditional run draws each image in its source case's class
        assert r["class"] == ds.class_names[int(ds.labels[src])]
    doc = json.loads((out / "generation.json").read_text())
    assert doc["paired"] and doc["model"] == "ddpm-mask"
    assert doc["rejected_edits"] == sum(int(r["rejected_edits"]) for r in manifest)
    assert doc["sampling_options"] == {"sampler": "dpm-solver++", "steps": 2, "guidance": 1.0,
                                       "bf16": False}
    assert sum(doc["classes"].values()) == 6


def test_npz_and_png_pairs_agree_and_carry_the_classes(runs, phantom_dataset, tmp_path):
    src = str(phantom_dataset)
    png = load_synthetic(write_pairs(runs["ddpm-mask"], tmp_path / "png", masks_from=src,
                                     seeds="10-15", edits=EDITS))
    npz = load_synthetic(write_pairs(runs["ddpm-mask"], tmp_path / "npz", masks_from=src,
                                     seeds="10-15", edits=EDITS, fmt="npz"))
    ds = PreparedDataset(phantom_dataset)
    want = [ds.class_names[int(ds.labels[int(r["source_row"])])] for r in _rows(tmp_path / "png")]
    assert [png.class_names[k] for k in png.labels] == want and len(set(want)) == 2
    assert np.array_equal(npz.labels, png.labels) and npz.class_names == png.class_names
    assert np.array_equal(npz.images, png.images) and np.array_equal(npz.masks, png.masks)


def test_the_mask_and_the_guidance_reach_the_image(runs):
    sampler = load_generator(runs["ddpm-mask"]).sampler
    a = torch.zeros(2, 1, 32, 32)
    b = a.clone()
    b[:, :, 8:20, 8:20] = 1
    y = torch.tensor([0, 1])
    ia, ib = sampler.from_masks([3, 4], a, labels=y), sampler.from_masks([3, 4], b, labels=y)
    assert ia.shape == (2, 1, 32, 32) and not torch.equal(ia, ib)
    # two training steps leave the class embedding weak: compare floats, not 8-bit files
    g0 = load_generator(runs["ddpm-mask"], guidance=0.0).sampler.from_masks([3, 4], b, labels=y)
    assert torch.equal(sampler.from_masks([3, 4], b, labels=y), ib) and not torch.equal(g0, ib)


def test_same_seed_same_pair_whatever_the_batch(runs, phantom_dataset, tmp_path):
    run, src = runs["ddpm-mask"], str(phantom_dataset)
    many = load_synthetic(write_pairs(run, tmp_path / "many", masks_from=src, seeds="0-33",
                                      edits=EDITS))  # two micro-batches
    for seed in (4, 33):
        one = load_synthetic(write_pairs(run, tmp_path / f"s{seed}", masks_from=src,
                                         seeds=str(seed), edits=EDITS))
        assert np.array_equal(one.images[0], many.images[seed]), f"seed {seed}"
        assert np.array_equal(one.masks[0], many.masks[seed])
    few = load_synthetic(write_pairs(run, tmp_path / "few", masks_from=src, seeds="2-5",
                                     edits=EDITS))
    assert np.array_equal(few.images, many.images[2:6])


def test_cli_steps_and_guidance_are_used_and_recorded(runs, phantom_dataset, tmp_path, capsys):
    from synthmed.cli import main

    outs = {}
    for steps, guidance in ((2, 1.5), (3, 1.5)):
        out = tmp_path / f"p{steps}-{guidance}"
        with pytest.raises(SystemExit) as e:
            main(["generate", str(runs["ddpm-mask"]), "--masks-from", f"{phantom_dataset}:train",
                  "--n", "3", "--edit", "translate=0.1", "--steps", str(steps), "--guidance",
                  str(guidance), "--out", str(out)])
        assert e.value.code == 0, capsys.readouterr().err
        assert "image+mask pairs" in capsys.readouterr().out
        doc = json.loads((out / "generation.json").read_text())
        assert doc["sampling_options"] == {"sampler": "dpm-solver++", "steps": steps,
                                           "guidance": guidance, "bf16": False}
        outs[steps, guidance] = load_synthetic(out)
    a, b = outs.values()
    assert np.array_equal(a.masks, b.masks)
    assert not np.array_equal(a.images, b.images)  # --steps reached the sampler


@pytest.mark.parametrize("run,args,needle", [
    ("ddpm", ["--masks-from", "DS"], "(ddpm) is not mask-conditioned"),
    ("ddpm-mask", [], "add --masks-from"),
    ("ddpm-mask", ["--masks-from", "DS", "--steps", "0"], "--steps 0"),
    ("ddpm-mask", ["--masks-from", "DS", "--size", "64"], "do not apply to image+mask pairs"),
    ("ddpm-mask", ["--masks-from", "DS", "--match-train"], "do not apply to image+mask pairs"),
])
def test_cli_refusals_are_one_line(runs, phantom_dataset, tmp_path, capsys, run, args, needle):
    from synthmed.cli import main

    args = [str(phantom_dataset) if a == "DS" else a for a in args]
    with pytest.raises(SystemExit) as e:
        main(["generate", str(runs[run]), "--n", "2", "--out", str(tmp_path / "x"), *args])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and needle in err, err
    assert not (tmp_path / "x").exists()


def test_python_refusals(runs, phantom_dataset, tmp_path):
    from synthmed.data.dataset import write_prepared

    with pytest.raises(SynthmedError, match="mask-conditioned.*add --masks-from"):
        generate(runs["ddpm-mask"], n=1)
    with pytest.raises(SynthmedError, match="no anatomy channel"):
        write_pairs(runs["ddpm-mask"], tmp_path / "t", masks_from=str(phantom_dataset), n=2,
                    edits=["transplant"])
    # masks of cases whose classes the class-conditional run does not know
    ds = PreparedDataset(phantom_dataset)
    other = write_prepared(tmp_path / "other", images=np.asarray(ds.images),
                           labels=ds.labels, splits=[r["split"] for r in ds.manifest],
                           class_names=("cyst", "solid"), masks=np.asarray(ds.masks),
                           name="other")
    with pytest.raises(SynthmedError, match="has class 'cyst', not one of the run's classes"):
        write_pairs(runs["ddpm-mask"], tmp_path / "o", masks_from=str(other), n=2)
    assert not (tmp_path / "o").exists()


def test_report_shows_mask_real_synthetic_rows_per_class(runs, phantom_dataset, tmp_path):
    """The pipeline report reads the pair set's files only: a class-conditional ddpm-mask set
    gets mask | real and mask given | synthetic rows for each class, like a pix2pix set."""
    from synthmed.report import collect, render_report

    def marker(stage, outputs):
        (tmp_path / "stages").mkdir(exist_ok=True)
        (tmp_path / "stages" / f"{stage}.json").write_text(json.dumps(
            {"stage": stage, "outputs": outputs, "seconds": 1.0}))

    ds = PreparedDataset(phantom_dataset)
    rows = ds.indices("train")[10:18]  # both classes (the phantom's train split is sorted)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "summary.json").write_text(json.dumps(  # as the import stage writes
        {"path": str(ds.path), **ds.summary()}, default=str))
    np.savez_compressed(tmp_path / "data" / "real_samples.npz", images=ds.images[rows],
                        labels=ds.labels[rows], class_names=np.array(ds.class_names),
                        masks=ds.masks[rows])
    marker("train", {"train_run": str(runs["ddpm-mask"])})
    write_pairs(runs["ddpm-mask"], tmp_path / "synthetic", masks_from=str(phantom_dataset),
                seeds="10-15", edits=EDITS)  # source cases of both classes
    marker("generate", {"synthetic": "synthetic"})
    syn = collect.synthetic_section(tmp_path, collect.stages(tmp_path),
                                    collect.dataset_section(tmp_path))
    assert syn["paired"] and [c["name"] for c in syn["classes"]] == list(ds.class_names)
    assert all(c["real_pairs"] and c["synthetic_pairs"] for c in syn["classes"])
    html = render_report(tmp_path)
    assert "mask given | synthetic image" in html and "mask | real image" in html
    assert "mask-to-image diffusion model" in html and "translate -0.15, 0.15" in html
