"""Fit the shipped profiles' efficiency factors, one set per chip family.

    python benchmarks/fidelity_fit.py                    # every family
    python benchmarks/fidelity_fit.py --family hopper --dry-run

Each family is fitted to its figures of dense models in benchmarks/fidelity/ (MoE figures
would fit the expert-parallel model's assumptions, not the chip). A GPU family's
η_compute, η_memory, KV-cache efficiency η_kv, compute–memory overlap and host time per
token are fitted to its offline, server and interactive throughput figures at once:
large-batch offline throughput pins the compute rate, long-context rows the rate the cache
streams at, the latency-bound runs, whose limits keep steps near the ridge point, pin how
much of the memory traffic shows beside the math, and models of very different size pull
the host's fixed cost per token apart from the chip's cost per FLOP. An LPU family fits η
and its per-layer synchronisation to single-user speeds and offline throughput. The energy
figures and the MoE figures are a check the fit never sees.

The fitted values replace the family's efficiency figures in hardware_profiles/, tagged
`fitted` with the figures and the error before and after in their notes. Reruns start
from the current values.
"""

from __future__ import annotations

import argparse
import sys

from simulator.fidelity import Figure, fit_factors, load_figures
from simulator.fidelity.calibrate import mean_abs_error_pct, write_fitted
from simulator.hardware import SystemProfile, load_profile
from simulator.models import load_model
from simulator.resources import data_root, fidelity_figures_dir

FAMILIES = {
    "hopper": ("h100-sxm", "h200-sxm"),
    "blackwell": ("b200", "gb200-nvl72", "gb300-nvl72", "b300"),
    "cdna3": ("mi300x", "mi325x"),
    "cdna4": ("mi355x",),
    "groq-v1": ("groq-lpu-v1",),
}
_THROUGHPUT = ("offline", "single_user")
_LATENCY_BOUND = ("server", "interactive")
_SOURCE = ("Fitted by benchmarks/fidelity_fit.py to the published figures of "
           "benchmarks/fidelity/ named in each fitted note — (no URL)")


def _fit(figures: list[Figure], reference: SystemProfile, systems: tuple[str, ...],
         factors: tuple[str, ...], workers: int | None) -> tuple[dict[str, float], str] | None:
    """A family's fitted factors and the note that records them, or None when it has too
    few figures or the fit barely helps (by under one point of mean |error|)."""
    if len(figures) <= len(factors):
        # no more figures than factors would fit the figures, not the chip
        print(f"  {len(figures)} figures, too few to fit {factors}; left as they are")
        return None
    fit = fit_factors(figures, reference, workers=workers, family=systems[1:], names=factors)
    before, after = mean_abs_error_pct(fit.before), mean_abs_error_pct(fit.after)
    values = {k: float(f"{v:.4g}") for k, v in fit.factors.items()}
    print(f"  {len(figures)} figures, mean |error| {before:.1f} % -> {after:.1f} %; "
          f"{values}", flush=True)
    if before - after < 1.0:
        print("  the fit barely helps; left as they are")
        return None
    ids = ", ".join(f.id for f in figures)
    note = (f"fitted for the family ({', '.join(systems)}) to {len(figures)} figures ({ids}); "
            f"mean |error| {before:.1f} % before, {after:.1f} % after")
    return values, note


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=sorted(FAMILIES), action="append")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--workers", type=int)
    args = parser.parse_args()
    figures = load_figures(fidelity_figures_dir())
    for family in args.family or sorted(FAMILIES):
        systems = FAMILIES[family]
        dense = [f for f in figures if f.system in systems and load_model(f.model).moe is None
                 and f.metric != "joules_per_token"]
        throughput = [f for f in dense if f.benchmark in _THROUGHPUT]
        latency_bound = [f for f in dense if f.benchmark in _LATENCY_BOUND]
        print(f"{family}:", flush=True)
        reference = load_profile(systems[0])
        if reference.kind == "gpu":
            mine = throughput + latency_bound
            factors = ("compute", "memory", "kv_memory", "compute_memory_overlap",
                       "host_time_per_token_s")
        else:   # an LPU's fixed costs are per layer, seen by single-user speed
            mine = throughput
            factors = ("compute", "memory", "layer_sync_latency_s")
        fitted = _fit(mine, reference, systems, factors, args.workers)
        if fitted is None or args.dry_run:
            continue
        for system in systems:
            path = data_root() / "hardware_profiles" / f"{system}.yaml"
            write_fitted(path, path, *fitted, _SOURCE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
