"""Running a sweep: skip what results.jsonl already holds, run the rest, keep each result."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from simulator.sweep.executors import check_executor, run_variants
from simulator.sweep.results import ResultsLog, SweepResult
from simulator.sweep.variants import Variant, expand_sweep

__all__ = ["run_sweep", "sweep"]

Progress = Callable[[int, int], None]


def sweep(path: str | Path, *, overrides: Mapping[str, Any] | None = None,
          seed: int | None = None, executor: str = "serial", workers: int | None = None,
          address: str | None = None, out: str | Path | None = None,
          progress: Progress | None = None) -> list[SweepResult]:
    """Run every variant of a scenario's ``sweep:`` block; results in variant order.

    ``overrides`` and ``seed`` apply to the base scenario (a variant's own keys win).
    ``executor`` is serial, process (``workers`` processes, default one per CPU) or ray
    (``address`` of a cluster, default a local one). With ``out``, each result is appended
    to ``out/results.jsonl`` as it finishes, and variants already there are not run again.
    ``progress(done, total)`` is called as variants finish, resumed ones counted as done.
    """
    check_executor(executor, workers, address)
    return run_sweep(expand_sweep(path, overrides, seed), executor=executor, workers=workers,
                     address=address, out=out, progress=progress)


def run_sweep(variants: Sequence[Variant], *, executor: str = "serial",
              workers: int | None = None, address: str | None = None,
              out: str | Path | None = None,
              progress: Progress | None = None) -> list[SweepResult]:
    """Run already expanded ``variants`` (see :func:`sweep` for the arguments)."""
    check_executor(executor, workers, address)
    results: dict[int, SweepResult] = {}
    with ExitStack() as stack:
        log = stack.enter_context(ResultsLog(Path(out))) if out is not None else None
        finished = log.finished() if log is not None else {}
        for v in variants:
            if v.key in finished:
                results[v.index] = SweepResult(v.index, v.name, v.key, v.overrides,
                                               finished[v.key], resumed=True)
        if progress is not None:
            progress(len(results), len(variants))

        def done(variant: Variant, summary: dict[str, Any]) -> None:
            result = SweepResult(variant.index, variant.name, variant.key, variant.overrides,
                                 summary)
            if log is not None:
                log.append(result)
            results[variant.index] = result
            if progress is not None:
                progress(len(results), len(variants))

        run_variants([v for v in variants if v.key not in finished], done, executor, workers,
                     address)
    return [results[v.index] for v in variants]
