"""The whole study on the phantom (seconds), its outputs, its guards, and the CLI."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import yaml

from synthmed.config import load_config
from synthmed.data.dataset import PreparedDataset
from synthmed.errors import ConfigError, DataError
from synthmed.tasks.utility import plan_jobs, prepare_study, run_utility

FAST = ["utility.epochs=1", "utility.batch_size=16", "utility.num_threads=1"]


def _cfg(data, *extra):
    return load_config(None, [f"data.path={data}", *FAST, *extra])


def test_classification_smoke(phantom_dataset, synthetic_phantom, tmp_path):
    cfg = _cfg(phantom_dataset, f"utility.synthetic={synthetic_phantom}", "utility.seeds=2",
               "utility.ratios=[1.0]")
    run = run_utility(cfg, runs_dir=tmp_path)
    doc = json.loads((run / "utility.json").read_text())
    arms = {(r["arm"], r["ratio"]) for r in doc["runs"]}
    assert arms == {("real", 0), ("real+classic", 0), ("real+classic+synthetic", 1.0),
                    ("real+classic+duplicate", 1.0), ("synthetic-only", 1.0)}
    assert len(doc["runs"]) == 10 and doc["primary_metric"] == "auc"
    by = {(r["arm"], r["seed"]): r for r in doc["runs"]}
    n_train = doc["dataset"]["n"]["train"]
    for seed in (0, 1):
        syn, dup = by["real+classic+synthetic", seed], by["real+classic+duplicate", seed]
        assert syn["n_synthetic"] == n_train and syn["n_real"] == n_train
        assert dup["n_real"] == 2 * n_train and dup["n_train"] == syn["n_train"]
        assert sum(syn["class_counts"]["synthetic"]) == dup["n_real"] - n_train
        assert by["real", seed]["threshold"] is not None
    refs = {(c["arm"], c["reference"], c["reference_ratio"]) for c in doc["comparisons"]
            if c["metric"] == "auc"}
    dup = ("real+classic+duplicate", 1.0)
    assert refs == {("real", "real+classic", 0.0), ("real", *dup), ("real+classic", *dup),
                    ("real+classic+synthetic", "real+classic", 0.0),
                    ("real+classic+synthetic", *dup),
                    ("real+classic+duplicate", "real+classic", 0.0),
                    ("synthetic-only", "real+classic", 0.0), ("synthetic-only", *dup)}
    assert len(doc["result_lines"]) == len(refs)
    assert doc["positive_class"] == doc["dataset"]["class_names"][-1]  # binary: recorded
    assert all("n/a: fewer than 3 seeds" in line for line in doc["result_lines"])  # 2 seeds
    with open(run / "utility.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["arm", "ratio", "seed", "metric", "value"]
    assert {"auc", "sensitivity", "specificity", "sensitivity[malignant]"} <= {
        r["metric"] for r in rows}
    for name in ("roc.png", "confusion.png", "confusion.csv", "utility.png", "config.yaml"):
        assert (run / name).is_file()


def test_segmentation_smoke(phantom_dataset, synthetic_pairs, tmp_path):
    cfg = _cfg(phantom_dataset, "utility.task=segmentation", f"utility.synthetic={synthetic_pairs}",
               "utility.seeds=2", "utility.arms=[real+classic, real+classic+synthetic, "
               "real+classic+duplicate]", "utility.ratios=[0.5]")
    run = run_utility(cfg, runs_dir=tmp_path)
    doc = json.loads((run / "utility.json").read_text())
    assert doc["model"] == "unet" and doc["primary_metric"] == "dice" and len(doc["runs"]) == 6
    for r in doc["runs"]:
        assert 0 <= r["test"]["dice"] <= 1 and r["test"]["hd95"] >= 0
    assert any("Dice" in line for line in doc["result_lines"])
    assert (run / "utility.png").is_file() and not (run / "roc.png").exists()


def test_threshold_is_chosen_on_val_only(phantom_dataset, tmp_path, monkeypatch):
    import synthmed.tasks.utility as utility

    seen = []
    real = utility.youden_threshold
    monkeypatch.setattr(utility, "youden_threshold",
                        lambda y, s: seen.append(len(y)) or real(y, s))
    cfg = _cfg(phantom_dataset, "utility.seeds=1", "utility.arms=[real]")
    run = run_utility(cfg, runs_dir=tmp_path)
    ds = PreparedDataset(phantom_dataset)
    assert seen == [len(ds.indices("val"))]
    rec = json.loads((run / "utility.json").read_text())["runs"][0]
    assert rec["test"]["threshold"] == rec["val"]["threshold"] == rec["threshold"]


def test_default_arms_without_synthetic_skip_synthetic_arms(phantom_dataset):
    study = prepare_study(_cfg(phantom_dataset, "utility.ratios=[0.5, 2]"))
    assert [(j.kind, j.ratio) for j in plan_jobs(study)] == [
        ("real", 0.0), ("real+classic", 0.0), ("real+classic+duplicate", 0.5),
        ("real+classic+duplicate", 2.0)]


def test_several_synthetic_sets_get_their_own_arms(phantom_dataset, synthetic_phantom):
    study = prepare_study(_cfg(phantom_dataset, "utility.arms=[real+classic+synthetic]",
                               f"utility.synthetic=[{synthetic_phantom}, {synthetic_phantom}]"))
    assert [j.label for j in plan_jobs(study)] == ["real+classic+synthetic@set",
                                                   "real+classic+synthetic@set-1"]


@pytest.mark.parametrize("override,match", [
    ("utility.arms=[real, real+gan]", r"utility.arms: unknown arm 'real\+gan'"),
    ("utility.arms=[synthetic-only]", "utility.synthetic: the chosen arms need"),
    ("utility.ratios=[0]", "utility.ratios"),
    ("utility.seeds=0", "utility.seeds"),
    ("utility.model=vgg", "utility.model: unknown classifier 'vgg'"),
    ("utility.positive_class=cancer", "utility.positive_class: 'cancer'"),
    ("utility.select_metric=dice", "utility.select_metric"),
])
def test_config_errors_name_the_key(phantom_dataset, override, match):
    with pytest.raises(ConfigError, match=match):
        prepare_study(_cfg(phantom_dataset, override))


def _real_arrays(phantom_dataset):
    ds = PreparedDataset(phantom_dataset)
    return ds, np.asarray(ds.images)[:, 0], ds.labels


def test_synthetic_sources_that_would_leak_are_refused(phantom_dataset, tmp_path, make_synthetic):
    ds, images, labels = _real_arrays(phantom_dataset)
    with pytest.raises(DataError, match="real dataset itself"):
        prepare_study(_cfg(phantom_dataset, f"utility.synthetic={phantom_dataset}"))
    test_row = ds.indices("test")[0]
    copy = make_synthetic(tmp_path / "copy", images[[0, 1, test_row]], labels[[0, 1, test_row]],
                           ds.class_names)
    with pytest.raises(DataError, match="1 images are pixel-identical to real val/test"):
        prepare_study(_cfg(phantom_dataset, f"utility.synthetic={copy}"))
    train = ds.indices("train")[:4]
    saw_all = make_synthetic(tmp_path / "all", 255 - images[train], labels[train],
                              ds.class_names, dataset_hash=ds.content_hash,
                              config={"data": {"split": "all"}})
    with pytest.raises(DataError, match="trained on the 'all' split"):
        prepare_study(_cfg(phantom_dataset, f"utility.synthetic={saw_all}"))


def test_unusable_synthetic_sets(phantom_dataset, tmp_path, make_synthetic):
    ds, images, labels = _real_arrays(phantom_dataset)
    inverted = 255 - images[:4]
    uncond = make_synthetic(tmp_path / "u", inverted, np.full(4, -1), ds.class_names)
    with pytest.raises(DataError, match="unconditional"):
        prepare_study(_cfg(phantom_dataset, f"utility.synthetic={uncond}"))
    other = make_synthetic(tmp_path / "o", inverted, np.array([0, 1, 0, 1]), ["cyst", "solid"])
    with pytest.raises(DataError, match="cyst, solid are not classes"):
        prepare_study(_cfg(phantom_dataset, f"utility.synthetic={other}"))
    with pytest.raises(DataError, match="no masks"):
        prepare_study(_cfg(phantom_dataset, "utility.task=segmentation",
                           f"utility.synthetic={uncond}"))


def test_cli_runs_and_reports_errors_in_one_line(phantom_dataset, tmp_path, capsys):
    from synthmed.cli import main

    cfg = tmp_path / "u.yaml"
    cfg.write_text(yaml.safe_dump({"name": "clitest", "data": {"path": str(phantom_dataset)},
                                   "utility": {"arms": ["real"], "epochs": 1, "num_threads": 1}}))
    with pytest.raises(SystemExit) as ok:
        main(["utility", str(cfg), "--seeds", "1", "--runs-dir", str(tmp_path / "runs")])
    out = capsys.readouterr().out
    assert ok.value.code == 0
    assert "utility:" in out and (tmp_path / "runs" / "00000-clitest-utility").is_dir()
    with pytest.raises(SystemExit) as e:
        main(["utility", str(cfg), "--weights", str(tmp_path / "none.pt"), "--runs-dir",
              str(tmp_path / "runs2"), "--set", "utility.model=resnet18"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "weights file not found" in err


def test_multiclass_study(tmp_path):
    from synthmed.data.dataset import write_prepared

    rng = np.random.default_rng(0)
    labels = np.arange(60) % 3
    shift = (labels * 60).astype(np.uint8)[:, None, None, None]  # class = brightness
    images = rng.integers(0, 80, (60, 1, 16, 16), dtype=np.uint8) + shift
    splits = ["train"] * 36 + ["val"] * 12 + ["test"] * 12
    data = write_prepared(tmp_path / "three", images=images, labels=labels, splits=splits,
                          class_names=["a", "b", "c"])
    cfg = _cfg(data, "utility.model=fridadar-cnn", "utility.seeds=[3]",
               "utility.arms=[real, real+classic+duplicate]", "utility.class_mix=fill")
    doc = json.loads((run_utility(cfg, runs_dir=tmp_path / "runs") / "utility.json").read_text())
    for r in doc["runs"]:
        assert r["threshold"] is None and np.array(r["test"]["confusion"]).shape == (3, 3)
        assert set(r["test"]["per_class"]) == {"a", "b", "c"} and 0 <= r["test"]["auc"] <= 1
    assert doc["seeds"] == [3] and doc["runs"][1]["class_counts"]["real"] == [24, 24, 24]
    assert doc["positive_class"] is None  # meaningless with three classes: not recorded
    assert any("fewer than 10 test images in class(es) a (4), b (4), c (4)" in w
               for w in doc["warnings"])
    assert any("1 seed(s)" in w and "unreliable" in w for w in doc["warnings"])


def test_interrupted_study_keeps_finished_runs(phantom_dataset, tmp_path, monkeypatch):
    import synthmed.tasks.utility as utility

    real_job, calls = utility.run_job, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_job(*args, **kwargs)

    monkeypatch.setattr(utility, "run_job", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_utility(_cfg(phantom_dataset, "utility.seeds=2", "utility.arms=[real, real+classic]"),
                    runs_dir=tmp_path)
    (run,) = tmp_path.iterdir()
    with open(run / "utility.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {(r["arm"], r["seed"]) for r in rows} == {("real", "0"), ("real", "1")}
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2


def test_the_study_prints_a_time_estimate_after_its_first_run(phantom_dataset, tmp_path):
    """Issue 19 item 6: 5 seeds x 30 epochs ran for many minutes without an estimate."""
    lines = []
    cfg = _cfg(phantom_dataset, "utility.seeds=2", "utility.arms=[real, real+classic]")
    run_utility(cfg, runs_dir=tmp_path, log=lines.append)
    est = [x for x in lines if x.startswith("estimate: ")]
    assert len(est) == 2 and "4 runs (2 arms x 2 seeds x 1 epochs) at least" in est[0]
    assert "without augmentation" not in est[1]
    assert lines.index(est[0]) < next(i for i, x in enumerate(lines) if "seed 1:" in x)
