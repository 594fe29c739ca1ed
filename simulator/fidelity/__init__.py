"""Fidelity: reproduce published measurements, report the error, fit efficiency factors."""

from simulator.fidelity.calibrate import Fit, fit_factors, write_profile
from simulator.fidelity.figures import (
    BENCHMARKS,
    METRICS,
    Figure,
    load_figure,
    load_figures,
    scale_inputs,
)
from simulator.fidelity.runners import Run, run_figure
from simulator.fidelity.validate import Comparison, compare, error_stats, report_json

__all__ = [
    "BENCHMARKS",
    "METRICS",
    "Comparison",
    "Figure",
    "Fit",
    "Run",
    "compare",
    "error_stats",
    "fit_factors",
    "load_figure",
    "load_figures",
    "report_json",
    "run_figure",
    "scale_inputs",
    "write_profile",
]
