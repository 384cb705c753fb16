"""Bad-input corpus (issue 8): each case runs through the CLI and must end with exit 2, one line
on stderr, no traceback, nothing written outside its output folder and nothing that existed
before deleted or changed. Every fixture is built in tmp_path; nothing binary is committed.

Cases: --force pointed at inputs, at other commands' outputs and at user folders; manifest
entries outside a synthetic set; bad --seeds and --device; full disks (mocked) in data import,
generate and the checkpoint save of train.
"""

from __future__ import annotations

import errno
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

CUDA = torch.cuda.is_available()


@pytest.fixture(scope="module")
def built(tmp_path_factory, phantom_dataset):
    """One tiny conditional run and one synthetic set, copied into each test's tmp_path."""
    from synthmed.config import load_config
    from synthmed.sampling.writer import write_synthetic
    from synthmed.training import train

    root = tmp_path_factory.mktemp("corpus")
    cfg = load_config(None, [f"data.path={phantom_dataset}", "model.name=acgan", "name=bad",
                             "model.base_width=8", "model.latent_dim=8", "train.batch_size=8",
                             "train.steps=2", "train.log_every=1", "train.num_threads=1"])
    run = train(cfg, runs_dir=root / "runs", progress=False)
    syn = write_synthetic(run, root / "syn", n=2)
    return {"run": run, "syn": syn}


@pytest.fixture
def world(tmp_path, built, phantom_dataset):
    """tmp_path/{runs/00000-bad, data/ds, raw/<class>/*.png, mine/notes.txt, syn}."""
    from PIL import Image

    w = {"root": tmp_path}
    w["runs"] = tmp_path / "runs"
    w["run"] = shutil.copytree(built["run"], w["runs"] / built["run"].name)
    w["ds"] = shutil.copytree(phantom_dataset, tmp_path / "data" / "ds")
    w["syn"] = shutil.copytree(built["syn"], tmp_path / "syn")
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / "raw" / c).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (16, 16), np.uint8)).save(
                tmp_path / "raw" / c / f"p{i % 2}_{i}.png")
    w["raw"] = tmp_path / "raw"
    w["mine"] = tmp_path / "mine"
    w["mine"].mkdir()
    (w["mine"] / "notes.txt").write_text("my own work")
    return w


def snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under ``root`` (hidden ones too) with a hash of its bytes."""
    snap = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        snap[rel] = hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return snap


def assert_refused(cli, argv, root: Path, out: Path | None, needle: str) -> str:
    before = snapshot(root)
    code, _, err = cli(argv)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err and needle in lines[0], lines[0]
    after = snapshot(root)
    changed = [k for k, v in before.items() if after.get(k) != v]
    assert not changed, f"deleted or changed: {changed[:5]}"
    added = [k for k in after if k not in before]
    inside = str(out.relative_to(root)) if out is not None else None
    outside = [k for k in added if inside is None or not (k == inside or
                                                           k.startswith(inside + "/"))]
    assert not outside, f"written outside the output folder: {outside[:5]}"
    return lines[0]


def _fake_export(path: Path) -> Path:
    path.mkdir()
    (path / "export.json").write_text(json.dumps({"format": "png", "synthmed_version": "0"}))
    (path / "manifest.csv").write_text("path,label\n")
    return path


# (id, argv builder -> (argv, out), needle). ``w`` is the world dict.
FORCE_CASES = [
    ("generate-out-is-run", lambda w: (["generate", w["run"], "--n", 2, "--out", w["run"],
                                        "--force"], w["run"]), "is the run directory"),
    ("generate-out-is-runs", lambda w: (["generate", w["run"], "--n", 2, "--out", w["runs"],
                                         "--force"], w["runs"]), "contains the run directory"),
    ("generate-out-in-run", lambda w: (["generate", w["run"], "--n", 2, "--out",
                                        w["run"] / "checkpoints", "--force"],
                                       w["run"] / "checkpoints"), "lies inside the run"),
    ("generate-out-user", lambda w: (["generate", w["run"], "--n", 2, "--out", w["mine"],
                                      "--force"], w["mine"]), "notes.txt: not written by"),
    ("generate-out-dataset", lambda w: (["generate", w["run"], "--n", 2, "--out", w["ds"],
                                         "--force"], w["ds"]), "holds a prepared dataset"),
    ("generate-out-contains-train", lambda w: (
        ["generate", w["run"], "--n", 2, "--out", w["root"] / "data", "--force",
         "--exclude-near-copies", "--train", f"{w['ds']}:train"], w["root"] / "data"),
     "contains the --train dataset"),
    ("import-out-user", lambda w: (["data", "import", w["raw"], "--out", w["mine"], "--force"],
                                   w["mine"]), "notes.txt: not written by `synthmed data import`"),
    ("import-out-is-source", lambda w: (["data", "import", w["raw"], "--out", w["raw"],
                                         "--force"], w["raw"]), "is the source"),
    ("import-out-contains-source", lambda w: (["data", "import", w["raw"], "--out", w["root"],
                                               "--force"], w["root"]), "contains the source"),
    ("import-out-in-source", lambda w: (
        ["data", "import", w["raw"], "--out", shutil.copytree(w["ds"], w["raw"] / "prep"),
         "--force"], w["raw"] / "prep"), "lies inside the source"),
    ("import-out-synthetic", lambda w: (["data", "import", w["raw"], "--out", w["syn"],
                                         "--force"], w["syn"]), "holds a synthetic set"),
    ("import-out-export", lambda w: (["data", "import", w["raw"], "--out",
                                      _fake_export(w["root"] / "exp"), "--force"],
                                     w["root"] / "exp"), "holds an exported dataset"),
    ("import-out-is-file", lambda w: (["data", "import", w["raw"], "--out",
                                       w["mine"] / "notes.txt", "--force"], None),
     "is not a folder"),
    ("export-out-is-dataset", lambda w: (["data", "export", w["ds"], "--out", w["ds"],
                                          "--force"], w["ds"]), "is the dataset"),
    ("export-out-user", lambda w: (["data", "export", w["ds"], "--out", w["mine"], "--force"],
                                   w["mine"]), "notes.txt: not written by `synthmed data export`"),
    ("phantom-out-user", lambda w: (["data", "phantom", "--out", w["mine"], "--n", 8, "--size",
                                     16, "--force"], w["mine"]), "notes.txt: not written by"),
    ("phantom-out-dataset", lambda w: (["data", "phantom", "--out", w["ds"], "--n", 8, "--size",
                                        16, "--force"], w["ds"]), "holds a prepared dataset"),
]


@pytest.mark.parametrize("build,needle", [c[1:] for c in FORCE_CASES],
                         ids=[c[0] for c in FORCE_CASES])
def test_force_never_deletes_what_synthmed_did_not_make(cli, world, build, needle):
    argv, out = build(world)
    assert_refused(cli, argv, world["root"], out, needle)


GENERATE_CASES = [
    ("seeds-huge", ["--seeds", "99999999999999999999"], "too large"),
    ("seeds-repeated", ["--seeds", "1,1,1"], "seed 1 is listed 3 times"),
    ("seeds-too-many", ["--seeds", "0-9999999999"], "more than 1,000,000 images"),
    ("device-unknown", ["--n", 2, "--device", "tpu"], "unknown device"),
    pytest.param("device-cuda", ["--n", 2, "--device", "cuda"], "CUDA is not available",
                 marks=pytest.mark.skipif(CUDA, reason="CUDA is available here")),
]


@pytest.mark.parametrize("case,args,needle", GENERATE_CASES)
def test_generate_bad_options(cli, world, case, args, needle):
    out = world["root"] / "o"
    assert_refused(cli, ["generate", world["run"], *args, "--out", out], world["root"], out,
                   needle)


@pytest.mark.parametrize("bad", ["../data/ds/manifest.csv", "/etc/hostname", "images/../../x"])
def test_evaluate_refuses_manifest_entries_outside_the_set(cli, world, bad):
    manifest = world["syn"] / "manifest.csv"
    rows = manifest.read_text().splitlines()
    manifest.write_text("\n".join([rows[0], f"{bad},,0", *rows[2:]]) + "\n")
    out = world["root"] / "eval"
    line = assert_refused(cli, ["evaluate", "--real", f"{world['ds']}:test", "--synthetic",
                                world["syn"], "--out", out], world["root"], out, "points outside")
    assert "manifest.csv line 2" in line


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_full_disk_in_data_import(cli, world, monkeypatch):
    monkeypatch.setattr(np, "save", _enospc)
    out = world["root"] / "new"
    line = assert_refused(cli, ["data", "import", world["raw"], "--out", out],
                          world["root"], out, "no space left on device (about")
    assert str(out) in line and not out.exists()


@pytest.mark.parametrize("fmt,target", [("png", "PIL.Image.Image.save"),
                                        ("dicom", "pydicom.dataset.Dataset.save_as"),
                                        ("npz", "numpy.savez_compressed")])
def test_full_disk_in_generate(cli, world, monkeypatch, fmt, target):
    monkeypatch.setattr(target, _enospc)
    line = assert_refused(cli, ["generate", world["run"], "--n", 2, "--format", fmt, "--out",
                                world["syn"], "--force"], world["root"], world["syn"],
                          "no space left on device (about")
    assert str(world["syn"]) in line


def test_full_disk_in_train_checkpoint_save(cli, world, monkeypatch, phantom_dataset):
    from synthmed import fileio

    class Full:
        def __init__(self, *a, **k):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

        write = staticmethod(_enospc)

    monkeypatch.setattr(fileio, "open", Full, raising=False)  # the checkpoint writer's open
    runs, config = world["root"] / "newruns", world["root"] / "tiny.yaml"
    config.write_text(f"data:\n  path: {phantom_dataset}\nmodel:\n  base_width: 8\n"
                      "  latent_dim: 8\ntrain:\n  batch_size: 8\n  steps: 1\n"
                      "  num_threads: 1\n")
    line = assert_refused(cli, ["train", config, "--runs-dir", runs, "--no-progress"],
                          world["root"], runs, "latest.pt: no space left on device (about")
    assert "MB needed" in line or "KB needed" in line


def test_odd_class_names_end_to_end_stay_inside_out(cli, world):
    """--class-names with ``../``, ``/``, non-ASCII: import, export and generate all succeed and
    write only inside their --out (exit 0 here: the names are made safe, not refused)."""
    root = world["root"]
    before = snapshot(root)
    ds, exp = root / "odd", root / "odd-export"
    code, _, err = cli(["data", "import", world["raw"], "--out", ds, "--class-names",
                        "a=../../up,b=/abs/恶性", "--split", "0.5,0.25,0.25"])
    assert code == 0, err
    code, _, err = cli(["data", "export", ds, "--out", exp])
    assert code == 0, err
    after = snapshot(root)
    added = [k for k in after if k not in before]
    assert all(k.split("/")[0] in ("odd", "odd-export") for k in added), added
    assert all(after[k] == v for k, v in before.items())
    from synthmed.data.dataset import PreparedDataset

    assert PreparedDataset(ds).class_names == ["../../up", "/abs/恶性"]
    assert {p.parent.name for p in (exp / "images").rglob("*.png")} == {"up", "abs_恶性"}


def test_full_disk_in_any_other_write_is_one_line(cli, world, monkeypatch):
    """A write without its own handler (a log line, metrics.jsonl) on a full disk: one line."""
    import synthmed.data.phantom as phantom

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", "runs/x/metrics.jsonl")

    monkeypatch.setattr(phantom, "write_phantom", full)
    out = world["root"] / "ph"
    line = assert_refused(cli, ["data", "phantom", "--out", out], world["root"], out,
                          "no space left on device")
    assert "runs/x/metrics.jsonl" in line
