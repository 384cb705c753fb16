"""Training methods, one module each; importing this package imports (and so registers) all.

A new generator is a new module here that registers its :class:`TrainingMethod` subclass in
:data:`synthmed.training.method.METHODS` under its ``model.name``; nothing else needs editing.
"""

from __future__ import annotations

import importlib
import pkgutil

for _info in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_info.name}")
