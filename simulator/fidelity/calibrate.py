"""Fit a system's efficiency factors to measurements and write them into a new profile.

The factors are few and physical (η_compute and η_memory; for GPUs the KV cache's own
bandwidth efficiency, and the per-step overhead and the compute–memory overlap when
latency-bound figures can see them; for LPUs the per-layer synchronisation), one set per
chip family, fitted to all of that family's figures at once: tuning a figure at a time
would reproduce the page and nothing else. The search is a coordinate descent on the
logarithm of each factor with shrinking steps; each trial runs every figure, so it needs
no gradient and costs a few dozen simulations.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from simulator.errors import ScenarioError
from simulator.fidelity.figures import Figure
from simulator.fidelity.runners import FACTOR_FIELDS
from simulator.fidelity.validate import Comparison, compare
from simulator.hardware import SystemProfile, load_profile

__all__ = ["Fit", "fit_factors", "mean_abs_error_pct", "write_fitted", "write_profile"]

_STEPS = (1.6, 1.25, 1.1, 1.04)
# The factors fitted per kind of chip, with their bounds; η are fractions of a peak.
# η_kv stops at 0.9, the best share of peak bandwidth a decode attention kernel is
# measured at (FlashMLA: ~3,000 of the H800's 3,350 GB/s); above it a fit would be making
# up for something else in the step.
_FACTORS = {
    "gpu": {"compute": (0.05, 0.95), "memory": (0.05, 0.95), "kv_memory": (0.05, 0.9),
            "step_overhead_s": (1e-5, 0.05), "host_time_per_token_s": (1e-8, 5e-6),
            "compute_memory_overlap": (0.05, 1.0)},
    "lpu": {"compute": (0.05, 0.95), "memory": (0.05, 0.95),
            "layer_sync_latency_s": (1e-8, 1e-3)},
}
# Benchmarks whose figures see small and mid-sized steps: those judged by latency limits,
# where batches stay small. Throughput at large batch barely sees a step's fixed cost or
# how much of its memory traffic hides under the math, so a fit to such figures alone
# would let those drift to a bound; they then stay the profile's estimates.
_SEES_SMALL_STEPS = ("server", "interactive", "single_user")
_SMALL_STEP_FACTORS = ("step_overhead_s", "compute_memory_overlap")


@dataclass(frozen=True)
class Fit:
    factors: dict[str, float]
    before: list[Comparison]
    after: list[Comparison]

    @staticmethod
    def loss(comparisons: Sequence[Comparison]) -> float:
        """Mean absolute log ratio: a 2× overshoot and a 2× undershoot weigh the same."""
        return sum(abs(math.log(max(c.run.simulated, 1e-300) / c.figure.published))
                   for c in comparisons) / len(comparisons)


def fit_factors(figures: Sequence[Figure], system: SystemProfile, workers: int | None = None,
                progress: Callable[[int, int], None] | None = None,
                family: Sequence[str] = (), max_trials: int = 48,
                names: Sequence[str] | None = None) -> Fit:
    """Factors for ``system`` that bring ``figures`` closest, starting from its own.

    ``family`` names other systems built on the same chip (an HGX node and an NVL72 rack of
    the same GPU) whose figures are fitted together with one set of factors. ``names``
    limits the fit to some factors; by default it fits every factor of the chip's kind that
    the figures can see.
    """
    allowed = {system.name, *family}
    wrong = [f.id for f in figures if load_profile(f.system, f.path).name not in allowed]
    if wrong:
        raise ScenarioError(None, "--system", f"figures measured on {', '.join(sorted(allowed))}",
                            ", ".join(wrong))
    bounds = dict(_FACTORS[system.kind])
    if names is not None:
        bounds = {k: v for k, v in bounds.items() if k in names}
    elif not any(f.benchmark in _SEES_SMALL_STEPS for f in figures):
        for name in _SMALL_STEP_FACTORS:
            bounds.pop(name, None)
    factors = {k: float(getattr(system, FACTOR_FIELDS[k])) for k in bounds}
    before = compare(figures, factors, workers)
    best, best_loss = before, Fit.loss(before)
    trials = 0
    budget = max_trials
    for step in _STEPS:
        improved = True
        while improved and trials < budget:
            improved = False
            for name, (low, high) in bounds.items():
                for scale in (step, 1.0 / step):
                    value = min(max(factors[name] * scale, low), high)
                    if value == factors[name]:
                        continue
                    trial = {**factors, name: value}
                    result = compare(figures, trial, workers)
                    trials += 1
                    if progress:
                        progress(min(trials, budget), budget)
                    loss = Fit.loss(result)
                    if loss < best_loss - 1e-9:
                        factors, best, best_loss, improved = trial, result, loss, True
                        break
    return Fit(factors, before, best)


def write_profile(system: SystemProfile, fit: Fit, out: Path) -> None:
    """A copy of ``system``'s profile with the fitted factors, tagged and sourced as fitted."""
    ids = ", ".join(c.figure.id for c in fit.after)
    before, after = mean_abs_error_pct(fit.before), mean_abs_error_pct(fit.after)
    note = (f"fitted by tokenfactory calibrate to {len(fit.after)} figures ({ids}); mean "
            f"|error| {before:.1f} % before, {after:.1f} % after")
    source = (f"tokenfactory calibrate of {system.name} against the figures named in each "
              "fitted note — (no URL)")
    write_fitted(system.path, out, fit.factors, note, source)


def write_fitted(profile: Path, out: Path, factors: dict[str, float], note: str,
                 source: str) -> None:
    """``profile`` with its efficiency figures replaced by ``factors`` (tag ``fitted``,
    source ``FIT``), written to ``out``, which may be the same file.

    The text is edited rather than re-dumped, so the profile's comments and layout, which
    carry much of its provenance, survive.
    """
    text = profile.read_text(encoding="utf-8")
    if out.stem != profile.stem:
        text = re.sub(r"^name: .*$", f"name: {out.stem}", text, count=1, flags=re.M)
    head, sep, rest = text.partition("\nefficiency:\n")
    body, sources_sep, tail = rest.partition("\nsources:\n")
    if not sep or not sources_sep:
        raise ScenarioError(profile, "efficiency", "an efficiency: block before sources:",
                            "a profile laid out otherwise")
    for name, value in factors.items():
        entry = (f"  {name}:\n    value: {value:.4g}\n    source: FIT\n    tag: fitted\n"
                 f"    note: {json.dumps(note, ensure_ascii=False)}\n")
        pattern = re.compile(rf"^  {re.escape(name)}:.*?(?=^  \S|\Z)", re.S | re.M)
        body, count = pattern.subn(entry, body if body.endswith("\n") else body + "\n", 1)
        if count != 1:
            raise ScenarioError(profile, f"efficiency.{name}", "a figure to replace", "none")
    tail = re.sub(r"^  FIT: .*\n?", "", tail, flags=re.M).rstrip("\n")
    tail += f"\n  FIT: {json.dumps(source, ensure_ascii=False)}\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(head + sep + body.rstrip("\n") + sources_sep + tail, encoding="utf-8")
    load_profile(str(out))   # what was written must load


def mean_abs_error_pct(comparisons: Sequence[Comparison]) -> float:
    """Mean |error| in per cent: what a fit reports before and after."""
    return sum(abs(c.error_pct) for c in comparisons) / len(comparisons)
