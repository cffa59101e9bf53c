"""Rich progress bars with ETA for the core's ProgressSink; silent when quiet or in CI."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from memskill_cli.progress import Advance, NoProgress, ProgressSink


class RichProgress:
    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def task(self, description: str, total: int) -> Advance:
        task_id = self.progress.add_task(description, total=total)
        return lambda: self.progress.advance(task_id)


@contextmanager
def progress_sink(console: Console, quiet: bool) -> Iterator[ProgressSink]:
    if quiet or os.environ.get("CI") or not console.is_terminal:
        yield NoProgress()
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        yield RichProgress(progress)
