"""Generation: per-seed reproducibility, class control, formats, provenance, no overwriting."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from synthmed import generate
from synthmed.errors import SynthmedError
from synthmed.fileio import sha256_file
from synthmed.sampling import load_synthetic
from synthmed.sampling.sampler import parse_seeds
from synthmed.sampling.writer import write_synthetic


@pytest.mark.parametrize("text,expected", [
    ("0-3", [0, 1, 2, 3]), ("5", [5]), ("1,5,9", [1, 5, 9]), ("0-1,10-11", [0, 1, 10, 11]),
])
def test_parse_seeds(text, expected):
    assert parse_seeds(text, None) == expected


@pytest.mark.parametrize("bad", ["a-b", "5-2", "1,,2", "-3"])
def test_parse_seeds_rejects_bad_input(bad):
    with pytest.raises(SynthmedError, match="--seeds"):
        parse_seeds(bad, None)


def test_each_image_is_reproducible_from_its_seed(trained_runs):
    run = trained_runs["uncond"]
    a = generate(run, seeds="0-9")
    b = generate(run, seeds="5-7")
    assert a.images.shape == (10, 1, 32, 32)
    assert torch.equal(a.images[5:8], b.images)
    assert a.images.min() >= -1 and a.images.max() <= 1
    assert (a.labels == -1).all()
    assert not torch.equal(a.images[0], a.images[1])


def test_same_checkpoint_same_images(trained_runs):
    run = trained_runs["ema"]
    assert torch.equal(generate(run, n=6).images, generate(run, n=6).images)


def test_per_class_and_single_class(trained_runs):
    run = trained_runs["cond"]
    g = generate(run, per_class=3)
    assert g.class_names == ["benign", "malignant"]
    assert g.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert g.seeds.tolist() == [0, 1, 2, 0, 1, 2]
    m = generate(run, n=4, class_name="malignant")
    assert (m.labels == 1).all()
    with pytest.raises(SynthmedError, match="--class"):
        generate(run, n=2, class_name="nope")


def test_unconditional_model_refuses_class_options(trained_runs):
    with pytest.raises(SynthmedError, match="unconditional"):
        generate(trained_runs["uncond"], per_class=2)


def test_ema_weights_are_used_when_present(trained_runs):
    from synthmed.sampling.sampler import load_generator
    from synthmed.training.checkpoint import load_checkpoint

    run = trained_runs["ema"]
    state = load_checkpoint(run / "checkpoints" / "latest.pt")
    g = load_generator(run).generator.state_dict()
    k = next(k for k in g if g[k].is_floating_point())
    assert torch.equal(g[k], state["generator_ema"][f"module.{k}"])
    assert not torch.equal(g[k], state["generator"][k])


def test_png_set_with_manifest_and_provenance(trained_runs, tmp_path):
    run = trained_runs["cond"]
    out = write_synthetic(run, tmp_path / "syn", per_class=2, fmt="png")
    rows = list(csv.DictReader((out / "manifest.csv").read_text().splitlines()))
    assert [r["file"] for r in rows][:2] == ["images/benign/benign_seed0.png",
                                             "images/benign/benign_seed1.png"]
    assert {r["class"] for r in rows} == {"benign", "malignant"}
    meta = json.loads((out / "generation.json").read_text())
    assert meta["checkpoint_sha256"] == sha256_file(run / "checkpoints" / "latest.pt")
    assert meta["classes"] == {"benign": 2, "malignant": 2} and meta["n"] == 4
    assert meta["synthmed_version"] and meta["config"]["model"]["name"] == "acgan"
    with Image.open(out / rows[0]["file"]) as im:
        assert im.text["synthmed:seed"] == "0"
        assert im.text["synthmed:checkpoint_sha256"] == meta["checkpoint_sha256"]
    s = load_synthetic(out)
    g = generate(run, per_class=2)
    expected = ((g.images + 1) * 127.5).round().to(torch.uint8).numpy()
    assert np.array_equal(s.images, expected)
    assert s.labels.tolist() == [0, 0, 1, 1]


def test_npz_set_is_medmnist_layout(trained_runs, tmp_path):
    out = write_synthetic(trained_runs["cond"], tmp_path / "syn", n=5, fmt="npz")
    with np.load(out / "synthetic.npz") as z:
        assert z["train_images"].shape == (5, 32, 32) and z["train_images"].dtype == np.uint8
        assert z["train_labels"].shape == (5, 1)
        assert list(z["class_names"]) == ["benign", "malignant"]
    s = load_synthetic(out)
    assert s.images.shape == (5, 1, 32, 32) and s.seeds.tolist() == [0, 1, 2, 3, 4]


def test_dicom_set_has_fresh_uids_and_no_identity(trained_runs, tmp_path):
    pydicom = pytest.importorskip("pydicom")
    from synthmed.data.export import ANONYMOUS_ID, ANONYMOUS_NAME

    out = write_synthetic(trained_runs["uncond"], tmp_path / "syn", n=3, fmt="dicom")
    files = sorted((out / "dicom").glob("*.dcm"))
    assert len(files) == 3
    dss = [pydicom.dcmread(f) for f in files]
    assert all(d.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7" for d in dss)
    assert all(f"seed={k}" in d.ImageComments for k, d in enumerate(dss))
    for d in dss:  # de-identified by construction: the anonymous values, nothing else
        assert str(d.PatientName) == ANONYMOUS_NAME and d.PatientID == ANONYMOUS_ID
        assert d.PatientIdentityRemoved == "YES" and d.PatientBirthDate == ""
        assert d.PatientSex == "" and d.ConversionType == "SYN"
        assert d.file_meta.MediaStorageSOPInstanceUID == d.SOPInstanceUID
    uids = {d.SOPInstanceUID for d in dss}
    assert len(uids) == 3 and len({d.SeriesInstanceUID for d in dss}) == 1
    again = write_synthetic(trained_runs["uncond"], tmp_path / "again", n=3, fmt="dicom")
    rerun = [pydicom.dcmread(f) for f in sorted((again / "dicom").glob("*.dcm"))]
    assert uids.isdisjoint(d.SOPInstanceUID for d in rerun)  # fresh UIDs, never reused
    assert rerun[0].StudyInstanceUID != dss[0].StudyInstanceUID
    assert dss[0].pixel_array.shape == (32, 32)
    assert load_synthetic(out).images.shape == (3, 1, 32, 32)


def test_refuses_non_empty_out_without_force(trained_runs, tmp_path):
    out = tmp_path / "syn"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(SynthmedError, match="--force"):
        write_synthetic(trained_runs["uncond"], out, n=2)
    assert (out / "keep.txt").read_text() == "mine"
    with pytest.raises(SynthmedError, match="keep.txt: not written by `synthmed generate`"):
        write_synthetic(trained_runs["uncond"], out, n=2, force=True)  # not ours: kept
    assert (out / "keep.txt").read_text() == "mine"
    (out / "keep.txt").unlink()
    write_synthetic(trained_runs["uncond"], out, n=2, force=True)  # empty: fine
    write_synthetic(trained_runs["uncond"], out, n=3, force=True)  # our own set: replaced
    assert len(load_synthetic(out)) == 3


def test_bad_format_and_missing_checkpoint(trained_runs, tmp_path):
    with pytest.raises(SynthmedError, match="--format"):
        write_synthetic(trained_runs["uncond"], tmp_path / "a", n=2, fmt="jpeg")
    with pytest.raises(SynthmedError, match="checkpoint not found"):
        generate(trained_runs["uncond"], n=2, checkpoint="step-00009999")
    with pytest.raises(SynthmedError, match="checkpoint not found"):
        generate(tmp_path, n=2)


def test_exclude_near_copies_records_what_was_dropped(trained_runs, tmp_path, monkeypatch):
    run = trained_runs["uncond"]
    out = write_synthetic(run, tmp_path / "all", n=6, exclude_near_copies=True)
    meta = json.loads((out / "generation.json").read_text())
    ex = meta["excluded_near_copies"]
    assert ex["heldout_split"] == "val" and ex["threshold"] > 0
    assert meta["n"] == 6 - ex["count"]

    import synthmed.metrics.privacy as privacy

    def flag_first_two(synth, train, **kw):
        mask = np.zeros(len(synth), bool)
        mask[:2] = True
        return mask, 0.5

    monkeypatch.setattr(privacy, "near_copy_mask", flag_first_two)
    out = write_synthetic(run, tmp_path / "some", n=6, exclude_near_copies=True)
    meta = json.loads((out / "generation.json").read_text())
    assert meta["excluded_near_copies"]["count"] == 2 and meta["n"] == 4
    seeds = [r["seed"] for r in csv.DictReader((out / "manifest.csv").read_text().splitlines())]
    assert seeds == ["2", "3", "4", "5"]


def test_a_generator_that_copies_training_images_is_caught(trained_runs, phantom_dataset,
                                                           tmp_path, monkeypatch):
    """A "generator" whose seeds 0-5 return training images and 6-11 new phantom images: the
    written set must lose every copy, keep most genuine samples, and say how many it dropped."""
    import dataclasses

    import synthmed.sampling.writer as writer
    from synthmed.data.dataset import PreparedDataset, to_model_range
    from synthmed.data.phantom import make_phantom

    ds = PreparedDataset(phantom_dataset)  # what the run trained on (split train)
    copies = np.asarray(ds.images[ds.indices("train")[:6]])
    genuine = make_phantom(n=6, size=32, seed=99)["images"][:, None]  # never seen in training
    real_generate = writer.generate

    def memorizing_generate(*args, **kwargs):
        gen = real_generate(*args, **kwargs)
        return dataclasses.replace(gen, images=to_model_range(np.concatenate([copies, genuine])))

    monkeypatch.setattr(writer, "generate", memorizing_generate)
    out = write_synthetic(trained_runs["uncond"], tmp_path / "syn", n=12,
                          exclude_near_copies=True)
    meta = json.loads((out / "generation.json").read_text())
    kept = [int(r["seed"]) for r in csv.DictReader((out / "manifest.csv").read_text().splitlines())]
    assert not set(kept) & set(range(6))  # every copy dropped
    assert len(kept) >= 4  # most genuine samples kept (the threshold is a 5th percentile)
    assert meta["excluded_near_copies"]["count"] == 12 - len(kept) and meta["n"] == len(kept)
    assert meta["excluded_near_copies"]["heldout_split"] == "val"
    assert np.array_equal(load_synthetic(out).images, genuine[[s - 6 for s in kept]])
