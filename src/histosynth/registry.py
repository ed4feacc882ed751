"""One small typed registry for pluggable parts: readers, encoders, detectors, backbones, samplers.

Entries can be registered eagerly (a decorator on the object) or lazily (a ``"module:attr"``
string), so listing names, which the CLI does to build its choices, imports nothing heavy.

Example
-------
>>> from histosynth.registry import Registry
>>> shapes = Registry[type]("shape")
>>> @shapes.register("square")
... class Square: ...
>>> shapes.get("square") is Square
True
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

__all__ = ["Registry", "RegistryError", "lazy_getattr"]

T = TypeVar("T")


def lazy_getattr(package: str, where: dict[str, str]) -> Callable[[str], object]:
    """A package's ``__getattr__`` (PEP 562) that imports each name from its module on first use.

    Parameters
    ----------
    package
        The package's name, for the error on an unknown attribute.
    where
        Attribute name → the module that defines it.
    """

    def __getattr__(name: str) -> object:
        if name in where:
            return getattr(importlib.import_module(where[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


class RegistryError(KeyError):
    """An unknown or badly registered entry."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly.
        return str(self.args[0])


class Registry(Generic[T]):
    """A name → object mapping with lazy entries and helpful errors.

    Parameters
    ----------
    kind
        What the entries are ("reader", "encoder", ...), used in error messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T | str] = {}
        self._help: dict[str, str] = {}

    def register(self, name: str, help: str = "") -> Callable[[T], T]:
        """Decorator registering an object under ``name``."""

        def deco(obj: T) -> T:
            self.add(name, obj, help=help)
            return obj

        return deco

    def add(self, name: str, obj: T | str, help: str = "") -> None:
        """Register ``obj`` (or a lazy ``"module:attr"`` path) under ``name``."""
        existing = self._entries.get(name)
        if existing is not None and existing is not obj and not isinstance(existing, str):
            raise RegistryError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = obj
        if help:
            self._help[name] = help

    def get(self, name: str) -> T:
        """Return the entry, importing it if it was registered lazily."""
        if name not in self._entries:
            close = difflib.get_close_matches(name, list(self._entries), n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else f"; choose from {self.names()}"
            raise RegistryError(f"unknown {self.kind} {name!r}{hint}")
        obj = self._entries[name]
        if isinstance(obj, str):
            module, _, attr = obj.partition(":")
            obj = getattr(importlib.import_module(module), attr)
            self._entries[name] = obj
        return obj  # type: ignore[return-value]

    def help(self, name: str) -> str:
        """One-line description of an entry (empty when none was given)."""
        return self._help.get(name, "")

    def names(self) -> list[str]:
        """Registered names in registration order (imports nothing)."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
