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
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from synthmed.errors import ConfigError

Split = Literal["train", "val", "test", "all"]


class Section(BaseModel):
    """Base for config sections: unknown keys are errors, assignments are validated."""

    # inf and nan are never a meaningful setting (train.lr_g=inf trained nan losses to exit 0).
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


#: A seed every RNG accepts (torch takes up to 2**64-1, numpy's legacy seeding 2**32; synthmed
#: reduces it where needed): 0 to 2**63-1, as ``generate --seeds``.
Seed = Annotated[int, Field(ge=0, lt=2**63)]


class DataConfig(Section):
    path: str = Field("phantom", description="prepared dataset dir, or 'phantom' (built-in)")
    split: Split = "train"
    phantom_n: int = Field(600, gt=0, description="images in the built-in phantom")
    phantom_size: int = Field(64, gt=0, description="phantom side length in pixels")
    phantom_seed: Seed = 0


class ModelConfig(Section):
    name: str = Field("dcgan", description="dcgan | acgan | cgan | ddpm | ddpm-mask | vae | "
                      "pix2pix (mask-to-image)")
    image_size: int | None = Field(None, gt=0, description="16 to 512 px (pix2pix: 64, 128 or "
                                   "256); default: the data's")
    latent_dim: int = Field(100, gt=0)
    base_width: int = Field(64, gt=0)
    per_class: bool = Field(False, description="one unconditional generator per class")
    loss: str | None = Field(None, description="bce | hinge | wgan-gp; default per model")
    r1_gamma: float = Field(0.0, ge=0)
    gp_weight: float = Field(10.0, ge=0)
    aux_weight: float = Field(1.0, ge=0, description="ACGAN auxiliary classifier weight")
    diffaugment: str | None = Field(
        "auto", description="comma list of translation,cutout,color; 'auto' (on for cgan) or none"
    )
    ada: bool | None = Field(None, description="adaptive augmentation probability; "
                             "default per model")
    ada_target: float = Field(0.6, gt=0, lt=1)
    ada_interval: int = Field(4, gt=0)
    ada_speed_img: int = Field(20_000, gt=0, description="images for p to move by 1")
    ema: bool | None = Field(None, description="EMA of G weights; default per model")
    ema_decay: float = Field(0.999, gt=0, lt=1)
    cgan_upsample: Literal["nearest", "bilinear"] = Field(
        "nearest", description="cgan: generator up-sampling before each 3x3 convolution "
        "(nearest as SNGAN; bilinear low-passes first)")
    # Diffusion (ddpm, ddpm-mask) and VAE keys; other models ignore them.
    channels: list[int] | None = Field(None, description="ddpm/vae: widths per resolution level "
                                       "(ddpm default [32, 64, 64], vae [32, 64, 128])")
    num_res_blocks: int = Field(1, gt=0, description="ddpm: residual blocks per U-Net level")
    attention_levels: list[bool] | None = Field(
        None, description="ddpm: self-attention per level; default none (the middle block "
        "always has it)")
    diffusion_steps: int = Field(1000, gt=1, description="ddpm: training noise levels T")
    noise_schedule: Literal["linear", "cosine"] = Field(
        "cosine", description="ddpm: linear (Ho et al. 2020) or cosine (Nichol & Dhariwal 2021)")
    prediction: Literal["epsilon", "v"] = Field(
        "epsilon", description="ddpm: predict the noise, or v (Salimans & Ho 2022)")
    cond_drop: float = Field(0.1, ge=0, lt=1, description="ddpm: label dropout for "
                             "classifier-free guidance (Ho & Salimans 2022)")
    sampler: Literal["dpm-solver++", "ddim"] = Field(
        "dpm-solver++", description="ddpm: ODE solver for sample grids and the default of "
        "generate --sampler: DPM-Solver++(2M) with clean-image clipping (Lu et al. 2022), or DDIM")
    sample_steps: int = Field(20, gt=0, description="ddpm: network evaluations (solver steps) for "
                              "sample grids and the default of generate --steps")
    guidance: float = Field(1.0, ge=0, description="ddpm: CFG scale for grids and the default "
                            "of generate --guidance (0 unconditional, 1 conditional)")
    kl_weight: float = Field(1.0, gt=0, description="vae: weight of the KL term (beta-VAE)")
    mask_labels: int = Field(1, gt=0, description="pix2pix: foreground labels in the masks "
                             "(1: binary mask channel; more: one-hot, one channel per label)")
    anatomy_factor: int | None = Field(None, gt=1, description="pix2pix: extra conditioning "
                                       "channel, the image down-sampled by this factor")
    dropout: float = Field(0.5, ge=0, lt=1, description="pix2pix: decoder dropout (the noise)")
    l1_weight: float = Field(100.0, ge=0, description="pix2pix: weight of the L1 loss")
    conditioning: Literal["mask", "anatomy", "brain", "prior"] | None = Field(
        None, description="pix2pix: what G sees beside the mask: mask only | anatomy (the slice "
        "down-sampled by anatomy_factor) | brain (its brain mask in blocks of anatomy_factor, "
        "default 8) | prior (the population's mean brain mask in the slice's brain box); "
        "default anatomy when anatomy_factor is set, else mask (see models/conditioning.py)")
    generator: Literal["unet", "spade"] = Field(
        "unet", description="pix2pix: unet (Isola et al. 2017) | spade (SPADE normalization, "
        "noise injection, resize-convolve up-sampling; models/spade.py)")
    upsample: Literal["transpose", "resize"] = Field(
        "transpose", description="pix2pix unet: transposed conv | nearest resize then 3x3 conv")
    discriminator: Literal["patchgan", "pooled"] = Field(
        "patchgan", description="pix2pix: strided PatchGAN | pooled (stride-1 convs, avg pool)")
    pair_augment: bool = Field(False, description="pix2pix: random flip, rotation, scale and "
                               "shift applied jointly to image and mask in training")


class TrainConfig(Section):
    batch_size: int = Field(64, gt=0)
    steps: int = Field(2000, gt=0, description="generator steps")
    lr_g: float = Field(2e-4, gt=0)
    lr_d: float = Field(2e-4, gt=0)
    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = (
        0.5, 0.999)
    d_steps: int = Field(1, gt=0, description="discriminator steps per generator step")
    seed: Seed = 0
    sample_every: int = Field(500, gt=0)
    checkpoint_every: int = Field(500, gt=0)
    keep_checkpoints: int = Field(3, ge=1)
    log_every: int = Field(50, gt=0)
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N | mps")
    amp: bool = Field(False, description="mixed precision: bf16 autocast where native (Ampere+ "
                      "GPUs, CPUs with AVX512-BF16/AMX: 1.6x train img/s on 2 EPYC cores), fp16 "
                      "with a gradient scaler on older GPUs")
    channels_last: bool = Field(True, description="NHWC convolutions (oneDNN on CPU, tensor "
                                "cores on GPU); measured +10% train img/s on 2 CPU cores")
    num_threads: int | None = Field(None, gt=0, description="CPU threads; default: all cores")
    deterministic: bool | None = Field(None, description="deterministic kernels (exact resume); "
                                       "default true on CPU, false on CUDA (cuDNN autotuning)")
    sync_batchnorm: bool | None = Field(None, description="SyncBatchNorm under multi-GPU DDP; "
                                        "default on for CUDA, unavailable on CPU")


class UtilityConfig(Section):
    """``synthmed utility``: does a downstream model trained with synthetic images get better on
    real test patients? Arms, model and seeds; see docs/utility.md."""

    task: Literal["classification", "segmentation"] = Field(
        "classification", description="segmentation by default when model.name is a "
        "mask-to-image model (pix2pix, ddpm-mask)")
    model: str | None = Field(None, description="fridadar-cnn | resnet18 | small-resnet | unet; "
                              "default small-resnet, or unet for segmentation")
    weights: str | None = Field(None, description="local state-dict file (transfer learning)")
    synthetic: str | list[str] | None = Field(None, description="synthetic set dir(s)")
    arms: list[str] | None = Field(None, description="default: all five (see docs/utility.md)")
    ratios: list[float] = Field([1.0], description="extra images per real train image")
    class_mix: Literal["real", "balanced", "fill"] = Field(
        "real", description="extras follow real class frequencies | equal per class | fill the "
        "minority classes first")
    synthetic_only_ratio: float = Field(1.0, gt=0, description="synthetic-only size / real train")
    seeds: int | list[Seed] = Field(5, description="a count (seeds 0..N-1) or a list of seeds")
    epochs: int = Field(30, gt=0)
    batch_size: int = Field(32, gt=0)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    select_metric: str | None = Field(None, description="val metric for selection; default "
                                      "auc (classification) or dice (segmentation)")
    threshold: Literal["youden"] | float = Field("youden", description="binary operating point")
    positive_class: str | None = Field(None, description="binary: default the last class")
    ordinal: bool = Field(False, description="classes are ordered grades (in class order): "
                          "adds quadratic weighted kappa (kappa_qw)")
    rotate_deg: float = Field(15.0, ge=0, description="classic augmentation: max rotation")
    translate: float = Field(0.1, ge=0, description="max shift, fraction of the side")
    scale: float = Field(0.1, ge=0, lt=1, description="max zoom in or out")
    flip: bool = Field(True, description="random horizontal flip")
    intensity: float = Field(0.1, ge=0, description="intensity/contrast jitter")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    num_threads: int | None = Field(None, gt=0, description="CPU threads; default: all cores")
    synthetic_filter: Literal["none", "classifier-agree", "confidence-topk", "realism-topk"] = \
        Field("none", description="keep only synthetic images a classifier trained on the real "
              "train split agrees with (classifier-agree) or is most confident about "
              "(confidence-topk), or the most real-looking by evaluate's C2ST (realism-topk)")
    synthetic_filter_keep: float = Field(0.5, gt=0, le=1, description="confidence-topk and "
                                         "realism-topk: fraction of each class's synthetic "
                                         "images kept")


STAGES = ("import", "train", "generate", "evaluate", "utility", "report")
#: ``model.name`` of the mask-to-image generators (the training methods with ``needs_masks``; a
#: test keeps the two in step). ``synthmed run`` makes image+mask pairs with them, and their
#: utility task defaults to segmentation: the pairs are segmentation training data (issue 10).
MASK_MODELS = frozenset({"pix2pix", "ddpm-mask"})
#: ``pipeline.edits`` default: moved, turned, resized, mirrored and deformed lesions, the label-map
#: editing of the brain-MRI pix2pix study (as in benchmarks/segmentation_lgg.py).
DEFAULT_EDITS = ["translate=0.1", "rotate=20", "scale=0.8:1.25", "flip=h", "elastic=3"]


class PipelineConfig(Section):
    """``synthmed run``: the stages from images to a report, in one run directory (docs/report.md).
    """

    source: str | None = Field(None, description="raw folder/file to import; default: reuse "
                               "data.path (a prepared dataset or 'phantom')")
    import_options: dict[str, Any] = Field(
        {}, description="keyword options of `synthmed data import` (size, labels_csv, ...)")
    stages: list[Literal["import", "train", "generate", "evaluate", "utility", "report"]] = Field(
        list(STAGES), description="stages to run, in pipeline order")
    n_generate: int | None = Field(None, gt=0, description="synthetic images; default: as many "
                                   "as the training split")
    class_counts: Literal["match-train", "balanced"] = Field(
        "match-train", description="classes follow the training split's proportions | equal")
    eval_features: str = Field("domain", description="evaluate --features")
    eval_metrics: str | None = Field(None, description="evaluate --metrics (default all)")
    eval_bootstrap: int = Field(100, ge=0, description="evaluate --bootstrap")
    eval_extractor_epochs: int = Field(15, gt=0, description="evaluate --extractor-epochs")
    device: str = Field("auto", description="device for generate and evaluate: auto (cuda, "
                        "then mps, then cpu) | cpu | cuda | cuda:N | mps")
    edits: list[str] = Field(
        default_factory=lambda: list(DEFAULT_EDITS), description="mask-to-image runs: generate "
        "--edit list for the pairs made from the training split's masks; [] = unedited")


class ExperimentConfig(Section):
    name: str = Field("experiment", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    utility: UtilityConfig = UtilityConfig()
    pipeline: PipelineConfig = PipelineConfig()

    @model_validator(mode="before")
    @classmethod
    def _mask_models_default_to_segmentation(cls, data: Any) -> Any:
        """A mask-to-image model's utility task is segmentation unless the config says one."""
        if not isinstance(data, dict):
            return data
        model = data.get("model")
        name = model.get("name") if isinstance(model, dict) else getattr(model, "name", None)
        if name not in MASK_MODELS:
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


def key_paths(model: type[BaseModel] | None = None, prefix: str = "") -> list[str]:
    """Every dotted key of a config model (sections and their keys), for suggestions."""
    model = ExperimentConfig if model is None else model
    out = []
    for name, f in model.model_fields.items():
        out.append(prefix + name)
        if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel):
            out += key_paths(f.annotation, f"{prefix}{name}.")
    return out


def suggest_key(loc: str, model: type[BaseModel] | None = None) -> str | None:
    """The documented key closest to a misspelt ``loc`` (difflib), first among its siblings."""
    keys = key_paths(model)
    parent, _, last = loc.rpartition(".")
    siblings = [k for k in keys if k.rpartition(".")[0] == parent]
    near = difflib.get_close_matches(loc, siblings, n=1, cutoff=0.6) or \
        difflib.get_close_matches(loc, keys, n=1, cutoff=0.6) or \
        [k for k in keys if k.rpartition(".")[2] == last]
    return near[0] if near else None


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
        loc = ".".join(str(p) for p in e["loc"])
        kind = e["type"]
        if kind == "extra_forbidden":
            near = suggest_key(loc, model)
            msg = (f"unknown key; did you mean {near}?" if near and near != loc else
                   "unknown key (check the spelling against the documented keys)")
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
    # YAML 1.1 reads "1e-4" as a string; numbers are what users mean.
    if isinstance(value, str):
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
                     overrides: list[str] | None = None):
    try:
        return model.model_validate(data)
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
