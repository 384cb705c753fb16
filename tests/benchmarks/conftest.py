"""Benchmark scripts are not a package: the tests load each one by file, as a module fixture."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str, *, on_path: bool = False) -> Iterator[ModuleType]:
    """Yield ``benchmarks/NAME.py`` as module ``NAME`` (registered in sys.modules, since
    dataclasses look their module up by name), then unregister it; ``on_path`` also puts
    benchmarks/ on sys.path while it is loaded (a script importing a sibling script)."""
    if on_path:
        sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop(spec.name, None)
        if on_path:
            sys.path.remove(str(ROOT / "benchmarks"))


@pytest.fixture(scope="module")
def bench():
    yield from _load("segmentation_lgg")


@pytest.fixture(scope="module")
def ctl():
    yield from _load("lgg_privacy_control")


@pytest.fixture(scope="module")
def qpm():
    yield from _load("quality_per_minute", on_path=True)
