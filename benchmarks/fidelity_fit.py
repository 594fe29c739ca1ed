"""Fit the shipped profiles' efficiency factors, one set per chip family.

    python benchmarks/fidelity_fit.py                    # every family, offline figures
    python benchmarks/fidelity_fit.py --family hopper --dry-run

Each family is fitted to its offline and single-user figures of dense models in
benchmarks/fidelity/ (fixed ISL/OSL and MLPerf Offline: throughput physics without a latency
search or the expert-parallel model's assumptions); the server, interactive and MoE figures
are then a check the fit never saw. The fitted values replace the
family's efficiency figures in hardware_profiles/, tagged `fitted` with the figures and the
error before and after in their notes. Reruns start from the current values.
"""

from __future__ import annotations

import argparse
import sys

from simulator.fidelity import fit_factors, load_figures
from simulator.fidelity.calibrate import write_fitted
from simulator.hardware import load_profile
from simulator.models import load_model
from simulator.resources import data_root, fidelity_figures_dir

FAMILIES = {
    "hopper": ("h100-sxm", "h200-sxm"),
    "blackwell": ("b200", "gb200-nvl72", "gb300-nvl72", "b300"),
    "cdna3": ("mi300x", "mi325x"),
    "cdna4": ("mi355x",),
    "groq-v1": ("groq-lpu-v1",),
}
_FITTED_ON = ("offline", "single_user")
_FACTORS_FITTED = ("compute", "memory")
_SOURCE = ("Fitted by benchmarks/fidelity_fit.py to the published figures of "
           "benchmarks/fidelity/ named in each fitted note — (no URL)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=sorted(FAMILIES), action="append")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--workers", type=int)
    args = parser.parse_args()
    figures = load_figures(fidelity_figures_dir())
    for family in args.family or sorted(FAMILIES):
        systems = FAMILIES[family]
        # dense models only: the chip's physics, not the expert-parallel model's assumptions
        mine = [f for f in figures if f.system in systems and f.benchmark in _FITTED_ON
                and load_model(f.model).moe is None]
        if len(mine) <= len(_FACTORS_FITTED):
            # no more figures than factors would fit the figures, not the chip
            print(f"{family}: {len(mine)} figures, too few to fit; left as estimated")
            continue
        reference = load_profile(systems[0])
        fit = fit_factors(mine, reference, workers=args.workers, family=systems[1:])
        before = sum(abs(c.error_pct) for c in fit.before) / len(mine)
        after = sum(abs(c.error_pct) for c in fit.after) / len(mine)
        factors = {k: float(f"{v:.4g}") for k, v in fit.factors.items()}
        print(f"{family}: {len(mine)} figures, mean |error| {before:.1f} % -> {after:.1f} %; "
              f"{factors}", flush=True)
        if args.dry_run or before - after < 1.0:
            if not args.dry_run:
                print(f"{family}: the fit barely helps; left as estimated")
            continue
        ids = ", ".join(f.id for f in mine)
        note = (f"fitted for the {family} family ({', '.join(systems)}) to {len(mine)} "
                f"offline/single-user figures ({ids}); mean |error| {before:.1f} % before, "
                f"{after:.1f} % after")
        for name in systems:
            path = data_root() / "hardware_profiles" / f"{name}.yaml"
            write_fitted(path, path, factors, note, _SOURCE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
