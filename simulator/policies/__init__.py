"""Scheduling and routing policies, named in YAML by a short name or a dotted path."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

from simulator.config.scenario import PolicySpec
from simulator.errors import ScenarioError, did_you_mean
from simulator.policies.base import (
    ReplicaView,
    Router,
    RouterView,
    Scheduler,
    StepPlan,
    admit_fcfs,
)
from simulator.policies.batching import ChunkedPrefill, ContinuousBatching
from simulator.policies.routing import LeastOutstanding, MostFreeKV, RoundRobin

__all__ = [
    "ROUTERS",
    "SCHEDULERS",
    "ChunkedPrefill",
    "ContinuousBatching",
    "LeastOutstanding",
    "MostFreeKV",
    "ReplicaView",
    "RoundRobin",
    "Router",
    "RouterView",
    "Scheduler",
    "StepPlan",
    "admit_fcfs",
    "build_policy",
]

SCHEDULERS: dict[str, type] = {
    "continuous": ContinuousBatching,
    "chunked_prefill": ChunkedPrefill,
}
ROUTERS: dict[str, type] = {
    "least_outstanding": LeastOutstanding,
    "round_robin": RoundRobin,
    "most_free_kv": MostFreeKV,
}


def _import_class(name: str, file: str | Path | None, key: str) -> type:
    module_name, _, class_name = name.partition(":")
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, class_name)
    except (ImportError, AttributeError) as exc:
        raise ScenarioError(file, key, "an importable 'package.module:Class'", name,
                            f"({exc.__class__.__name__}: {exc})") from None
    if not inspect.isclass(cls):
        raise ScenarioError(file, key, "a class", name)
    return cls


def build_policy(spec: PolicySpec, kind: str, file: str | Path | None, key: str) -> Any:
    """Construct a scheduler (``kind='scheduler'``) or router (``kind='router'``)."""
    table = SCHEDULERS if kind == "scheduler" else ROUTERS
    method = "plan" if kind == "scheduler" else "choose"
    if ":" in spec.name:
        cls = _import_class(spec.name, file, f"{key}.policy")
    elif spec.name in table:
        cls = table[spec.name]
    else:
        raise ScenarioError(file, f"{key}.policy",
                            f"one of {', '.join(sorted(table))} or 'package.module:Class'",
                            spec.name, did_you_mean(spec.name, table))
    accepted = [p for p in inspect.signature(cls).parameters if p != "self"]
    for option in spec.options:
        if option not in accepted:
            raise ScenarioError(file, f"{key}.{option}",
                                f"an option of {spec.name} ({', '.join(accepted) or 'none'})",
                                option, did_you_mean(option, accepted))
    try:
        policy = cls(**spec.options)
    except (TypeError, ValueError) as exc:
        raise ScenarioError(file, key, f"valid options for {spec.name}", spec.options,
                            str(exc)) from None
    if not callable(getattr(policy, method, None)):
        raise ScenarioError(file, f"{key}.policy", f"a class with a {method}() method", spec.name)
    return policy
