"""``tokenfactory compare``: sites side by side, each number beside its ratio to the first.

Every scenario runs once (in worker processes, results written as each finishes), and the
comparison reads only their summaries' ``site`` blocks, so what the table shows is what
``tokenfactory run --json`` would print for each file, and every figure can be traced to
the assumptions table printed under it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from simulator.errors import ScenarioError
from simulator.report.progress import progress_bar
from simulator.report.table import number_cell
from simulator.workers import in_processes

__all__ = ["add_command", "compare_command", "compare_rows"]

# (label, how to read it from a summary, format); None when the run has no such figure.
Row = tuple[str, Callable[[dict[str, Any]], "float | None"], str]


def add_command(sub: argparse._SubParsersAction) -> None:
    compare = sub.add_parser("compare", help="sites side by side: revenue, tokens/s per GW, "
                             "cost per M tokens and SLO attainment per tier, with ratios to "
                             "the first (each scenario needs an economics: block)")
    compare.add_argument("scenarios", type=Path, nargs="+", metavar="SCENARIO",
                         help="scenario YAML files; ratios are to the first")
    compare.add_argument("--set", dest="overrides", action="append", default=[],
                         metavar="KEY=VALUE", help="override a key in every scenario")
    compare.add_argument("--seed", type=int, help="random seed of every scenario")
    compare.add_argument("--workers", type=int, help="worker processes (default: one per CPU)")
    compare.add_argument("--out", type=Path, help="write each scenario's summary.json under "
                         "this folder as it finishes")
    compare.add_argument("--json", action="store_true", help="print one JSON object")
    compare.set_defaults(handler=compare_command)


def _site(key: str) -> Callable[[dict[str, Any]], float | None]:
    return lambda s: s["site"][key]


def _tier(tier: str, key: str) -> Callable[[dict[str, Any]], float | None]:
    return lambda s: s["site"]["tiers"].get(tier, {}).get(key)


def compare_rows(summaries: Sequence[dict[str, Any]]) -> list[Row]:
    """The rows of the comparison; tiers in the order of the first scenario's table, then
    any the others add."""
    tiers = list(dict.fromkeys(t for s in summaries for t in s["site"]["tiers"]))
    rows: list[Row] = [
        ("revenue $/year", _site("revenue_per_year_usd"), ",.4g"),
        ("cost $/year", _site("cost_usd_per_year"), ",.4g"),
        ("margin $/year", lambda s: s["site"]["revenue_per_year_usd"]
         - s["site"]["cost_usd_per_year"], ",.4g"),
        ("cost $ per M tokens", _site("cost_per_mtok_usd"), ",.3f"),
        ("tokens/s per GW", lambda s: s["site"]["tokens_per_s_per_mw"] * 1e3, ",.4g"),
        ("tokens/s per MW", _site("tokens_per_s_per_mw"), ",.0f"),
        ("tokens per J (facility)", _site("tokens_per_joule"), ",.3f"),
        ("pods in the site", _site("pods"), ",.0f"),
        ("pod IT power kW", lambda s: s["site"]["pod_it_power_w"] / 1e3, ",.1f"),
        ("pod capex $", _site("pod_capex_usd"), ",.4g"),
        ("tokens/s per user p50", lambda s: s["tokens_per_s_per_user"]["p50"], ",.1f"),
        ("TTFT p99 s", lambda s: s["ttft_s"]["p99"], ",.2f"),
        ("SLO attainment", lambda s: s["slo_attainment"], ".1%"),
    ]
    for tier in tiers:
        rows.append((f"{tier}: SLO attainment", _tier(tier, "slo_attainment"), ".1%"))
        rows.append((f"{tier}: revenue $/year", _tier(tier, "revenue_per_year_usd"), ",.4g"))
    return rows


def _run_one(task: tuple[str, dict[str, Any], int | None]) -> dict[str, Any]:
    from simulator.api import simulate
    from simulator.config import load_scenario

    path, overrides, seed = task
    return simulate(load_scenario(path, overrides=overrides, seed=seed)).summary


def _checked(paths: Sequence[Path], overrides: dict[str, Any], seed: int | None) -> list[str]:
    """Load every file before running any, so a bad one fails at once; names must differ."""
    from simulator.config import load_scenario

    names: list[str] = []
    for path in paths:
        scenario = load_scenario(path, overrides=overrides, seed=seed)
        if scenario.economics is None:
            raise ScenarioError(path, "economics", "an economics: block (compare prices "
                                "whole sites)", None, "Add economics: {site_power_mw: ..., "
                                "pue: ..., electricity_usd_per_kwh: ..., amortisation_years: "
                                "...}; see docs/economics.md.")
        if "/" in scenario.name or "\\" in scenario.name or scenario.name.startswith("."):
            raise ScenarioError(path, "name", "a name usable as a folder name (no slashes, "
                                "not starting with a dot)", scenario.name)
        if scenario.name in names:
            raise ScenarioError(path, "name", "a scenario name the other files do not use",
                                scenario.name)
        names.append(scenario.name)
    return names


def compare_command(args: argparse.Namespace, out: Console, err: Console) -> int:
    from simulator.config import parse_override
    from simulator.result import write_summary

    overrides = dict(parse_override(text) for text in args.overrides)
    names = _checked(args.scenarios, overrides, args.seed)
    summaries: list[dict[str, Any]] = [{} for _ in names]
    with progress_bar(err, "scenarios", args.json) as progress:
        def done(index: int, summary: dict[str, Any]) -> None:
            summaries[index] = summary
            if args.out is not None:
                write_summary(summary, args.out / names[index] / "summary.json")
            if progress is not None:
                progress(sum(bool(s) for s in summaries), len(summaries))

        tasks = [(str(p), overrides, args.seed) for p in args.scenarios]
        in_processes(_run_one, tasks, args.workers or os.cpu_count() or 1, done)
    rows = compare_rows(summaries)
    if args.json:
        document = {"scenarios": [{"name": n, "file": str(p), "site": s["site"]}
                                  for n, p, s in zip(names, args.scenarios, summaries,
                                                     strict=True)],
                    "rows": {label: [read(s) for s in summaries] for label, read, _ in rows}}
        sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        return 0
    comparison = _comparison_table(names, summaries, rows)
    assumptions = _assumptions_table(names, summaries)
    wide = out.options.update(width=10_000)
    # Every comparison column is no_wrap, so it needs its widest cell; the assumptions table
    # can fold its source column down to its minimum.
    needed = max(Measurement.get(out, wide, comparison).maximum,
                 Measurement.get(out, wide, assumptions).minimum)
    if needed > out.width:
        out = Console(width=needed)   # lines the terminal wraps beat numbers cut short
    out.print(comparison)
    out.print(assumptions)
    return 0


def _comparison_table(names: Sequence[str], summaries: Sequence[dict[str, Any]],
                      rows: Sequence[Row]) -> Table:
    table = Table(title=f"Sites compared (ratios to {names[0]}; revenue counts only tokens "
                        "that met their tier's SLO)", title_justify="left")
    table.add_column("per site", no_wrap=True)
    for name in names:
        table.add_column(name, justify="right", no_wrap=True)
    for name in names[1:]:
        table.add_column(f"{name}\n÷ {names[0]}", justify="right", no_wrap=True)
    for label, read, fmt in rows:
        values = [read(s) for s in summaries]
        first = values[0]
        # a ratio to nothing, or to a loss, would read as a gain: left out
        ratios = ["—" if v is None or first is None or first <= 0 else f"{v / first:,.2f}×"
                  for v in values[1:]]
        table.add_row(label, *(number_cell(v, fmt) for v in values), *ratios)
    return table


def _assumptions_table(names: Sequence[str], summaries: Sequence[dict[str, Any]]) -> Table:
    """Every input the site figures rest on, per scenario, with its source."""
    table = Table(title="Assumptions (what each number above is computed from)",
                  title_justify="left")
    table.add_column("assumption", no_wrap=True)
    units = [item["unit"] for s in summaries for item in s["site"]["assumptions"]]
    # a unit is a few words kept on one line: as wide as the widest, never cut short
    table.add_column("unit", no_wrap=True, min_width=max(map(len, units), default=1))
    for name in names:
        table.add_column(name, justify="right")
    table.add_column("source", overflow="fold")
    rows: dict[str, dict[str, Any]] = {}
    for index, summary in enumerate(summaries):
        for item in summary["site"]["assumptions"]:
            row = rows.setdefault(item["name"], {"unit": item["unit"], "values": {},
                                                 "sources": []})
            row["values"][index] = item["value"]
            if item["source"] not in row["sources"]:
                row["sources"].append(item["source"])
    for label, row in rows.items():
        cells = [_value(row["values"].get(i)) for i in range(len(names))]
        table.add_row(label, row["unit"], *cells, "; ".join(row["sources"]))
    return table


def _value(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return format(value, ",.6g")
    if isinstance(value, int):
        return format(value, ",")
    return str(value)
