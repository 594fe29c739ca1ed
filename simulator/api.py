"""The public entry points: build a scenario, run it, get a Result."""

from __future__ import annotations

from collections.abc import Callable

from simulator.config.scenario import Scenario
from simulator.engine.factory import Factory
from simulator.metrics.summary import request_latencies, summarise
from simulator.result import RequestRecords, Result
from simulator.workload import generate

__all__ = ["simulate"]


def simulate(scenario: Scenario, *, skip_ahead: bool = True,
             progress: Callable[[int, int], None] | None = None) -> Result:
    """Run one scenario to its last completion.

    Deterministic for a given scenario and seed. ``skip_ahead`` jumps over stretches of
    decode steps in which no batch changes; it changes speed, not results (tests hold it to
    that). ``progress(done, total)`` is called now and then for progress bars.
    """
    requests = generate(scenario.workload, scenario.seed, scenario.source)
    factory = Factory(scenario, requests, skip_ahead=skip_ahead)
    end_s = factory.run(progress)
    columns = factory.table.columns()
    columns.update(request_latencies(factory))
    return Result(summarise(scenario, factory, end_s), RequestRecords(columns))
