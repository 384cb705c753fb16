"""The downstream fit's GPU path, checked without a GPU: loader options per device, and worker
processes that each get their own augmentation stream (not copies of one)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from synthmed.tasks.augment import classic_augmentation, plain_tensors
from synthmed.tasks.train import ArmDataset, Images, _seed_worker_transforms, loader_options


def test_cpu_loads_in_process_and_cuda_uses_pinned_workers():
    assert loader_options(torch.device("cpu")) == {"num_workers": 0}
    cuda = loader_options(torch.device("cuda"))  # options only: no GPU needed
    assert cuda["num_workers"] >= 1 and cuda["pin_memory"] and cuda["persistent_workers"]
    assert cuda["worker_init_fn"] is _seed_worker_transforms


def test_workers_augment_differently_and_repeat_per_seed():
    ramp = np.tile(np.linspace(0, 255, 32).astype(np.uint8), (32, 1))
    imgs = Images(np.stack([ramp[None]] * 8), np.zeros(8, np.int64))

    def batches(seed):
        ds = ArmDataset([(imgs, np.arange(8))],
                        transform=classic_augmentation(image_size=32, seed=seed))
        loader = DataLoader(ds, batch_size=4, shuffle=False, num_workers=2,
                            worker_init_fn=_seed_worker_transforms,
                            generator=torch.Generator().manual_seed(seed),
                            multiprocessing_context="fork")
        with plain_tensors():
            return [x for x, _ in loader]

    a, b = batches(0)
    assert not torch.equal(a, b), "the two workers must not replay one augmentation stream"
    again = batches(0)
    assert torch.equal(a, again[0]) and torch.equal(b, again[1])
