"""``tokenfactory validate`` and ``tokenfactory calibrate``: tables and progress at the edge."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from simulator.errors import ScenarioError
from simulator.fidelity import (
    Comparison,
    compare,
    error_stats,
    fit_factors,
    load_figures,
    report_json,
    write_profile,
)
from simulator.hardware import load_profile
from simulator.report.progress import progress_bar
from simulator.resources import fidelity_figures_dir

__all__ = ["add_commands", "calibrate_command", "validate_command"]


def add_commands(sub: argparse._SubParsersAction) -> None:
    validate = sub.add_parser("validate", help="reproduce published (or your own) measurements "
                              "and print simulated against measured, with the error of each")
    validate.add_argument("--figures", type=Path, help="folder of figure files (default: the "
                          "shipped published figures)")
    validate.add_argument("--workers", type=int, help="worker processes (default: one per CPU)")
    validate.add_argument("--json", action="store_true", help="print one JSON object")
    validate.add_argument("--input-scale", type=_positive, default=1.0, metavar="F",
                          help="multiply the estimated (uniform) prompt-length ranges by F, "
                          "to see how much a result rests on them (default 1)")
    validate.set_defaults(handler=validate_command)
    calibrate = sub.add_parser("calibrate", help="fit one system's efficiency factors to "
                               "measurements and write a new profile")
    calibrate.add_argument("--figures", type=Path, required=True, help="folder of figure files")
    calibrate.add_argument("--system", required=True, help="profile name or path to fit")
    calibrate.add_argument("--out", type=Path, required=True, help="profile YAML to write")
    calibrate.add_argument("--workers", type=int, help="worker processes (default: one per CPU)")
    calibrate.set_defaults(handler=calibrate_command)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0.0):
        raise argparse.ArgumentTypeError(f"expected a factor > 0, got {text!r}")
    return value


def _table(title: str, comparisons: Sequence[Comparison]) -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("figure", "metric", "benchmark", "published", "simulated", "error"):
        table.add_column(col, justify="left" if col in ("figure", "metric", "benchmark")
                         else "right", no_wrap=True)
    for c in comparisons:
        note = "" if c.run.met_limits else " (limits not met)"
        table.add_row(c.figure.id, c.figure.metric, c.figure.benchmark,
                      f"{c.figure.published:,.4g}", f"{c.run.simulated:,.4g}",
                      f"{c.error_pct:+.1f} %{note}")
    return table


def _stats_line(comparisons: Sequence[Comparison]) -> str:
    s = error_stats(comparisons)
    return (f"{len(comparisons)} figures: median |error| {s['median_abs_error_pct']:.1f} %, "
            f"p90 {s['p90_abs_error_pct']:.1f} %, max {s['max_abs_error_pct']:.1f} %")


def validate_command(args: argparse.Namespace, out: Console, err: Console) -> int:
    folder = args.figures if args.figures is not None else fidelity_figures_dir()
    figures = load_figures(folder)
    with progress_bar(err, "figures", args.json) as progress:
        comparisons = compare(figures, workers=args.workers, progress=progress,
                              input_scale=args.input_scale)
    if args.json:
        sys.stdout.write(json.dumps(report_json(comparisons, args.input_scale), indent=2)
                         + "\n")
        return 0
    scaled = "" if args.input_scale == 1.0 else f", prompts × {args.input_scale:g}"
    out.print(_table(f"simulated against published — {folder}{scaled}", comparisons))
    out.print(_stats_line(comparisons))
    return 0


def calibrate_command(args: argparse.Namespace, out: Console, err: Console) -> int:
    system = load_profile(args.system, None, "--system")
    figures = [f for f in load_figures(args.figures)
               if load_profile(f.system, f.path).name == system.name]
    if not figures:
        raise ScenarioError(args.figures, "system", f"figures measured on {system.name}",
                            "none in this folder")
    with progress_bar(err, f"fitting {system.name}", False) as progress:
        fit = fit_factors(figures, system, workers=args.workers, progress=progress)
    write_profile(system, fit, args.out)
    out.print(_table(f"before calibration — {system.name}", fit.before))
    out.print(_stats_line(fit.before))
    out.print(_table(f"after calibration — {args.out}", fit.after))
    out.print(_stats_line(fit.after))
    factors = ", ".join(f"{k} {v:.4g}" for k, v in fit.factors.items())
    err.print(f"fitted {factors}; profile written to {args.out}", markup=False,
              highlight=False)
    return 0
