"""The training-method interface: what a kind of generator supplies to the one training engine.

The trainer (:mod:`synthmed.training.trainer`) owns everything every generator needs the same way:
the loop, the data stream, checkpoints, exact resume, EMA of the sampling network, DDP process
groups, signals, progress, ``metrics.jsonl`` and sample grids. A *method* owns what differs between
kinds of generator (a GAN's G/D steps, a diffusion model's noise-prediction step, pix2pix's
mask-conditioned step): its networks and optimizers, one training step, its part of the
checkpoint, the sample grid, and how to sample from a checkpoint. ``model.name`` picks the method
through its descriptor (:mod:`synthmed.generators`: config section, generation options,
capabilities, recipe), registered with the method class in the method's own module.
docs/training.md, "Adding a generator", describes the contract for implementers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from synthmed import generators
from synthmed.errors import SynthmedError

#: Checkpoint key of the EMA of the sampling network (kept from the GAN-only format).
EMA_KEY = "generator_ema"
#: Keys the trainer writes into every checkpoint; a method's ``state_dict`` must not use them.
TRAINER_KEYS = frozenset({EMA_KEY, "stream", "step", "rng", "rng_per_rank", "config", "meta",
                          "synthmed_version", "method", "checkpoint_format", "world_size",
                          "method_per_rank"})

#: ``sampler(seeds, labels) -> images``: seeds (N,) python ints, labels (N,) int64 on the
#: sampler's device or None for unconditional models -> (N, C, H, W) float32 in [-1, 1]. Image i
#: must depend on (checkpoint, labels[i], seeds[i], options) only, never on the other images.
Sampler = Callable[[list[int], "torch.Tensor | None"], torch.Tensor]


class MaskSampler(ABC):
    """What ``build_sampler`` returns for a mask-conditioned method (pix2pix, ddpm-mask).

    ``synthmed generate --masks-from`` (:func:`synthmed.sampling.pairs.write_pairs`) picks and
    edits the masks and calls :meth:`from_masks` on fixed-size micro-batches; it does not care
    which method answers. Called like a class :data:`Sampler` (no masks) it refuses in one line.
    ``anatomy``
    says the method uses the source case's image as an anatomy channel (then ``--edit
    transplant`` can put a lesion into another case's anatomy).
    """

    model: str = "mask-conditioned"
    anatomy: bool = False

    def __call__(self, seeds: list[int], labels: torch.Tensor | None) -> torch.Tensor:
        raise SynthmedError(f"{self.model} runs are mask-conditioned (they make images from "
                            "masks): add --masks-from DATASET_DIR[:split] to synthmed generate")

    @abstractmethod
    def from_masks(self, seeds: list[int], masks: torch.Tensor, images: torch.Tensor | None = None,
                   labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images (N, C, H, W) in [-1, 1] for ``masks`` (N, 1, H, W) float32 label maps (0 is
        background) at the run's image size.

        ``images`` (N, C, H, W) in [-1, 1] are the source cases (the anatomy channel of runs that
        have one; other methods ignore them); ``labels`` (N,) int64 are class ids for
        class-conditional runs (None: unconditional). Image i must depend on (checkpoint, row i,
        seeds[i], options) only.
        """


@dataclass
class Batch:
    """One training batch on the training device (the rows ``indices`` of the training split)."""

    images: torch.Tensor  # (N, C, H, W) float32 in [-1, 1]
    labels: torch.Tensor | None  # (N,) int64 class ids; None when the data are unlabelled
    masks: torch.Tensor | None  # (N, 1, H, W) float32 in {0, 1}; only for mask-to-image methods
    indices: torch.Tensor  # (N,) int64 row numbers in the training split
    class_counts: list[int] | None = None  # samples per class (host ints), when labelled


class TrainingMethod(ABC):
    """A kind of generator, trained by the shared engine. See docs/training.md for the contract.

    Class attributes a subclass may override:

    - ``batches_per_step``: batches the trainer draws for one :meth:`train_step` (a GAN with
      ``train.d_steps: k`` takes k, one per discriminator update);
    - ``default_ema``: EMA of :meth:`ema_network` when ``model.ema`` is null.

    Whether the dataset's segmentation masks are loaded into :attr:`Batch.masks` is the
    descriptor's ``capabilities.needs_masks``.
    """

    batches_per_step: int = 1
    default_ema: bool = False

    @classmethod
    @abstractmethod
    def build(cls, cfg, data, device: torch.device, info) -> TrainingMethod:
        """Networks (on ``device``, wrapped for DDP when ``info.enabled``) and optimizers.

        ``cfg`` is the ExperimentConfig, ``data`` the :class:`~synthmed.training.data.TrainingData`,
        ``info`` the :class:`~synthmed.training.distributed.DistInfo`. The global RNG is seeded
        with ``train.seed`` just before, identically on every rank, so initial weights agree.
        """

    @abstractmethod
    def meta(self) -> dict[str, Any]:
        """JSON-able facts a sampler needs besides weights; must contain ``conditional`` (bool).

        The trainer adds ``in_channels``, ``image_size``, ``n_classes``, ``class_names``,
        ``dataset_hash``, ``dataset_path``, ``method`` and ``ema`` itself.
        """

    @abstractmethod
    def train_step(self, batches: list[Batch]) -> dict[str, torch.Tensor]:
        """One optimisation step on ``batches_per_step`` batches.

        Returns losses as 0-d tensors **on the device** (no ``.item()``: the trainer reads them
        once per ``train.log_every`` steps), named ``loss_*``; they are averaged over the logging
        interval and written to metrics.jsonl.
        """

    def log_values(self) -> dict[str, float | None]:
        """Host-side values for the log line (e.g. ADA's ``aug_p``); read once per interval."""
        return {}

    @abstractmethod
    def ema_network(self) -> nn.Module:
        """The unwrapped (no DDP) network that samples: the trainer keeps its EMA (when
        ``model.ema`` is on, or ``default_ema`` when null) and renders grids with it."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything method-specific for exact resume: networks, optimizers, augmentation.

        Merged into the top level of the checkpoint; tensors, numbers, strings, lists and dicts
        only (loaded with ``weights_only=True``); no key of :data:`TRAINER_KEYS`.
        """

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from a whole checkpoint dict (the keys :meth:`state_dict` wrote are in it)."""

    def rank_state(self) -> dict[str, Any]:
        """State that differs between DDP ranks (e.g. ADA's partial sums); gathered from every
        rank at checkpoints, like the RNG states. Default: none."""
        return {}

    def load_rank_state(self, state: dict[str, Any] | None) -> None:
        """This rank's :meth:`rank_state` on resume; None when the number of processes changed
        (start such state afresh) or the checkpoint has none. Default: nothing to load."""
        del state

    @abstractmethod
    def grid_inputs(self, seed: int, n: int) -> Any:
        """Fixed inputs for the training sample grids, from their own ``torch.Generator`` (never
        the global RNG stream, so writing a grid does not change training)."""

    @abstractmethod
    def render_grid(self, inputs: Any, network: nn.Module) -> tuple[torch.Tensor, int | None]:
        """Images ``(M, C, H, W)`` in [-1, 1] to tile, and the number of columns (None: square).

        ``network`` is the EMA copy when EMA is on, else :meth:`ema_network` itself; the
        trainer switches it to eval mode and disables gradients around this call.
        """

    @classmethod
    @abstractmethod
    def build_sampler(cls, state: dict[str, Any], cfg, device: torch.device,
                      **options: Any) -> tuple[Sampler, nn.Module]:
        """A sampler for a loaded checkpoint, and the network it runs (for inspection).

        ``state`` is the checkpoint, ``cfg`` its ExperimentConfig; ``options`` are the
        generation options set (not None), already validated against the descriptor's
        ``options`` class (unknown ones were refused by :func:`check_options`). Use
        :func:`sampling_weights` to get the EMA weights when the run kept them.
        """

    @classmethod
    def resolve_options(cls, options: dict[str, Any], cfg, state: dict[str, Any],
                        device: torch.device) -> dict[str, Any]:
        """The options in effect, recorded in generation.json (defaults filled in from the run,
        checked against it). Default: the options as given."""
        del cfg, state, device
        return dict(options)


MethodType = type[TrainingMethod]


def resolve_method(name: str) -> MethodType:
    """The method class registered for ``model.name`` (one line naming every choice when none)."""
    return generators.get(name).method


def check_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """Generation options for a ``model.name`` run, validated by its descriptor's options class:
    None values dropped; an unknown option or a wrong type is one line naming it."""
    from pydantic import ValidationError

    given = {k: v for k, v in options.items() if v is not None}
    fields = generators.option_fields(name)
    for key in given:
        if key not in fields:
            choices = ", ".join(fields) or "none"
            raise SynthmedError(f"--{key.replace('_', '-')}: not a generation option of {name} "
                                f"models (their options: {choices}); drop the option")
    try:
        parsed = generators.get(name).options.model_validate(given)
    except ValidationError as e:
        err = e.errors()[0]
        key = str(err["loc"][0])
        extra = fields[key].json_schema_extra if key in fields else None
        flag = extra.get("flag") if isinstance(extra, dict) else None
        given_as = f"{flag} {err.get('input')!r}" if flag else \
            f"--option {key}={err.get('input')!r}"
        raise SynthmedError(f"{given_as}: {err['msg'].lower()}") from None
    return {k: getattr(parsed, k) for k in given}


def unwrap(m: nn.Module) -> nn.Module:
    """The network inside a DistributedDataParallel wrapper (or the network itself)."""
    return getattr(m, "module", m)


def sampling_weights(state: dict[str, Any], key: str) -> dict[str, torch.Tensor]:
    """The weights to sample with: the EMA copy when the checkpoint has one, else ``state[key]``.

    The EMA is a :class:`torch.optim.swa_utils.AveragedModel`, whose state dict prefixes the
    network's keys with ``module.`` and adds its update counter.
    """
    ema = state.get(EMA_KEY)
    if ema is not None:
        return {k[len("module."):]: v for k, v in ema.items() if k.startswith("module.")}
    return state[key]
