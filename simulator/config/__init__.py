"""Scenario files: strict loading, ``--set`` overrides and load-time feasibility checks.

A scenario becomes a frozen :class:`Scenario` only through :func:`load_scenario`, so code
downstream never sees an unchecked value.
"""

from simulator.config.loader import load_scenario
from simulator.config.overrides import apply_overrides, parse_override
from simulator.config.scenario import (
    ArrivalSpec,
    LengthSpec,
    LinkSpec,
    PolicySpec,
    PoolSpec,
    Precision,
    Scenario,
    TierSpec,
    WorkloadSpec,
)

__all__ = [
    "ArrivalSpec",
    "LengthSpec",
    "LinkSpec",
    "PolicySpec",
    "PoolSpec",
    "Precision",
    "Scenario",
    "TierSpec",
    "WorkloadSpec",
    "apply_overrides",
    "load_scenario",
    "parse_override",
]
