"""Train one downstream model for one arm and seed, selecting the epoch on the validation split.

Deterministic per seed on CPU: the seed fixes the initial weights, the shuffling and the
augmentation stream (``seed_everything`` + a seeded MONAI ``Compose``). Every epoch is scored on
val; the weights of the best epoch are kept (model selection, not early stopping: all epochs run).
The test split is never seen here.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from synthmed.data.dataset import to_model_range
from synthmed.seed import seed_everything, seed_worker
from synthmed.tasks.augment import plain_tensors
from synthmed.tasks.metrics import (
    HIGHER_IS_BETTER,
    classification_metrics,
    segmentation_metrics,
    selection_score,
)
from synthmed.training.precision import Precision


@dataclass
class Images:
    """Images (N, C, H, W) uint8/uint16, labels (N,) int64 and optional masks (N, H, W) {0, 1}."""

    images: np.ndarray
    labels: np.ndarray
    masks: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.images)


class ArmDataset(Dataset):
    """The training set of one arm: rows of a real and a synthetic :class:`Images`, augmented.

    Items: ``(image (C, H, W) float32 in [-1, 1], label int64)``, or with masks
    ``(image, mask (1, H, W) float32)``.
    """

    def __init__(self, sources: list[tuple[Images, np.ndarray]], *, transform=None,
                 with_masks: bool = False) -> None:
        self.items = [(s, int(r)) for s, rows in sources for r in np.asarray(rows)]
        self.transform = transform
        self.with_masks = with_masks

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        src, row = self.items[i]
        x = to_model_range(np.asarray(src.images[row]))
        if self.with_masks:
            m = torch.from_numpy(np.asarray(src.masks[row], np.float32))[None]
            if self.transform is not None:
                d = self.transform({"image": x, "mask": m})
                x, m = torch.as_tensor(d["image"]), torch.as_tensor(d["mask"])
            return x.float(), m.float()
        if self.transform is not None:
            x = torch.as_tensor(self.transform(x))
        return x.float(), torch.tensor(int(src.labels[row]))


@dataclass
class FitResult:
    model: nn.Module
    best_epoch: int
    best_score: float
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def resolve_device(name: str) -> torch.device:
    """``utility.device`` (``auto``: cuda, then mps, then cpu; :mod:`synthmed.device`)."""
    from synthmed.device import resolve_device as resolve

    return resolve(name, key="utility.device")


@torch.no_grad()
def predict(model: nn.Module, data: Images, rows: np.ndarray, *, task: str, batch_size: int = 256,
            device: torch.device | str = "cpu") -> np.ndarray:
    """Class probabilities (N, K), or for segmentation label maps (N, H, W) uint8."""
    model.eval()
    out = []
    rows = np.asarray(rows)
    for start in range(0, len(rows), batch_size):
        idx = rows[start:start + batch_size]
        x = to_model_range(np.asarray(data.images[idx]))
        with Precision(torch.device(device), torch.device(device).type == "cuda", ()).autocast():
            logits = model(x.to(device)).float()
        if task == "segmentation":
            out.append(logits.argmax(1).to(torch.uint8).cpu().numpy())
        else:
            out.append(torch.softmax(logits, 1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0,))


def evaluate(model: nn.Module, data: Images, rows: np.ndarray, *, task: str,
             class_names: list[str], threshold: float | None = None, positive: int = 1,
             device: torch.device | str = "cpu") -> dict[str, Any]:
    """Metrics of ``model`` on ``rows`` of ``data`` (see :mod:`synthmed.tasks.metrics`)."""
    out = predict(model, data, rows, task=task, device=device)
    if task == "segmentation":
        return segmentation_metrics(out, np.asarray(data.masks[np.asarray(rows)]))
    return classification_metrics(data.labels[rows], out, class_names=class_names,
                                  threshold=threshold, positive=positive)


def loader_options(device: torch.device) -> dict[str, Any]:
    """DataLoader options: on CUDA, workers (each reseeding its augmentation transforms) and
    pinned memory; on the CPU none (one process, the same batches on every machine)."""
    if device.type != "cuda":
        return {"num_workers": 0}
    workers = min(4, max(1, (os.cpu_count() or 2) - 1))
    return {"num_workers": workers, "pin_memory": True, "persistent_workers": True,
            "worker_init_fn": _seed_worker_transforms}


def _seed_worker_transforms(worker_id: int) -> None:
    """Each worker its own python/numpy stream and MONAI augmentation state (from the worker's
    torch seed, itself derived from the loader's seeded generator)."""
    from monai.data.utils import set_rnd

    seed_worker(worker_id)
    info = torch.utils.data.get_worker_info()
    transform = getattr(info.dataset, "transform", None) if info is not None else None
    if transform is not None:
        set_rnd(transform, seed=info.seed % 2**32)


def _loss_fn(task: str) -> Callable:
    if task == "segmentation":
        from monai.losses import DiceCELoss

        dice_ce = DiceCELoss(to_onehot_y=True, softmax=True)
        return lambda logits, m: dice_ce(logits, m.long())
    return nn.CrossEntropyLoss()


def _score(model: nn.Module, val: Images, rows: np.ndarray, *, task: str, metric: str,
           positive: int, device) -> tuple[float, float]:
    """(the val metric, a score where higher is better and NaN is worst)."""
    out = predict(model, val, rows, task=task, device=device)
    target = np.asarray(val.masks[rows]) if task == "segmentation" else val.labels[rows]
    v = selection_score(metric, out, target, positive=positive)
    if not np.isfinite(v):
        return v, float("-inf")
    return v, v if HIGHER_IS_BETTER.get(metric, True) else -v


def fit(build: Callable[[], nn.Module], train_set: Dataset, val: Images, val_rows: np.ndarray, *,
        task: str, epochs: int, batch_size: int, lr: float,
        weight_decay: float, seed: int, select_metric: str, positive: int = 1,
        device: torch.device | str = "cpu", log: Callable[[str], None] | None = None) -> FitResult:
    """Train ``build()`` on ``train_set`` for ``epochs``; keep the epoch best on val
    ``select_metric`` (ties: the earliest). AdamW (Loshchilov & Hutter 2019).

    On CUDA the GPU is kept busy: DataLoader workers decode and augment (each with its own
    augmentation stream) into pinned memory, copies are asynchronous, the forward runs under
    mixed precision (bf16, or fp16 with a gradient scaler) and the loss is read once per epoch,
    not every step. On the CPU it stays one deterministic process in float32.
    """
    t0 = time.perf_counter()
    gen = seed_everything(seed)
    device = torch.device(device)
    cuda = device.type == "cuda"
    model = build().to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    precision = Precision(device, cuda, ("model",))
    acc = torch.float32 if device.type == "mps" else torch.float64  # as python floats summed
    loss_fn = _loss_fn(task)
    drop_last = len(train_set) > batch_size and len(train_set) % batch_size == 1  # BatchNorm
    loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, generator=gen,
                        drop_last=drop_last, **loader_options(device))
    best_state, best_epoch, best = None, 0, float("-inf")
    history = []
    with plain_tensors():
        for epoch in range(1, epochs + 1):
            model.train()
            total, seen = torch.zeros((), dtype=acc, device=device), 0
            for x, y in loader:
                x, y = x.to(device, non_blocking=cuda), y.to(device, non_blocking=cuda)
                opt.zero_grad(set_to_none=True)
                with precision.autocast():
                    logits = model(x)
                loss = loss_fn(logits.float(), y)
                precision.backward(loss, "model")
                precision.step(opt, "model")
                total += loss.detach().to(acc) * len(x)  # on the device: no sync per step
                seen += len(x)
            total = float(total)
            value, score = _score(model, val, val_rows, task=task, metric=select_metric,
                                  positive=positive, device=device)
            record = {"epoch": epoch, "train_loss": total / max(seen, 1),
                      f"val_{select_metric}": value}
            history.append(record)
            if log:
                log(f"epoch {epoch}: loss {record['train_loss']:.4f} "
                    f"val {select_metric} {value:.4f}")
            if score > best or best_state is None:
                best, best_epoch = score, epoch
                best_state = copy.deepcopy({k: v.detach().cpu() for k, v in
                                            model.state_dict().items()})
    model.load_state_dict(best_state)
    return FitResult(model, best_epoch, best, history, time.perf_counter() - t0)
