"""Global CLI options shared by every command through `ctx.obj`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from memskill_cli.config import Settings, load_settings


@dataclass
class AppState:
    params: Path | None = None
    quiet: bool = False
    console: Console = field(default_factory=lambda: Console(stderr=True))

    def settings(self, overrides: dict[str, Any] | None = None) -> Settings:
        return load_settings(self.params, overrides)


def state(ctx: typer.Context) -> AppState:
    obj = ctx.find_root().obj
    if not isinstance(obj, AppState):
        obj = AppState()
        ctx.find_root().obj = obj
    return obj
