"""A rich progress bar for training: step, img/s, losses, ETA; silent when disabled."""

from __future__ import annotations

from typing import Any

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
