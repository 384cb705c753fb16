"""``generate --match-train``: class counts follow the training split's proportions."""

from __future__ import annotations

import numpy as np
import pytest

from synthmed.data.dataset import PreparedDataset
from synthmed.errors import SynthmedError
from synthmed.sampling import generate


@pytest.mark.parametrize("n", [1, 7, 30, 101])
def test_counts_follow_the_training_split(trained_runs, phantom_dataset, n):
    ds = PreparedDataset(phantom_dataset)
    train = np.bincount(ds.labels[ds.indices("train")], minlength=2)
    gen = generate(trained_runs["cond"], n, match_train=True)
    counts = np.bincount(gen.labels.numpy(), minlength=2)
    assert counts.sum() == n
    assert np.all(np.abs(counts - train / train.sum() * n) < 1)


def test_each_image_is_still_reproducible_from_class_and_seed(trained_runs):
    gen = generate(trained_runs["cond"], 12, match_train=True)
    k = int(gen.labels[-1])
    alone = generate(trained_runs["cond"], seeds=[11],
                     class_name=gen.class_names[k])
    assert np.array_equal(alone.images[0].numpy(), gen.images[-1].numpy())


def test_cli_match_train(trained_runs, tmp_path, capsys):
    from synthmed.cli import main

    with pytest.raises(SystemExit) as e:
        main(["generate", str(trained_runs["cond"]), "--n", "20", "--match-train",
              "--out", str(tmp_path / "s")])
    assert e.value.code in (0, None)
    rows = (tmp_path / "s" / "manifest.csv").read_text().splitlines()[1:]
    assert len(rows) == 20


def test_unconditional_runs_ignore_it(trained_runs):
    gen = generate(trained_runs["uncond"], 5, match_train=True)
    assert gen.labels.tolist() == [-1] * 5
    with pytest.raises(SynthmedError):
        generate(trained_runs["uncond"], 5, per_class=2, match_train=True)
