"""What ``synthmed run`` checks before the first minute of work: every name a registry resolves,
the import options, and what a mask-to-image run cannot finish; then, once the dataset is known
(before training), ``utility.positive_class`` against its classes. Each problem is one line naming
the key and the valid choices."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from synthmed import generators
from synthmed.config import ExperimentConfig
from synthmed.errors import ConfigError, SynthmedError


def check_run_config(cfg: ExperimentConfig) -> None:
    """Everything that can be checked from the config alone, before import or training."""
    stages = set(cfg.pipeline.stages)
    check_mask_run(cfg)
    if "import" in stages and cfg.pipeline.source is not None:
        check_import_options(cfg.pipeline.import_options)
    if "train" in stages:
        check_model_names(cfg)
    if "evaluate" in stages:
        from synthmed.metrics.evaluate import parse_features, parse_metrics

        for key, check, value in (("pipeline.eval_features", parse_features,
                                   cfg.pipeline.eval_features),
                                  ("pipeline.eval_metrics", parse_metrics,
                                   cfg.pipeline.eval_metrics)):
            try:
                check(value)
            except ConfigError as e:
                raise ConfigError(f"{key}: {str(e).split(': ', 1)[-1]}") from None
    if "utility" in stages:
        check_utility_names(cfg)
    if cfg.pipeline.source is not None and "import" in stages and \
            not Path(cfg.pipeline.source).exists():
        raise ConfigError(f"pipeline.source: {cfg.pipeline.source} does not exist; give the raw "
                          "folder or file to import")
    if cfg.pipeline.source is None and cfg.data.path != "phantom" and \
            not Path(cfg.data.path).exists():
        raise ConfigError(f"data.path: {cfg.data.path} does not exist; point it at a prepared "
                          "dataset (synthmed data import), set pipeline.source to a raw folder, "
                          "or use 'phantom'")


def check_mask_run(cfg: ExperimentConfig) -> None:
    """Refuse what a mask-to-image run cannot finish: its synthetic set is image+mask pairs from
    the training split's masks, which a segmentation utility uses. A classification utility is
    refused rather than guessed at (pix2pix pairs carry no classes; a class-conditional
    ddpm-mask's do, and ``synthmed utility`` takes them directly)."""
    from synthmed.sampling.masks import parse_edits

    name, stages = cfg.model.name, cfg.pipeline.stages
    if not generators.needs_masks(name):
        return
    if "utility" in stages and cfg.utility.task == "classification":
        raise ConfigError(f"utility.task: classification with model.name {name}: a mask-to-image "
                          "run makes image+mask pairs for segmentation; set utility.task: "
                          "segmentation (the default for mask models) or drop utility from "
                          "pipeline.stages")
    if "generate" in stages and cfg.data.split != "train":
        raise ConfigError(f"data.split: {cfg.data.split!r} with model.name {name}: the pairs are "
                          "made from the training split's masks, never val/test; use train")
    try:
        parse_edits(list(cfg.pipeline.edits))
    except SynthmedError as e:
        raise ConfigError(f"pipeline.edits: {str(e).removeprefix('--edit ')}") from None


def check_import_options(opts: dict[str, Any]) -> None:
    """``pipeline.import_options`` are keyword options of ``synthmed data import``: known keys,
    values of the option's type, and the preprocessing choices (normalize, filter, size, ...)
    the importer would refuse only after reading the source."""
    import typing

    from pydantic import TypeAdapter, ValidationError

    from synthmed.data.importer import import_dataset
    from synthmed.data.preprocess import Preprocessor

    params = inspect.signature(import_dataset).parameters
    allowed = set(params) - {"source", "out", "force", "progress"}
    hints = typing.get_type_hints(import_dataset)
    for key, value in opts.items():
        if key not in allowed:
            raise ConfigError(f"pipeline.import_options.{key}: not an option of data import; "
                              f"choose from {', '.join(sorted(allowed))}")
        try:
            TypeAdapter(hints[key]).validate_python(value)
        except ValidationError:
            raise ConfigError(f"pipeline.import_options.{key}: {value!r} is not a valid value "
                              f"(expected {_type_words(hints[key])}; docs/data.md)") from None
    pre = {k: v for k, v in opts.items()
           if k in inspect.signature(Preprocessor).parameters}
    try:
        Preprocessor(**pre)
    except SynthmedError as e:  # "--normalize 'x': choose one of ..." -> the config key
        flag, _, rest = str(e).partition(" ")
        key = flag.removeprefix("--").replace("-", "_")
        raise ConfigError(f"pipeline.import_options.{key}: {rest}") from None


def _type_words(hint: Any) -> str:
    return str(hint).replace("typing.", "").replace("collections.abc.", "").replace(
        "<class '", "").replace("'>", "")


def check_model_names(cfg: ExperimentConfig) -> None:
    """The registry names inside the model section: a GAN's loss and augmentation policy."""
    m = cfg.model
    loss = getattr(m, "loss", None)
    if loss is not None:
        from synthmed.training.losses import GAN_LOSSES

        GAN_LOSSES.get(loss, key="model.loss")
    policy = getattr(m, "diffaugment", None)
    if policy not in (None, "", "none", "auto"):
        from synthmed.training.augment import parse_policy

        parse_policy(policy, key="model.diffaugment")


def check_utility_names(cfg: ExperimentConfig) -> None:
    """``utility.model`` for its task, ``utility.arms`` (the study's own check, made early)."""
    from synthmed.tasks.utility import check_utility_names as check

    check(cfg)


def check_dataset(ctx) -> None:
    """Once the dataset is known (after import, before training): ``utility.positive_class``
    names one of two classes, or is null/'auto' (the last class); with 3+ classes it is not used
    (macro metrics), so it never stops a run. ``ctx`` is the pipeline's Context."""
    from synthmed.tasks.utility import positive_index

    cfg = ctx.cfg
    if "utility" in cfg.pipeline.stages and cfg.utility.task == "classification":
        positive_index(cfg.utility.positive_class, class_names(ctx))


def class_names(ctx) -> list[str]:
    """The run's dataset's classes (the built-in phantom's without building it)."""
    from synthmed.data.dataset import PreparedDataset

    cfg = ctx.cfg
    if ctx.outputs.get("import") is None and cfg.pipeline.source is None \
            and cfg.data.path == "phantom":
        from synthmed.data.phantom import CLASS_NAMES

        return list(CLASS_NAMES)
    return list(PreparedDataset(ctx.dataset()).class_names)
