"""Where a training step's time goes: ``python benchmarks/step_time.py --profile``.

One fresh process per model runs the real ``synthmed.training.train`` at the model's shipped config
(configs/*.yaml) for a few steps, with timers wrapped around its parts: the networks' forward
passes (forward hooks), ``backward``, the optimizer steps, augmentation, EMA, batch gathering,
loss bookkeeping, logging, RNG-state capture, checkpoint state and write, sample grids, and the
start-up (imports, data load, building the networks, opening the run, the first step). Time is
*exclusive* (a part nested in another is charged to the inner part only) and is process CPU time
(``time.process_time``) by default: with one thread it is the work done, whatever else the
machine runs. Events that happen every k steps (logging, grids, checkpoints) are charged per step
at the shipped interval: their measured cost / k.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict

T_START = time.process_time()  # the interpreter's own start-up is already in here

CONFIGS = {
    "dcgan": ("dcgan_phantom.yaml", []),
    "cgan": ("cgan_small_data.yaml", []),
    "ddpm": ("ddpm_phantom.yaml", []),
    "vae": ("vae_phantom.yaml", []),
    "acgan": ("acgan_phantom.yaml", []),
}
#: Parts charged once per run (start-up) and parts charged every k steps (k from the config).
STARTUP = ("imports", "config + other set-up", "data load", "build networks + EMA", "open run",
           "first step")
EVERY = {"sample grid": "sample_every", "checkpoint: RNG state": "checkpoint_every",
         "checkpoint: state dict": "checkpoint_every", "checkpoint: write": "checkpoint_every"}
ONCE_PER_STEP = ("batch gather", "EMA", "loss bookkeeping")  # these include the first step


class Clock:
    """Exclusive-time accounting with a stack of named regions (the bottom one is the base)."""

    def __init__(self, base: str, last: float, clock=time.process_time) -> None:
        self.clock = clock
        self.total: dict[str, float] = defaultdict(float)
        self.count: dict[str, int] = defaultdict(int)
        self.stack: list[str] = [base]
        self.last = last
        self.frozen = False  # inside the first step: everything is charged to it

    def _charge(self) -> None:
        now = self.clock()
        self.total[self.stack[-1]] += now - self.last
        self.last = now

    def enter(self, name: str) -> None:
        if self.frozen:
            return
        self._charge()
        self.stack.append(name)
        self.count[name] += 1

    def exit(self) -> None:
        if self.frozen:
            return
        self._charge()
        self.stack.pop()

    def wrap(self, name: str, fn, when=lambda: True):
        def timed(*args, **kwargs):
            if not when():
                return fn(*args, **kwargs)
            self.enter(name)
            try:
                return fn(*args, **kwargs)
            finally:
                self.exit()
        return timed


def _instrument_method(clk: Clock, method, active) -> None:
    """Forward hooks on the method's networks (counted only while ``active()``: inside a
    training step, not when a sample grid runs the EMA copy, which inherits the hooks); timers
    on its optimizers and augmenter."""
    import torch
    from torch import nn

    from synthmed.training.optim import LeanAdam

    owners = [method] + ([method.steps] if hasattr(method, "steps") else [])
    names = {"G": "G forward", "D": "D forward", "unet": "U-Net forward",
             "vae": "VAE forward"}
    for owner in owners:
        for attr, value in list(vars(owner).items()):
            if isinstance(value, nn.Module) and attr in names:
                label = names[attr]
                value.register_forward_pre_hook(
                    lambda *_, label=label: clk.enter(label) if active() else None)
                value.register_forward_hook(lambda *_: clk.exit() if active() else None)
            elif isinstance(value, torch.optim.Optimizer | LeanAdam):
                value.step = clk.wrap("optimizer steps", value.step)
            elif attr == "augment" and value is not None:
                cls = value.__class__
                cls.__call__ = clk.wrap("augmentation", cls.__call__)


def profile_cell(model: str, steps: int, root, threads: int) -> dict:
    """One model's breakdown, in this (fresh) process."""
    clk = Clock("imports", T_START)
    import torch
    from torch import autograd

    from synthmed import runs
    from synthmed.config import load_config
    from synthmed.training import trainer
    clk._charge()
    clk.stack[0] = "config + other set-up"
    torch.set_num_threads(threads)
    name, extra = CONFIGS[model]
    cfg = load_config(root / "configs" / name, extra + [
        f"train.steps={steps}", "train.device=cpu", f"train.num_threads={threads}"])
    in_loop = {"on": False, "step": False}
    orig_build, orig_ema = trainer.build_method, trainer._build_ema

    def build_method(*a, **k):
        out = orig_build(*a, **k)
        _instrument_method(clk, out[0], lambda: in_loop["step"])
        inner = out[0].train_step

        def step(batches):
            in_loop["step"] = True
            try:
                return inner(batches)
            finally:
                in_loop["step"] = False

        def train_step(batches):
            if in_loop["on"]:
                return step(batches)
            in_loop["on"] = True  # the first step (allocation, oneDNN set-up) is start-up
            clk.enter("first step")
            clk.frozen = True
            try:
                return step(batches)
            finally:
                clk.frozen = False
                clk.exit()
                clk.stack[0] = "loop overhead"
        out[0].train_step = train_step
        return out

    def build_ema(*a, **k):
        ema = orig_ema(*a, **k)
        if ema is not None:
            ema.update_parameters = clk.wrap("EMA", ema.update_parameters)
        return ema

    patches = {
        "load_training_data": "data load", "rng_state": "checkpoint: RNG state",
        "_state": "checkpoint: state dict", "save_checkpoint": "checkpoint: write",
        "write_sample_grid": "sample grid", "draw_batches": "batch gather",
        "_create_run": "open run", "_open_run": "open run", "log_line": "logging"}
    for attr, label in patches.items():
        setattr(trainer, attr, clk.wrap(label, getattr(trainer, attr)))
    trainer._build_ema = clk.wrap("build networks + EMA", build_ema)
    trainer.build_method = clk.wrap("build networks + EMA", build_method)
    trainer.LossMeter.add = clk.wrap("loss bookkeeping", trainer.LossMeter.add)
    trainer.LossMeter.record = clk.wrap("logging", trainer.LossMeter.record)
    runs.Run.log = clk.wrap("logging", runs.Run.log, when=lambda: in_loop["on"])
    runs.Run.log_metrics = clk.wrap("logging", runs.Run.log_metrics, when=lambda: in_loop["on"])
    autograd.backward = clk.wrap("backward", autograd.backward)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        w0 = time.perf_counter()
        trainer.train(cfg, runs_dir=tmp, progress=False)
        wall = time.perf_counter() - w0
    clk._charge()
    per_step = {}
    n_logs = clk.count["logging"] and -(-steps // cfg.train.log_every)  # record events
    for part, secs in clk.total.items():
        if part in STARTUP:
            continue
        if part in EVERY:  # measured at the final step; charged at the shipped interval
            per_step[part] = secs / max(1, clk.count[part]) / getattr(cfg.train, EVERY[part])
        elif part == "logging":  # every log_every steps (plus the run's closing lines)
            per_step[part] = secs / max(1, n_logs) / cfg.train.log_every
        else:
            per_step[part] = secs / (steps if part in ONCE_PER_STEP else steps - 1)
    return {"model": model, "config": name, "steps": steps, "threads": threads,
            "batch": cfg.train.batch_size, "size": cfg.model.image_size or cfg.data.phantom_size,
            "ms_per_step": {k: 1000 * v for k, v in per_step.items()},
            "startup_s": {p: clk.total.get(p, 0.0) for p in STARTUP}, "train_wall_s": wall,
            "intervals": {k: getattr(cfg.train, k) for k in
                          ("log_every", "sample_every", "checkpoint_every")}}


def table(results: list[dict]) -> str:
    """A markdown table: parts as rows, one ms-per-step and share column per model."""
    parts: list[str] = []
    for r in results:
        parts += [p for p in r["ms_per_step"] if p not in parts]
    order = ["batch gather", "G forward", "D forward", "U-Net forward", "VAE forward",
             "backward", "optimizer steps", "augmentation", "EMA", "loss bookkeeping", "logging",
             "sample grid", "checkpoint: RNG state", "checkpoint: state dict",
             "checkpoint: write", "loop overhead"]
    parts = [p for p in order if p in parts] + [p for p in parts if p not in order]
    head = "| part | " + " | ".join(
        f"{r['model']} ({r['size']} px, batch {r['batch']})" for r in results) + " |"
    lines = [head, "|---" * (len(results) + 1) + "|"]
    for p in parts:
        cells = []
        for r in results:
            v = r["ms_per_step"].get(p)
            tot = sum(r["ms_per_step"].values())
            cells.append("" if v is None else f"{v:.1f} ms ({100 * v / tot:.1f}%)")
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    lines.append("| **step total** | " + " | ".join(
        f"**{sum(r['ms_per_step'].values()):.0f} ms**" for r in results) + " |")
    for p in STARTUP:
        lines.append(f"| start-up: {p} | " + " | ".join(
            f"{r['startup_s'][p]:.2f} s" for r in results) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys
    from pathlib import Path

    print(json.dumps(profile_cell(sys.argv[1], int(sys.argv[2]),
                                  Path(__file__).resolve().parents[1], int(sys.argv[3]))))
