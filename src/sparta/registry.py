"""Name -> implementation registries, so judges, backends, tasks and rules are chosen by configuration.

An entry is either the object itself or a lazy ``"module:attr"`` target imported on first use, so a registry of
torch-backed judges can be declared (and every configured name checked when the configuration loads) without
importing torch. Unknown names fail with the closest known names and the full list.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import Generic, TypeVar, overload

from sparta.errors import SpartaError

T = TypeVar("T")


class UnknownNameError(SpartaError, KeyError):
    """A configured name that no registry entry has; the message suggests near names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def suggest(name: str, known: list[str]) -> str:
    """' (did you mean 'x'?)' for the closest known names, or ''."""
    close = difflib.get_close_matches(name, known, n=2, cutoff=0.6)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


class Registry(Generic[T]):
    """Maps a configuration name to an object or to a lazy ``"module:attr"`` target."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T | str] = {}

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, target: str) -> None: ...

    def register(self, name: str, target: str | None = None) -> Callable[[T], T] | None:
        """``@REGISTRY.register("name")`` on an object, or ``REGISTRY.register("name", "module:attr")``."""
        if target is not None:
            if ":" not in target:
                raise ValueError(f"{self.kind} {name!r}: a lazy target is 'module:attr', got {target!r}")
            self._add(name, target)
            return None

        def decorate(obj: T) -> T:
            self._add(name, obj)
            return obj

        return decorate

    def _add(self, name: str, entry: T | str) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry

    @staticmethod
    def _import(target: str) -> object:
        module_name, _, attr = target.partition(":")
        return getattr(importlib.import_module(module_name), attr)

    def check(self, name: str, field: str | None = None) -> str:
        """``name`` if it is registered (nothing is imported), else an :class:`UnknownNameError`."""
        if name not in self._entries:
            where = f"{field}: " if field else ""
            known = ", ".join(self.names()) or "none"
            raise UnknownNameError(f"{where}unknown {self.kind} {name!r}{suggest(name, self.names())}; known: {known}")
        return name

    def get(self, name: str) -> T:
        """The entry for ``name``, importing a lazy target on first use."""
        entry = self._entries[self.check(name)]
        if isinstance(entry, str):
            entry = self._import(entry)  # type: ignore[assignment]
            self._entries[name] = entry
        return entry  # type: ignore[return-value]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries
