"""Bad-input corpus for `synthmed data import` (and the inputs of evaluate/train/utility): inputs
that were silently mis-imported or crashed before. Each case runs through the CLI in-process and
checks the outcome the user sees: exit 2 with one line on stderr and no traceback, or exit 0 with
a `warning:` notice; and that nothing was written outside the output folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

RNG = np.random.default_rng(0)


def _png(path: Path, value: int | None = None, size: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = (RNG.integers(0, 256, (size, size)) if value is None
           else np.full((size, size), value)).astype(np.uint8)
    Image.fromarray(arr).save(path)


def _tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


@pytest.fixture
def run(cli, tmp_path):
    """``run(argv) -> (code, out, err)``; asserts nothing outside tmp_path/'out*' was written."""

    def go(argv):
        before = {p for p in _tree(tmp_path) if not p.startswith("out")}
        code, out, err = cli(argv)
        after = {p for p in _tree(tmp_path) if not p.startswith("out")}
        assert after == before, f"written outside the output folder: {after - before}"
        assert "Traceback" not in out + err
        return code, out, err

    return go


def _one_error(code: int, err: str) -> str:
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, err)
    return lines[0]


def _info(cli, path: Path) -> dict:
    code, out, _ = cli(["data", "info", path, "--json"])
    assert code == 0
    return json.loads(out)


def _classes_with_patients(root: Path, patients: dict[str, int], frames: int = 2) -> Path:
    for cls, n in patients.items():
        for p in range(n):
            for f in range(frames):
                _png(root / cls / f"{cls}{p}_{f}.png")
    return root


# 1. Labels CSV not in UTF-8 -------------------------------------------------------------------

@pytest.mark.parametrize(("content", "says"), [
    ("path,label\nimg0.png,caf\xe9\nimg1.png,caf\xe9\n".encode("latin-1"), "Latin-1"),
    (b"\xff\xfe\x00p\x00a\x00t\x00h\x00", "binary"),
])
def test_labels_csv_not_utf8_is_one_line(run, tmp_path, content, says):
    for i in range(2):
        _png(tmp_path / "src" / f"img{i}.png")
    (tmp_path / "labels.csv").write_bytes(content)
    code, _, err = run(["data", "import", tmp_path / "src", "--labels-csv",
                        tmp_path / "labels.csv", "--out", tmp_path / "out"])
    line = _one_error(code, err)
    assert "labels.csv" in line and "not UTF-8" in line and says in line


def test_labels_csv_utf8_with_bom_is_read(run, cli, tmp_path):
    for i in range(8):
        _png(tmp_path / "src" / f"img{i}.png")
    rows = "".join(f"img{i}.png,{'café' if i % 2 else 'thé'}\n" for i in range(8))
    (tmp_path / "l.csv").write_bytes("\ufeffpath,label\n".encode() + rows.encode())
    code, _, err = run(["data", "import", tmp_path / "src", "--labels-csv", tmp_path / "l.csv",
                        "--split", "0.5,0.25,0.25", "--out", tmp_path / "out"])
    assert code == 0, err
    assert set(_info(cli, tmp_path / "out")["classes"]) == {"café", "thé"}


# 2. Patient-aware splits ----------------------------------------------------------------------

def test_class_with_two_patients_is_refused_with_what_to_do(run, tmp_path):
    src = _classes_with_patients(tmp_path / "src", {"common": 10, "rare": 2}, frames=3)
    code, _, err = run(["data", "import", src, "--group-regex", "^([a-z]+[0-9]+)_",
                        "--out", tmp_path / "out"])
    line = _one_error(code, err)
    assert "'rare' has 2 patient" in line
    assert all(w in line for w in ("--split", "--drop-label", "--allow-missing-class"))


def test_allow_missing_class_imports_with_a_notice(run, cli, tmp_path):
    src = _classes_with_patients(tmp_path / "src", {"common": 10, "rare": 2}, frames=3)
    code, _, err = run(["data", "import", src, "--group-regex", "^([a-z]+[0-9]+)_",
                        "--allow-missing-class", "--out", tmp_path / "out"])
    assert code == 0 and "warning:" in err and "'rare' has 2 patient" in err
    notices = json.loads((tmp_path / "out" / "dataset.json").read_text())["source"]["notices"]
    assert any("rare" in n for n in notices)


def test_one_patient_only_is_refused(run, tmp_path):
    src = _classes_with_patients(tmp_path / "src", {"benign": 1}, frames=6)
    code, _, err = run(["data", "import", src, "--group-regex", "^([a-z]+[0-9]+)_",
                        "--out", tmp_path / "out"])
    assert "'benign' has 1 patient" in _one_error(code, err)


def test_one_unlabelled_patient_gives_a_notice(run, tmp_path):
    for f in range(6):
        _png(tmp_path / "src" / f"case1_{f}.png")
    code, out, err = run(["data", "import", tmp_path / "src", "--group-regex", "^(case[0-9]+)_",
                          "--out", tmp_path / "out"])
    assert code == 0 and "train 6, val 0, test 0" in out
    assert "warning: only 1 patient group" in err


def test_minority_class_of_few_patients_reaches_val_and_test(run, cli, tmp_path):
    src = _classes_with_patients(tmp_path / "src", {"common": 20, "rare": 3}, frames=4)
    code, _, err = run(["data", "import", src, "--group-regex", "^([a-z]+[0-9]+)_",
                        "--out", tmp_path / "out"])
    assert code == 0, err
    by_split = _info(cli, tmp_path / "out")["class_counts_by_split"]
    assert all(by_split[s].get("rare", 0) > 0 for s in ("train", "val", "test"))


# 3. Symlinked class folders -------------------------------------------------------------------

def test_symlinked_class_folder_is_followed_and_loops_reported(run, cli, tmp_path):
    _classes_with_patients(tmp_path / "store", {"rare": 4}, frames=1)
    src = _classes_with_patients(tmp_path / "src", {"common": 4}, frames=1)
    try:
        os.symlink(tmp_path / "store" / "rare", src / "rare", target_is_directory=True)
        os.symlink(src, src / "common" / "loop", target_is_directory=True)
    except OSError:
        pytest.skip("symlinks not allowed here")
    code, _, err = run(["data", "import", src, "--split", "0.5,0.25,0.25",
                        "--out", tmp_path / "out"])
    assert code == 0, err
    assert _info(cli, tmp_path / "out")["classes"] == {"common": 4, "rare": 4}
    assert "skipped 1 path" in err and "common/loop" in err


# 4. 4-D NIfTI (X, Y, Z, 3) --------------------------------------------------------------------

@pytest.mark.parametrize(("flag", "n", "channels"), [([], 12, 1), (["--nifti-rgb"], 4, 3)])
def test_4d_nifti_sliced_unless_asked_for_rgb(run, cli, tmp_path, flag, n, channels):
    vol = RNG.integers(0, 256, (8, 8, 4, 3)).astype(np.uint8)
    (tmp_path / "src").mkdir()
    nib.save(nib.Nifti1Image(vol, np.eye(4)), tmp_path / "src" / "v.nii.gz")
    code, _, err = run(["data", "import", tmp_path / "src", *flag, "--allow-missing-class",
                        "--out", tmp_path / "out"])
    assert code == 0, err
    info = _info(cli, tmp_path / "out")
    assert info["n"] == n and info["channels"] == channels
    assert ("read as 3 volumes" in err) == (not flag)


# 5. Re-importing a `data export` folder -------------------------------------------------------

@pytest.fixture
def exported(cli, tmp_path):
    src = _classes_with_patients(tmp_path / "raw", {"benign": 5, "malignant": 5}, frames=2)
    code, _, err = cli(["data", "import", src, "--group-regex", "^([a-z]+[0-9]+)_",
                        "--out", tmp_path / "out_ds"])
    assert code == 0, err
    code, _, err = cli(["data", "export", tmp_path / "out_ds", "--out", tmp_path / "out_exp"])
    assert code == 0, err
    return tmp_path / "out_ds", tmp_path / "out_exp"


@pytest.mark.parametrize("sub", ["", "images"])
def test_export_folder_reimports_with_its_classes_and_splits(run, cli, tmp_path, exported, sub):
    ds, exp = exported
    code, _, err = run(["data", "import", exp / sub if sub else exp, "--out", tmp_path / "out2"])
    assert code == 0, err
    assert "recognised a synthmed png export" in err
    a, b = _info(cli, ds), _info(cli, tmp_path / "out2")
    assert b["classes"] == a["classes"] and b["class_counts_by_split"] == a[
        "class_counts_by_split"]


def test_split_named_class_folders_warn(run, tmp_path, exported):
    _, exp = exported
    (exp / "export.json").unlink()
    code, _, err = run(["data", "import", exp / "images", "--allow-missing-class",
                        "--out", tmp_path / "out2"])
    assert code == 0 and "look like split folders" in err


# 6. The phantom's raw folder (images/, masks/, labels.csv) ------------------------------------

def test_raw_phantom_folder_uses_masks_and_labels_not_mask_images(run, cli, tmp_path):
    from synthmed.data.phantom import write_phantom

    raw = write_phantom(tmp_path / "raw", n=24, size=16, seed=0)
    code, out, err = run(["data", "import", raw, "--out", tmp_path / "out"])
    assert code == 0, err
    assert "imported 24 images" in out and "--mask-dir" in err
    info = _info(cli, tmp_path / "out")
    assert info["has_masks"] and info["n_masks"] == 24 and info["n_groups"] < 24


def test_images_and_masks_beside_other_folders_is_refused_with_the_command(run, tmp_path):
    for sub in ("images", "masks", "extra"):
        _png(tmp_path / "raw" / sub / "a" / "x.png")
    code, _, err = run(["data", "import", tmp_path / "raw", "--out", tmp_path / "out"])
    line = _one_error(code, err)
    assert f"synthmed data import {tmp_path / 'raw' / 'images'} --mask-dir" in line


# 7. --size beyond the machine's memory --------------------------------------------------------

@pytest.mark.parametrize("size", [100_000, 1_000_000])
def test_huge_size_refused_before_allocating(run, tmp_path, monkeypatch, size):
    import synthmed.data.preprocess as pre

    if size == 100_000:  # 120 GB for one image; pin the machine to 16 GiB to be sure
        monkeypatch.setattr(pre, "available_memory", lambda: 16 * 2**30)
    _classes_with_patients(tmp_path / "src", {"a": 3, "b": 3}, frames=1)
    code, _, err = run(["data", "import", tmp_path / "src", "--size", size,
                        "--out", tmp_path / "out"])
    line = _one_error(code, err)
    assert f"--size {size}" in line and "GiB" in line


def test_utility_refuses_a_class_absent_from_test(run, tmp_path):
    from synthmed.data.dataset import write_prepared

    labels = np.array([0, 1] * 10)
    splits = ["train"] * 12 + ["val"] * 4 + ["test"] * 4
    labels[16:] = 0  # class 'b' only in train and val
    ds = write_prepared(tmp_path / "ds", images=RNG.integers(0, 256, (20, 1, 16, 16),
                                                             dtype=np.uint8),
                        labels=labels, splits=splits, class_names=["a", "b"])
    (tmp_path / "u.yaml").write_text(f"data:\n  path: {ds}\nutility:\n  epochs: 1\n  seeds: 1\n")
    code, _, err = run(["utility", tmp_path / "u.yaml", "--runs-dir", tmp_path / "out_runs"])
    line = _one_error(code, err)
    assert "class 'b' has no images in the test split" in line and "--split" in line


# 8. Error texts -------------------------------------------------------------------------------

@pytest.fixture
def config_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  name: dcgan\n")
    return path


def test_set_typo_names_the_override_and_suggests_the_key(run, tmp_path, config_yaml):
    code, _, err = run(["train", config_yaml, "--set", "model.imagesize=64",
                        "--runs-dir", tmp_path / "out_runs"])
    line = _one_error(code, err)
    assert line.startswith("error: --set model.imagesize=64: ") and "c.yaml" not in line
    assert "did you mean model.image_size?" in line


def test_yaml_typo_names_the_file_and_suggests_the_key(run, tmp_path):
    (tmp_path / "bad.yaml").write_text("train:\n  step: 5\n")
    code, _, err = run(["train", tmp_path / "bad.yaml", "--runs-dir", tmp_path / "out_runs"])
    line = _one_error(code, err)
    assert "bad.yaml: train.step: unknown key; did you mean train.steps?" in line


def test_misspelt_split_is_named(run, tmp_path):
    from synthmed.data.dataset import write_prepared

    ds = write_prepared(tmp_path / "ds", images=RNG.integers(0, 256, (4, 1, 16, 16),
                                                             dtype=np.uint8),
                        labels=[0, 1, 0, 1], splits=["train", "train", "test", "test"],
                        class_names=["a", "b"])
    code, _, err = run(["evaluate", "--real", f"{ds}:tset", "--synthetic", f"{ds}:train",
                        "--out", tmp_path / "out_eval"])
    assert "unknown split 'tset' (train, val, test" in _one_error(code, err)


def test_resume_without_checkpoint_gives_a_train_hint(run, tmp_path):
    (tmp_path / "run0").mkdir()
    code, _, err = run(["train", "--resume", tmp_path / "run0",
                        "--runs-dir", tmp_path / "out_runs"])
    line = _one_error(code, err)
    assert "--resume" in line and "--checkpoint" not in line


# 9. Help text shows user syntax as written ----------------------------------------------------

@pytest.mark.parametrize("argv", [["evaluate", "--help"], ["data", "import", "--help"]])
def test_help_has_no_emoji_or_markup(cli, argv):
    code, out, _ = cli(argv)
    assert code == 0
    assert all(ord(ch) < 0x2000 or ch in "│─╭╮╰╯" for ch in out), "emoji in help"
    if argv[0] == "evaluate":
        assert "pkg.module:factory:" in out.replace("\n", " ")
