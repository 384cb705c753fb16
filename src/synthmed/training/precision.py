"""``train.amp`` for every training method: autocast in bf16 where the hardware has it (Ampere+
GPUs, CPUs with AVX512-BF16/AMX), in fp16 on older GPUs, and there with one gradient scaler per
optimizer (fp16 gradients underflow without loss scaling; Micikevicius et al. 2018). Off, every
call is the plain float32 path, so CPU runs and their checkpoints are unchanged.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from synthmed.device import amp_dtype


class Precision:
    """Autocast, backward and optimizer steps of one method; ``names`` are its optimizers'
    checkpoint names (one scaler each under fp16)."""

    def __init__(self, device: torch.device, amp: bool, names: tuple[str, ...],
                 dtype: torch.dtype | None = None) -> None:
        self.device = device
        self.enabled = bool(amp) and device.type in ("cuda", "cpu")
        self.dtype = dtype or amp_dtype(device)
        fp16 = self.enabled and self.dtype == torch.float16
        self.scalers = {n: torch.amp.GradScaler(device.type) for n in names} if fp16 else {}

    def autocast(self):
        if self.enabled:
            return torch.autocast(self.device.type, dtype=self.dtype)
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor, name: str) -> None:
        """``loss.backward()``, scaled when optimizer ``name`` has a scaler."""
        scaler = self.scalers.get(name)
        (scaler.scale(loss) if scaler is not None else loss).backward()

    def step(self, opt: torch.optim.Optimizer, name: str) -> None:
        """``opt.step()``; with a scaler: unscale, skip the step on inf/NaN, adapt the scale."""
        scaler = self.scalers.get(name)
        if scaler is None:
            opt.step()
        else:
            scaler.step(opt)
            scaler.update()

    def state_dict(self) -> dict[str, Any] | None:
        """The scalers' states for exact resume (None without scalers: no checkpoint key)."""
        return {n: s.state_dict() for n, s in self.scalers.items()} or None

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        for n, s in self.scalers.items():
            if state and n in state:
                s.load_state_dict(state[n])


def add_scalers(state: dict[str, Any], precision: Precision) -> dict[str, Any]:
    """``state`` plus ``grad_scalers`` when there are scalers (fp16 runs only)."""
    scalers = precision.state_dict()
    return {**state, "grad_scalers": scalers} if scalers else state
