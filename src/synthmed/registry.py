"""One small validating registry for things a YAML file names.

Datasets, models, losses, metrics, feature extractors and tasks are looked up by name; the names
feed CLI choices and error messages
("model.name: unknown 'dcgn'; choose one of acgan, cgan, dcgan").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from synthmed.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> object mapping that refuses duplicates and explains unknown names."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None, *, overwrite: bool = False):
        """Register ``obj`` under ``name``; usable as a decorator when ``obj`` is omitted."""
        if not name or not name.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"{self.kind} name {name!r} must be alphanumeric (with - or _)")

        def _add(item: T) -> T:
            if name in self._items and not overwrite:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = item
            return item

        if obj is None:
            return _add
        return _add(obj)

    def get(self, name: str, *, key: str | None = None) -> T:
        """Return the object for ``name``; ``key`` is the config path named in the error."""
        try:
            return self._items[name]
        except KeyError:
            where = f"{key}: " if key else ""
            raise ConfigError(
                f"{where}unknown {self.kind} {name!r}; choose one of {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)

    def build(self, name: str, *args, key: str | None = None, **kwargs):
        """Look up ``name`` and call it (for registries of factories)."""
        factory: Callable = self.get(name, key=key)  # type: ignore[assignment]
        return factory(*args, **kwargs)
