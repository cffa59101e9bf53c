"""Progress reporting the core can call without knowing about Rich or a terminal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

Advance = Callable[[], None]


class ProgressSink(Protocol):
    def task(self, description: str, total: int) -> Advance:
        """Start a task of `total` steps; call the returned function once per step."""
        ...


class NoProgress:
    def task(self, description: str, total: int) -> Advance:
        return lambda: None
