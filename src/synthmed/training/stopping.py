"""Stopping cleanly: SIGINT/SIGTERM set a flag, and under torchrun the ranks agree on it.

A signal reaches one process (``kill PID``, a scheduler preempting one worker). Each rank checks
its own flag, so without agreement the signalled rank stops and the others wait in the next
all-reduce for ever (no checkpoint, workers outliving torchrun). The ranks therefore all-reduce
the flag (MAX of the signal number) every ``every`` steps, at the same steps, and all stop after
the same step with one checkpoint.
"""

from __future__ import annotations

import contextlib
import signal

import torch
import torch.distributed as dist

from synthmed.training.distributed import DistInfo


@contextlib.contextmanager
def stop_on_signals():
    """SIGINT/SIGTERM set ``flag["signum"]``; a second signal aborts at once."""
    flag: dict[str, int | None] = {"signum": None}

    def handler(signum, _frame):
        if flag["signum"] is not None:  # second signal: give up immediately
            raise KeyboardInterrupt
        flag["signum"] = int(signum)

    try:
        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: no handlers
        old = {}
    try:
        yield flag
    finally:
        for s, h in old.items():
            signal.signal(s, h)


class StopAgreement:
    """Whether to stop after ``step``: the local flag alone, or all ranks' flags every ``every``
    steps (a one-int all-reduce; on CUDA every 10 steps, since it syncs the host)."""

    def __init__(self, info: DistInfo, device: torch.device) -> None:
        self.info = info
        self.every = 1 if device.type == "cpu" else 10
        nccl = info.enabled and dist.get_backend() == "nccl"
        self.device = device if nccl else torch.device("cpu")
        self.signum: int | None = None

    def __call__(self, flag: dict, step: int) -> bool:
        local = flag["signum"] or 0
        if not self.info.enabled:
            self.signum = local or None
        elif step % self.every == 0:
            t = torch.tensor([local], dtype=torch.int64, device=self.device)
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            self.signum = int(t.item()) or None
        return self.signum is not None

    @property
    def reason(self) -> str | None:
        return signal.Signals(self.signum).name if self.signum else None
