"""The frontier of one hardware setup: one knob turned through a list of values.

A planner prices a factory on two numbers that trade against each other: how fast each user
is served (the price tier it can sell) and how many tokens a megawatt makes (the volume a
power budget buys). Turning the knob that sets how many requests share a step — the users
of a closed loop, or a pool's batch cap — traces that trade for one setup. That is a sweep
with one axis, so it runs as one: the axis becomes the scenario's ``sweep:`` block (given as
an override, replacing any block in the file), and validation, variant keys, the resumable
``results.jsonl`` and the executors are the sweep's own.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.config import load_scenario, parse_override
from simulator.config.scenario import Scenario
from simulator.errors import ScenarioError
from simulator.sweep.executors import check_executor
from simulator.sweep.frontier import frontier
from simulator.sweep.results import SweepResult
from simulator.sweep.runner import run_sweep
from simulator.sweep.variants import Variant, expand_sweep

__all__ = ["CSV_FILE", "DEFAULT_VALUES", "FrontierPoint", "axis_variants", "default_axis",
           "frontier_curve", "frontier_points", "parse_vary", "write_frontier_csv"]

CSV_FILE = "frontier.csv"
# Powers of two from one request per step to past where a pool's memory or a closed loop's
# users usually run out: each step roughly doubles tokens per MW while it still pays.
DEFAULT_VALUES: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256)
MEASURES = ("tokens_per_s_per_user_p50", "tokens_per_s_per_mw", "output_tokens_per_s",
            "power_w_mean", "ttft_p99_s", "slo_attainment", "overloaded", "pareto")
_VARY_FORM = "KEY=V1,V2,... with a dotted key path, e.g. pools.decode.scheduler.max_batch=8,16,32"

Axis = tuple[str, Sequence[Any]]


@dataclass(frozen=True)
class FrontierPoint:
    """One value of the varied key and what the factory did with it."""

    value: Any
    label: str                          # the value as written in the CSV, table and plot
    tokens_per_s_per_user_p50: float | None
    tokens_per_s_per_mw: float | None
    output_tokens_per_s: float
    power_w_mean: float
    ttft_p99_s: float | None
    slo_attainment: float
    overloaded: bool
    pareto: bool                        # no other point beats it on both axes (not overloaded)
    result: SweepResult                 # the whole summary, and whether it was resumed


def parse_vary(text: str) -> Axis:
    """``KEY=V1,V2,...`` as the key path and its values, each value read as YAML like --set."""
    key, sep, listed = text.partition("=")
    pieces = [piece.strip() for piece in listed.split(",")]
    if not sep or not key.strip() or not all(pieces):
        raise ScenarioError("--vary", key.strip() if sep else "", _VARY_FORM, text,
                            "Values are separated by commas, none of them empty.")
    parsed = [parse_override(f"{key}={piece}", "--vary") for piece in pieces]
    values = [value for _, value in parsed]
    shown = [json.dumps(value, sort_keys=True) for value in values]
    for piece, one in zip(pieces, shown, strict=True):
        if shown.count(one) > 1:
            raise ScenarioError("--vary", parsed[0][0], "each value once", piece,
                                "A repeated value would simulate the same scenario twice.")
    return parsed[0][0], values


def default_axis(scenario: Scenario) -> Axis:
    """The knob that sets how many requests share a step, when the planner names none.

    Closed-loop users set it directly; with open-loop arrivals the decode pool's batch cap
    (an aggregated pool's, when prompts and decode share one) limits it instead.
    """
    if scenario.workload.arrivals.process == "closed_loop":
        return "workload.arrivals.concurrency", DEFAULT_VALUES
    by_role = {p.role: p.name for p in scenario.pools}   # one pool per role (config checks)
    pool = by_role["decode"] if "decode" in by_role else by_role["both"]
    return f"pools.{pool}.scheduler.max_batch", DEFAULT_VALUES


def axis_variants(path: str | Path, vary: Axis | None = None,
                  overrides: Mapping[str, Any] | None = None,
                  seed: int | None = None) -> tuple[str, list[Variant]]:
    """The varied key and one validated sweep variant per value, in the given order.

    The scenario is built once as written first, so that what fails after that is the
    varied value's doing, and is reported against ``--vary`` rather than against the
    ``sweep.grid`` the sweep machinery sees (a block nowhere in the planner's file).
    """
    base = load_scenario(path, overrides, seed)
    key, values = vary if vary is not None else default_axis(base)
    if isinstance(values, (str, bytes)) or not values:
        raise ScenarioError("--vary", key, "a non-empty list of values", values)
    block = {"sweep": {"grid": {key: list(values)}}}
    try:
        return key, expand_sweep(path, {**(overrides or {}), **block}, seed)
    except ScenarioError as exc:
        raise _as_vary(exc, key) from None


def _as_vary(exc: ScenarioError, key: str) -> ScenarioError:
    grid = "sweep.grid"
    if not exc.key.startswith(grid):
        return exc
    rest = exc.key[len(grid):]
    if rest.startswith("."):            # the value itself: pools.decode.replicas[1]
        return ScenarioError("--vary", rest[1:], exc.expected, exc.got, exc.hint)
    if not rest:                        # two values resolving to one scenario
        return ScenarioError("--vary", key, exc.expected, exc.got, exc.hint)
    return ScenarioError(exc.file, f"--vary{rest}", exc.expected, exc.got, exc.hint)


def frontier_points(key: str, results: Sequence[SweepResult]) -> list[FrontierPoint]:
    """One point per result, marked on the sweep's Pareto frontier."""
    best = set(frontier(results))
    points = []
    for r in results:
        s = r.summary
        value = r.overrides[key]
        points.append(FrontierPoint(
            value=value, label=value if isinstance(value, str) else json.dumps(value),
            tokens_per_s_per_user_p50=s["tokens_per_s_per_user"]["p50"],
            tokens_per_s_per_mw=s["tokens_per_s_per_mw"],
            output_tokens_per_s=s["output_tokens_per_s"], power_w_mean=s["power_w_mean"],
            ttft_p99_s=s["ttft_s"]["p99"], slo_attainment=s["slo_attainment"],
            overloaded=bool(s["overloaded"]), pareto=r.name in best, result=r))
    return points


def write_frontier_csv(key: str, points: Sequence[FrontierPoint], path: Path) -> None:
    """One row per point, the varied key as the first column's name; empty where unknown."""

    def cell(value: Any) -> Any:
        if isinstance(value, bool):
            return int(value)
        return "" if value is None else value

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow((key, *MEASURES))
        for p in points:
            writer.writerow((p.label, *(cell(getattr(p, name)) for name in MEASURES)))


def frontier_curve(path: str | Path, *, vary: Axis | None = None,
                   overrides: Mapping[str, Any] | None = None, seed: int | None = None,
                   executor: str = "serial", workers: int | None = None,
                   address: str | None = None, out: str | Path | None = None,
                   progress: Callable[[int, int], None] | None = None) -> list[FrontierPoint]:
    """Simulate the scenario once per value of ``vary`` = (key path, values); points in order.

    Without ``vary``: closed-loop concurrency 1…256 for closed-loop arrivals, else the
    decode (or aggregated) pool's ``scheduler.max_batch`` 1…256. The other arguments are
    those of :func:`simulator.sweep`; with ``out``, finished points are kept in
    ``out/results.jsonl`` and not run again.
    """
    check_executor(executor, workers, address)
    key, variants = axis_variants(path, vary, overrides, seed)
    results = run_sweep(variants, executor=executor, workers=workers, address=address,
                        out=out, progress=progress)
    return frontier_points(key, results)
