"""``synthmed train``: the GAN training loop with logging, samples, checkpoints and exact resume.

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

from synthmed import __version__
from synthmed.config import ExperimentConfig, apply_overrides, config_from_dict, load_config
from synthmed.errors import ConfigError
from synthmed.models import build_gan
from synthmed.runs import Run
from synthmed.seed import rng_state, seed_everything, set_rng_state
from synthmed.training import distributed as ddp
from synthmed.training.augment import AdaptiveAugment
from synthmed.training.checkpoint import load_checkpoint, resolve_checkpoint, save_checkpoint
from synthmed.training.data import BatchStream, TrainingData, load_training_data
from synthmed.training.ema import build_ema
from synthmed.training.losses import build_loss
from synthmed.training.progress import RunClock, TrainProgress, log_line, short_of_recipe
from synthmed.training.samples import fixed_inputs, write_sample_grid
from synthmed.training.steps import GANSteps, StepConfig

DEFAULT_POLICY = "translation,cutout,color"


def build_augment(cfg: ExperimentConfig, default_policy: str | None, default_ada: bool
                  ) -> AdaptiveAugment | None:
    m = cfg.model
    policy = default_policy if m.diffaugment == "auto" else m.diffaugment
    if policy in (None, "", "none"):
        policy = None
    ada = default_ada if m.ada is None else m.ada
    if ada and policy is None:
        policy = DEFAULT_POLICY
    if policy is None:
        return None
    return AdaptiveAugment(policy, target=m.ada_target, interval=m.ada_interval,
                           speed_img=m.ada_speed_img, p=0.0 if ada else 1.0, adaptive=ada)


def build_steps(cfg: ExperimentConfig, data: TrainingData, device: torch.device,
                info: ddp.DistInfo) -> tuple[GANSteps, dict[str, Any]]:
    """Networks, optimizers, loss, augmentation and EMA for ``cfg`` on ``data``."""
    n_classes = len(data.class_names) if data.labelled else 0
    channels, size = int(data.images.shape[1]), int(data.images.shape[-1])
    pair = build_gan(cfg.model, in_channels=channels, image_size=size, n_classes=n_classes)
    fmt = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
    G = pair.generator.to(device, memory_format=fmt)
    D = pair.discriminator.to(device, memory_format=fmt)
    use_ema = pair.default_ema if cfg.model.ema is None else cfg.model.ema
    ema = None
    if use_ema:
        ema = build_ema(G, cfg.model.ema_decay)
    t = cfg.train
    opt_g = torch.optim.Adam(G.parameters(), lr=t.lr_g, betas=t.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=t.lr_d, betas=t.betas)
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [device.index] if device.type == "cuda" else None
        unused = bool(cfg.model.per_class)
        G = DDP(G, device_ids=ids, find_unused_parameters=unused)
        D = DDP(D, device_ids=ids, find_unused_parameters=unused)
    loss_name = cfg.model.loss or pair.default_loss
    steps = GANSteps(
        generator=G, discriminator=D, opt_g=opt_g, opt_d=opt_d,
        loss=build_loss(loss_name, key="model.loss"),
        augment=build_augment(cfg, pair.default_diffaugment, pair.default_ada), ema=ema,
        latent_dim=pair.latent_dim, conditional=pair.conditional,
        aux_classifier=pair.aux_classifier,
        settings=StepConfig(r1_gamma=cfg.model.r1_gamma, gp_weight=cfg.model.gp_weight,
                            aux_weight=cfg.model.aux_weight, amp=t.amp),
        device=device)
    meta = {"in_channels": channels, "image_size": size, "n_classes": n_classes,
            "class_names": data.class_names, "latent_dim": pair.latent_dim,
            "conditional": pair.conditional, "ema": ema is not None, "loss": loss_name,
            "dataset_hash": data.dataset_hash, "dataset_path": data.dataset_path}
    return steps, meta


def _state(steps: GANSteps, stream: BatchStream, step: int, cfg: ExperimentConfig,
           meta: dict[str, Any]) -> dict[str, Any]:
    unwrap = lambda m: getattr(m, "module", m)  # noqa: E731
    return {
        "generator": unwrap(steps.G).state_dict(),
        "discriminator": unwrap(steps.D).state_dict(),
        "generator_ema": steps.ema.state_dict() if steps.ema is not None else None,
        "opt_g": steps.opt_g.state_dict(),
        "opt_d": steps.opt_d.state_dict(),
        "augment": steps.augment.state_dict() if steps.augment is not None else None,
        "stream": stream.state_dict(),
        "step": step,
        "rng": rng_state(),
        "config": cfg.model_dump(mode="json"),
        "meta": meta,
        "synthmed_version": __version__,
    }


def _restore(steps: GANSteps, stream: BatchStream, state: dict[str, Any],
             info: ddp.DistInfo) -> int:
    unwrap = lambda m: getattr(m, "module", m)  # noqa: E731
    unwrap(steps.G).load_state_dict(state["generator"])
    unwrap(steps.D).load_state_dict(state["discriminator"])
    if steps.ema is not None and state.get("generator_ema") is not None:
        steps.ema.load_state_dict(state["generator_ema"])
    steps.opt_g.load_state_dict(state["opt_g"])
    steps.opt_d.load_state_dict(state["opt_d"])
    if steps.augment is not None and state.get("augment") is not None:
        steps.augment.load_state_dict(state["augment"])
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
    """Train the GAN described by ``config`` (or resume ``resume``); return the run directory."""
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


def _train(cfg, state, info, device, runs_dir, resume, progress) -> Path:
    t = cfg.train
    _set_up_processes(t, info)
    seed_everything(t.seed)
    data = load_training_data(cfg.data, cfg.model.image_size, device)
    steps, meta = build_steps(cfg, data, device, info)
    if info.enabled:  # same init everywhere (DDP broadcast), different noise and data per rank
        seed_everything(t.seed + 1_000_003 * info.rank)
    stream = BatchStream(len(data.images), t.batch_size // info.world_size, seed=t.seed,
                         rank=info.rank, world_size=info.world_size)
    start = _restore(steps, stream, state, info) if state is not None else 0

    run = _open_run(cfg, data, meta, info, device, runs_dir, resume, start)
    run_path = Path(ddp.broadcast_object(str(run.path) if run else None, info))
    z_fixed, y_fixed = fixed_inputs(meta, t.seed, device)

    def checkpoint(step: int, periodic: bool) -> None:
        rngs = ddp.gather_to_main(rng_state(), info)  # every rank's noise stream, for resume
        if info.is_main:
            state = _state(steps, stream, step, cfg, meta)
            state["rng_per_rank"] = rngs if info.enabled else None
            save_checkpoint(state, run_path / "checkpoints", step, keep=t.keep_checkpoints,
                            periodic=periodic)

    bar = TrainProgress(total=t.steps, start=start, enabled=progress and info.is_main)
    acc_d = torch.zeros((), device=device)
    acc_g = torch.zeros((), device=device)
    n_acc, t0, step = 0, time.perf_counter(), start
    clock = RunClock(start, t.steps)
    with _stop_on_signals() as flag, bar:
        while step < t.steps and flag["stop"] is None:
            for k in range(t.d_steps):
                idx = stream.next().to(device)
                y = data.labels[idx] if meta["conditional"] else None
                acc_d += steps.d_step(data.images[idx], y, reuse_fake_for_g=k == t.d_steps - 1)
            acc_g += steps.g_step(len(idx), y)
            step, n_acc = step + 1, n_acc + 1
            if (note := clock.tick(step)) and run:
                run.log(note)
                bar.note(note)
            if step % t.log_every == 0 or step == t.steps:
                dt = time.perf_counter() - t0
                rec = {"step": step, "loss_d": (acc_d / (n_acc * t.d_steps)).item(),
                       "loss_g": (acc_g / n_acc).item(),
                       "img_per_s": n_acc * t.d_steps * t.batch_size / max(dt, 1e-9),
                       "aug_p": steps.augment.p if steps.augment is not None else None}
                if run:
                    run.log_metrics(rec)
                    run.log(log_line(rec, t.steps, clock.eta(step)))
                bar.update(step, rec)
                acc_d.zero_(), acc_g.zero_()
                n_acc, t0 = 0, time.perf_counter()
            else:
                bar.update(step)
            if info.is_main and (step % t.sample_every == 0 or step == t.steps):
                write_sample_grid(steps.sampling_generator(), z_fixed, y_fixed,
                                  run_path / "samples" / f"step-{step:08d}.png")
            if step % t.checkpoint_every == 0 and step < t.steps:
                checkpoint(step, periodic=True)
    checkpoint(step, periodic=True)
    ddp.barrier(info)
    if run:
        why = f"stopped by {flag['stop']}" if flag["stop"] else "finished"
        run.log(f"{why} at step {step}; checkpoint {run_path / 'checkpoints' / 'latest.pt'}")
        if short := short_of_recipe(cfg.model.name, step, meta["image_size"]):
            run.log(short)
    return run_path
