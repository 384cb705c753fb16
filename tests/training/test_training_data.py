"""The training split stays uint8 on the device and becomes float per batch, bit-identically."""

from __future__ import annotations

import torch

from synthmed.config import DataConfig
from synthmed.data.dataset import PreparedDataset
from synthmed.training.data import load_training_data


def test_stored_size_keeps_uint8_and_rows_match_the_dataset_exactly(phantom_dataset):
    data = load_training_data(DataConfig(path=str(phantom_dataset)), None, torch.device("cpu"))
    assert data.images.dtype == torch.uint8
    expected, labels = PreparedDataset(phantom_dataset).tensors("train")
    idx = torch.tensor([3, 0, 5, 5])
    got = data.rows(idx)
    assert got.dtype == torch.float32 and torch.equal(got, expected[idx])
    assert torch.equal(data.labels, labels)


def test_a_resized_split_is_float(phantom_dataset):
    data = load_training_data(DataConfig(path=str(phantom_dataset)), 16, torch.device("cpu"))
    assert data.images.dtype == torch.float32 and data.images.shape[-1] == 16
    assert torch.equal(data.rows(torch.tensor([1])), data.images[1:2])
