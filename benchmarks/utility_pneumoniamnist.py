"""Downstream-utility benchmark on PneumoniaMNIST (MedMNIST v2 splits), end to end.

Same pipeline as ``utility_breastmnist.py`` (import at 32 px -> cgan on train -> synthetic set ->
five arms over seeds -> table beside the published MedMNIST v2 ResNet-18 (28) result: ACC 0.854,
AUC 0.944). The file is ``pneumoniamnist_reconstructed.npz``: same split sizes and class counts as
the official one, train order differs (see ../shared/datasets/README.md).

Full settings, on 2 CPU cores: cgan, base width 32, 1000 steps of batch 64; 3500 synthetic images
per class (synthetic-only at 1x needs 3494 pneumonia images); small-resnet, 3 epochs of batch 128
(4708 train images: 3 epochs already show ~14k augmented real images), ratio 0.5x only, 5 seeds;
positive class ``pneumonia``. Expected time, from costs measured on the shared 2-core development
machine (see utility_breastmnist.py): 15-30 min for the GAN and ~19 min for the utility study
(4708 x 6 samples per epoch and seed over the five arms), 35-50 min in total. ``--quick``: under
a minute on a subset, numbers meaningless.

Usage::

    .venv/bin/python benchmarks/utility_pneumoniamnist.py [--quick] [--work DIR] [--npz FILE]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from utility_breastmnist import Settings, run_benchmark  # noqa: E402

FULL = Settings(gan_steps=1000, gan_width=32, gan_batch=64, per_class=3500, model="small-resnet",
                epochs=3, batch_size=128, ratios=[0.5], seeds=5)

if __name__ == "__main__":
    sys.exit(run_benchmark("pneumoniamnist", "pneumoniamnist_reconstructed.npz", "pneumonia",
                           FULL))
