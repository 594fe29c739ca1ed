"""Simulated against published, figure by figure, with the error statistics a reader needs.

Figures run in worker processes (each rebuilds its own scenario from the figure file, so
nothing unpicklable crosses); results are put back in figure order whatever finishes
first, so the report is the same on any number of workers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simulator.fidelity.figures import Figure, scale_inputs
from simulator.fidelity.runners import Run, run_figure
from simulator.workers import in_processes

__all__ = ["Comparison", "compare", "error_stats", "report_json"]


@dataclass(frozen=True)
class Comparison:
    figure: Figure
    run: Run

    @property
    def error_pct(self) -> float:
        return 100.0 * (self.run.simulated - self.figure.published) / self.figure.published


def _run_task(task: tuple[Figure, dict[str, float] | None, float]) -> Run:
    figure, factors, input_scale = task
    return run_figure(scale_inputs(figure, input_scale), factors)


def compare(figures: Sequence[Figure], factors: dict[str, float] | None = None,
            workers: int | None = None,
            progress: Callable[[int, int], None] | None = None,
            input_scale: float = 1.0) -> list[Comparison]:
    """Run every figure (``factors`` replace the efficiency figures of every system;
    ``input_scale`` stretches the estimated prompt lengths, :func:`scale_inputs`)."""
    workers = max(1, min(workers or os.cpu_count() or 1, len(figures)))
    runs: dict[int, Run] = {}
    finished = 0

    def done(index: int, run: Run) -> None:
        nonlocal finished
        runs[index] = run
        finished += 1
        if progress:
            progress(finished, len(figures))

    # the loaded figures themselves (plain data), so one worker and many run the same
    # thing and no file is read twice
    tasks = [(f, factors, input_scale) for f in figures]
    if workers == 1:
        for i, task in enumerate(tasks):
            done(i, _run_task(task))
    else:
        in_processes(_run_task, tasks, workers, done)
    return [Comparison(f, runs[i]) for i, f in enumerate(figures)]


def error_stats(comparisons: Sequence[Comparison]) -> dict[str, float]:
    errors = np.abs([c.error_pct for c in comparisons])
    return {"median_abs_error_pct": float(np.median(errors)),
            "p90_abs_error_pct": float(np.percentile(errors, 90)),
            "max_abs_error_pct": float(np.max(errors))}


def report_json(comparisons: Sequence[Comparison], input_scale: float = 1.0
                ) -> dict[str, Any]:
    """The ``validate --json`` object; it names the prompt-length factor only when one was
    applied, so a plain report is the documented set of keys."""
    scaled = {} if input_scale == 1.0 else {"input_scale": input_scale}
    return {
        "figures": [{"id": c.figure.id, "metric": c.figure.metric,
                     "published": c.figure.published, "simulated": c.run.simulated,
                     "error_pct": c.error_pct, "met_limits": c.run.met_limits,
                     "source": c.figure.source, "path": str(Path(c.figure.path).name)}
                    for c in comparisons],
        **error_stats(comparisons),
        **scaled,
    }
