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

    def note(self, message: str) -> None:
        """A line above the bar (or on stderr without one): the run-time estimate."""
        if self._progress:
            self._progress.console.print(message, markup=False, highlight=False)
        else:
            import sys

            print(message, file=sys.stderr, flush=True)


class LossMeter:
    """Device-side running sums of the step losses; one host sync per logging interval."""

    def __init__(self, info=None) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.n, self.t0 = 0, time.perf_counter()
        self.info = info  # DistInfo: under DDP the logged means are averaged over the ranks

    def add(self, losses: dict[str, torch.Tensor]) -> None:
        for k, v in losses.items():
            v = v.detach().float()
            self.sums[k] = self.sums[k] + v if k in self.sums else v.clone()
        self.n += 1

    def finite(self) -> bool:
        """Whether the interval's losses so far are all finite (one host sync; called only where
        the host waits anyway: before a checkpoint)."""
        return all(bool(torch.isfinite(v).all()) for v in self.sums.values())

    def record(self, step: int, images_per_step: int) -> dict[str, Any]:
        """The interval's mean losses (over the interval and, under DDP, over the ranks: every
        rank calls this at the same steps) and img/s; starts the next interval.

        The losses are read (the one host sync of the interval) before the clock, so on a GPU
        the interval's time includes its queued work.
        """
        names = sorted(self.sums)
        means = [self.sums[k] / max(self.n, 1) for k in names]
        if means and self.info is not None and self.info.enabled:
            import torch.distributed as dist

            stacked = torch.stack(means)
            dist.all_reduce(stacked)
            means = list(stacked / self.info.world_size)
        rec: dict[str, Any] = {"step": step}
        rec.update({k: float(v) for k, v in zip(names, means, strict=True)})
        dt = time.perf_counter() - self.t0
        rec["img_per_s"] = self.n * images_per_step / max(dt, 1e-9)
        self.sums, self.n, self.t0 = {}, 0, time.perf_counter()
        return rec


def log_line(record: dict[str, Any], total: int, eta_s: float | None) -> str:
    """The log.txt line of one ``log_every`` record, with the ETA (also without a progress bar)."""
    p = record.get("aug_p")
    aug = f"  aug p {p:.2f}" if p is not None else ""
    eta = format_duration(eta_s) if eta_s is not None else "-"
    losses = "  ".join(f"{k[len('loss_'):].upper()} {v:.3f}" for k, v in record.items()
                       if k.startswith("loss_") and v is not None)
    return (f"step {record['step']:,}/{total:,}  {losses}"
            f"  {record['img_per_s']:.0f} img/s{aug}  ETA {eta}")


WARMUP_STEPS = 5  # timed steps behind the estimate; the first step (allocation) is not counted
# A run longer than this is open-ended (a huge train.steps meaning 'until stopped', as in
# benchmarks/generators.py): its estimate line gives the time per 1,000 steps instead.
OPEN_ENDED_S = 7 * 86400


def format_duration(seconds: float) -> str:
    """``"42 s"``, ``"31 min"``, ``"2 h 05 min"``, ``"89 days"``: the resolution a person plans
    with."""
    s = max(0.0, float(seconds))
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    if s >= 48 * 3600:
        return f"{s / 86400:,.0f} days"
    h, m = divmod(int(round(s / 60)), 60)
    return f"{h} h {m:02d} min"


class RunClock:
    """Run-time estimate and ETA from the steps actually taken (no extra warm-up steps, so the
    run's random streams and exact resume are untouched).

    ``tick(step)`` after every step returns the one-off estimate line once ``WARMUP_STEPS`` steps
    after the first have been timed; ``eta(step)`` is the remaining time at the mean rate since.
    """

    def __init__(self, start: int, total: int, warmup: int = WARMUP_STEPS,
                 sync=None) -> None:
        self.start, self.total, self.warmup = start, total, warmup
        self.sync = sync  # waits for the device (CUDA runs asynchronously) before a clock read
        self._t0: float | None = None
        self._s0 = start
        self._estimated = False

    def _now(self, now: float | None) -> float:
        """The clock after the device's queued work: synchronised only when a time is read (the
        first step and the estimate), never on the other steps."""
        if now is not None:
            return now
        if self.sync is not None:
            self.sync()
        return time.perf_counter()

    def tick(self, step: int, now: float | None = None) -> str | None:
        if self._t0 is None:  # the first step pays allocation and oneDNN set-up: not timed
            self._t0, self._s0 = self._now(now), step
            return None
        if self._estimated or step - self._s0 < self.warmup or step >= self.total:
            return None
        now = self._now(now)
        self._estimated = True
        per_step = (now - self._t0) / (step - self._s0)
        steps, timed = self.total - self.start, f"{per_step:.3g} s/step over {step - self._s0}"
        whole = format_duration(per_step * steps)
        if per_step * steps > OPEN_ENDED_S:
            return (f"estimate: 1,000 steps \u2248 {format_duration(per_step * 1000)} on this "
                    f"machine ({timed} timed steps; all {steps:,} planned steps would take "
                    f"{whole})")
        return f"estimate: {steps:,} steps \u2248 {whole} on this machine ({timed} timed steps)"

    def eta(self, step: int, now: float | None = None) -> float | None:
        if self._t0 is None or step <= self._s0:
            return None
        now = self._now(now)
        return (now - self._t0) / (step - self._s0) * max(0, self.total - step)


def short_of_recipe(model: str, step: int, image_size: int) -> str | None:
    """The log/report line when a run stopped before its model's documented step count (the
    ``recipe.steps`` of its descriptor, :mod:`synthmed.generators`)."""
    from synthmed.generators import recipe_steps

    need = recipe_steps(model, image_size)
    if need is None or step >= need:
        return None
    return (f"stopped at step {step:,}; this recipe ({model}) needs ~{need:,} steps for usable "
            f"samples at {image_size} px (docs/training.md)")
