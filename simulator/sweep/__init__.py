"""Sweeps: many variants of one scenario, run anywhere, resumable, with their Pareto frontier.

    from simulator import sweep
    results = sweep("study.yaml", executor="process", out="out/study-sweep")
    [(r.name, r.summary["tokens_per_s_per_mw"]) for r in results]

The modules are small and each does one thing: ``block`` reads the ``sweep:`` block,
``variants`` builds and validates every variant, ``executors`` runs them, ``results`` keeps
``results.jsonl``, ``runner`` ties these together, and ``frontier`` ranks the outcome.
"""

from simulator.sweep.executors import EXECUTORS, check_executor
from simulator.sweep.frontier import frontier, pareto_frontier
from simulator.sweep.results import RESULTS_FILE, SweepResult
from simulator.sweep.runner import run_sweep, sweep
from simulator.sweep.variants import Variant, config_key, expand_sweep

__all__ = [
    "EXECUTORS",
    "RESULTS_FILE",
    "SweepResult",
    "Variant",
    "check_executor",
    "config_key",
    "expand_sweep",
    "frontier",
    "pareto_frontier",
    "run_sweep",
    "sweep",
]
