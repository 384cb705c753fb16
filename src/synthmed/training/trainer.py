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

import contextlib
import signal
import time
from pathlib import Path
from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel

from synthmed import __version__
from synthmed.config import ExperimentConfig, apply_overrides, config_from_dict, load_config
from synthmed.errors import ConfigError
from synthmed.runs import Run
from synthmed.seed import rng_state, seed_everything, set_rng_state
from synthmed.training import distributed as ddp
from synthmed.training.checkpoint import (
    CHECKPOINT_FORMAT,
    load_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
)
from synthmed.training.data import BatchStream, TrainingData, load_training_data
from synthmed.training.ema import build_ema
from synthmed.training.method import EMA_KEY, TRAINER_KEYS, Batch, TrainingMethod, resolve_method
from synthmed.training.methods.gan import GANMethod
from synthmed.training.progress import TrainProgress
from synthmed.training.samples import GRID_IMAGES, write_sample_grid
from synthmed.training.steps import GANSteps


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


def build_steps(cfg: ExperimentConfig, data: TrainingData, device: torch.device,
                info: ddp.DistInfo) -> tuple[GANSteps, dict[str, Any]]:
    """The GAN steps (G, D, optimizers, loss, augmentation) for a GAN ``cfg`` on ``data``."""
    method, meta = build_method(cfg, data, device, info)
    if not isinstance(method, GANMethod):
        raise ConfigError(f"model.name: {cfg.model.name} is not a GAN")
    return method.steps, meta


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


def _restore(method: TrainingMethod, ema, stream: BatchStream, state: dict[str, Any],
             info: ddp.DistInfo) -> int:
    method.load_state_dict(state)
    if ema is not None and state.get(EMA_KEY) is not None:
        ema.load_state_dict(state[EMA_KEY])
    stream.load_state_dict(state["stream"])
    per_rank = state.get("rng_per_rank") or []
    set_rng_state(per_rank[info.rank] if len(per_rank) == info.world_size else state["rng"])
    return int(state["step"])


# Keys that say how to run, not what to train: a resumed run may change them.
RESUMABLE_KEYS = ("train.steps", "train.sample_every", "train.checkpoint_every",
                  "train.keep_checkpoints", "train.log_every", "train.device", "train.num_threads")


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(_flatten(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


def _resolve_config(config, overrides, resume) -> tuple[ExperimentConfig, dict | None]:
    """The config to train with and, when resuming, the checkpoint state.

    Resuming continues the run's saved config; a CONFIG given as well must describe the same
    experiment (it may differ only in :data:`RESUMABLE_KEYS`, e.g. more ``train.steps``).
    """
    if resume is None:
        if isinstance(config, ExperimentConfig):
            data = apply_overrides(config.model_dump(mode="json"), overrides)
            return config_from_dict(data), None
        return load_config(config, overrides), None
    state = load_checkpoint(resolve_checkpoint(resume, "latest"))
    source = f"{resume} (resumed config)"
    saved = config_from_dict(dict(state["config"]), source=source)
    if config is None:
        cfg = config_from_dict(apply_overrides(dict(state["config"]), overrides), source=source)
    elif isinstance(config, ExperimentConfig):
        cfg = config_from_dict(apply_overrides(config.model_dump(mode="json"), overrides))
    else:
        cfg = load_config(config, overrides)
    a, b = _flatten(saved.model_dump(mode="json")), _flatten(cfg.model_dump(mode="json"))
    differ = sorted(k for k in a.keys() | b.keys()
                    if a.get(k) != b.get(k) and k not in RESUMABLE_KEYS and k != "name")
    if differ:
        raise ConfigError(
            f"{differ[0]}: differs from the run being resumed ({resume}); resume continues the "
            f"same experiment, so only {', '.join(RESUMABLE_KEYS)} may change (start a new run "
            "to change the rest)")
    return cfg.model_copy(update={"name": saved.name}), state


@contextlib.contextmanager
def _stop_on_signals():
    """SIGINT/SIGTERM set a flag; the loop checkpoints and exits at the end of the step."""
    flag = {"stop": None}

    def handler(signum, _frame):
        if flag["stop"] is not None:  # second signal: give up immediately
            raise KeyboardInterrupt
        flag["stop"] = signal.Signals(signum).name

    try:
        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: no handlers
        old = {}
    try:
        yield flag
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def train(config: ExperimentConfig | str | Path | None = None, *,
          overrides: list[str] | None = None, runs_dir: str | Path = "runs",
          resume: str | Path | None = None, progress: bool = True) -> Path:
    """Train the generator described by ``config`` (or resume ``resume``); return the run dir."""
    cfg, state = _resolve_config(config, overrides, resume)
    info, device = ddp.init_distributed(cfg.train.device)
    try:
        return _train(cfg, state, info, device, runs_dir, resume, progress)
    finally:
        ddp.cleanup(info)


def _cpu_has_bf16() -> bool:
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(check and check())


def _set_up_processes(t, info: ddp.DistInfo) -> None:
    if t.batch_size % info.world_size:
        raise ConfigError(f"train.batch_size: {t.batch_size} is not divisible by the "
                          f"{info.world_size} processes")
    if t.num_threads or info.enabled:
        torch.set_num_threads(t.num_threads or max(1, (torch.get_num_threads()) // info.world_size))


def _open_run(cfg, data, meta, info, device, runs_dir, resume, start) -> Run | None:
    """Rank 0's run directory (a new one, or the resumed one) with the opening log lines."""
    if not info.is_main:
        return None
    t = cfg.train
    run = Run(resume) if resume else Run.create(runs_dir, cfg.name, cfg, device=str(device),
                                                seed=t.seed)
    run.log(f"resumed at step {start}" if resume else
            f"training {cfg.model.name} on {data.dataset_path} ({len(data.images)} images, "
            f"{meta['n_classes']} classes) on {device}, world size {info.world_size}")
    if resume:
        run.log_metrics({"event": "resume", "step": start})
    if t.amp and device.type == "cpu" and not _cpu_has_bf16():
        run.log("train.amp: this CPU has no native bf16, so autocast is slower than float32; "
                "set train.amp=false")
    return run


def _draw(data: TrainingData, stream: BatchStream, k: int, device: torch.device) -> list[Batch]:
    """``k`` batches of the split, gathered on the device from the stream's row indices."""
    out = []
    for _ in range(k):
        idx = stream.next().to(device)
        out.append(Batch(images=data.images[idx],
                         labels=data.labels[idx] if data.labelled else None,
                         masks=data.masks[idx] if data.masks is not None else None, indices=idx))
    return out


class _Meter:
    """Device-side running sums of the step losses; one host sync per logging interval."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.n, self.t0 = 0, time.perf_counter()

    def add(self, losses: dict[str, torch.Tensor]) -> None:
        for k, v in losses.items():
            v = v.detach().float()
            self.sums[k] = self.sums[k] + v if k in self.sums else v.clone()
        self.n += 1

    def record(self, step: int, images_per_step: int) -> dict[str, Any]:
        dt = time.perf_counter() - self.t0
        rec: dict[str, Any] = {"step": step}
        rec.update({k: (v / self.n).item() for k, v in self.sums.items()})
        rec["img_per_s"] = self.n * images_per_step / max(dt, 1e-9)
        self.sums, self.n, self.t0 = {}, 0, time.perf_counter()
        return rec


def _train(cfg, state, info, device, runs_dir, resume, progress) -> Path:
    t = cfg.train
    _set_up_processes(t, info)
    seed_everything(t.seed)
    method_cls = resolve_method(cfg.model.name)
    data = load_training_data(cfg.data, cfg.model.image_size, device,
                              masks=method_cls.needs_masks)
    method, meta = build_method(cfg, data, device, info)
    ema = _build_ema(cfg, method)
    meta["ema"] = ema is not None
    if info.enabled:  # same init everywhere (DDP broadcast), different noise and data per rank
        seed_everything(t.seed + 1_000_003 * info.rank)
    stream = BatchStream(len(data.images), t.batch_size // info.world_size, seed=t.seed,
                         rank=info.rank, world_size=info.world_size)
    start = _restore(method, ema, stream, state, info) if state is not None else 0

    run = _open_run(cfg, data, meta, info, device, runs_dir, resume, start)
    run_path = Path(ddp.broadcast_object(str(run.path) if run else None, info))
    grid_inputs = method.grid_inputs(t.seed, GRID_IMAGES)

    def checkpoint(step: int, periodic: bool) -> None:
        rngs = ddp.gather_to_main(rng_state(), info)  # every rank's noise stream, for resume
        if info.is_main:
            state = _state(method, ema, stream, step, cfg, meta, info.world_size)
            state["rng_per_rank"] = rngs if info.enabled else None
            save_checkpoint(state, run_path / "checkpoints", step, keep=t.keep_checkpoints,
                            periodic=periodic)

    def sample_grid(step: int) -> None:
        net = ema.module if ema is not None else method.ema_network()
        write_sample_grid(method, grid_inputs, net, run_path / "samples" / f"step-{step:08d}.png")

    bar = TrainProgress(total=t.steps, start=start, enabled=progress and info.is_main)
    meter, step = _Meter(), start
    per_step = method.batches_per_step * t.batch_size
    with _stop_on_signals() as flag, bar:
        while step < t.steps and flag["stop"] is None:
            meter.add(method.train_step(_draw(data, stream, method.batches_per_step, device)))
            if ema is not None:
                ema.update_parameters(method.ema_network())
            step += 1
            if step % t.log_every == 0 or step == t.steps:
                rec = {**meter.record(step, per_step), **method.log_values()}
                if run:
                    run.log_metrics(rec)
                bar.update(step, rec)
            else:
                bar.update(step)
            if info.is_main and (step % t.sample_every == 0 or step == t.steps):
                sample_grid(step)
            if step % t.checkpoint_every == 0 and step < t.steps:
                checkpoint(step, periodic=True)
    checkpoint(step, periodic=True)
    ddp.barrier(info)
    if run:
        why = f"stopped by {flag['stop']}" if flag["stop"] else "finished"
        run.log(f"{why} at step {step}; checkpoint {run_path / 'checkpoints' / 'latest.pt'}")
    return run_path
