"""utility.synthetic_filter: keep only the synthetic images a real-data classifier agrees with."""

from __future__ import annotations

import json

import numpy as np
import pytest

from synthmed.config import load_config
from synthmed.errors import ConfigError
from synthmed.tasks.filtering import filter_sources, select_synthetic
from synthmed.tasks.utility import plan_jobs, prepare_study, run_utility

FAST = ["utility.epochs=1", "utility.batch_size=16", "utility.num_threads=1"]


def test_select_classifier_agree_keeps_only_agreeing_labels():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    labels = np.array([0, 1, 1, 0])  # the last two disagree with the classifier
    keep = select_synthetic(probs, labels, "classifier-agree")
    assert keep.tolist() == [True, True, False, False]


def test_classifier_agree_judges_with_equal_priors():
    probs = np.array([[0.7, 0.3], [0.9, 0.1]])  # a classifier trained on 80 % class 0
    labels = np.array([1, 1])
    assert not select_synthetic(probs, labels, "classifier-agree").any()
    keep = select_synthetic(probs, labels, "classifier-agree", priors=np.array([0.8, 0.2]))
    assert keep.tolist() == [True, False]  # 0.3/0.2 > 0.7/0.8; 0.1/0.2 < 0.9/0.8


def test_select_confidence_topk_keeps_a_fraction_per_class():
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.7, 0.3], [0.2, 0.8], [0.4, 0.6], [0.45, 0.55]])
    labels = np.array([0, 0, 0, 1, 1, 1])
    keep = select_synthetic(probs, labels, "confidence-topk", keep=0.5)
    # ceil(0.5 * 3) = 2 per class, the most confident in the intended label
    assert keep.tolist() == [True, False, True, True, True, False]
    assert select_synthetic(probs, labels, "confidence-topk", keep=1.0).all()
    assert select_synthetic(probs, labels, "none").all()


def test_select_unknown_method_is_an_error():
    with pytest.raises(ConfigError, match="utility.synthetic_filter"):
        select_synthetic(np.ones((1, 2)) / 2, np.zeros(1, np.int64), "agree")


@pytest.mark.parametrize("value", ["classifier_agree", "topk"])
def test_config_rejects_unknown_filter_naming_the_key(value):
    with pytest.raises(ConfigError, match="utility.synthetic_filter"):
        load_config(None, [f"utility.synthetic_filter={value}"])


@pytest.mark.parametrize("keep", [0, 1.5])
def test_config_rejects_keep_outside_0_1(keep):
    with pytest.raises(ConfigError, match="utility.synthetic_filter_keep"):
        load_config(None, [f"utility.synthetic_filter_keep={keep}"])


def _toy(tmp_path, make_synthetic):
    """Real: class 0 dark, class 1 bright (trivially learnable). Synthetic: 8 correct dark
    'benign', 8 correct bright 'malignant', and 6 bright images mislabelled 'benign'."""
    from synthmed.data.dataset import write_prepared

    rng = np.random.default_rng(0)

    def imgs(n, bright):
        base = 200 if bright else 40
        return np.clip(base + rng.normal(0, 10, (n, 16, 16)), 0, 255).astype(np.uint8)

    labels = np.array([0, 1] * 30)
    images = np.stack([imgs(1, k == 1)[0] for k in labels])
    splits = ["train"] * 40 + ["val"] * 10 + ["test"] * 10
    real = write_prepared(tmp_path / "real", images=images[:, None], labels=labels, splits=splits,
                          class_names=["benign", "malignant"], groups=[str(i) for i in range(60)])
    syn_images = np.concatenate([imgs(8, False), imgs(8, True), imgs(6, True)])
    syn_labels = np.array([0] * 8 + [1] * 8 + [0] * 6)
    syn = make_synthetic(tmp_path / "syn", syn_images, syn_labels, ["benign", "malignant"])
    return real, syn


def test_classifier_agree_drops_mislabelled_images(tmp_path, make_synthetic):
    real, syn = _toy(tmp_path, make_synthetic)
    cfg = load_config(None, [f"data.path={real}", f"utility.synthetic={syn}", "utility.epochs=4",
                             "utility.batch_size=8", "utility.num_threads=1",
                             "utility.synthetic_filter=classifier-agree",
                             "utility.model=fridadar-cnn"])
    study = prepare_study(cfg)
    filter_sources(study, plan_jobs(study))
    src = study.sources["syn"]
    assert len(src) == 16 and np.bincount(src.labels).tolist() == [8, 8]
    assert (np.asarray(src.images).mean(axis=(1, 2, 3)) < 128).sum() == 8  # the dark benign
    info = study.source_info[0]["filter"]
    assert info["method"] == "classifier-agree"
    assert info["kept"] == {"benign": 8, "malignant": 8}
    assert info["before"] == {"benign": 14, "malignant": 8}
    assert info["classifier"]["trained_on"] == "train" and info["classifier"]["n_train"] == 40


def test_filter_trains_on_the_train_split_only(tmp_path, make_synthetic, monkeypatch):
    import synthmed.tasks.filtering as filtering

    real, syn = _toy(tmp_path, make_synthetic)
    seen = {}
    real_fit = filtering.fit

    def spy(build, train_set, val, val_rows, **kw):
        seen["train"] = sorted(r for _, r in train_set.items)
        seen["select"] = sorted(np.asarray(val_rows).tolist())
        return real_fit(build, train_set, val, val_rows, **kw)

    monkeypatch.setattr(filtering, "fit", spy)
    cfg = load_config(None, [f"data.path={real}", f"utility.synthetic={syn}", *FAST,
                             "utility.synthetic_filter=confidence-topk"])
    study = prepare_study(cfg)
    filter_sources(study, plan_jobs(study))
    train = study.rows["train"].tolist()
    assert seen["train"] == sorted(train) and seen["select"] == sorted(train)


def test_filter_that_empties_a_class_is_an_error(tmp_path, make_synthetic):
    real, _ = _toy(tmp_path, make_synthetic)
    rng = np.random.default_rng(1)
    dark = np.clip(40 + rng.normal(0, 10, (6, 16, 16)), 0, 255).astype(np.uint8)
    syn = make_synthetic(tmp_path / "bad", dark, np.array([0, 0, 0, 1, 1, 1]),
                         ["benign", "malignant"])  # every 'malignant' image looks benign
    cfg = load_config(None, [f"data.path={real}", f"utility.synthetic={syn}", "utility.epochs=4",
                             "utility.batch_size=8", "utility.num_threads=1",
                             "utility.model=fridadar-cnn",
                             "utility.synthetic_filter=classifier-agree"])
    study = prepare_study(cfg)
    with pytest.raises(ConfigError, match=r"utility.synthetic_filter: .*malignant"):
        filter_sources(study, plan_jobs(study))


def test_filter_without_synthetic_set_is_an_error(phantom_dataset):
    cfg = load_config(None, [f"data.path={phantom_dataset}", *FAST,
                             "utility.synthetic_filter=classifier-agree"])
    with pytest.raises(ConfigError, match="utility.synthetic_filter"):
        prepare_study(cfg)


def test_run_records_kept_counts_and_applies_only_to_synthetic_arms(
        phantom_dataset, synthetic_phantom, tmp_path):
    cfg = load_config(None, [
        f"data.path={phantom_dataset}", f"utility.synthetic={synthetic_phantom}", *FAST,
        "utility.seeds=1", "utility.arms=[real+classic, real+classic+synthetic, "
        "real+classic+duplicate]", "utility.synthetic_filter=confidence-topk",
        "utility.synthetic_filter_keep=0.25"])
    run = run_utility(cfg, runs_dir=tmp_path)
    doc = json.loads((run / "utility.json").read_text())
    info = doc["synthetic"][0]["filter"]
    before = info["before"]
    assert info["kept"] == {k: int(np.ceil(0.25 * n)) for k, n in before.items()}
    assert doc["settings"]["synthetic_filter"] == "confidence-topk"
    by = {r["arm"]: r for r in doc["runs"]}
    syn, dup = by["real+classic+synthetic"], by["real+classic+duplicate"]
    assert syn["n_synthetic_unique"] <= sum(info["kept"].values())
    assert syn["n_synthetic"] == doc["dataset"]["n"]["train"]  # ratio 1: count unchanged
    assert dup["n_train"] == syn["n_train"] and dup["n_synthetic"] == 0
    assert by["real+classic"]["n_train"] == doc["dataset"]["n"]["train"]
    assert any("synthetic_filter confidence-topk" in line for line in
               (run / "log.txt").read_text().splitlines())


def test_realism_topk_keeps_the_most_real_looking_share(tmp_path, make_synthetic):
    """Synthetic: per class 10 real-like images and 10 with a +-30 pixel checkerboard; the
    realism filter keeps the real-like half of each class and trains no network."""
    from synthmed.data.dataset import write_prepared

    rng = np.random.default_rng(0)

    def imgs(n, base):
        return np.clip(base + rng.normal(0, 20, (n, 16, 16)), 0, 255).astype(np.uint8)

    labels = np.array([0, 1] * 40)
    images = np.stack([imgs(1, 80 + 80 * k)[0] for k in labels])[:, None]
    splits = ["train"] * 60 + ["val"] * 10 + ["test"] * 10
    real = write_prepared(tmp_path / "real", images=images, labels=labels, splits=splits,
                          class_names=["a", "b"], groups=[str(i) for i in range(80)])
    grid = (np.indices((16, 16)).sum(0) % 2 * 2 - 1) * 30
    parts, syn_labels, artefact = [], [], []
    for k in (0, 1):
        clean, bad = imgs(10, 80 + 80 * k), imgs(10, 80 + 80 * k)
        bad = np.clip(bad.astype(int) + grid, 0, 255).astype(np.uint8)
        parts += [clean, bad]
        syn_labels += [k] * 20
        artefact += [False] * 10 + [True] * 10
    syn = make_synthetic(tmp_path / "syn", np.concatenate(parts), np.array(syn_labels),
                         ["a", "b"])
    cfg = load_config(None, [f"data.path={real}", f"utility.synthetic={syn}", *FAST,
                             "utility.synthetic_filter=realism-topk"])
    study = prepare_study(cfg)
    filter_sources(study, plan_jobs(study))
    src = study.sources["syn"]
    assert np.bincount(src.labels).tolist() == [10, 10]
    rough = np.abs(np.diff(np.asarray(src.images, float), axis=3)).mean(axis=(1, 2, 3))
    assert (rough < 40).sum() >= 18  # the checkerboarded images are the ones dropped
    info = study.source_info[0]["filter"]
    assert info["method"] == "realism-topk" and info["keep"] == 0.5
    assert info["classifier"]["against"] == "real train split" and info["classifier"]["auc"] > 0.6
