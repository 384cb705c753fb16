"""One descriptor per generator: its config section, generation options, capabilities, recipe.

Every fact about a kind of generator that something other than its training code needs lives in
its :class:`Descriptor`, registered once (next to its :class:`~synthmed.training.method.
TrainingMethod`, in the method's own module) with :func:`register_generator`:

- ``section``: the typed ``model:`` config section, selected by ``model.name`` (a pydantic
  discriminated union assembled from the registered sections, strict: a key of another model is an
  error naming the key);
- ``options``: the typed generation options (``synthmed generate --option KEY=VALUE`` and the
  documented short flags such as ``--steps``);
- ``capabilities``: needs segmentation masks (mask-to-image), class-conditional, depends on another
  run;
- ``recipe``: the steps its samples need to be usable at a size, the losses it logs (the report's
  curves) and a plain-words description of each ``model.name`` (the report's "kind").

Import order. This module is low level (pydantic, the registry and the errors only), so
:mod:`synthmed.config`, the pipeline, progress and the report can all ask it. The built-in methods
register themselves when :mod:`synthmed.training.methods` is imported; :func:`ensure_loaded`
imports that package by name the first time a descriptor is asked for (the way plugin entry
points are loaded), so no module here imports ``training`` at import time and a new generator is
one new module in ``training/methods/`` (docs/extending.md).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from synthmed.errors import ConfigError

#: What changing a config key does; every leaf key carries one (``Field(json_schema_extra=
#: {"role": ...})`` through :func:`setting`). ``resume.py`` and the stage markers derive their
#: lists from it (docs/report.md, "When a stage runs again").
ROLES: dict[str, str] = {
    "data": "changes the data (import and every later stage run again)",
    "trained": "changes what is trained (train and every later stage run again)",
    "resumable": "may grow without restarting (train resumes to the new value; later stages "
                 "run again)",
    "generation": "changes only the synthetic set (generate and the later stages run again)",
    "evaluation": "changes only the evaluation (evaluate and report run again)",
    "utility": "changes only the utility study (utility and report run again)",
    "runtime": "how to run (device, threads, logging, names): never re-runs a stage",
}
Role = Literal["data", "trained", "resumable", "generation", "evaluation", "utility", "runtime"]


def setting(default: Any = ..., *, role: Role, description: str, **constraints: Any) -> Any:
    """A config key: its default, its :data:`ROLES` entry and its description, plus pydantic
    constraints (``gt=0`` ...) and ``extra`` metadata (a generation option's ``flag`` and
    ``config_key``). ``default_factory=`` may replace ``default``."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    extra = {**(constraints.pop("extra", None) or {}), "role": role}
    return Field(default, description=description, json_schema_extra=extra, **constraints)


def role_of(info) -> str | None:
    """The role a pydantic ``FieldInfo`` was declared with (None: undeclared)."""
    extra = info.json_schema_extra
    return extra.get("role") if isinstance(extra, dict) else None


class Section(BaseModel):
    """Base for config sections: unknown keys are errors, assignments are validated."""

    # inf and nan are never a meaningful setting (train.lr_g=inf trained nan losses to exit 0).
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class ModelSection(Section):
    """The keys every generator has; a method's section subclasses it and narrows ``name`` to a
    ``Literal`` of the ``model.name`` values it serves (the union's discriminator)."""

    name: str = setting("dcgan", role="trained", description="the generator (model.name); "
                        "each has its own keys (docs/training.md)")
    image_size: int | None = setting(None, role="trained", gt=0, description="image side in px "
                                     "the model trains at; default: the data's")
    ema: bool | None = setting(None, role="trained", description="keep an EMA of the sampling "
                               "network's weights; default per model")
    ema_decay: float = setting(0.999, role="trained", gt=0, lt=1, description="EMA decay per "
                               "step")


class GenerationOptions(Section):
    """A method's generation options (all optional: None means the run's default). A field's
    ``json_schema_extra`` may hold ``flag`` (the documented short flag of ``synthmed generate``,
    e.g. ``--steps``) and ``config_key`` (the ``model.*`` key that gives its default in a run, so
    ``synthmed run`` passes the current value: a generation-only key)."""


class NoOptions(GenerationOptions):
    """For methods without generation options."""


@dataclass(frozen=True)
class Capabilities:
    needs_masks: bool = False  # trains on image+mask pairs; samples from masks (mask-to-image)
    conditional: bool = False  # class-conditional when the data have two or more classes
    depends_on: str | None = None  # another run it needs (e.g. a frozen autoencoder's), or None


@dataclass(frozen=True)
class Recipe:
    """Training facts the progress log and the report use."""

    #: ``steps(image_size) -> steps`` after which samples are usable (recognisable structure),
    #: from the runs in docs/training.md; None: not measured for this method.
    steps: Callable[[int], int] | None = None
    #: loss key without ``loss_`` -> plain words, for the report's curves.
    losses: dict[str, str] = field(default_factory=dict)


@dataclass
class Descriptor:
    """Everything about one kind of generator; ``names`` are its ``model.name`` values, ``kinds``
    their plain-words descriptions. ``method`` (the TrainingMethod class) is set by
    :func:`register_generator` when used as a class decorator."""

    names: tuple[str, ...]
    section: type[ModelSection]
    kinds: dict[str, str]
    options: type[GenerationOptions] = NoOptions
    capabilities: Capabilities | dict[str, Capabilities] = Capabilities()
    recipe: Recipe = Recipe()
    method: Any = None

    def caps(self, name: str) -> Capabilities:
        c = self.capabilities
        return c[name] if isinstance(c, dict) else c


_BY_NAME: dict[str, Descriptor] = {}
_LISTENERS: list[Callable[[], None]] = []
_STATE = {"loaded": False, "version": 0}
#: The package whose modules register the built-in generators (imported by name, lazily).
BUILTIN_PACKAGE = "synthmed.training.methods"


def register_generator(desc: Descriptor, *, overwrite: bool = False):
    """Register ``desc`` under each of its names; as a decorator, also sets ``desc.method``."""
    for name in desc.names:
        literal = desc.section.model_fields["name"].annotation
        if name not in getattr(literal, "__args__", ()):
            raise ValueError(f"{desc.section.__name__}.name must be a Literal including {name!r}")
        if name in _BY_NAME and not overwrite and _BY_NAME[name] is not desc:
            raise ValueError(f"generator {name!r} is already registered")
        if name not in desc.kinds:
            raise ValueError(f"generator {name!r}: no plain-words kind")
    for name in desc.names:
        _BY_NAME[name] = desc
    _changed()

    def attach(cls):
        desc.method = cls
        return cls

    return attach


def unregister_generator(desc: Descriptor) -> None:
    """Remove ``desc`` (tests register toy methods for one test)."""
    for name in desc.names:
        if _BY_NAME.get(name) is desc:
            del _BY_NAME[name]
    _changed()


def on_change(callback: Callable[[], None]) -> None:
    """Call ``callback`` whenever the set of generators changes (the config rebuilds its union)."""
    _LISTENERS.append(callback)


def _changed() -> None:
    _STATE["version"] += 1
    for cb in _LISTENERS:
        cb()


def ensure_loaded() -> None:
    """Import the built-in methods once (they register themselves)."""
    if not _STATE["loaded"]:
        _STATE["loaded"] = True
        importlib.import_module(BUILTIN_PACKAGE)


def version() -> int:
    """Changes whenever a generator is registered or removed."""
    return _STATE["version"]


def names() -> list[str]:
    ensure_loaded()
    return sorted(_BY_NAME)


def descriptors() -> list[Descriptor]:
    """Each registered descriptor once."""
    ensure_loaded()
    out: list[Descriptor] = []
    for d in _BY_NAME.values():
        if all(d is not o for o in out):
            out.append(d)
    return out


def get(name: str, *, key: str = "model.name") -> Descriptor:
    """The descriptor of ``model.name``; unknown: one line naming the key and every choice."""
    ensure_loaded()
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        raise ConfigError(f"{key}: unknown model {name!r}; choose one of "
                          f"{', '.join(sorted(_BY_NAME))}") from None


def find(name: Any) -> Descriptor | None:
    """The descriptor of ``name``, or None when no generator has that name."""
    ensure_loaded()
    return _BY_NAME.get(name) if isinstance(name, str) else None


def needs_masks(name: str) -> bool:
    """Whether ``model.name`` is a mask-to-image generator (image+mask pairs, segmentation)."""
    d = find(name)
    return bool(d and d.caps(name).needs_masks)


def sections() -> list[type[ModelSection]]:
    """Every registered section class once (two names may share one, e.g. ddpm, ddpm-mask)."""
    return list(dict.fromkeys(d.section for d in descriptors()))


def recipe_steps(name: str, image_size: int) -> int | None:
    d = find(name)
    return d.recipe.steps(int(image_size)) if d and d.recipe.steps else None


def loss_words(loss: str, model: str | None = None) -> str | None:
    """Plain words for a logged loss (``loss_`` prefix optional): from ``model``'s recipe, else
    from any generator's."""
    key = loss.removeprefix("loss_")
    own = find(model)
    for d in ([own] if own else []) + descriptors():
        if key in d.recipe.losses:
            return d.recipe.losses[key]
    return None


def kind(name: str) -> str | None:
    d = find(name)
    return d.kinds.get(name) if d else None


def option_fields(name: str) -> dict[str, Any]:
    """The generation options of ``model.name``: option name -> pydantic FieldInfo."""
    return dict(get(name).options.model_fields)


def short_flags() -> dict[str, str]:
    """Every documented short flag of ``synthmed generate`` -> its option name."""
    out: dict[str, str] = {}
    for d in descriptors():
        for opt, info in d.options.model_fields.items():
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            if extra.get("flag"):
                out[extra["flag"]] = opt
    return out


def config_options(model_section: ModelSection) -> dict[str, Any]:
    """The generation options a run's ``model`` section sets (options with a ``config_key``)."""
    d = get(model_section.name)
    out = {}
    for opt, info in d.options.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if extra.get("config_key"):
            out[opt] = getattr(model_section, extra["config_key"])
    return out
