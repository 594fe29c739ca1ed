"""The ``tokenfactory`` command line (also ``python -m simulator``).

Exit codes: 0 success, 2 bad input (one paragraph naming file, key, expected and got),
1 internal error.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from simulator import __version__
from simulator.errors import ScenarioError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tokenfactory",
        description="Simulate AI data centres as token factories: latency, throughput and "
                    "energy of GPU prefill and LPU decode pools.")
    parser.add_argument("--version", action="version", version=f"tokenfactory {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="simulate one scenario")
    run.add_argument("scenario", type=Path, help="scenario YAML file")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a key by its dotted path: pools.decode.replicas=4")
    run.add_argument("--seed", type=int, help="random seed (overrides the scenario's)")
    run.add_argument("--out", type=Path, help="write summary.json and requests.csv here")
    run.add_argument("--json", action="store_true", help="print summary.json to stdout")
    sub.add_parser("profiles", help="list hardware profiles and model cards")
    return parser


def _run(args: argparse.Namespace, out: Console, err: Console) -> int:
    from simulator.api import simulate
    from simulator.config import load_scenario, parse_override
    from simulator.report.table import summary_tables

    overrides = dict(parse_override(text) for text in args.overrides)
    scenario = load_scenario(args.scenario, overrides=overrides, seed=args.seed)
    started = time.perf_counter()
    if err.is_terminal and not args.json:
        columns = ("[progress.description]{task.description}", BarColumn(),
                   MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err, transient=True) as bar:
            task = bar.add_task(scenario.name, total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            result = simulate(scenario, progress=progress)
    else:
        result = simulate(scenario)
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


def _profiles(out: Console) -> int:
    from simulator.hardware import load_profile
    from simulator.models import load_model
    from simulator.report.table import profiles_tables
    from simulator.resources import list_models, list_profiles

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
        if args.command == "run":
            return _run(args, out, err)
        return _profiles(out)
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
