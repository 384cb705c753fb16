"""Typed experiment configs loaded from YAML.

Unknown keys and wrong types are errors naming the key path (``train.lr_g: expected a number, got
'fast'``); ``--set train.lr_g=1e-4`` overrides any key; the resolved config is saved in the run dir.
Each section is a pydantic model; each package's ``build_*(cfg)`` reads its own section and calls
constructors with explicit keyword arguments.
"""

from __future__ import annotations

import contextlib
import difflib
import os
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from synthmed import generators
from synthmed.config_migration import FLAT_MODEL_DEFAULTS, migrate_model
from synthmed.errors import ConfigError
from synthmed.generators import ModelSection, Section, role_of, setting

__all__ = ["Section", "ModelSection", "ExperimentConfig", "load_config", "config_from_dict",
           "role_of", "setting", "FLAT_MODEL_DEFAULTS", "migrate_model"]

Split = Literal["train", "val", "test", "all"]

#: A seed every RNG accepts (torch takes up to 2**64-1, numpy's legacy seeding 2**32; synthmed
#: reduces it where needed): 0 to 2**63-1, as ``generate --seeds``.
Seed = Annotated[int, Field(ge=0, lt=2**63)]


class DataConfig(Section):
    path: str = setting("phantom", role="data", description="prepared dataset dir, or 'phantom' "
                        "(built-in)")
    split: Split = setting("train", role="data", description="the split the generator trains on")
    phantom_n: int = setting(600, role="data", gt=0, description="images in the built-in phantom")
    phantom_size: int = setting(64, role="data", gt=0, description="phantom side length in pixels")
    phantom_seed: Seed = setting(0, role="data", description="seed of the built-in phantom")


class TrainConfig(Section):
    batch_size: int = setting(64, role="trained", gt=0, description="images per step (all "
                              "processes together)")
    steps: int = setting(2000, role="resumable", gt=0, description="training steps (generator "
                         "steps for GANs); raising it resumes a finished run, lowering it is "
                         "refused")
    lr_g: float = setting(2e-4, role="trained", gt=0, description="learning rate of the "
                          "sampling network (G, U-Net, VAE)")
    lr_d: float = setting(2e-4, role="trained", gt=0, description="learning rate of the "
                          "discriminator (GANs, pix2pix)")
    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = \
        setting((0.5, 0.999), role="trained", description="Adam betas, each in [0, 1)")
    d_steps: int = setting(1, role="trained", gt=0, description="discriminator steps per "
                           "generator step (GANs)")
    seed: Seed = setting(0, role="trained", description="seed of every random stream")
    sample_every: int = setting(500, role="runtime", gt=0, description="steps between sample "
                                "grids (own random stream: training is unchanged)")
    checkpoint_every: int = setting(500, role="runtime", gt=0, description="steps between "
                                    "checkpoints")
    keep_checkpoints: int = setting(3, role="runtime", ge=1, description="periodic checkpoints "
                                    "kept")
    log_every: int = setting(50, role="runtime", gt=0, description="steps between log lines")
    device: str = setting("auto", role="runtime", description="auto | cpu | cuda | cuda:N | mps")
    amp: bool = setting(False, role="trained", description="mixed precision: bf16 autocast "
                        "where native (Ampere+ GPUs, CPUs with AVX512-BF16/AMX: 1.6x train img/s "
                        "on 2 EPYC cores), fp16 with a gradient scaler on older GPUs")
    channels_last: bool = setting(True, role="trained", description="NHWC convolutions (oneDNN "
                                  "on CPU, tensor cores on GPU); measured +10% train img/s on 2 "
                                  "CPU cores")
    num_threads: int | None = setting(None, role="runtime", gt=0, description="CPU threads; "
                                      "default: all cores")
    deterministic: bool | None = setting(None, role="runtime", description="deterministic "
                                         "kernels (exact resume); default true on CPU, false on "
                                         "CUDA (cuDNN autotuning)")
    sync_batchnorm: bool | None = setting(None, role="trained", description="SyncBatchNorm "
                                          "under multi-GPU DDP; default on for CUDA, unavailable "
                                          "on CPU")


class UtilityConfig(Section):
    """``synthmed utility``: does a downstream model trained with synthetic images get better on
    real test patients? Arms, model and seeds; see docs/utility.md."""

    task: Literal["classification", "segmentation"] = setting(
        "classification", role="utility", description="segmentation by default when model.name "
        "is a mask-to-image model (pix2pix, ddpm-mask)")
    model: str | None = setting(None, role="utility", description="fridadar-cnn | resnet18 | "
                                "small-resnet | unet; default small-resnet, or unet for "
                                "segmentation")
    weights: str | None = setting(None, role="utility", description="local state-dict file "
                                  "(transfer learning)")
    synthetic: str | list[str] | None = setting(None, role="runtime", description="synthetic "
                                                "set dir(s) (synthmed run sets its own)")
    arms: list[str] | None = setting(None, role="utility", description="default: all five (see "
                                     "docs/utility.md)")
    ratios: list[float] = setting([1.0], role="utility", description="extra images per real "
                                  "train image")
    class_mix: Literal["real", "balanced", "fill"] = setting(
        "real", role="utility", description="extras follow real class frequencies | equal per "
        "class | fill the minority classes first")
    synthetic_only_ratio: float = setting(1.0, role="utility", gt=0, description="synthetic-only "
                                          "size / real train")
    seeds: int | list[Seed] = setting(5, role="utility", description="a count (seeds 0..N-1) or a "
                                     "list of seeds")
    epochs: int = setting(30, role="utility", gt=0, description="training epochs per arm")
    batch_size: int = setting(32, role="utility", gt=0, description="downstream batch size")
    lr: float = setting(1e-3, role="utility", gt=0, description="downstream learning rate")
    weight_decay: float = setting(1e-4, role="utility", ge=0, description="downstream weight "
                                  "decay")
    select_metric: str | None = setting(None, role="utility", description="val metric for "
                                        "selection; default auc (classification) or dice "
                                        "(segmentation)")
    threshold: Literal["youden"] | float = setting("youden", role="utility", description="binary "
                                                   "operating point")
    positive_class: str | None = setting(None, role="utility", description="binary: the positive "
                                         "class; null or 'auto': the last class; ignored with 3+ "
                                         "classes (macro metrics)")
    ordinal: bool = setting(False, role="utility", description="classes are ordered grades (in "
                            "class order): adds quadratic weighted kappa (kappa_qw)")

    @field_validator("positive_class", mode="before")
    @classmethod
    def _class_names_are_strings(cls, value: Any) -> Any:
        """Class names are strings; ``positive_class: 4`` (YAML or --set) means the class "4"."""
        if isinstance(value, bool):
            return value
        return str(value) if isinstance(value, (int, float)) else value

    rotate_deg: float = setting(15.0, role="utility", ge=0, description="classic augmentation: "
                                "max rotation")
    translate: float = setting(0.1, role="utility", ge=0, description="max shift, fraction of "
                               "the side")
    scale: float = setting(0.1, role="utility", ge=0, lt=1, description="max zoom in or out")
    flip: bool = setting(True, role="utility", description="random horizontal flip")
    intensity: float = setting(0.1, role="utility", ge=0, description="intensity/contrast jitter")
    device: str = setting("auto", role="runtime", description="auto | cpu | cuda | cuda:N")
    num_threads: int | None = setting(None, role="runtime", gt=0, description="CPU threads; "
                                      "default: all cores")
    synthetic_filter: Literal["none", "classifier-agree", "confidence-topk", "realism-topk"] = \
        setting("none", role="utility", description="keep only synthetic images a classifier "
                "trained on the real train split agrees with (classifier-agree) or is most "
                "confident about (confidence-topk), or the most real-looking by evaluate's C2ST "
                "(realism-topk)")
    synthetic_filter_keep: float = setting(0.5, role="utility", gt=0, le=1, description="confidence"
                                           "-topk and realism-topk: fraction of each class's "
                                           "synthetic images kept")


STAGES = ("import", "train", "generate", "evaluate", "utility", "report")
#: ``pipeline.edits`` default: moved, turned, resized, mirrored and deformed lesions, the label-map
#: editing of the brain-MRI pix2pix study (as in benchmarks/segmentation_lgg.py).
DEFAULT_EDITS = ["translate=0.1", "rotate=20", "scale=0.8:1.25", "flip=h", "elastic=3"]


class PipelineConfig(Section):
    """``synthmed run``: the stages from images to a report, in one run directory (docs/report.md).
    """

    source: str | None = setting(None, role="data", description="raw folder/file to import; "
                                 "default: reuse data.path (a prepared dataset or 'phantom')")
    import_options: dict[str, Any] = setting(
        {}, role="data", description="keyword options of `synthmed data import` (size, "
        "labels_csv, ...)")
    stages: list[Literal["import", "train", "generate", "evaluate", "utility", "report"]] = \
        setting(list(STAGES), role="runtime", description="stages to run, in pipeline order")
    n_generate: int | None = setting(None, role="generation", gt=0, description="synthetic "
                                     "images; default: as many as the training split")
    class_counts: Literal["match-train", "balanced"] = setting(
        "match-train", role="generation", description="classes follow the training split's "
        "proportions | equal")
    eval_features: str = setting("domain", role="evaluation", description="evaluate --features")
    eval_metrics: str | None = setting(None, role="evaluation", description="evaluate --metrics "
                                       "(default all)")
    eval_bootstrap: int = setting(100, role="evaluation", ge=0, description="evaluate --bootstrap")
    eval_extractor_epochs: int = setting(15, role="evaluation", gt=0, description="evaluate "
                                         "--extractor-epochs")
    device: str = setting("auto", role="runtime", description="device for generate and "
                          "evaluate: auto (cuda, then mps, then cpu) | cpu | cuda | cuda:N | mps")
    edits: list[str] = setting(
        default_factory=lambda: list(DEFAULT_EDITS), role="generation", description="mask-to-"
        "image runs: generate --edit list for the pairs made from the training split's masks; "
        "[] = unedited")


def _model_union() -> Any:
    """``Annotated[Union[every registered section], Field(discriminator="name")]``."""
    secs = tuple(generators.sections())
    if len(secs) == 1:  # a one-member union needs no discriminator
        return secs[0]
    return Annotated[Union[secs], Field(discriminator="name")]  # noqa: UP007


def default_model() -> ModelSection:
    return generators.get("dcgan").section()


class ExperimentConfig(Section):
    name: str = setting("experiment", role="runtime", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                        description="the run's name (runs/<name>)")
    data: DataConfig = DataConfig()
    model: ModelSection = Field(default_factory=default_model, description="the generator: "
                                "model.name selects its section")
    train: TrainConfig = TrainConfig()
    utility: UtilityConfig = UtilityConfig()
    pipeline: PipelineConfig = PipelineConfig()

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> ExperimentConfig:
        """Validate with the union of the generators registered now (build configs with this,
        :func:`config_from_dict` or :func:`load_config`; ``ExperimentConfig()`` gives the
        defaults)."""
        _ensure_union()
        return super().model_validate(obj, **kwargs)

    @model_validator(mode="before")
    @classmethod
    def _migrate_and_default(cls, data: Any, info) -> Any:
        """Old flat ``model`` sections become their method's; a mask-to-image model's utility
        task is segmentation unless the config says one."""
        if not isinstance(data, dict):
            return data
        saved = bool((info.context or {}).get("saved"))
        model = data.get("model")
        if isinstance(model, dict):
            data = {**data, "model": migrate_model(model, saved=saved)}
            model = data["model"]
        name = model.get("name") if isinstance(model, dict) else getattr(model, "name", "dcgan")
        if not generators.needs_masks(name):
            return data
        u = data.get("utility")
        if u is None:
            return {**data, "utility": {"task": "segmentation"}}
        if isinstance(u, dict) and "task" not in u:
            return {**data, "utility": {**u, "task": "segmentation"}}
        if isinstance(u, UtilityConfig) and "task" not in u.model_fields_set:
            return {**data, "utility": {**u.model_dump(exclude_unset=True),
                                        "task": "segmentation"}}
        return data


_BUILT = {"version": -1}


def _ensure_union() -> None:
    """Make ``ExperimentConfig.model`` the union of the sections registered now."""
    generators.ensure_loaded()
    if _BUILT["version"] == generators.version():
        return
    ExperimentConfig.model_fields["model"].annotation = _model_union()
    ExperimentConfig.model_rebuild(force=True)
    _BUILT["version"] = generators.version()


def leaf_fields(cfg: BaseModel, prefix: str = "") -> dict[str, Any]:
    """Every leaf key of a config instance -> its pydantic FieldInfo (the model section is the
    instance's own method section)."""
    out: dict[str, Any] = {}
    for name, f in type(cfg).model_fields.items():
        value = getattr(cfg, name)
        if isinstance(value, BaseModel):
            out.update(leaf_fields(value, f"{prefix}{name}."))
        else:
            out[prefix + name] = f
    return out


def key_roles(cfg: BaseModel) -> dict[str, str | None]:
    """Dotted leaf key -> its role (:data:`synthmed.generators.ROLES`)."""
    return {k: role_of(f) for k, f in leaf_fields(cfg).items()}


def _describe(value: Any) -> str:
    return repr(value) if isinstance(value, str) else f"{value!r} ({type(value).__name__})"


_TYPE_WORDS = {
    "float_parsing": "a number",
    "float_type": "a number",
    "int_parsing": "an integer",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a string",
    "tuple_type": "a list",
    "list_type": "a list",
    "model_type": "a mapping of keys",
    "dict_type": "a mapping of keys",
}


def key_paths(model: type[BaseModel] | None = None, prefix: str = "",
              model_name: str | None = None) -> list[str]:
    """Every dotted key of a config model (sections and their keys), for suggestions; the
    ``model`` section's keys are those of ``model_name``'s section (default: every section's)."""
    model = ExperimentConfig if model is None else model
    out = []
    for name, f in model.model_fields.items():
        out.append(prefix + name)
        if model is ExperimentConfig and name == "model":
            secs = ([generators.get(model_name).section] if generators.find(model_name)
                    else generators.sections())
            keys = dict.fromkeys(k for sec in secs for k in key_paths(sec, f"{prefix}model."))
            out += list(keys)
        elif isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel):
            out += key_paths(f.annotation, f"{prefix}{name}.")
    return out


def suggest_key(loc: str, model: type[BaseModel] | None = None,
                model_name: str | None = None) -> str | None:
    """The documented key closest to a misspelt ``loc`` (difflib), first among its siblings."""
    keys = key_paths(model, model_name=model_name)
    parent, _, last = loc.rpartition(".")
    siblings = [k for k in keys if k.rpartition(".")[0] == parent]
    near = difflib.get_close_matches(loc, siblings, n=1, cutoff=0.6) or \
        difflib.get_close_matches(loc, keys, n=1, cutoff=0.6) or \
        [k for k in keys if k.rpartition(".")[2] == last]
    return near[0] if near else None


def _error_loc(e: dict) -> tuple[str, str | None]:
    """The dotted key of a pydantic error without the union's tag (``model.ddpm.x`` ->
    ``model.x``), and that tag (the model name) when there is one."""
    loc = [str(p) for p in e["loc"]]
    if len(loc) > 2 and loc[0] == "model" and generators.find(loc[1]) is not None:
        return ".".join([loc[0], *loc[2:]]), loc[1]
    return ".".join(loc), None


def format_validation_error(err: ValidationError, source: str | None = None, *,
                            overrides: list[str] | None = None,
                            model: type[BaseModel] | None = None) -> str:
    """One line per problem, each naming the dotted key path and where it was set: the
    ``--set`` override that gave the key, else ``source`` (the YAML file)."""
    given = {}
    for text in overrides or []:
        with contextlib.suppress(ConfigError):
            given[".".join(parse_override(text)[0])] = text
    from_file, from_set = [], []
    for e in err.errors():
        loc, tag = _error_loc(e)
        kind = e["type"]
        if kind == "extra_forbidden":
            near = suggest_key(loc, model, tag)
            msg = (f"unknown key; did you mean {near}?" if near and near != loc else
                   "unknown key (check the spelling against the documented keys)")
            if tag and not (near and near != loc):
                msg = (f"not a key of {tag} models (their keys: "
                       f"{', '.join(generators.get(tag).section.model_fields)})")
        elif kind in ("union_tag_invalid", "union_tag_not_found"):
            name = _describe((e.get("input") or {}).get("name"))
            loc = f"{loc}.name"
            msg = f"unknown model {name}; choose one of {', '.join(generators.names())}"
        elif kind in _TYPE_WORDS:
            msg = f"expected {_TYPE_WORDS[kind]}, got {_describe(e.get('input'))}"
        else:
            msg = f"{e['msg']}, got {_describe(e.get('input'))}"
        text = next((t for k, t in given.items() if loc == k or loc.startswith(k + ".")
                     or k.startswith(loc + ".")), None)
        if text is not None:
            from_set.append(f"--set {text}: {loc}: {msg}")
        else:
            from_file.append(f"{loc}: {msg}")
    parts = [f"{source}: " + "; ".join(from_file) if source else "; ".join(from_file)]
    return "; ".join((parts if from_file else []) + from_set)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``train.lr=1e-4`` into (['train', 'lr'], 0.0001); values are parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key.path=value, e.g. train.lr_g=1e-4")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"--set {text!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    # YAML 1.1 reads "1e-4" as a string; numbers are what users mean (a quoted value stays a
    # string: --set 'utility.positive_class="4"').
    quoted = raw.strip()[:1] in ("'", '"')
    if isinstance(value, str) and not quoted:
        with contextlib.suppress(ValueError):
            value = float(value) if any(c in value for c in ".eE") else int(value)
    return parts, value


def apply_overrides(data: dict, overrides: list[str] | None) -> dict:
    """Apply ``--set`` overrides to a raw config mapping (in place) and return it."""
    for text in overrides or []:
        parts, value = parse_override(text)
        node = data
        for p in parts[:-1]:
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"--set {text!r}: {p} is not a section")
            node = nxt
        node[parts[-1]] = value
    return data


def _read_yaml(path: Path) -> dict:
    if not path.exists():
        raise ConfigError(f"{path}: config file not found; pass an existing YAML file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}); save the config as UTF-8"
                          ) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}; fix the syntax") from None
    if data is None:  # an empty file started a default 2,000-step training on the phantom
        raise ConfigError(f"{path}: the config is empty; give at least one section (e.g. "
                          "data: {path: DATASET}), or start from configs/quickstart.yaml")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return data


def config_from_dict(data: dict, *, source: str | None = None, model=ExperimentConfig,
                     overrides: list[str] | None = None, saved: bool = False):
    """Validate a raw mapping; ``saved``: it is a config synthmed itself wrote (a checkpoint's
    or a run's), whose keys of other models are dropped (:func:`migrate_model`)."""
    try:
        return model.model_validate(data, context={"saved": saved})
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, source, overrides=overrides, model=model)
                          ) from None


def load_config(
    path: str | os.PathLike | None = None, overrides: list[str] | None = None
) -> ExperimentConfig:
    """Load a YAML experiment config (or the defaults when ``path`` is None) plus overrides."""
    data = _read_yaml(Path(path)) if path is not None else {}
    apply_overrides(data, overrides)
    return config_from_dict(data, source=str(path) if path else None, overrides=overrides)


def config_to_yaml(cfg: BaseModel) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def save_config(cfg: BaseModel, path: str | os.PathLike) -> None:
    from synthmed.fileio import atomic_write_text

    atomic_write_text(path, config_to_yaml(cfg))
