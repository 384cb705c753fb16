"""Bad-input corpus, adversarial cases of issue 19: each failed before its fix (a traceback, a
kernel kill, a silent success on garbage). Exit 2 with one ``error:`` line, or exit 0 with the
notice the user needs; nothing written outside the output folder."""

from __future__ import annotations

import numpy as np
import pytest


def one_error(code: int, err: str) -> str:
    lines = [x for x in err.splitlines() if x.strip()]
    assert "Traceback" not in err, err
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, err)
    return lines[0]


@pytest.fixture
def tiny_yaml(tmp_path, phantom_dataset):
    """A config that trains in a second on the session phantom; extra YAML lines appended."""

    def make(extra: str = "", name: str = "tiny.yaml"):
        path = tmp_path / name
        path.write_text(f"data:\n  path: {phantom_dataset}\nmodel:\n  base_width: 8\n"
                        "  latent_dim: 8\ntrain:\n  batch_size: 8\n  steps: 2\n"
                        f"  log_every: 1\n  num_threads: 1\n{extra}")
        return path

    return make


# Configs -------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["", "# only a comment\n", "\n\n"])
def test_empty_config_is_refused(cli, tmp_path, text):
    (tmp_path / "e.yaml").write_text(text)
    line = one_error(*cli(["train", tmp_path / "e.yaml", "--runs-dir", tmp_path / "runs"])[::2])
    assert "e.yaml" in line and "empty" in line
    assert not (tmp_path / "runs").exists()


def test_config_not_utf8_is_one_line(cli, tmp_path):
    (tmp_path / "l.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    line = one_error(*cli(["train", tmp_path / "l.yaml", "--runs-dir", tmp_path / "runs"])[::2])
    assert "l.yaml" in line and "UTF-8" in line


@pytest.mark.parametrize("override,needle", [
    ("train.seed=99999999999999999999999", "train.seed"),
    ("train.seed=-1", "train.seed"),
    ("train.betas=[2,3]", "train.betas"),
    ("train.betas=[0.5,1.5]", "train.betas"),
    ("train.lr_g=inf", "train.lr_g"),
    ("train.lr_d=.inf", "train.lr_d"),
    ("train.lr_g=nan", "train.lr_g"),
    ("utility.lr=inf", "utility.lr"),
])
def test_bad_train_values_are_one_line(cli, tmp_path, tiny_yaml, override, needle):
    code, _, err = cli(["train", tiny_yaml(), "--set", override, "--runs-dir", tmp_path / "runs",
                        "--no-progress"])
    assert needle in one_error(code, err)
    assert not (tmp_path / "runs").exists()


# .npz sources --------------------------------------------------------------------------------

def _zip_with(path, members: dict[str, bytes]):
    import zipfile

    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


@pytest.mark.parametrize("make,needle", [
    (lambda p: _zip_with(p, {"images.npy": b"not an array at all"}), "'images' is not a NumPy"),
    (lambda p: p.write_text("just some text\n"), "not a .npz file"),
])
def test_broken_npz_is_one_line(cli, tmp_path, make, needle):
    src = tmp_path / "data.npz"
    make(src)
    code, _, err = cli(["data", "import", src, "--out", tmp_path / "out"])
    line = one_error(code, err)
    assert needle in line and str(src) in line and "pickle" not in line
    assert not (tmp_path / "out").exists()


# Diverged training and generation ------------------------------------------------------------

@pytest.mark.parametrize("log_every", [1, 100])  # found in a logged record / before a checkpoint
def test_nan_losses_stop_training(cli, tmp_path, tiny_yaml, log_every):
    """lr_g=1e10 made the losses nan from step 5 to the end with exit 0 (and generate then wrote
    black images with exit 0)."""
    config = tiny_yaml("  lr_g: 1.0e+10\n  lr_d: 1.0e+10\n  checkpoint_every: 2\n"
                       "  sample_every: 100\n").read_text().replace("steps: 2", "steps: 30")
    config = config.replace("log_every: 1", f"log_every: {log_every}")
    (tmp_path / "nan.yaml").write_text(config)
    code, _, err = cli(["train", tmp_path / "nan.yaml", "--set", "model.name=cgan",
                        "--runs-dir", tmp_path / "runs", "--no-progress"])
    line = one_error(code, err)
    step = int(line.split(" step ")[1].split(":")[0])
    if log_every == 1:
        assert line.startswith("error: training diverged at step ") and "is nan" in line
    else:
        assert line.startswith("error: training diverged by step ") and "NaN or Inf" in line
    run = next((tmp_path / "runs").iterdir())
    assert "training diverged" in (run / "log.txt").read_text()
    ckpts = sorted(p.name for p in (run / "checkpoints").glob("step-*.pt"))
    assert all(int(p[5:13]) < step for p in ckpts)  # none of the diverged weights
    if ckpts:
        assert ckpts[-1] in line
    else:
        assert "no checkpoint was written" in line


def test_generate_refuses_nan_outputs(cli, tmp_path, tiny_yaml, monkeypatch):
    code, _, err = cli(["train", tiny_yaml(), "--runs-dir", tmp_path / "runs", "--no-progress"])
    assert code == 0, err
    run = next((tmp_path / "runs").iterdir())
    import synthmed.models.dcgan as dcgan

    forward = dcgan.DCGANGenerator.forward
    monkeypatch.setattr(dcgan.DCGANGenerator, "forward",
                        lambda self, *a, **k: forward(self, *a, **k) * float("nan"))
    code, _, err = cli(["generate", run, "--n", 4, "--out", tmp_path / "out"])
    assert "NaN or Inf" in one_error(code, err)
    assert not (tmp_path / "out").exists()


def test_match_train_alone_generates_the_training_split(cli, tmp_path, tiny_yaml,
                                                        phantom_dataset):
    from synthmed.data.dataset import PreparedDataset

    code, _, err = cli(["train", tiny_yaml(), "--set", "model.name=cgan",
                        "--runs-dir", tmp_path / "runs", "--no-progress"])
    assert code == 0, err
    run = next((tmp_path / "runs").iterdir())
    code, _, err = cli(["generate", run, "--match-train", "--out", tmp_path / "out"])
    assert code == 0, err
    n_train = len(PreparedDataset(phantom_dataset).indices("train"))
    rows = (tmp_path / "out" / "manifest.csv").read_text().splitlines()[1:]
    assert len(rows) == n_train


# Checkpoints ---------------------------------------------------------------------------------

def _flip_a_weight_bit(path) -> None:
    """Flip one bit in the middle of the checkpoint's largest tensor (not in the zip headers)."""
    import struct
    import zipfile

    with zipfile.ZipFile(path) as z:
        info = max(z.infolist(), key=lambda i: i.file_size)
    raw = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
    at = info.header_offset + 30 + name_len + extra_len + info.file_size // 2
    raw[at] ^= 0x10
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("command", ["generate", "resume"])
def test_bit_flipped_checkpoint_is_refused(cli, tmp_path, tiny_yaml, command):
    code, _, err = cli(["train", tiny_yaml(), "--runs-dir", tmp_path / "runs", "--no-progress"])
    assert code == 0, err
    run = next((tmp_path / "runs").iterdir())
    _flip_a_weight_bit(run / "checkpoints" / "latest.pt")
    argv = (["generate", run, "--n", 2, "--out", tmp_path / "out"] if command == "generate" else
            ["train", "--resume", run, "--set", "train.steps=4", "--no-progress"])
    line = one_error(*cli(argv)[::2])
    assert "latest.pt: checkpoint is corrupt" in line and "CRC" in line
    assert not (tmp_path / "out").exists()


# Batch size and memory -----------------------------------------------------------------------

def test_batch_larger_than_the_data_is_clamped_with_a_notice(cli, tmp_path, tiny_yaml,
                                                             phantom_dataset):
    """batch_size=100000 on 48 images was killed by the kernel at ~23 GB, nothing printed."""
    from synthmed.data.dataset import PreparedDataset

    n = len(PreparedDataset(phantom_dataset).indices("train"))
    code, _, err = cli(["train", tiny_yaml(), "--set", "train.batch_size=100000",
                        "--runs-dir", tmp_path / "runs", "--no-progress"])
    assert code == 0, err
    assert f"warning: train.batch_size 100,000 is larger than the training split ({n} images)" \
        in err
    run = next((tmp_path / "runs").iterdir())
    assert f"batch_size: {n}\n" in (run / "config.yaml").read_text()


def test_batch_beyond_memory_is_refused_before_training(cli, tmp_path, tiny_yaml, monkeypatch):
    import synthmed.data.preprocess as pre

    monkeypatch.setattr(pre, "available_memory", lambda: 2**16)  # 64 KiB left
    code, _, err = cli(["train", tiny_yaml(), "--runs-dir", tmp_path / "runs", "--no-progress"])
    line = one_error(code, err)
    assert "train.batch_size: 8 images of 32x32 px need at least" in line and "MiB" in line
    assert not (tmp_path / "runs").exists()


# Partly labelled data ------------------------------------------------------------------------

@pytest.fixture
def partly_labelled(tmp_path):
    from synthmed.data.dataset import write_prepared

    rng = np.random.default_rng(0)
    labels = np.array([0, 1, 2, 3, 4] * 4 + [-1] * 6)
    return write_prepared(tmp_path / "pl", images=rng.integers(0, 256, (26, 1, 16, 16),
                                                               dtype=np.uint8),
                          labels=labels, splits=["train"] * 26,
                          class_names=["a", "b", "c", "d", "e"])


@pytest.mark.parametrize("model,trained", [("cgan", 20), ("dcgan", 26)])
def test_partly_labelled_data_trains_conditional_models_on_the_labelled(
        cli, tmp_path, tiny_yaml, partly_labelled, model, trained):
    code, _, err = cli(["train", tiny_yaml(), "--set", f"data.path={partly_labelled}",
                        "--set", f"model.name={model}", "--runs-dir", tmp_path / "runs",
                        "--no-progress"])
    assert code == 0, err
    log = next((tmp_path / "runs").iterdir()).joinpath("log.txt").read_text()
    assert f"({trained} images, {5 if model == 'cgan' else 0} classes)" in log
    assert ("warning: 6 of 26 training images have no label" in err) == (model == "cgan")


# synthmed run ---------------------------------------------------------------------------------

def test_second_run_on_a_locked_run_dir_is_refused(cli, tmp_path, tiny_yaml):
    """Two `synthmed run` on one run dir both trained, interleaving log.txt."""
    from synthmed.pipeline import runner

    rd = tmp_path / "rd"
    runner._open_run_dir(rd)
    (rd / "log.txt").write_text("first run\n")
    with runner._run_lock(rd):
        code, _, err = cli(["run", tiny_yaml(), "--run-dir", rd, "--no-progress"])
    line = one_error(code, err)
    assert "another synthmed run is using this run directory" in line
    assert (rd / "log.txt").read_text() == "first run\n" and not (rd / "config.yaml").exists()


def test_run_dir_inside_a_prepared_dataset_is_refused(cli, tmp_path, tiny_yaml, phantom_dataset):
    import shutil

    ds = shutil.copytree(phantom_dataset, tmp_path / "ds")
    code, _, err = cli(["run", tiny_yaml(), "--run-dir", ds / "runs" / "x", "--no-progress"])
    assert "lies inside the prepared dataset" in one_error(code, err)
    assert not (ds / "runs").exists()


# data export ----------------------------------------------------------------------------------

def test_export_keeps_colliding_class_names_apart(cli, tmp_path):
    """`x y`, `x_y`, `X_Y` were merged into one x_y folder (Benign/benign on macOS too)."""
    from synthmed.data.dataset import write_prepared

    rng = np.random.default_rng(0)
    names = ["x y", "x_y", "X_Y", "Benign", "benign"]
    ds = write_prepared(tmp_path / "ds", images=rng.integers(0, 256, (10, 1, 8, 8), np.uint8),
                        labels=[0, 1, 2, 3, 4] * 2, splits=["train"] * 10, class_names=names)
    code, _, err = cli(["data", "export", ds, "--out", tmp_path / "exp"])
    assert code == 0, err
    folders = sorted(p.name for p in (tmp_path / "exp" / "images" / "train").iterdir())
    assert folders == ["Benign", "X_Y-3", "benign-2", "x_y", "x_y-2"]
    rows = (tmp_path / "exp" / "manifest.csv").read_text().splitlines()[1:]
    by_folder = {r.split(",")[0].split("/")[1]: r.split(",")[1] for r in rows}
    assert by_folder["X_Y-3"] == "X_Y" and by_folder["benign-2"] == "benign"


# data import: smaller cases ------------------------------------------------------------------

def _pngs(root, n=4, size=16):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (size, size), np.uint8)).save(
                root / c / f"p{i}.png")
    return root


def test_decompression_bomb_is_named_as_such(cli, tmp_path, monkeypatch):
    from PIL import Image

    src = _pngs(tmp_path / "src")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 16x16 = 256 px > 2 x 100
    line = one_error(*cli(["data", "import", src, "--out", tmp_path / "out"])[::2])
    assert "decompression bomb" in line and "corrupt" not in line


def test_skip_bad_warnings_name_the_file(cli, tmp_path):
    src = _pngs(tmp_path / "src")
    rows = "".join(f"{c}/p{i}.png,{c}\n" for c in "ab" for i in range(4) if (c, i) != ("b", 3))
    (tmp_path / "l.csv").write_text("path,label\n" + rows)
    code, _, err = cli(["data", "import", src, "--labels-csv", tmp_path / "l.csv", "--skip-bad",
                        "--split", "0.5,0.25,0.25", "--out", tmp_path / "out"])
    assert code == 0, err
    assert "warning: skipped b/p3.png: not listed in" in err
