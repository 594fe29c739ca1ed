"""Typed, strict reading of the mappings in a scenario file.

A scenario is hand-written, so a typo must never pass silently as a default: every mapping
is checked against the keys it may hold, and every value against the type and range it
needs, before anything is built from it. The key sets here are also the tree that
``--set`` overrides walk, so the two can never disagree about what a scenario may contain.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import yaml

from simulator.config.scenario import PolicySpec
from simulator.errors import ScenarioError, did_you_mean

__all__ = ["ANY_KEYS", "MISSING", "SCHEMA", "Items", "Section", "join_key", "parse_yaml",
           "plain_data", "read_policy"]


class _StrictYamlLoader(yaml.SafeLoader):
    """Safe YAML with two traps closed: a key written twice, and ``1e3`` read as text.

    PyYAML follows YAML 1.1, where a float needs a dot, so ``rate_per_s: 1e3`` would arrive
    as the string '1e3' and fail a type check the user cannot see the reason for.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} appears twice in one mapping",
                    key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_StrictYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def parse_yaml(text: str, file: str | Path | None, key: str = "") -> Any:
    """Parse YAML text; a syntax error becomes a ScenarioError with its line and column."""
    try:
        return yaml.load(text, Loader=_StrictYamlLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "unreadable YAML"
        raise ScenarioError(file, key, "valid YAML", f"an error{where}: {problem}") \
            from None
    except yaml.YAMLError as exc:
        raise ScenarioError(file, key, "valid YAML", str(exc)) from None


class _Missing:
    """Stands for an absent key, so an error reads 'got nothing' rather than 'got None'."""

    def __repr__(self) -> str:
        return "nothing (the key is missing)"


MISSING: Any = _Missing()


class Items:
    """Schema of a list whose items share one schema (pools, links, inline tiers)."""

    def __init__(self, item: dict[str, Any]) -> None:
        self.item = item


# A mapping whose keys are free (policy options, tier shares): anything below it goes.
ANY_KEYS: Any = object()

PRECISION_KEYS = ("weights", "experts", "kv_cache")
ARRIVAL_KEYS_BY_PROCESS = {
    "poisson": ("process", "rate_per_s"),
    "gamma": ("process", "rate_per_s", "cv"),
    "fixed": ("process", "rate_per_s"),
    "trace": ("process", "path", "speedup"),
    "closed_loop": ("process", "concurrency", "think_time_s"),
}
LENGTH_KEYS_BY_SOURCE = {
    "trace": ("source", "path"),
    "fixed": ("source", "input_tokens", "output_tokens"),
    "uniform": ("source", "input_tokens", "output_tokens"),
}
WORKLOAD_KEYS = ("requests", "duration_s", "arrivals", "lengths", "tiers")
POOL_KEYS = ("name", "role", "system", "replicas", "parallelism", "chips_per_replica",
             "kv_block_tokens", "scheduler", "kv_tiers", "speculative", "attention_split",
             "serves")
KV_TIER_KEYS = ("name", "bandwidth_gbps", "latency_us", "hit_rate")
PARALLELISM_KEYS = ("tp", "ep", "ep_imbalance")
SPECULATIVE_KEYS = ("draft_tokens", "acceptance", "draft_cost_fraction")
ATTENTION_SPLIT_KEYS = ("system", "chips", "exchange_gbps", "exchange_latency_us")
LINK_KEYS = ("from", "to", "bandwidth_gbps", "latency_us", "transfer")
TIER_KEYS = ("name", "price_usd_per_mtok", "min_tokens_per_s_per_user", "max_ttft_s",
             "source", "assumption")
ECONOMICS_KEYS = ("site_power_mw", "pue", "electricity_usd_per_kwh", "amortisation_years",
                  "sizing", "capex_usd")
SIZINGS = ("nameplate", "measured")
TOP_KEYS = ("schema_version", "name", "seed", "model", "precision", "workload", "pools",
            "links", "router", "tiers", "economics", "sweep")
SWEEP_KEYS = ("grid", "list")
SWEEP_ITEM_KEYS = ("name", "set")


def _leaves(keys: Collection[str]) -> dict[str, Any]:
    return dict.fromkeys(keys)


def _union(groups: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(k for keys in groups.values() for k in keys))


# The shape of a scenario: a dict is a mapping with fixed keys, None a plain value.
SCHEMA: dict[str, Any] = {
    **_leaves(("schema_version", "name", "seed", "model")),
    "precision": _leaves(PRECISION_KEYS),
    "workload": {
        "requests": None,
        "duration_s": None,
        "arrivals": _leaves(_union(ARRIVAL_KEYS_BY_PROCESS)),
        "lengths": _leaves(_union(LENGTH_KEYS_BY_SOURCE)),
        "tiers": ANY_KEYS,
    },
    "pools": Items({**_leaves(POOL_KEYS), "parallelism": _leaves(PARALLELISM_KEYS),
                    "speculative": _leaves(SPECULATIVE_KEYS),
                    "attention_split": _leaves(ATTENTION_SPLIT_KEYS),
                    "kv_tiers": Items(_leaves(KV_TIER_KEYS)),
                    "scheduler": ANY_KEYS}),
    "links": Items(_leaves(LINK_KEYS)),
    "router": ANY_KEYS,
    "tiers": Items(_leaves(TIER_KEYS)),
    # capex_usd is keyed by profile name, which the loader checks against the profiles.
    "economics": {**_leaves(ECONOMICS_KEYS), "capex_usd": ANY_KEYS},
    # Grid and set keys are dotted override paths, not nested mappings, so they stay free.
    "sweep": {"grid": ANY_KEYS, "list": Items({"name": None, "set": ANY_KEYS})},
}


def join_key(base: str, name: str | int) -> str:
    if isinstance(name, int):
        return f"{base}[{name}]"
    return f"{base}.{name}" if base else name


def plain_data(value: Any, file: str | Path | None, key: str) -> Any:
    """A deep copy of ``value`` that is known to survive ``json.dumps`` (for policy options)."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ScenarioError(file, key, "a finite number", value)
        return value
    if isinstance(value, list):
        return [plain_data(v, file, join_key(key, i)) for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ScenarioError(file, join_key(key, str(k)), "a text key", k)
            out[k] = plain_data(v, file, join_key(key, k))
        return out
    raise ScenarioError(file, key, "a plain YAML value (text, number, true/false, list or "
                        "mapping)", value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Section:
    """One mapping of the scenario with its file and key path, read one typed key at a time.

    Building it refuses any key outside ``allowed`` (None: keys are free) with a
    did-you-mean hint, so the typed readers below only ever see keys the schema knows.
    """

    def __init__(self, data: Any, file: str | Path | None, key: str,
                 allowed: Collection[str] | None, what: str = "a mapping") -> None:
        if not isinstance(data, dict):
            raise ScenarioError(file, key, what, data)
        for k in data:
            if not isinstance(k, str):
                raise ScenarioError(file, join_key(key, str(k)), "a text key", k)
            if allowed is not None and k not in allowed:
                raise ScenarioError(
                    file, join_key(key, k), f"one of the keys {', '.join(allowed)}", k,
                    did_you_mean(k, allowed),
                )
        self.data: dict[str, Any] = data
        self.file = file
        self.key = key

    def at(self, name: str) -> str:
        return join_key(self.key, name)

    def has(self, name: str) -> bool:
        return name in self.data

    def get(self, name: str, default: Any = MISSING) -> Any:
        return self.data.get(name, default)

    def fail(self, name: str, expected: str, got: Any = MISSING, hint: str = "") -> ScenarioError:
        return ScenarioError(self.file, self.at(name), expected, got, hint)

    def text(self, name: str, default: str | None = None,
             choices: Collection[str] | None = None) -> str:
        value = self.data.get(name, MISSING if default is None else default)
        if choices is not None:
            # Checked as text first: a list or mapping cannot be looked up in a dict of choices.
            if not isinstance(value, str) or value not in choices:
                hint = did_you_mean(value, choices) if isinstance(value, str) else ""
                raise self.fail(name, "one of " + ", ".join(repr(c) for c in choices), value,
                                hint)
            return str(value)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(name, "a non-empty text", value)
        return value

    def integer(self, name: str, default: int | None = None, minimum: int = 1,
                meaning: str = "") -> int:
        value = self.data.get(name, MISSING if default is None else default)
        expected = f"an integer ≥ {minimum}" + (f" ({meaning})" if meaning else "")
        if not _is_int(value):
            hint = "true/false is not a number." if isinstance(value, bool) else ""
            raise self.fail(name, expected, value, hint)
        if value < minimum:
            raise self.fail(name, expected, value)
        return int(value)

    def number(self, name: str, default: float | None = None, positive: bool = True,
               meaning: str = "") -> float:
        """A finite float; ``positive`` means > 0, otherwise ≥ 0 (no quantity here is negative)."""
        value = self.data.get(name, MISSING if default is None else default)
        bound = "> 0" if positive else "≥ 0"
        expected = f"a number {bound}" + (f" ({meaning})" if meaning else "")
        ok = (_is_int(value) or isinstance(value, float)) and math.isfinite(value)
        if not ok:
            hint = "true/false is not a number." if isinstance(value, bool) else ""
            raise self.fail(name, expected, value, hint)
        if value < 0 or (positive and value == 0):
            raise self.fail(name, expected, value)
        return float(value)

    def section(self, name: str, allowed: Collection[str] | None,
                what: str = "a mapping") -> Section:
        """The mapping under ``name``; an absent key reads as an empty mapping (all defaults)."""
        return Section(self.data.get(name, {}), self.file, self.at(name), allowed, what)


def read_policy(parent: Section, name: str, default: str,
                kind: str) -> tuple[PolicySpec, dict[str, Any]]:
    """``policy`` plus free options, which only the policy class knows how to check.

    The class is built once here and thrown away, so that a misspelt policy or option is
    refused when the file is loaded rather than when the engine first needs the policy.
    ``kind`` is 'scheduler' or 'router'.
    """
    # Imported here: simulator.policies imports simulator.config.scenario, whose package
    # import runs this module.
    from simulator.policies import build_policy

    sec = parent.section(name, None)
    policy = sec.text("policy", default)
    options = {k: plain_data(v, sec.file, sec.at(k)) for k, v in sec.data.items()
               if k != "policy"}
    spec = PolicySpec(policy, options)
    build_policy(spec, kind, sec.file, sec.key)
    return spec, {"policy": policy, **copy.deepcopy(options)}
