"""One registry per kind of named component (datasets, models, trainers, strategies, ...).

Configs name components (`strategy.name: rahfl`, `trainer.name: dcl`); every name resolves here, so
adding a method is one module plus one decorator line. The `strategies` and `agents` packages
register themselves when imported; `fedsim` core imports them lazily through :func:`load_plugins`
(never at module level) to keep the dependency direction `strategies/agents -> fedsim`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from fedsim.errors import ConfigError

T = TypeVar("T")

#: Packages imported by :func:`load_plugins`; each registers its components on import.
PLUGIN_PACKAGES = ("strategies", "agents")


class Registry(Generic[T]):
    """A name -> object map with a decorator to fill it and an error that lists valid names."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._docs: dict[str, str] = {}

    def register(self, name: str, doc: str | None = None) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = obj
            text = doc or (getattr(obj, "__doc__", None) or "").strip().split("\n")[0]
            self._docs[name] = text
            return obj

        return deco

    def get(self, name: str, key: str | None = None) -> T:
        if name not in self._items:
            load_plugins()
        if name not in self._items:
            where = key or f"{self.kind}.name"
            raise ConfigError(f"{where}: unknown {self.kind} {name!r}; choose one of {sorted(self._items)}")
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def describe(self) -> Iterator[tuple[str, str]]:
        for name in self.names():
            yield name, self._docs.get(name, "")

    def __contains__(self, name: object) -> bool:
        return name in self._items


DATASETS: Registry[Callable[..., Any]] = Registry("dataset")
MODELS: Registry[Callable[..., Any]] = Registry("model")
TRAINERS: Registry[type] = Registry("trainer")
STRATEGIES: Registry[type] = Registry("strategy")
PARTITIONERS: Registry[Callable[..., Any]] = Registry("partitioner")

_loaded = False


def load_plugins() -> None:
    """Import fedsim's built-in component modules and the plugin packages once."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in ("fedsim.data", "fedsim.models", "fedsim.trainers", *PLUGIN_PACKAGES):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:  # an optional plugin package that is absent
            if exc.name != mod:
                raise
