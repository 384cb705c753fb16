"""Differentiable augmentation for GANs trained on a few hundred images.

DiffAugment (Zhao et al. 2020): the same kinds of random, differentiable transforms are applied to
real and fake images before the discriminator, so D cannot memorize the small real set and G still
receives gradients through the transform. Ops: ``translation`` (zero-padded shift of up to 1/8 of
the size), ``cutout`` (a zeroed square of half the size), ``color`` (brightness, saturation for
multi-channel images, contrast).

ADA (Karras et al. 2020): each op is applied to each sample with probability ``p``, and ``p`` is
steered so that the overfitting heuristic ``r_t = E[sign(D(x_real))]`` stays near a target. With
``adaptive=False`` p is fixed to 1 (plain DiffAugment).

All randomness comes from torch's global RNG on the images' device, and the number of draws does
not depend on ``p``, so seeding and RNG-state checkpoints reproduce runs exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from synthmed.errors import ConfigError

TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def _coin(n: int, p: float, x: torch.Tensor) -> torch.Tensor:
    """(n,) bool: which samples an op applies to."""
    return torch.rand(n, device=x.device) < p


def _per_sample(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1, 1, 1, 1)


def translation(x: torch.Tensor, p: float = 1.0) -> torch.Tensor:
    """Shift each image by up to 1/8 of its size in each direction, filling with zeros."""
    n, _, h, w = x.shape
    sh, sw = int(h * TRANSLATION_RATIO + 0.5), int(w * TRANSLATION_RATIO + 0.5)
    on = _coin(n, p, x).long()
    ty = torch.randint(-sh, sh + 1, (n, 1, 1), device=x.device) * on.reshape(n, 1, 1)
    tx = torch.randint(-sw, sw + 1, (n, 1, 1), device=x.device) * on.reshape(n, 1, 1)
    padded = F.pad(x, [sw, sw, sh, sh])
    rows = torch.arange(h, device=x.device).reshape(1, h, 1) + sh - ty  # (n, h, 1)
    cols = torch.arange(w, device=x.device).reshape(1, 1, w) + sw - tx  # (n, 1, w)
    batch = torch.arange(n, device=x.device).reshape(n, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, p: float = 1.0) -> torch.Tensor:
    """Zero a square of half the image size at a random centre (clipped at the borders)."""
    n, _, h, w = x.shape
    ch, cw = int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5)
    on = _coin(n, p, x).reshape(n, 1, 1)
    top = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device) - ch // 2
    left = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device) - cw // 2
    r = torch.arange(h, device=x.device).reshape(1, h, 1)
    c = torch.arange(w, device=x.device).reshape(1, 1, w)
    inside = (r >= top) & (r < top + ch) & (c >= left) & (c < left + cw) & on  # (n, h, w)
    return x * (~inside).unsqueeze(1).to(x.dtype)


def color(x: torch.Tensor, p: float = 1.0) -> torch.Tensor:
    """Random brightness (+-0.5), saturation (x[0, 2], RGB only) and contrast (x[0.5, 1.5])."""
    n, c = x.shape[:2]
    one = torch.ones((), device=x.device, dtype=x.dtype)
    on = _per_sample(_coin(n, p, x))
    shift = _per_sample(torch.rand(n, device=x.device, dtype=x.dtype) - 0.5)
    x = x + torch.where(on, shift, torch.zeros_like(one))
    if c > 1:
        sat = _per_sample(torch.rand(n, device=x.device, dtype=x.dtype) * 2.0)
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * torch.where(on, sat, one) + mean
    con = _per_sample(torch.rand(n, device=x.device, dtype=x.dtype) + 0.5)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * torch.where(on, con, one) + mean


AUGMENT_OPS: dict[str, Callable[[torch.Tensor, float], torch.Tensor]] = {
    "translation": translation,
    "cutout": cutout,
    "color": color,
}


def parse_policy(policy: str | Sequence[str] | None, *, key: str = "model.diffaugment"
                 ) -> tuple[str, ...]:
    """``"translation,cutout,color"`` -> ('translation', 'cutout', 'color'); '' / 'none' -> ().

    Unknown or repeated op names raise a ConfigError naming ``key`` and the valid ops.
    """
    if policy is None:
        return ()
    parts = policy.split(",") if isinstance(policy, str) else list(policy)
    ops = tuple(str(p).strip().lower() for p in parts if str(p).strip())
    if ops == ("none",):
        return ()
    valid = ", ".join(AUGMENT_OPS)
    for op in ops:
        if op not in AUGMENT_OPS:
            raise ConfigError(f"{key}: unknown augmentation {op!r}; use a comma list of {valid} "
                              "(or null for none)")
    if len(set(ops)) != len(ops):
        raise ConfigError(f"{key}: {policy!r} repeats an op; list each of {valid} at most once")
    return ops


def diff_augment(x: torch.Tensor, policy: str | Sequence[str], p: float = 1.0) -> torch.Tensor:
    """Apply the ops of ``policy`` in order, each to each sample with probability ``p``.

    x (N, C, H, W) float -> same shape; differentiable w.r.t. x.
    """
    if p <= 0.0:
        return x
    for op in parse_policy(policy):
        x = AUGMENT_OPS[op](x, p)
    return x


class AdaptiveAugment:
    """DiffAugment with an ADA-controlled probability (Karras et al. 2020).

    Call ``aug(x)`` on real and on fake batches before D. After each D step call
    ``observe(real_logits)`` then ``update(batch_size)``; every ``interval`` updates, p moves by
    ``sign(r_t - target) * batch_size * interval / speed_img`` (clipped to [0, 1]), where
    ``r_t`` is the mean sign of D's logits on (augmented) reals since the last adjustment: D too
    sure of the reals -> more augmentation. With ``adaptive=False`` p stays 1.

    Under DDP (:meth:`distribute`) the sign sum and count are all-reduced at each adjustment and
    ``batch_size`` is counted over all ranks, so every rank holds the same p, and p moves as fast
    as ``speed_img`` says whatever the number of processes (StyleGAN2-ADA reduces the same way).
    """

    def __init__(self, policy: str | Sequence[str], *, target: float = 0.6, interval: int = 4,
                 speed_img: int = 20_000, p: float = 0.0, adaptive: bool = True) -> None:
        self.ops = parse_policy(policy)
        if not 0.0 < target < 1.0:
            raise ConfigError(f"model.ada_target: must lie in (0, 1), got {target}")
        if interval < 1:
            raise ConfigError(f"model.ada_interval: must be >= 1, got {interval}")
        if speed_img < 1:
            raise ConfigError(f"model.ada_speed_img: must be >= 1, got {speed_img}")
        self.target = float(target)
        self.interval = int(interval)
        self.speed_img = int(speed_img)
        self.adaptive = bool(adaptive)
        self.p = min(max(float(p), 0.0), 1.0) if adaptive else 1.0
        self._sign_sum: torch.Tensor | float = 0.0  # kept on device between adjustments
        self._count = 0
        self._calls = 0
        self._r_t = 0.0
        self.world_size = 1
        self.device: torch.device | None = None

    def distribute(self, world_size: int, device: torch.device) -> None:
        """Agree across ``world_size`` processes (an initialized torch.distributed group)."""
        self.world_size, self.device = int(world_size), torch.device(device)

    def _totals(self) -> tuple[float, int]:
        """(sign sum, count) since the last adjustment, over all ranks (one host sync)."""
        if self.world_size == 1:
            return float(self._sign_sum), self._count
        import torch.distributed as dist

        device = self.device if dist.get_backend() == "nccl" else torch.device("cpu")
        t = torch.stack([torch.as_tensor(self._sign_sum, dtype=torch.float64).to(device),
                         torch.tensor(float(self._count), dtype=torch.float64, device=device)])
        dist.all_reduce(t)
        total, count = t.tolist()
        return total, int(count)

    def partial_state(self) -> dict:
        """This rank's accumulators since the last adjustment (differ between ranks)."""
        return {"sign_sum": float(self._sign_sum), "count": int(self._count)}

    def load_partial_state(self, state: dict | None) -> None:
        """This rank's accumulators; None (e.g. after a world-size change) starts them afresh."""
        state = state or {"sign_sum": 0.0, "count": 0}
        self._sign_sum, self._count = float(state["sign_sum"]), int(state["count"])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C, H, W) -> augmented x, same shape, differentiable w.r.t. x."""
        if not self.ops or self.p <= 0.0:
            return x
        for op in self.ops:
            x = AUGMENT_OPS[op](x, self.p)
        return x

    def observe(self, real_logits: torch.Tensor) -> None:
        """Accumulate sign(D(real)) (logits (N,)); no host sync until the next adjustment."""
        logits = real_logits.detach().float()
        self._sign_sum = self._sign_sum + torch.sign(logits).sum()
        self._count += logits.numel()

    def update(self, batch_size: int) -> None:
        """Call once per D step; every ``interval`` calls, recompute r_t and adjust p."""
        self._calls += 1
        if self._calls < self.interval:
            return
        self._calls = 0
        total, count = self._totals()
        if count == 0:
            return
        self._r_t = total / count
        self._sign_sum, self._count = 0.0, 0
        if self.adaptive:
            step = batch_size * self.world_size * self.interval / self.speed_img
            direction = (self._r_t > self.target) - (self._r_t < self.target)
            self.p = min(max(self.p + direction * step, 0.0), 1.0)

    @property
    def r_t(self) -> float:
        """The overfitting heuristic at the last adjustment (0.0 before the first)."""
        return self._r_t

    def state_dict(self) -> dict:
        """Plain Python numbers only, so checkpoints load with ``weights_only=True``."""
        return {"p": float(self.p), "sign_sum": float(self._sign_sum), "count": int(self._count),
                "calls": int(self._calls), "r_t": float(self._r_t)}

    def load_state_dict(self, state: dict) -> None:
        self.p = float(state["p"])
        self._sign_sum = float(state["sign_sum"])
        self._count = int(state["count"])
        self._calls = int(state["calls"])
        self._r_t = float(state["r_t"])

    def __repr__(self) -> str:
        mode = "adaptive" if self.adaptive else "fixed"
        return f"AdaptiveAugment({','.join(self.ops)!r}, p={self.p:.3f}, {mode})"
