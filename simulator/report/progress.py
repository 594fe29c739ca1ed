"""A progress bar on stderr for commands that run over a few seconds (rich at the edge)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

__all__ = ["progress_bar"]


@contextmanager
def progress_bar(err: Console, label: str, quiet: bool = False
                 ) -> Iterator[Callable[[int, int], None] | None]:
    """A ``progress(done, total)`` callback drawing a bar, or None when output is not a
    terminal or ``quiet`` (machine-readable output must not be interleaved with a bar)."""
    if quiet or not err.is_terminal:
        yield None
        return
    columns = ("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(label, total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield progress
