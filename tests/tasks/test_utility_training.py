"""Classic augmentation (seeded MONAI transforms) and one deterministic training run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synthmed.tasks.augment import classic_augmentation, plain_tensors
from synthmed.tasks.models import build_classifier
from synthmed.tasks.train import ArmDataset, Images, fit, predict


def _image():
    x = torch.linspace(-1, 1, 32).repeat(32, 1)[None]  # left-right ramp
    return x.clone()


def test_augmentation_is_seeded_and_stays_in_range():
    with plain_tensors():
        outs = []
        for seed in (0, 0, 1):
            t = classic_augmentation(image_size=32, seed=seed)
            outs.append(torch.stack([torch.as_tensor(t(_image())) for _ in range(4)]))
    assert torch.equal(outs[0], outs[1]) and not torch.equal(outs[0], outs[2])
    assert outs[0].shape == (4, 1, 32, 32)
    assert outs[0].min() >= -1 and outs[0].max() <= 1


def test_mask_follows_the_image():
    img = torch.full((1, 32, 32), -1.0)
    mask = torch.zeros(1, 32, 32)
    img[:, 8:20, 4:14] = 1.0
    mask[:, 8:20, 4:14] = 1.0
    t = classic_augmentation(image_size=32, with_mask=True, intensity=0.0, seed=3)
    with plain_tensors():
        for _ in range(5):
            d = t({"image": img, "mask": mask})
            m, x = torch.as_tensor(d["mask"]), torch.as_tensor(d["image"])
            assert set(m.unique().tolist()) <= {0.0, 1.0}
            agree = ((x > 0) == (m > 0.5)).float().mean()
            assert agree > 0.95


def test_flip_only_flips_image_and_mask_together():
    img = _image()
    mask = (img > 0.5).float()
    t = classic_augmentation(image_size=32, rotate_deg=0, translate=0, scale=0, intensity=0,
                             with_mask=True, seed=0)
    flipped = 0
    with plain_tensors():
        for _ in range(10):
            d = t({"image": img, "mask": mask})
            x, m = torch.as_tensor(d["image"]), torch.as_tensor(d["mask"])
            assert torch.equal(m, (x > 0.5).float())
            flipped += bool(x[0, 0, 0] > 0)
    assert 0 < flipped < 10


def test_fit_is_deterministic_per_seed():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (24, 1, 16, 16), dtype=np.uint8)
    labels = np.arange(24) % 2
    images[labels == 1, :, 4:12, 4:12] = 255  # learnable signal
    data = Images(images, labels)
    train_rows, val_rows = np.arange(16), np.arange(16, 24)

    def once(seed):
        ds = ArmDataset([(data, train_rows)],
                        transform=classic_augmentation(image_size=16, seed=seed))
        res = fit(lambda: build_classifier("small-resnet", in_channels=1, num_classes=2,
                                           image_size=16), ds, data, val_rows,
                  task="classification", epochs=2, batch_size=8, lr=1e-3, weight_decay=0,
                  seed=seed, select_metric="auc")
        return res, predict(res.model, data, val_rows, task="classification")

    (r1, p1), (r2, p2), (_, p3) = once(0), once(0), once(1)
    assert np.array_equal(p1, p2) and not np.allclose(p1, p3)
    assert r1.best_epoch == r2.best_epoch and len(r1.history) == 2
    assert p1.shape == (8, 2) and np.allclose(p1.sum(1), 1, atol=1e-5)


def test_arm_dataset_items():
    data = Images(np.zeros((4, 1, 8, 8), np.uint8), np.array([0, 1, 0, 1]),
                  np.ones((4, 8, 8), np.uint8))
    ds = ArmDataset([(data, np.array([0, 0, 3]))], with_masks=True)
    x, m = ds[2]
    assert len(ds) == 3 and x.shape == (1, 8, 8) and x.min() == -1 and m.shape == (1, 8, 8)
    x, y = ArmDataset([(data, np.array([3]))])[0]
    assert int(y) == 1


@pytest.mark.parametrize("task", ["classification", "segmentation"])
def test_predict_shapes(task):
    from synthmed.tasks.models import build_segmenter

    data = Images(np.zeros((5, 1, 16, 16), np.uint8), np.zeros(5, np.int64))
    model = build_segmenter(image_size=16) if task == "segmentation" else build_classifier(
        "fridadar-cnn", in_channels=1, num_classes=3, image_size=16)
    out = predict(model, data, np.array([4, 0, 2]), task=task, batch_size=2)
    assert out.shape == ((3, 16, 16) if task == "segmentation" else (3, 3))
