"""One unconditional network per class, routed by label.

The liver-lesion study (Frid-Adar et al. 2018) compared ACGAN against training a separate DCGAN for
each lesion class. :class:`PerClassGenerator` / :class:`PerClassDiscriminator` hold the K networks
in one module so the trainer, optimizers, EMA and checkpoints treat them as a single conditional
model: sample i goes through network ``y[i]`` only, so each class has its own G and D.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn


def _route(networks: nn.ModuleList, x: torch.Tensor, y: torch.Tensor | None,
           call: Callable[[nn.Module, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Run ``call(networks[k], x[y == k])`` per class present and reassemble in input order.

    Concatenation and an inverse-permutation gather keep gradients flowing to every network
    that saw a sample. Classes absent from the batch are skipped (their parameters get no
    gradient, so optimizers leave them alone with ``zero_grad(set_to_none=True)``).
    """
    if y is None:
        raise ValueError("a per-class network needs class labels y (N,)")
    if y.shape != (x.shape[0],):
        raise ValueError(f"y must have shape ({x.shape[0]},), got {tuple(y.shape)}")
    y = y.long()
    classes = torch.unique(y).tolist()  # sorted; one host sync per call
    if classes[0] < 0 or classes[-1] >= len(networks):
        raise ValueError(f"labels must lie in [0, {len(networks) - 1}], got {classes}")
    parts, order = [], []
    for k in classes:
        idx = (y == k).nonzero(as_tuple=True)[0]
        parts.append(call(networks[k], x.index_select(0, idx)))
        order.append(idx)
    if len(parts) == 1:
        return parts[0]
    perm = torch.cat(order)
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(perm.numel(), device=perm.device)
    return torch.cat(parts).index_select(0, inverse)


class PerClassGenerator(nn.Module):
    """K unconditional generators; ``forward(z, y)`` uses generator ``y[i]`` for sample i.

    BatchNorm inside each network sees only that class's sub-batch; a sub-batch of one is fine
    for DCGAN because its BatchNorm layers act on maps of at least 4x4 pixels.
    """

    def __init__(self, networks: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(networks) < 2:
            raise ValueError("a per-class generator needs at least two networks")
        self.networks = nn.ModuleList(networks)

    @property
    def num_classes(self) -> int:
        return len(self.networks)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """z (N, latent_dim), y (N,) int64 in [0, K) -> images (N, C, H, W) in [-1, 1]."""
        return _route(self.networks, z, y, lambda net, zk: net(zk))


class PerClassDiscriminator(nn.Module):
    """K unconditional discriminators; ``forward(x, y)`` scores sample i with network ``y[i]``."""

    def __init__(self, networks: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(networks) < 2:
            raise ValueError("a per-class discriminator needs at least two networks")
        self.networks = nn.ModuleList(networks)

    @property
    def num_classes(self) -> int:
        return len(self.networks)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, None]:
        """x (N, C, H, W), y (N,) int64 -> (adv_logits (N,), None)."""
        return _route(self.networks, x, y, lambda net, xk: net(xk)[0]), None
