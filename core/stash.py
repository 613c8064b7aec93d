"""Typed per-object storage for plugins (after pytest's ``Stash``).

A plugin that must keep state on a shared object (the runtime, its configuration) makes
its own :class:`StashKey` and stores the value under it: no string keys that another
plugin could read or collide with, and the key says the value's type::

    PUBLISHER = ncrt.StashKey[StatsPublisher]()
    runtime.stash[PUBLISHER] = StatsPublisher(runtime)
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar, cast

__all__ = ["Stash", "StashKey"]

T = TypeVar("T")
D = TypeVar("D")


class StashKey(Generic[T]):
    """A key for values of type ``T``; only its holder can reach the value."""

    __slots__ = ()


class Stash:
    """A mapping from :class:`StashKey` objects to values of the key's type."""

    __slots__ = ("_values",)

    def __init__(self) -> None:
        self._values: dict[StashKey[Any], object] = {}

    def __setitem__(self, key: StashKey[T], value: T) -> None:
        self._values[key] = value

    def __getitem__(self, key: StashKey[T]) -> T:
        return cast(T, self._values[key])

    def get(self, key: StashKey[T], default: D) -> T | D:
        return cast(T, self._values[key]) if key in self._values else default

    def setdefault(self, key: StashKey[T], default: T) -> T:
        return cast(T, self._values.setdefault(key, default))

    def __delitem__(self, key: StashKey[T]) -> None:
        del self._values[key]

    def __contains__(self, key: StashKey[T]) -> bool:
        return key in self._values

    def __len__(self) -> int:
        return len(self._values)
