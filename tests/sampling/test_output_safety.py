"""generate writes only inside --out whatever the class names; load_synthetic reads only inside
the set; --seeds and --device mistakes are one-line errors; a full disk is one line."""

from __future__ import annotations

import csv
import errno
import shutil

import numpy as np
import pytest
import torch

from synthmed.errors import DataError, DiskFullError, SynthmedError
from synthmed.sampling import load_synthetic
from synthmed.sampling.sampler import parse_seeds
from synthmed.sampling.writer import write_synthetic

ODD_CLASS_PAIRS = [
    ["../../escape", "/abs/evil"],
    ["a/b", "nul\0byte"],
    ["x" * 300, "恶性 tumör"],
    ["Benign", "benign"],
    ["..", "."],
]


def run_with_class_names(run, names, dest):
    """A copy of a trained 2-class run whose checkpoint calls its classes ``names`` (as a
    dataset imported with odd ``--class-names`` or npz ``class_names`` would)."""
    copy = shutil.copytree(run, dest)
    path = copy / "checkpoints" / "latest.pt"
    state = torch.load(path, weights_only=True)
    state["meta"]["class_names"] = list(names)
    torch.save(state, path)
    return copy


def tree(root):
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("names", ODD_CLASS_PAIRS, ids=lambda n: repr(n)[:20])
@pytest.mark.parametrize("fmt", ["png", "dicom"])
def test_odd_class_names_stay_inside_out(trained_runs, tmp_path, names, fmt):
    work = tmp_path / "a" / "b"
    run = run_with_class_names(trained_runs["cond"], names, work / "run")
    before = tree(tmp_path)
    out = write_synthetic(run, work / "syn", per_class=2, fmt=fmt)
    after = tree(tmp_path)
    new = set(after) - set(before)
    assert new and all(out in p.parents for p in new)  # nothing written outside --out
    assert all(after[p] == before[p] for p in before)
    s = load_synthetic(out)
    assert s.class_names == names and s.labels.tolist() == [0, 0, 1, 1]
    dirs = {p.parent for p in new if p.suffix in (".png", ".dcm")}
    assert len(dirs) == 2  # two classes, two folders, even when names differ only by case


def test_manifest_entries_outside_the_set_are_refused(trained_runs, tmp_path):
    out = write_synthetic(trained_runs["uncond"], tmp_path / "syn", n=2)
    secret = tmp_path / "secret.png"
    shutil.copy(next((out / "images").glob("*.png")), secret)
    rows = (out / "manifest.csv").read_text().splitlines()
    for bad in ("../secret.png", str(secret)):
        (out / "manifest.csv").write_text("\n".join([rows[0], f"{bad},,0", *rows[2:]]) + "\n")
        with pytest.raises(DataError, match="points outside") as e:
            load_synthetic(out)
        assert "manifest.csv line 2" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("text,match", [
    ("99999999999999999999", "too large"),
    ("1,1,1", "seed 1 is listed 3 times"),
    ("0-5,3", "seed 3 is listed 2 times"),
    ("0-99999999999", "more than 1,000,000 images"),
])
def test_bad_seeds_are_one_line_errors(text, match):
    with pytest.raises(SynthmedError, match=match):
        parse_seeds(text, None)


def test_seed_bounds():
    assert parse_seeds(str(2**63 - 1), None) == [2**63 - 1]
    with pytest.raises(SynthmedError, match="too large"):
        parse_seeds(str(2**63), None)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("device,match", [("cuda", "CUDA is not available"),
                                          ("cuda:1", "CUDA is not available"),
                                          ("tpu9", "unknown device")])
def test_unavailable_device_is_one_line(trained_runs, tmp_path, device, match):
    with pytest.raises(SynthmedError, match=match):
        write_synthetic(trained_runs["uncond"], tmp_path / "syn", n=2, device=device)
    assert not (tmp_path / "syn").exists()


@pytest.mark.parametrize("fmt,target", [
    ("png", "PIL.Image.Image.save"),
    ("dicom", "pydicom.dataset.Dataset.save_as"),
    ("npz", "numpy.savez_compressed"),
])
def test_full_disk_while_generating_keeps_the_old_set(trained_runs, tmp_path, monkeypatch, fmt,
                                                      target):
    run = trained_runs["uncond"]
    out = write_synthetic(run, tmp_path / "syn", n=2, fmt=fmt)
    before = tree(out)

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(target, full)
    with pytest.raises(DiskFullError, match=r"syn: no space left on device \(about") as e:
        write_synthetic(run, out, n=3, fmt=fmt, force=True)
    assert "\n" not in str(e.value)
    assert tree(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["syn"]  # no build folder left behind
    with open(out / "manifest.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 2
    assert np.array_equal(load_synthetic(out).seeds, [0, 1])
