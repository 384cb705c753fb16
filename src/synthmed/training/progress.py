"""A rich progress bar for training: step, img/s, losses, ETA; silent when disabled."""

from __future__ import annotations

import time
from typing import Any

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class TrainProgress:
    def __init__(self, total: int, start: int = 0, enabled: bool = True) -> None:
        self.enabled = enabled
        self._progress = None
        if enabled:
            self._progress = Progress(
                TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"), TimeRemainingColumn(), transient=False)
            self._task = self._progress.add_task("train", total=total, completed=start, stats="")

    def __enter__(self) -> TrainProgress:
        if self._progress:
            self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress:
            self._progress.stop()

    def update(self, step: int, record: dict[str, Any] | None = None) -> None:
        if not self._progress:
            return
        fields = {}
        if record:
            p = record.get("aug_p")
            aug = f"  p {p:.2f}" if p is not None else ""
            losses = "  ".join(f"{k[len('loss_'):].upper()} {v:.3f}" for k, v in record.items()
                               if k.startswith("loss_") and v is not None)
            fields["stats"] = f"{record['img_per_s']:.0f} img/s  {losses}{aug}"
        self._progress.update(self._task, completed=step, **fields)


class LossMeter:
    """Device-side running sums of the step losses; one host sync per logging interval."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.n, self.t0 = 0, time.perf_counter()

    def add(self, losses: dict[str, torch.Tensor]) -> None:
        for k, v in losses.items():
            v = v.detach().float()
            self.sums[k] = self.sums[k] + v if k in self.sums else v.clone()
        self.n += 1

    def record(self, step: int, images_per_step: int) -> dict[str, Any]:
        """The interval's mean losses and img/s; starts the next interval."""
        dt = time.perf_counter() - self.t0
        rec: dict[str, Any] = {"step": step}
        rec.update({k: (v / max(self.n, 1)).item() for k, v in self.sums.items()})
        rec["img_per_s"] = self.n * images_per_step / max(dt, 1e-9)
        self.sums, self.n, self.t0 = {}, 0, time.perf_counter()
        return rec
