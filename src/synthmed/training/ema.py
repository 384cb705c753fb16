"""Exponential moving average of the sampling network's weights, with a warm-up.

A plain EMA with decay 0.999 still gives the random initial weights a share of 0.999^k: 37% after
1,000 steps, which blurs the samples of every short run (what small-data users mostly do). The
warm-up caps the decay at (1 + n) / (10 + n) after n updates, as TensorFlow's
``ExponentialMovingAverage(num_updates=...)`` does; StyleGAN2-ADA's ``ema_rampup`` (Karras et al.
2020) serves the same purpose. The decay reaches 0.999 after ~9,000 updates.

The update count lives twice: as the ``n_averaged`` buffer on the network's device (checkpointed,
the :class:`~torch.optim.swa_utils.AveragedModel` layout) and as a host integer that the decay is
computed from, so an update does no host sync and no host-to-device copy (``AveragedModel`` itself
reads ``n_averaged`` on the host and copies it to the device every step).
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel


class WarmupEMA(AveragedModel):
    """An eval-mode EMA copy of a network (its buffers averaged too; integer buffers copied)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        param = next(itertools.chain(model.parameters(), model.buffers()), None)
        super().__init__(model, device=param.device if param is not None else None,
                         use_buffers=True)
        self.decay = float(decay)
        self._n = 0
        self.register_load_state_dict_post_hook(WarmupEMA._sync_count)

    @staticmethod
    def _sync_count(module: WarmupEMA, _keys) -> None:
        module._n = int(module.n_averaged)  # once per load, not per update

    def current_decay(self) -> tuple[float, float]:
        """(d, 1 - d) rounded as float32 arithmetic would, for the next update."""
        n = self._n
        d = np.float32(min(self.decay, (1 + n) / (10 + n)))
        return float(d), float(np.float32(1) - d)

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        ema = list(itertools.chain(self.module.parameters(), self.module.buffers()))
        cur = [p.detach() for p in itertools.chain(model.parameters(), model.buffers())]
        if self._n == 0:  # the first update copies
            torch._foreach_copy_(ema, cur)
        else:
            d, one_minus_d = self.current_decay()
            floats = [(e, p) for e, p in zip(ema, cur, strict=True) if e.is_floating_point()]
            if floats:
                e_f, p_f = map(list, zip(*floats, strict=True))
                torch._foreach_mul_(e_f, d)
                torch._foreach_add_(e_f, torch._foreach_mul(p_f, one_minus_d))
            for e, p in zip(ema, cur, strict=True):  # integer buffers (BatchNorm's counter)
                if not e.is_floating_point():
                    e.copy_(p)
        self.n_averaged += 1
        self._n += 1


def build_ema(network: nn.Module, decay: float) -> WarmupEMA:
    """An eval-mode EMA copy of ``network``."""
    ema = WarmupEMA(network, decay)
    ema.module.eval()
    return ema
