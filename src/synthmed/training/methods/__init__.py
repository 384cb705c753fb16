"""Training methods, one module each; importing this package imports (and so registers) all.

A new generator is a new module here that registers its :class:`TrainingMethod` subclass with its
descriptor (:func:`synthmed.generators.register_generator`: config section, generation options,
capabilities, recipe) under its ``model.name``; nothing else needs editing (docs/extending.md).
"""

from __future__ import annotations

import importlib
import pkgutil

for _info in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_info.name}")
