"""The default domain extractor passes its sanity ladder on real data: PneumoniaMNIST, the set on
which it failed before ``training_version`` 4 (blur precision 0.49, the constant mean image 1.00;
docs/metrics.md), and in its feature space held-out real images are still judged good and noise
poor. Skips when ../shared/datasets is absent."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.slow
def test_default_extractor_passes_the_ladder_on_pneumoniamnist(shared_datasets, tmp_path):
    from synthmed.data.dataset import PreparedDataset, write_prepared
    from synthmed.data.importer import import_dataset
    from synthmed.metrics.domain import load_domain_extractor, train_domain_extractor

    src = shared_datasets / "medmnist" / "pneumoniamnist_reconstructed.npz"
    if not src.is_file():
        pytest.skip(f"{src} not found")
    full = PreparedDataset(import_dataset(src, tmp_path / "full", normalize="none",
                                          progress=False))
    train = full.indices("train")
    keep = np.random.default_rng(0).permutation(train)[:1000]  # as benchmarks/sanity_ladder.py
    rows = np.sort(np.concatenate([keep, np.flatnonzero(full.splits != "train")]))
    data = write_prepared(tmp_path / "sub", images=np.asarray(full.images[rows]),
                          labels=full.labels[rows], splits=full.splits[rows].tolist(),
                          class_names=full.class_names, name="pneumonia-sub")
    path = train_domain_extractor(data, "train", seed=0, cache_dir=tmp_path / "cache")
    ex = load_domain_extractor(path)
    ladder = ex.info["sanity"]
    assert ladder["n_per_half"] == 500 and ladder["source"].startswith("held-out")
    assert ladder["passed"], ladder["rungs"]
    real = ladder["real"]
    assert real["precision"] > 0.7 and 0.8 < real["density"] < 1.2  # real still scores well
    for name in ("blur", "constant"):  # the two rungs that failed before, with a margin
        assert ladder["rungs"][name]["precision"] < 0.35 * real["precision"], name
    from synthmed.metrics.evaluate import evaluate

    def judged(synthetic, out):
        m = evaluate(f"{data}:test", synthetic, train=f"{data}:train", extractor=path,
                     metrics="fid,prdc", out=tmp_path / out, n_bootstrap=0, plots=False)
        return m["verdict"]["fidelity"]["rating"], m["verdict"]["diversity"]["rating"]

    assert judged(f"{data}:val", "real") == ("good", "good")
    noise = np.random.default_rng(0).integers(0, 256, (300, 28, 28), dtype=np.uint8)
    np.savez(tmp_path / "noise.npz", images=noise)
    assert judged(tmp_path / "noise.npz", "noise") == ("poor", "poor")
