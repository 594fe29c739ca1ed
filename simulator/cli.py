"""The ``tokenfactory`` command line (also ``python -m simulator``).

Exit codes: 0 success, 2 bad input (one paragraph naming file, key, expected and got),
1 internal error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from simulator import __version__
from simulator.errors import ScenarioError
from simulator.report.compare import add_command as add_compare_command
from simulator.report.fidelity import add_commands
from simulator.report.progress import progress_bar
from simulator.report.table import number_cell as num

if TYPE_CHECKING:
    from simulator.sweep import SweepResult
    from simulator.sweep.curve import FrontierPoint

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tokenfactory",
        description="Simulate AI data centres as token factories: latency, throughput and "
                    "energy of GPU prefill and LPU decode pools.")
    parser.add_argument("--version", action="version", version=f"tokenfactory {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="simulate one scenario (the base scenario only: a sweep: "
                                     "block is checked but not expanded; see sweep)")
    run.add_argument("scenario", type=Path, help="scenario YAML file")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a key by its dotted path: pools.decode.replicas=4")
    run.add_argument("--seed", type=int, help="random seed (overrides the scenario's)")
    run.add_argument("--out", type=Path, help="write summary.json and requests.csv here")
    run.add_argument("--json", action="store_true", help="print summary.json to stdout")
    run.set_defaults(handler=_run)
    sweep = sub.add_parser(
        "sweep", help="simulate every variant of the scenario's sweep: block; resumes where "
                      "it stopped; marks the Pareto frontier")
    sweep.add_argument("scenario", type=Path, help="scenario YAML file with a sweep: block")
    _add_many_run_options(sweep, "the base scenario", "a variant's own keys win", "variant")
    sweep.add_argument("--address", help="Ray cluster address for --executor ray")
    sweep.add_argument("--out", type=Path, help="folder of results.jsonl, kept for resuming "
                       "(default: out/<scenario name>-sweep)")
    sweep.add_argument("--json", action="store_true",
                       help="print the scenario, variants and frontier as one JSON object")
    sweep.set_defaults(handler=_sweep)
    curve = sub.add_parser(
        "frontier", help="tokens/s per MW against tokens/s per user of one setup, one key "
                         "varied; writes frontier.csv and frontier.png; resumes")
    curve.add_argument("scenario", type=Path, help="scenario YAML file (a sweep: block in it "
                       "is ignored)")
    curve.add_argument("--vary", metavar="KEY=V1,V2,...",
                       help="the key to vary and its values (default: workload.arrivals."
                            "concurrency=1,2,4,...,256 for closed-loop arrivals, else the "
                            "decode or aggregated pool's scheduler.max_batch=1,2,4,...,256)")
    _add_many_run_options(curve, "the scenario", "--vary wins", "point")
    curve.add_argument("--out", type=Path, help="folder of frontier.csv, frontier.png and "
                       "results.jsonl (default: out/<scenario name>-frontier)")
    curve.set_defaults(handler=_frontier)
    profiles = sub.add_parser("profiles", help="list hardware profiles and model cards; with "
                              "a profile name, every figure of it with its source and tag")
    profiles.add_argument("name", nargs="?", help="a profile name or path")
    profiles.set_defaults(handler=_profiles)
    add_commands(sub)
    add_compare_command(sub)
    return parser


def _add_many_run_options(parser: argparse.ArgumentParser, base: str, wins: str,
                          run: str) -> None:
    """The options of commands that run many variants of one scenario (sweep, frontier)."""
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help=f"override a key of {base} by its dotted "
                        f"path ({wins})")
    parser.add_argument("--seed", type=int, help=f"random seed of every {run}")
    parser.add_argument("--executor", default="process",
                        help="process (default: local worker processes), serial or ray")
    parser.add_argument("--workers", type=int, help="worker processes for --executor process "
                        "(default: one per CPU)")


def _run(args: argparse.Namespace, out: Console, err: Console) -> int:
    from simulator.api import simulate
    from simulator.config import load_scenario, parse_override
    from simulator.report.table import summary_tables

    overrides = dict(parse_override(text) for text in args.overrides)
    scenario = load_scenario(args.scenario, overrides=overrides, seed=args.seed)
    started = time.perf_counter()
    with progress_bar(err, scenario.name, args.json) as progress:
        result = simulate(scenario, progress=progress)
    wall_s = time.perf_counter() - started
    if args.out is not None:
        result.to_json(args.out / "summary.json")
        result.requests.to_csv(args.out / "requests.csv")
    if args.json:
        sys.stdout.write(result.json() + "\n")
    else:
        for table in summary_tables(result.summary):
            out.print(table)
        rate = result.summary["requests"] / wall_s if wall_s > 0 else 0.0
        err.print(f"simulated {result.summary['requests']:,} requests in {wall_s:.2f} s "
                  f"({rate:,.0f} requests per wall second)"
                  + (f"; results in {args.out}" if args.out is not None else ""))
    return 0


def _sweep(args: argparse.Namespace, out: Console, err: Console) -> int:
    from simulator.config import parse_override
    from simulator.sweep import RESULTS_FILE, check_executor, expand_sweep, frontier, run_sweep

    overrides = dict(parse_override(text) for text in args.overrides)
    check_executor(args.executor, args.workers, args.address)
    variants = expand_sweep(args.scenario, overrides, args.seed)
    folder = args.out if args.out is not None else Path("out") / f"{variants[0].scenario}-sweep"
    options = {"executor": args.executor, "workers": args.workers, "address": args.address,
               "out": folder}
    with progress_bar(err, f"{variants[0].scenario} variants", args.json) as progress:
        results = run_sweep(variants, progress=progress, **options)
    best = frontier(results)
    if args.json:
        document = {"scenario": variants[0].scenario,
                    "variants": [{"name": r.name, "key": r.key, "overrides": r.overrides,
                                  "summary": r.summary} for r in results],
                    "frontier": best}
        sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    else:
        table = _sweep_table(variants[0].scenario, results, set(best))
        needed = Measurement.get(out, out.options.update(width=10_000), table).minimum
        if needed > out.width:
            out = Console(width=needed)   # lines the terminal wraps beat numbers cut short
        out.print(table)
    resumed = sum(r.resumed for r in results)
    err.print(f"{len(results)} variants: {len(results) - resumed} run, {resumed} resumed; "
              f"results in {folder / RESULTS_FILE}", markup=False, highlight=False)
    return 0


def _sweep_table(scenario: str, results: Sequence[SweepResult], best: set[str]) -> Table:
    """One row per variant, pools as columns, so what a design change did reads across a row."""

    pools = list(dict.fromkeys(p["name"] for r in results for p in r.summary["scenario"]["pools"]))
    table = Table(title=f"{scenario} — {len(results)} variants (pool: system, chips, whole "
                        "systems bought; latency in ms; ★ Pareto frontier of tokens/s per "
                        "user p50 and tokens/s per MW, overloaded variants left out)",
                  title_justify="left")
    # The only column that wraps: numbers stay on one line, names fold rather than vanish.
    table.add_column("variant", min_width=16, overflow="fold")
    for name in pools:
        table.add_column(name, no_wrap=True)
    for label in ("out\ntok/s", "tok/s/user\np50", "tok/s\nper MW", "J per\ntoken",
                  "TTFT\np50", "TTFT\np99", "TPOT\np50", "over-\nloaded", "Pareto\nfront"):
        table.add_column(label, justify="right", no_wrap=True)
    for r in results:
        s = r.summary
        cells = []
        for name in pools:
            p = s["pools"].get(name)
            cells.append("—" if p is None else _pool_cell(p))
        table.add_row(
            r.name, *cells, num(s["output_tokens_per_s"], ",.0f"),
            num(s["tokens_per_s_per_user"]["p50"], ",.1f"), num(s["tokens_per_s_per_mw"], ",.0f"),
            num(s["joules_per_token"], ",.3f"), num(s["ttft_s"]["p50"], ",.1f", 1e3),
            num(s["ttft_s"]["p99"], ",.1f", 1e3), num(s["tpot_s"]["p50"], ",.2f", 1e3),
            "yes" if s["overloaded"] else "no", "★" if r.name in best else "")
    return table


def _pool_cell(p: dict[str, Any]) -> str:
    """System, chips and whole systems of a pool, with the GPUs an attention–FFN split adds."""
    chips = (f"{p['chips']:,}" if p["replicas"] == 1 else
             f"{p['replicas']}×{p['chips_per_replica']:,}={p['chips']:,}")
    cell = f"{p['system']}\n{chips} chips, {p['systems']} sys"
    split = p.get("attention_split")
    if split:
        cell += f"\n+ {split['system']}\n{split['chips']:,} for attention, {split['systems']} sys"
    return cell


def _frontier(args: argparse.Namespace, out: Console, err: Console) -> int:
    from simulator.config import parse_override
    from simulator.report.frontier_plot import PLOT_EXTRA, PNG_FILE, write_frontier_png
    from simulator.sweep import check_executor, run_sweep
    from simulator.sweep.curve import (
        CSV_FILE,
        axis_variants,
        frontier_points,
        parse_vary,
        write_frontier_csv,
    )

    overrides = dict(parse_override(text) for text in args.overrides)
    check_executor(args.executor, args.workers)
    vary = parse_vary(args.vary) if args.vary is not None else None
    key, variants = axis_variants(args.scenario, vary, overrides, args.seed)
    scenario = variants[0].scenario
    folder = args.out if args.out is not None else Path("out") / f"{scenario}-frontier"
    with progress_bar(err, f"{scenario} frontier points") as progress:
        results = run_sweep(variants, executor=args.executor, workers=args.workers,
                            out=folder, progress=progress)
    points = frontier_points(key, results)
    write_frontier_csv(key, points, folder / CSV_FILE)
    plotted = write_frontier_png(scenario, key, points, folder / PNG_FILE)
    out.print(_frontier_table(scenario, key, points))
    resumed = sum(p.result.resumed for p in points)
    files = [CSV_FILE, PNG_FILE] if plotted else [CSV_FILE]
    err.print(f"{len(points)} points: {len(points) - resumed} run, {resumed} resumed; results "
              f"in {', '.join(str(folder / name) for name in files)}", markup=False,
              highlight=False, soft_wrap=True)
    if not plotted:
        err.print(f"{PNG_FILE} not written: it needs matplotlib ({PLOT_EXTRA})",
                  markup=False, highlight=False, soft_wrap=True)
    return 0


def _frontier_table(scenario: str, key: str, points: Sequence[FrontierPoint]) -> Table:
    """One row per value of the key, in the order varied, so the trade reads down the table."""

    table = Table(title=f"{scenario} — varying {key} (latency in ms; ★ Pareto frontier of "
                        "tokens/s per user p50 and tokens/s per MW, overloaded points left "
                        "out)", title_justify="left")
    table.add_column(key.rsplit(".", 1)[-1], justify="right")
    for label in ("tok/s/user\np50", "tok/s\nper MW", "out\ntok/s", "power\nkW", "TTFT\np99",
                  "SLO\nmet %", "over-\nloaded", "Pareto\nfront"):
        table.add_column(label, justify="right", no_wrap=True)
    for p in points:
        table.add_row(
            p.label, num(p.tokens_per_s_per_user_p50, ",.1f"), num(p.tokens_per_s_per_mw, ",.0f"),
            num(p.output_tokens_per_s, ",.0f"), num(p.power_w_mean, ",.1f", 1e-3),
            num(p.ttft_p99_s, ",.1f", 1e3), num(p.slo_attainment, ".1f", 100),
            "yes" if p.overloaded else "no", "★" if p.pareto else "")
    return table


def _profiles(args: argparse.Namespace, out: Console, err: Console) -> int:
    from simulator.hardware import load_profile
    from simulator.models import load_model
    from simulator.report.table import profiles_tables, provenance_tables
    from simulator.resources import list_models, list_profiles

    if args.name:
        for table in provenance_tables(load_profile(args.name, None, "profiles NAME")):
            out.print(table)
        return 0

    profiles = [load_profile(p) for p in list_profiles()]
    models = [load_model(p) for p in list_models()]
    for table in profiles_tables(profiles, models):
        out.print(table)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    out = Console()
    if not out.is_terminal:
        out = Console(width=160)   # files and pipes: wide enough for every table
    err = Console(stderr=True)
    try:
        handler: Callable[[argparse.Namespace, Console, Console], int] = args.handler
        return handler(args, out, err)
    except ScenarioError as exc:
        sys.stderr.write(f"error: {exc}\n")   # one unwrapped paragraph, easy to grep
        return 2
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        return 130
    except Exception:
        err.print("internal error (a bug in tokenfactory; please report it with this trace):",
                  markup=False)
        err.print(traceback.format_exc(), markup=False, highlight=False)
        return 1


if __name__ == "__main__":
    sys.exit(main())
