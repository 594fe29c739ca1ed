"""Local worker processes for independent simulations (sweep variants, fidelity figures).

Workers are spawned, not forked: the parent may hold threads (a progress bar, numba's
pool), and a forked child inherits their locks; spawn behaves the same on Linux, macOS
and Windows. Each task is plain data the worker rebuilds its scenario from.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, TypeVar

__all__ = ["in_processes"]

T = TypeVar("T")


def in_processes(task: Callable[[T], Any], items: Sequence[T], workers: int,
                 done: Callable[[int, Any], None]) -> None:
    """Run ``task(item)`` for every item on up to ``workers`` processes, calling
    ``done(index, result)`` in this process as each finishes, in finishing order."""
    if not items:
        return
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=min(workers, len(items)), mp_context=context)
    try:
        pending: dict[Future[Any], int] = {pool.submit(task, item): i
                                           for i, item in enumerate(items)}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                done(pending.pop(future), future.result())
    finally:
        pool.shutdown(cancel_futures=True)
