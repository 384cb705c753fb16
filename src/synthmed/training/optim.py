"""The training methods' Adam (Kingma & Ba 2015): ``torch.optim.Adam`` on GPUs, and on the CPU
the same update without PyTorch's optimizer base class.

Why: creating any ``torch.optim.Optimizer`` imports ``torch._dynamo`` (the ``torch.compile``
front end, with sympy and the FX symbolic-shape machinery), because the base class wraps its
methods so that the compiler skips them. That import costs about 1.2 CPU-seconds, as much as
``import torch`` itself, and a CPU training run never compiles: it was 2-3% of a 25-step DCGAN run
(docs/benchmarks.md). On the CPU ``torch.optim.Adam`` runs its single-tensor loop
(``_single_tensor_adam``: no foreach or fused kernels there); :class:`LeanAdam` performs the same
tensor operations in the same order, so weights and moments are bit-identical to it, and its
state dict is ``torch.optim.Adam``'s, so checkpoints move freely between the two (and between CPU
and GPU runs). tests/training/test_optim.py checks both.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import torch

#: ``torch.optim.Adam``'s per-group options, with the values this class implements.
ADAM_GROUP_DEFAULTS: dict[str, Any] = {
    "weight_decay": 0, "amsgrad": False, "maximize": False, "foreach": None,
    "capturable": False, "differentiable": False, "fused": None,
    "decoupled_weight_decay": False,
}


def _scalar_dtype() -> torch.dtype:
    """The dtype of Adam's ``step`` counter (``torch.optim.optimizer._get_scalar_dtype``)."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def build_adam(params: Iterable[torch.nn.Parameter], *, lr: float, betas, device: torch.device,
               eps: float = 1e-8):
    """Adam over ``params``: :class:`LeanAdam` on the CPU, ``torch.optim.Adam`` elsewhere (its
    foreach kernels are what a GPU wants, and there the import is noise)."""
    if torch.device(device).type == "cpu":
        return LeanAdam(params, lr=lr, betas=betas, eps=eps)
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas), eps=eps)


class LeanAdam:
    """``torch.optim.Adam(params, lr, betas, eps)`` (no weight decay, amsgrad or maximize) as the
    CPU runs it, duck-typed: ``param_groups``, ``state``, ``zero_grad``, ``step``,
    ``state_dict`` and ``load_state_dict`` behave as ``torch.optim.Optimizer``'s do (the
    gradient scaler and the checkpoint code see no difference)."""

    def __init__(self, params: Iterable[torch.nn.Parameter], *, lr: float, betas,
                 eps: float = 1e-8) -> None:
        b1, b2 = (float(b) for b in betas)
        if lr < 0 or eps < 0 or not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ValueError(f"invalid Adam settings: lr={lr}, betas=({b1}, {b2}), eps={eps}")
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        self.defaults: dict[str, Any] = {"lr": lr, "betas": (b1, b2), "eps": eps,
                                         **ADAM_GROUP_DEFAULTS}
        self.param_groups: list[dict[str, Any]] = [{"params": params, **self.defaults}]
        self.state: defaultdict[torch.Tensor, dict[str, torch.Tensor]] = defaultdict(dict)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    if p.grad.grad_fn is not None:
                        p.grad.detach_()
                    else:
                        p.grad.requires_grad_(False)
                    p.grad.zero_()

    @torch.no_grad()
    def step(self, closure=None):
        """One Adam update of every parameter with a gradient (``_single_tensor_adam``'s ops)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, eps = group["lr"], group["eps"]
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad, state = p.grad, self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0, dtype=_scalar_dtype())
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p,
                                                           memory_format=torch.preserve_format)
                exp_avg, exp_avg_sq, step_t = state["exp_avg"], state["exp_avg_sq"], state["step"]
                step_t += 1
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                step = step_t.item()
                bias_correction1 = 1 - beta1**step
                bias_correction2 = 1 - beta2**step
                step_size = lr / bias_correction1
                denom = (exp_avg_sq.sqrt() / bias_correction2**0.5).add_(eps)
                p.addcdiv_(exp_avg, denom, value=-step_size)
        return loss

    def state_dict(self) -> dict[str, Any]:
        """``torch.optim.Optimizer.state_dict``'s layout: parameters numbered in group order."""
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            for p in group["params"]:
                index.setdefault(id(p), len(index))
            packed["params"] = [index[id(p)] for p in group["params"]]
            groups.append(packed)
        state = {index[id(p)]: s for p, s in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict of this class or of ``torch.optim.Adam`` (same rules as torch's)."""
        saved = state_dict["param_groups"]
        if len(saved) != len(self.param_groups) or any(
                len(g["params"]) != len(s["params"])
                for g, s in zip(self.param_groups, saved, strict=True)):
            raise ValueError("loaded state dict has a different number of parameter groups or "
                             "parameters than this optimizer")
        for s in saved:
            bad = {k: s[k] for k, v in ADAM_GROUP_DEFAULTS.items()
                   if k in s and k not in ("foreach", "fused") and s[k] != v}
            if bad:
                raise ValueError(f"LeanAdam does not implement Adam options {bad}")
        by_index = {i: p for g, s in zip(self.param_groups, saved, strict=True)
                    for i, p in zip(s["params"], g["params"], strict=True)}
        self.state = defaultdict(dict)
        for i, values in state_dict["state"].items():
            p = by_index[i]
            st = {}
            for k, v in values.items():
                if k == "step":
                    st[k] = v if torch.is_tensor(v) else torch.tensor(float(v),
                                                                       dtype=torch.float32)
                else:
                    st[k] = v.to(dtype=p.dtype, device=p.device)
            self.state[p] = st
        self.param_groups = [{**{k: v for k, v in s.items() if k != "params"},
                              "params": g["params"]}
                             for g, s in zip(self.param_groups, saved, strict=True)]
        for g in self.param_groups:
            for k, v in ADAM_GROUP_DEFAULTS.items():
                g.setdefault(k, v)
