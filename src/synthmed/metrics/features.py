"""Feature extractors: a small validated registry of image -> feature-vector networks.

FID, KID and PRDC compare distributions of feature vectors, so the extractor *is* the metric.
Built in: ``domain`` (a small CNN trained on the user's own real training split, see
:mod:`synthmed.metrics.domain`), ``inception`` (the standard FID Inception-v3, optional extra, see
:mod:`synthmed.metrics.inception`) and ``torchscript`` (a local TorchScript/``torch.export`` file).
Users add their own ``nn.Module`` with :func:`register_extractor`.

The contract (:class:`FeatureExtractor`, :func:`prepare_images`, the registry) lives in the leaf
module :mod:`synthmed.metrics.extractor`; each extractor module registers itself there, and
importing this module imports (and so registers) the built-ins.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from synthmed.errors import SynthmedError
from synthmed.fileio import sha256_file

# importing the extractor modules registers them ("domain", "inception"; each registers itself)
from synthmed.metrics import domain as _domain  # noqa: F401
from synthmed.metrics import inception as _inception  # noqa: F401

# the contract lives in a leaf module; re-exported here for the public API and old imports
from synthmed.metrics.extractor import (  # noqa: F401
    FEATURE_EXTRACTORS,
    RESIZE_METHOD,
    FeatureExtractor,
    Features,
    InputRange,
    prepare_images,
    register_extractor,
    state_dict_sha256,
)


def load_torchscript(path: str | os.PathLike, *, input_size: tuple[int, int] | int | None = None,
                     in_channels: int = 1, input_range: InputRange = "model",
                     name: str = "torchscript", **_: Any) -> FeatureExtractor:
    """A local TorchScript (``torch.jit.save``) or ``torch.export`` (``.pt2``) feature network."""
    path = Path(path)
    if not path.is_file():
        raise SynthmedError(f"{path}: extractor file not found; pass an existing TorchScript file")
    try:
        if path.suffix == ".pt2":
            net = torch.export.load(str(path)).module()
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                net = torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError, OSError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise SynthmedError(f"{path}: not a TorchScript/torch.export file ({first})") from None
    size = (input_size, input_size) if isinstance(input_size, int) else input_size
    return FeatureExtractor(net, name=name, input_size=size, in_channels=in_channels,
                            input_range=input_range, weights_sha256=sha256_file(path),
                            info={"file": str(path)})


FEATURE_EXTRACTORS.register("torchscript", load_torchscript)

BUILTIN_EXTRACTORS = ("domain", "inception", "torchscript")


def import_extractor(spec: str, *, input_size: tuple[int, int] | int | None = None,
                     in_channels: int = 1) -> str | None:
    """``--extractor-module pkg.module[:factory]``: a Python extractor, reachable from the CLI.

    Importing ``pkg.module`` (installed, or on ``PYTHONPATH``) runs any :func:`register_extractor`
    calls in it. With ``:factory``, ``factory()`` is called once: a :class:`FeatureExtractor` it
    returns is registered under its own ``name``; an ``nn.Module`` under the factory's name, fed
    ``in_channels`` channels at ``input_size`` (None: the images' own size). Returns that name
    (None without ``:factory``); it replaces an earlier registration, never a built-in.
    """
    import importlib

    mod_name, _, attr = str(spec).partition(":")
    where = f"--extractor-module {spec}"
    if not all(p.isidentifier() for p in mod_name.split(".")) or (attr and not attr.isidentifier()):
        raise SynthmedError(f"{where}: expected pkg.module or pkg.module:factory")
    try:
        mod = importlib.import_module(mod_name)
    except ModuleNotFoundError as e:
        if e.name is None or not (mod_name == e.name or mod_name.startswith(e.name + ".")):
            raise  # the module itself failed to import one of its own dependencies
        raise SynthmedError(f"{where}: no module named {e.name!r}; install it or add its folder "
                            "to PYTHONPATH") from None
    if not attr:
        return None
    factory = getattr(mod, attr, None)
    if not callable(factory):
        raise SynthmedError(f"{where}: {mod_name} has no callable {attr!r}")
    obj = factory()
    if isinstance(obj, nn.Module):
        size = (input_size, input_size) if isinstance(input_size, int) else input_size
        obj = FeatureExtractor(obj, name=attr, input_size=size, in_channels=in_channels,
                               info={"module": str(spec)})
    if not isinstance(obj, FeatureExtractor):
        raise SynthmedError(f"{where}: {attr}() returned {type(obj).__name__}; return a "
                            "torch.nn.Module or a synthmed.metrics.FeatureExtractor")
    if obj.name in BUILTIN_EXTRACTORS:
        raise SynthmedError(f"{where}: the name {obj.name!r} is built in; choose another")
    try:
        FEATURE_EXTRACTORS.register(obj.name, lambda **_: obj, overwrite=True)
    except ValueError as e:
        raise SynthmedError(f"{where}: {e}") from None
    return obj.name


def build_extractor(name: str, *, key: str = "features", **options: Any) -> FeatureExtractor:
    """Look ``name`` up in :data:`FEATURE_EXTRACTORS` (errors name ``key``) and build it."""
    return FEATURE_EXTRACTORS.build(name, key=key, **options)
