"""``synthmed train``: the one training loop (every generator) with logging, samples, checkpoints
and exact resume; what differs between generators is a training method (:mod:`.method`).

Design choices, each for a reason:
- the training split lives on the device as one tensor (no per-step decoding);
- losses stay on the device and are read (one host sync) only every ``train.log_every`` steps;
- every source of randomness is seeded and checkpointed, so a run killed after the checkpoint at
  step k and resumed ends with the same weights as an uninterrupted run (on CPU);
- SIGINT/SIGTERM finish the current step, write a checkpoint and exit cleanly.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path
from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel

from synthmed import __version__, generators
from synthmed.config import ExperimentConfig, save_config
from synthmed.device import native_bf16, retain_freed_memory, synchronize
from synthmed.errors import ConfigError, SynthmedError
from synthmed.runs import Run
from synthmed.seed import rng_state, seed_everything
from synthmed.training import distributed as ddp
from synthmed.training.checkpoint import CHECKPOINT_FORMAT, list_checkpoints, save_checkpoint
from synthmed.training.data import (
    BatchStream,
    TrainingData,
    check_step_memory,
    draw_batches,
    drop_unlabelled,
    fit_batch_size,
    load_training_data,
)
from synthmed.training.ema import build_ema
from synthmed.training.method import EMA_KEY, TRAINER_KEYS, TrainingMethod, resolve_method
from synthmed.training.progress import LossMeter, RunClock, TrainProgress, log_line, short_of_recipe
from synthmed.training.resume import resolve_config, restore, run_lock
from synthmed.training.samples import GRID_IMAGES, write_sample_grid
from synthmed.training.stopping import StopAgreement, stop_on_signals


class TrainingDiverged(SynthmedError):
    """A loss became NaN or Inf; no checkpoint of the diverged weights was written."""


def build_method(cfg: ExperimentConfig, data: TrainingData, device: torch.device,
                 info: ddp.DistInfo) -> tuple[TrainingMethod, dict[str, Any]]:
    """The training method for ``model.name`` built on ``data``, and the run's ``meta``."""
    method = resolve_method(cfg.model.name).build(cfg, data, device, info)
    meta = {"in_channels": int(data.images.shape[1]), "image_size": int(data.images.shape[-1]),
            "n_classes": len(data.class_names) if data.labelled else 0,
            "class_names": data.class_names, "dataset_hash": data.dataset_hash,
            "dataset_path": data.dataset_path, "method": type(method).__name__,
            **method.meta()}
    return method, meta


def _build_ema(cfg: ExperimentConfig, method: TrainingMethod) -> AveragedModel | None:
    use = method.default_ema if cfg.model.ema is None else cfg.model.ema
    return build_ema(method.ema_network(), cfg.model.ema_decay) if use else None


def _state(method: TrainingMethod, ema, stream: BatchStream, step: int, cfg: ExperimentConfig,
           meta: dict[str, Any], world_size: int) -> dict[str, Any]:
    own = method.state_dict()
    clash = sorted(set(own) & TRAINER_KEYS)
    if clash:
        raise RuntimeError(f"{type(method).__name__}.state_dict uses trainer keys {clash}")
    return {
        **own,
        EMA_KEY: ema.state_dict() if ema is not None else None,
        "stream": stream.state_dict(),
        "step": step,
        "rng": rng_state(),
        "config": cfg.model_dump(mode="json"),
        "meta": meta,
        "synthmed_version": __version__,
        "checkpoint_format": CHECKPOINT_FORMAT,
        "world_size": world_size,
    }


def train(config: ExperimentConfig | str | Path | None = None, *,
          overrides: list[str] | None = None, runs_dir: str | Path = "runs",
          resume: str | Path | None = None, progress: bool = True) -> Path:
    """Train the generator described by ``config`` (or resume ``resume``); return the run dir."""
    cfg, state = resolve_config(config, overrides, resume)
    info, device = ddp.init_distributed(cfg.train.device)
    try:
        return _train(cfg, state, info, device, runs_dir, resume, progress)
    finally:
        ddp.cleanup(info)


def _set_up_processes(t, info: ddp.DistInfo) -> None:
    if t.batch_size % info.world_size:
        raise ConfigError(f"train.batch_size: {t.batch_size} is not divisible by the "
                          f"{info.world_size} processes")
    retain_freed_memory()  # no page faults for the step's buffers, every step (~10% CPU)
    if t.num_threads or info.enabled:
        torch.set_num_threads(t.num_threads or max(1, (torch.get_num_threads()) // info.world_size))


def _set_determinism(deterministic: bool) -> None:
    """Deterministic kernels (exact resume) or cuDNN autotuning (faster on GPUs)."""
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic


def _create_run(cfg, info, device, runs_dir, resume) -> Path:
    """Rank 0 creates the run directory (or takes the resumed one); every rank learns it."""
    path = None
    if info.is_main:
        path = str(resume) if resume else str(Run.create(runs_dir, cfg.name, cfg,
                                                         device=str(device),
                                                         seed=cfg.train.seed).path)
    return Path(ddp.broadcast_object(path, info))


def _open_run(cfg, data, meta, info, device, run_path, resume, start) -> Run | None:
    """Rank 0's run with the opening log lines."""
    if not info.is_main:
        return None
    t = cfg.train
    run = Run(run_path)
    run.log(f"resumed at step {start}" if resume else
            f"training {cfg.model.name} on {data.dataset_path} ({len(data.images)} images, "
            f"{meta['n_classes']} classes) on {device}, world size {info.world_size}")
    if resume:
        run.log_metrics({"event": "resume", "step": start})
        save_config(cfg, run.path / "config.yaml")  # e.g. a raised train.steps
    if t.amp and device.type == "cpu" and not native_bf16(device):
        run.log("train.amp: this CPU has no native bf16, so autocast is slower than float32; "
                "set train.amp=false")
    return run


def _train(cfg, state, info, device, runs_dir, resume, progress) -> Path:
    t = cfg.train
    _set_up_processes(t, info)
    deterministic = device.type != "cuda" if t.deterministic is None else t.deterministic
    info = dataclasses.replace(
        info, sync_batchnorm=ddp.resolve_sync_batchnorm(t.sync_batchnorm, info, device))
    seed_everything(t.seed)
    data = load_training_data(cfg.data, cfg.model.image_size, device,
                              masks=generators.needs_masks(cfg.model.name))
    data, dropped = drop_unlabelled(data, cfg.model.name)
    notices = [n for n in (dropped, fit_batch_size(t, len(data.images), info.world_size)) if n]
    m = cfg.model  # each section has its own width key (U-Net/VAE channels, GAN base_width)
    width = (getattr(m, "channels", None) or [None])[0] or getattr(m, "base_width", 32)
    check_step_memory(t.batch_size, int(data.images.shape[-1]), width, device)
    method, meta = build_method(cfg, data, device, info)
    ema = _build_ema(cfg, method)
    meta["ema"] = ema is not None
    if info.enabled:  # same init everywhere (DDP broadcast), different noise and data per rank
        seed_everything(t.seed + 1_000_003 * info.rank)
    stream = BatchStream(len(data.images), t.batch_size // info.world_size, seed=t.seed,
                         rank=info.rank, world_size=info.world_size)
    start, note = (restore(method, ema, stream, state, info, t.seed) if state is not None
                   else (0, None))
    _set_determinism(deterministic)
    run_path = _create_run(cfg, info, device, runs_dir, resume)
    with run_lock(run_path, info):
        run = _open_run(cfg, data, meta, info, device, run_path, resume, start)
        for note in notices if run else []:
            run.log(f"warning: {note}")
            print(f"warning: {note}", file=sys.stderr, flush=True)
        if run:
            run.log(f"deterministic kernels: {'on' if deterministic else 'off'}; "
                    f"SyncBatchNorm: {'on' if info.sync_batchnorm else 'off'}"
                    + (f"; {note}" if note else ""))
        return _loop(cfg, method, ema, data, stream, meta, info, device, run, run_path, start,
                     progress)


def _any_rank(bad: bool, info: ddp.DistInfo, device: torch.device) -> bool:
    """Whether any process saw a non-finite loss (one-int all-reduce under torchrun), so every
    rank stops at the same step instead of the others waiting in the next collective."""
    if not info.enabled:
        return bad
    import torch.distributed as dist

    on = device if dist.get_backend() == "nccl" else torch.device("cpu")
    t = torch.tensor([int(bad)], dtype=torch.int64, device=on)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def _stop_if_diverged(losses: dict[str, Any] | LossMeter, step: int, run: Run | None,
                      run_path: Path, info: ddp.DistInfo, device: torch.device) -> None:
    """Stop on a NaN or Inf loss (e.g. ``train.lr_g=1e10``; before, nan losses trained to the end
    and exited 0) with one line naming the step and the last good checkpoint. ``losses`` is a
    logged record (already on the host) or, before a checkpoint, the meter (one host sync)."""
    if isinstance(losses, LossMeter):
        bad = None if losses.finite() else "a loss is NaN or Inf"
        what = f"by step {step}: "
    else:
        bad = next((f"{k} is {v}" for k, v in losses.items()
                    if k.startswith("loss_") and v is not None and not math.isfinite(v)), None)
        what = f"at step {step}: "
    if not _any_rank(bad is not None, info, device):
        return
    what += bad or "a loss of another process is NaN or Inf"
    good = list_checkpoints(run_path / "checkpoints")
    last = f"the last good checkpoint is {good[-1]}" if good else "no checkpoint was written"
    msg = (f"training diverged {what}; {last}; lower train.lr_g and train.lr_d (or change the "
           "loss) and train again")
    if run:
        run.log(msg)
    raise TrainingDiverged(msg)


def _loop(cfg, method, ema, data, stream, meta, info, device, run, run_path, start,
          progress) -> Path:
    t = cfg.train
    grid_inputs = method.grid_inputs(t.seed, GRID_IMAGES)
    host_labels = data.labels.cpu() if data.labelled else None
    last_grid = [None]

    def checkpoint(step: int, periodic: bool) -> None:
        rngs = ddp.gather_to_main(rng_state(), info)  # every rank's noise stream, for resume
        ranks = ddp.gather_to_main(method.rank_state(), info)
        if info.is_main:
            state = _state(method, ema, stream, step, cfg, meta, info.world_size)
            state["rng_per_rank"] = rngs if info.enabled else None
            state["method_per_rank"] = ranks
            save_checkpoint(state, run_path / "checkpoints", step, keep=t.keep_checkpoints,
                            periodic=periodic)

    def sample_grid(step: int) -> None:
        net = ema.module if ema is not None else method.ema_network()
        write_sample_grid(method, grid_inputs, net, run_path / "samples" / f"step-{step:08d}.png")
        last_grid[0] = step

    bar = TrainProgress(total=t.steps, start=start, enabled=progress and info.is_main)
    meter, step, stop = LossMeter(info), start, StopAgreement(info, device)
    per_step = method.batches_per_step * t.batch_size
    clock = RunClock(start, t.steps, sync=lambda: synchronize(device))
    with stop_on_signals() as flag, bar:
        while step < t.steps and not stop(flag, step):
            batches = draw_batches(data, stream, method.batches_per_step, device, host_labels)
            meter.add(method.train_step(batches))
            if ema is not None:
                ema.update_parameters(method.ema_network())
            step += 1
            if (note := clock.tick(step)) and run:
                run.log(note)
                bar.note(note)
            if step % t.log_every == 0 or step == t.steps:
                rec = {**meter.record(step, per_step), **method.log_values()}
                if run:
                    run.log_metrics(rec)
                    run.log(log_line(rec, t.steps, clock.eta(step)))
                _stop_if_diverged(rec, step, run, run_path, info, device)
                bar.update(step, rec)
            else:
                bar.update(step)
            if info.is_main and (step % t.sample_every == 0 or step == t.steps):
                sample_grid(step)
            if step % t.checkpoint_every == 0 and step < t.steps:
                _stop_if_diverged(meter, step, run, run_path, info, device)
                checkpoint(step, periodic=True)
    _stop_if_diverged(meter, step, run, run_path, info, device)  # no checkpoint of diverged weights
    if info.is_main and last_grid[0] != step:  # a stopped run shows where it stopped
        sample_grid(step)
    checkpoint(step, periodic=True)
    ddp.barrier(info)
    if run:
        why = f"stopped by {stop.reason}" if stop.reason else "finished"
        run.log(f"{why} at step {step}; checkpoint {run_path / 'checkpoints' / 'latest.pt'}")
        if short := short_of_recipe(cfg.model.name, step, meta["image_size"]):
            run.log(short)
    return run_path
