"""`synthmed data ...` end to end: phantom -> import -> info -> export, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="module")
def raw_phantom(tmp_path_factory):
    from synthmed.data.phantom import write_phantom

    return write_phantom(tmp_path_factory.mktemp("cli") / "raw", n=30, size=32, seed=0)


def test_phantom_import_info_export(cli, raw_phantom, tmp_path):
    code, out, err = cli(["data", "import", raw_phantom / "images", "--mask-dir",
                          raw_phantom / "masks", "--group-regex", "^(case[0-9]+)_", "--size", "16",
                          "--filter", "median", "--split", "0.6,0.2,0.2", "--seed", "1",
                          "--out", tmp_path / "ds"])
    assert code == 0, err
    assert "imported 30 images" in out
    code, out, _ = cli(["data", "info", tmp_path / "ds", "--json"])
    info = json.loads(out)
    assert code == 0 and isinstance(info["n"], int) and info["n"] == 30
    assert set(info["splits"]) == {"train", "val", "test"} and info["size"] == [16, 16]
    assert set(info["classes"]) == {"benign", "malignant"} and info["channels"] == 1
    assert info["has_masks"] is True and info["preprocessing"]["filter"]["name"] == "median"
    code, out, _ = cli(["data", "info", tmp_path / "ds"])
    assert code == 0 and "median" in out and "groups" in out
    for fmt in ("png", "dicom", "nifti"):
        code, out, err = cli(["data", "export", tmp_path / "ds", "--format", fmt, "--out",
                              tmp_path / fmt])
        assert code == 0, err
        assert str(tmp_path / fmt) in out.replace("\n", "")
    assert (tmp_path / "nifti" / "train.nii.gz").is_file()
    assert any((tmp_path / "dicom" / "images").rglob("*.dcm"))


def test_import_npz_with_keys_and_labels_csv(cli, tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", images=rng.integers(0, 256, (12, 8, 8), dtype=np.uint8),
             lab=np.array([0, 1, -1] * 4), case=np.arange(12) // 2)
    code, _, err = cli(["data", "import", tmp_path / "d.npz", "--npz-key", "labels=lab",
                        "--npz-key", "groups=case", "--drop-label", "-1", "--class-names",
                        "0=benign,1=malignant", "--split", "0.5,0.25,0.25", "--allow-missing-class",
                        "--out", tmp_path / "o"])
    assert code == 0, err
    info = json.loads(cli(["data", "info", tmp_path / "o", "--json"])[1])
    assert info["classes"] == {"benign": 4, "malignant": 4}


def _truncated_png(src):
    (src / "a").mkdir(parents=True)
    for i in range(3):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(src / "a" / f"{i}.png")
    (src / "a" / "3.png").write_bytes((src / "a" / "0.png").read_bytes()[:30])


def _make(kind, tmp_path, write_dicom):
    """Create the bad input for ``kind``; return the CLI arguments that hit it."""
    src = tmp_path / "src"
    if kind == "corrupt":
        _truncated_png(src)
        return ["data", "import", src, "--out", tmp_path / "o"], "3.png"
    if kind == "extension":
        _truncated_png(src)
        (src / "a" / "3.png").write_bytes(b"x")
        (src / "a" / "scan.mha").write_bytes(b"x")
        return ["data", "import", src, "--out", tmp_path / "o"], "unsupported file type"
    if kind == "dicom-no-pixels":
        write_dicom(src / "r.dcm", np.zeros((4, 4), np.uint8), with_pixels=False)
        return ["data", "import", src, "--out", tmp_path / "o"], "no pixel data"
    if kind == "nifti-nan":
        src.mkdir()
        nib.save(nib.Nifti1Image(np.full((4, 4, 2), np.nan, np.float32), np.eye(4)),
                 src / "v.nii.gz")
        return ["data", "import", src, "--out", tmp_path / "o"], "NaN or Inf"
    if kind == "empty":
        src.mkdir()
        return ["data", "import", src, "--out", tmp_path / "o"], "no images found"
    if kind == "small-class":
        _truncated_png(src)
        (src / "a" / "3.png").unlink()
        (src / "b").mkdir()
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(src / "b" / "0.png")
        return ["data", "import", src, "--out", tmp_path / "o"], "class 'b' has 1 patient"
    if kind == "mask-shape":
        _truncated_png(src)
        (src / "a" / "3.png").unlink()
        (tmp_path / "m" / "a").mkdir(parents=True)
        Image.fromarray(np.zeros((9, 8), np.uint8)).save(tmp_path / "m" / "a" / "0.png")
        return ["data", "import", src, "--mask-dir", tmp_path / "m", "--out", tmp_path / "o"], \
            "mask is 9x8 but image a/0.png is 8x8"
    if kind == "csv-label":
        _truncated_png(src)
        (src / "a" / "3.png").unlink()
        (tmp_path / "l.csv").write_text("path,label\na/0.png,x\na/1.png,y\na/2.png,zz\n")
        return ["data", "import", src, "--labels-csv", tmp_path / "l.csv", "--class-names",
                "x,y", "--out", tmp_path / "o"], "line 4: unknown label 'zz'"
    src.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(src / "0.png")
    base = ["data", "import", src, "--out", tmp_path / "o"]
    if kind == "split-sum":
        return base + ["--split", "0.8,0.1,0.2"], "sum to 1.1"
    if kind == "size":
        return base + ["--size", "0"], "--size 0"
    if kind == "missing":
        return ["data", "import", tmp_path / "nowhere", "--out", tmp_path / "o"], "does not exist"
    if kind == "info-not-dataset":
        return ["data", "info", src], "not a prepared dataset"
    if kind == "out-exists":
        (tmp_path / "o").mkdir()
        return base, "already exists; pass --force"
    if kind == "export-out-exists":
        (tmp_path / "o").mkdir()
        return ["data", "export", tmp_path / "ds", "--out", tmp_path / "o"], "already exists"
    if kind == "export-format":
        return ["data", "export", tmp_path / "ds", "--format", "jpeg", "--out", tmp_path / "x"], \
            "--format 'jpeg'"
    raise AssertionError(kind)


BAD = ["corrupt", "extension", "dicom-no-pixels", "nifti-nan", "empty", "small-class",
       "mask-shape", "csv-label", "split-sum", "size", "missing", "info-not-dataset",
       "out-exists", "export-out-exists", "export-format"]


@pytest.mark.parametrize("kind", BAD)
def test_bad_input_is_one_line_and_exit_2(kind, tmp_path, cli, write_dicom, phantom_dataset):
    import shutil

    if kind.startswith("export"):
        shutil.copytree(phantom_dataset, tmp_path / "ds")
    argv, needle = _make(kind, tmp_path, write_dicom)
    code, out, err = cli(argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert needle in lines[0] and "Traceback" not in err
    if kind == "out-exists":
        assert not any((tmp_path / "o").iterdir())


def test_skip_bad_warns_and_counts(cli, tmp_path):
    _truncated_png(tmp_path / "src")
    code, out, err = cli(["data", "import", tmp_path / "src", "--skip-bad", "--no-labels",
                          "--split", "1,0,0", "--out", tmp_path / "o"])
    assert code == 0 and "warning: skipped" in err and "3.png" in err
    info = json.loads(cli(["data", "info", tmp_path / "o", "--json"])[1])
    assert info["source"]["skipped"]["count"] == 1 and info["n"] == 3


def test_subprocess_error_has_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "synthmed", "data", "import",
                           str(tmp_path / "missing"), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: ") and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
