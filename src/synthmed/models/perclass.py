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
           call: Callable[[nn.Module, torch.Tensor], torch.Tensor],
           counts: Sequence[int] | None = None) -> torch.Tensor:
    """Run ``call(networks[k], x[y == k])`` per class present and reassemble in input order.

    The batch is sorted by label (stable, so each sub-batch keeps input order) and split by the
    class counts. ``counts`` (host ints, one per network) spare the one host sync that reading
    them from ``y`` costs; the trainer knows them from its host-side labels. Concatenation and an
    inverse-permutation gather keep gradients flowing to every network that saw a sample. Classes
    absent from the batch are skipped (their parameters get no gradient, so optimizers leave
    them alone with ``zero_grad(set_to_none=True)``).
    """
    if y is None:
        raise ValueError("a per-class network needs class labels y (N,)")
    if y.shape != (x.shape[0],):
        raise ValueError(f"y must have shape ({x.shape[0]},), got {tuple(y.shape)}")
    y = y.long()
    if counts is None:
        lo, hi = torch.aminmax(y)
        if int(lo) < 0 or int(hi) >= len(networks):
            raise ValueError(f"labels must lie in [0, {len(networks) - 1}], got "
                             f"{sorted(set(y.tolist()))}")
        counts = torch.bincount(y, minlength=len(networks)).tolist()  # one host sync
    elif len(counts) != len(networks) or sum(counts) != x.shape[0]:
        raise ValueError(f"counts {list(counts)} do not match {len(networks)} classes and a "
                         f"batch of {x.shape[0]}")
    present = [k for k, c in enumerate(counts) if c]
    if len(present) == 1:
        return call(networks[present[0]], x)
    perm = torch.argsort(y, stable=True)
    parts = torch.split(x.index_select(0, perm), list(counts))
    out = torch.cat([call(networks[k], parts[k]) for k in present])
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(perm.numel(), device=perm.device)
    return out.index_select(0, inverse)


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

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None, *,
                counts: Sequence[int] | None = None) -> torch.Tensor:
        """z (N, latent_dim), y (N,) int64 in [0, K) -> images (N, C, H, W) in [-1, 1].

        ``counts``: samples per class (K host ints) when the caller knows them (no host sync).
        """
        return _route(self.networks, z, y, lambda net, zk: net(zk), counts)


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

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, *,
                counts: Sequence[int] | None = None) -> tuple[torch.Tensor, None]:
        """x (N, C, H, W), y (N,) int64 -> (adv_logits (N,), None); ``counts`` as for G."""
        return _route(self.networks, x, y, lambda net, xk: net(xk)[0], counts), None
