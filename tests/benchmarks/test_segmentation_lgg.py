"""benchmarks/segmentation_lgg.py: the utility arms on pairs from sampled label maps (issue 21)."""

from __future__ import annotations

import pytest


def _doc():
    dice = {("real+classic", 0): 0.60, ("real+classic", 1): 0.62, ("real+classic", 2): 0.64,
            ("synthetic-only", 0): 0.54, ("synthetic-only", 1): 0.527, ("synthetic-only", 2): 0.576}
    runs = [{"arm": a, "seed": s, "n_train": 100, "test": {"dice": v}}
            for (a, s), v in dice.items()]
    summary = [{"arm": a, "metric": "dice", "mean": m, "ci95": [m - 0.1, m + 0.1]}
               for a, m in (("real+classic", 0.62), ("synthetic-only", 0.548))]
    comp = [{"arm": "synthetic-only", "reference": "real+classic", "metric": "dice",
             "mean_diff": -0.072, "ci95": [-0.1, -0.04], "p_holm": 0.03, "n": 3}]
    return {"runs": runs, "summary": summary, "comparisons": comp, "seeds": [0, 1, 2],
            "result_lines": ["pairs: synthetic-only dice 0.548; memorization audit: copy rate 0"]}


def test_utility_table_gives_the_synthetic_only_ratio_and_holm_comparisons(bench):
    text = bench.utility_table(_doc(), "t")
    assert "| synthetic-only | 100 | 0.548 [0.448, 0.648] |" in text
    # ratio of means 0.5477 / 0.62 = 0.883; per-seed ratios 0.9, 0.85, 0.9 -> mean 0.883
    assert "synthetic-only / real+classic Dice: 0.883 (per-seed ratios 0.883 [" in text
    assert "synthetic-only vs real+classic: -0.072 [-0.100, -0.040], Holm p 0.03 (3 seeds)" in text
    assert "memorization audit: copy rate 0" in text


def test_maps_utility_flag_runs_the_arms_on_the_map_pairs(bench, tmp_path, monkeypatch):
    seen = {}

    def fake_maps(data, work, s, tag, steps, maps_run, with_utility=False, **kw):
        seen.update(tag=tag, steps=steps, utility=with_utility, seeds=s.seeds, arms=s.arms, **kw)
        return "ok"

    monkeypatch.setattr(bench, "synthetic_maps", fake_maps)
    monkeypatch.setattr(bench, "import_real", lambda npz, out, size: out)
    npz = tmp_path / "x.npz"
    npz.write_bytes(b"")
    assert bench.main(["--npz", str(npz), "--work", str(tmp_path), "--maps", "10", "--utility",
                       "--seeds", "3", "--arms", "[real+classic, synthetic-only]",
                       "--maps-set", "model.kl_weight=8", "--maps-set", "model.latent_dim=8",
                       "--maps-suffix", "kl8", "--maps-exclude", "patients"]) == 0
    assert seen == {"tag": "spade-noise-ds-brain-b-L1-10", "steps": 10, "utility": True,
                    "seeds": 3, "arms": "[real+classic, synthetic-only]",
                    "maps_set": ["model.kl_weight=8", "model.latent_dim=8"], "suffix": "-kl8",
                    "exclude": "patients", "augment": 0,
                    "augment_strength": 1.0}


def test_auc_cell_gives_the_interval(bench):
    m = {"membership_auc": 0.6431, "membership_auc_ci95": [0.4632, 0.8121],
         "membership_auc_features": 0.5}
    assert bench._auc(m) == "0.643 [0.463, 0.812]"
    assert bench._auc(m, "_features") == "0.500"
    assert bench._auc({}) == ""


def test_pairs_utility_passes_the_pairs_as_the_synthetic_set(bench, tmp_path, monkeypatch):
    calls = []

    def fake_utility(data, pairs, runs, s, name):
        calls.append((data, pairs, runs, name))
        return _doc()

    monkeypatch.setattr(bench, "utility", fake_utility)
    text = bench.pairs_utility(tmp_path / "d", tmp_path / "pairs-maps-x", tmp_path,
                               bench.Settings(seeds=3), "lgg-maps-x")
    assert calls == [(tmp_path / "d", tmp_path / "pairs-maps-x", tmp_path / "util", "lgg-maps-x")]
    assert text.startswith("### Utility arms with pairs-maps-x (8 epochs, 3 seeds;")


def test_augmented_maps_add_moved_training_maps_only(bench, tmp_path):
    import numpy as np

    from synthmed.data.dataset import PreparedDataset, write_prepared

    maps = np.zeros((6, 1, 32, 32), np.uint8)
    maps[:, :, 6:26, 8:24] = 127
    maps[:, :, 10:14, 10:14] = 255
    src = write_prepared(tmp_path / "maps", images=maps, labels=np.zeros(6, np.int64),
                         splits=["train"] * 4 + ["val", "test"], class_names=["all"],
                         groups=["a", "a", "b", "b", "c", "d"])
    out = bench.augmented_maps(src, tmp_path / "aug", 2)
    ds = PreparedDataset(out)
    assert len(ds.indices("train")) == 4 + 8 and len(ds.indices("test")) == 1
    assert set(np.unique(np.asarray(ds.images))) <= {0, 127, 255}
    assert sorted(ds.groups[ds.indices("train")].tolist()) == ["a"] * 6 + ["b"] * 6
    extra = np.asarray(ds.images[6:])
    assert not all(np.array_equal(e, maps[0]) for e in extra)  # moved, not copied


def test_stronger_augmentation_warps_the_outline(bench, tmp_path):
    import numpy as np

    from synthmed.data.dataset import PreparedDataset, write_prepared

    maps = np.zeros((4, 1, 32, 32), np.uint8)
    maps[:, :, 6:26, 8:24] = 127
    src = write_prepared(tmp_path / "maps", images=maps, labels=np.zeros(4, np.int64),
                         splits=["train"] * 2 + ["val", "test"], class_names=["all"],
                         groups=["a", "b", "c", "d"])
    weak = np.asarray(PreparedDataset(bench.augmented_maps(src, tmp_path / "w", 4)).images[4:])
    strong = np.asarray(PreparedDataset(bench.augmented_maps(src, tmp_path / "s", 4,
                                                             strength=2)).images[4:])
    assert set(np.unique(strong)) <= {0, 127}
    # an affine move of a rectangle keeps straight edges; the warp bends them: rows of the head
    # change width along its height far more often
    def width_changes(x):
        w = (x[:, 0] > 0).sum(-1)
        return (np.abs(np.diff(w[:, 8:24], axis=1)) > 1).sum()
    assert width_changes(strong) > width_changes(weak)


@pytest.mark.parametrize("argv, epochs", [(["--fraction", "0.1"], 80), (["--fraction", "0.25"], 32),
                                          ([], 8), (["--fraction", "0.1", "--epochs", "5"], 5)])
def test_utility_epochs_match_the_steps_of_all_patients_at_a_fraction(bench, tmp_path,
                                                                     monkeypatch, argv, epochs):
    """At 10 % of patients 8 epochs are ~48 U-Net steps: real+classic scored 0.11-0.46 over seeds,
    best epoch the last (under-trained); 8 / fraction epochs give about the all-patients steps
    (80 epochs at 10 %: 0.567 [0.551, 0.584]). An explicit --epochs is kept."""
    seen = {}

    def fake_maps(data, work, s, tag, steps, maps_run, with_utility=False, **kw):
        seen["epochs"] = s.epochs
        return "ok"

    monkeypatch.setattr(bench, "synthetic_maps", fake_maps)
    monkeypatch.setattr(bench, "import_real", lambda npz, out, size: out)
    monkeypatch.setattr(bench, "patient_subset", lambda data, sub, fraction: sub)
    npz = tmp_path / "x.npz"
    npz.write_bytes(b"")
    assert bench.main(["--npz", str(npz), "--work", str(tmp_path), "--maps", "10", "--utility",
                       *argv]) == 0
    assert seen["epochs"] == epochs
