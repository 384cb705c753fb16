"""Reading configs written before per-method ``model:`` sections (checkpoint format 2, run
configs saved then): their flat section held every model's keys."""

from __future__ import annotations

from typing import Any

from synthmed import generators
from synthmed.errors import ConfigError

#: The flat ``model:`` section of synthmed before per-method sections (checkpoint format 2 and
#: run configs saved then hold every one of these keys). A key of another model at this value
#: carries no information and is dropped when such a config is read (:func:`migrate_model`).
FLAT_MODEL_DEFAULTS: dict[str, Any] = {
    "name": "dcgan", "image_size": None, "latent_dim": 100, "base_width": 64,
    "per_class": False, "loss": None, "r1_gamma": 0.0, "gp_weight": 10.0, "aux_weight": 1.0,
    "diffaugment": "auto", "ada": None, "ada_target": 0.6, "ada_interval": 4,
    "ada_speed_img": 20000, "ema": None, "ema_decay": 0.999, "channels": None,
    "num_res_blocks": 1, "attention_levels": None, "diffusion_steps": 1000,
    "noise_schedule": "cosine", "prediction": "epsilon", "cond_drop": 0.1, "sample_steps": 50,
    "guidance": 1.0, "kl_weight": 1.0, "mask_labels": 1, "anatomy_factor": None,
    "dropout": 0.5, "l1_weight": 100.0,
    # pix2pix keys of the flat section's last weeks (issue 21)
    "conditioning": None, "generator": "unet", "upsample": "transpose",
    "discriminator": "patchgan", "pair_augment": False,
    # issue 20: cgan up-sampling, the diffusion sampler
    "cgan_upsample": "nearest", "sampler": "dpm-solver++"}


def _same(a: Any, b: Any) -> bool:
    return (list(a) if isinstance(a, tuple) else a) == (list(b) if isinstance(b, tuple) else b)


def migrate_model(model: Any, *, saved: bool = False) -> Any:
    """A ``model:`` mapping in the flat pre-section layout -> its method's section.

    Keys of the old flat section that another model reads are dropped when they hold the old
    default (every saved config has all of them); with another value they are an error naming
    the key and the models that use it, unless ``saved`` (a checkpoint's or run's own config,
    where the key was accepted and had no effect: dropped).
    """
    if not isinstance(model, dict):
        return model
    model = dict(model)
    model.setdefault("name", "dcgan")
    desc = generators.find(model["name"])
    if desc is None:
        return model
    own = set(desc.section.model_fields)
    for key in [k for k in model if k not in own and k in FLAT_MODEL_DEFAULTS]:
        if saved or _same(model[key], FLAT_MODEL_DEFAULTS[key]):
            del model[key]
            continue
        users = sorted(n for d in generators.descriptors() if key in d.section.model_fields
                       for n in d.names)
        raise ConfigError(f"model.{key}: not a key of {model['name']} models (used by "
                          f"{', '.join(users) or 'no model'}); remove it or change model.name")
    return model
