"""Where variants run: in this process, in local worker processes, or on a Ray cluster.

Every executor runs the same function on the same plain data (a :class:`Variant`), and a
simulation is deterministic for its scenario and seed, so the executor changes speed and
never results. Results are handed back to the caller as each variant finishes, in whatever
order they finish; the caller alone writes the results file.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

from simulator.api import simulate
from simulator.errors import ScenarioError
from simulator.sweep.variants import Variant, variant_scenario
from simulator.workers import in_processes

__all__ = ["EXECUTORS", "check_executor", "run_variant", "run_variants"]

EXECUTORS = ("serial", "process", "ray")

Done = Callable[[Variant, dict[str, Any]], None]


def run_variant(variant: Variant) -> dict[str, Any]:
    """Simulate one variant; the summary comes back as JSON data.

    Passing it through JSON here makes a fresh summary equal to one read back from
    results.jsonl (NaN as null, numpy scalars as floats), so a resumed sweep and an
    uninterrupted one report the same values.
    """
    return dict(json.loads(simulate(variant_scenario(variant)).json()))


def check_executor(executor: str, workers: int | None = None,
                   address: str | None = None) -> None:
    """Refuse an executor that cannot run as asked, before any variant is built or run."""
    if executor not in EXECUTORS:
        raise ScenarioError("--executor", "executor", f"one of {', '.join(EXECUTORS)}", executor)
    if workers is not None and executor != "process":
        raise ScenarioError("--workers", "workers", "--executor process when --workers is "
                            "given", executor, "Serial runs one variant at a time; Ray "
                            "schedules on the cluster's own resources.")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise ScenarioError("--workers", "workers", "an integer ≥ 1", workers)
    if address is not None and executor != "ray":
        raise ScenarioError("--address", "address", "--executor ray when --address is given",
                            executor)
    if executor == "ray" and importlib.util.find_spec("ray") is None:
        raise ScenarioError("--executor", "executor", "ray installed for --executor ray "
                            "(pip install 'tokenfactory[ray]')",
                            "no module named 'ray'",
                            "Or use --executor process on this machine.")


def run_variants(variants: Sequence[Variant], done: Done, executor: str = "serial",
                 workers: int | None = None, address: str | None = None) -> None:
    """Run ``variants`` on ``executor`` (see :func:`check_executor`), calling
    ``done(variant, summary)`` in this process as each finishes."""
    if executor == "ray":
        _ray(variants, done, address)
    elif executor == "process" and variants:
        _processes(variants, done, workers or os.cpu_count() or 1)
    else:
        for variant in variants:
            done(variant, run_variant(variant))


def _processes(variants: Sequence[Variant], done: Done, workers: int) -> None:
    in_processes(run_variant, variants, workers,
                 lambda index, summary: done(variants[index], summary))


def _ray(variants: Sequence[Variant], done: Done, address: str | None) -> None:
    import ray  # an optional extra, so imported only when asked for

    started = not ray.is_initialized()
    if started:
        ray.init(address=address)
    try:
        remote = ray.remote(run_variant)
        pending = {remote.remote(v): v for v in variants}
        while pending:
            finished, _ = ray.wait(list(pending), num_returns=1)
            for ref in finished:
                done(pending.pop(ref), ray.get(ref))
    finally:
        if started:
            ray.shutdown()
