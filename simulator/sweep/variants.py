"""The variants of a sweep: the base scenario with each combination's overrides, validated.

Every variant is built with ``build_scenario`` before any runs, so a bad value in the tenth
variant is reported in seconds rather than after nine simulations. A variant is then kept
as what rebuilds it (file, overrides, seed), not as the built Scenario, so a worker process
or a cluster node receives plain data and builds its own.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.config.checks import MISSING
from simulator.config.loader import build_scenario, raw_scenario
from simulator.config.overrides import apply_overrides, override_key
from simulator.config.scenario import Scenario
from simulator.errors import ScenarioError
from simulator.sweep.block import Combination, Setting, read_sweep

__all__ = ["Variant", "config_key", "expand_sweep", "variant_scenario"]


@dataclass(frozen=True)
class Variant:
    """One scenario of a sweep."""

    index: int
    name: str
    overrides: dict[str, Any]   # this variant's own keys, applied after --set and --seed
    key: str                    # config_key of its resolved scenario
    scenario: str               # name of the base scenario
    source: Path
    base_overrides: dict[str, Any] = field(default_factory=dict)   # --set, for every variant
    seed: int | None = None                                        # --seed, for every variant


def config_key(resolved: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of a resolved scenario (seed included).

    Two variants written differently but resolving to the same scenario share a key, so a
    resumed sweep recognises a finished variant however its overrides were spelt.
    """
    text = json.dumps(resolved, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def expand_sweep(path: str | Path, overrides: Mapping[str, Any] | None = None,
                 seed: int | None = None) -> list[Variant]:
    """Every variant of the file's ``sweep:`` block, each validated, in the block's order.

    ``overrides`` and ``seed`` act on the base scenario as in ``load_scenario``; a
    variant's own keys are applied after them, so where both set a key the variant wins.
    """
    file = Path(path)
    base_overrides = dict(overrides or {})
    raw = raw_scenario(file, base_overrides, seed)
    if "sweep" not in raw:
        raise ScenarioError(file, "sweep", "a sweep: block with grid and/or list (tokenfactory "
                            "run simulates a scenario without one)", MISSING)
    combos = read_sweep(raw.pop("sweep"), file)
    built = [(combo, _build(raw, file, combo)) for combo in combos]
    base_name = raw.get("name")
    scenario = base_name if isinstance(base_name, str) else built[0][1].name
    names: dict[str, str] = {}
    keys: dict[str, str] = {}
    variants = []
    for index, (combo, built_scenario) in enumerate(built):
        key = config_key(built_scenario.resolved)
        if combo.name in names:
            raise ScenarioError(file, combo.origin, f"a variant name not used by "
                                f"{names[combo.name]}", combo.name,
                                "Give the list items distinct names.")
        if key in keys:
            raise ScenarioError(file, combo.origin, f"a variant that differs from {keys[key]!r} "
                                "once resolved", combo.name,
                                "Both would simulate the same scenario with the same seed.")
        names[combo.name] = combo.origin
        keys[key] = combo.name
        variants.append(Variant(index=index, name=combo.name,
                                overrides={s.path: s.value for s in combo.settings}, key=key,
                                scenario=scenario, source=file, base_overrides=base_overrides,
                                seed=seed))
    return variants


def variant_scenario(variant: Variant) -> Scenario:
    """Rebuild a variant from its file, as a worker does.

    Refuses a scenario that no longer resolves to the variant's key (the file was edited
    while the sweep ran), whose result would otherwise be filed under the wrong variant.
    """
    raw = raw_scenario(variant.source, variant.base_overrides, variant.seed)
    raw.pop("sweep", None)
    scenario = build_scenario(apply_overrides(raw, variant.overrides, variant.source),
                              variant.source)
    if config_key(scenario.resolved) != variant.key:
        raise ScenarioError(variant.source, "", "a scenario file left unchanged while its "
                            "sweep runs", f"variant {variant.name!r} resolving differently now",
                            "Run the sweep again; finished variants are kept.")
    return scenario


def _build(raw: dict[str, Any], file: Path, combo: Combination) -> Scenario:
    overrides = {s.path: s.value for s in combo.settings}
    try:
        variant_raw = apply_overrides(raw, overrides, file)
    except ScenarioError as exc:
        raise _blame(exc, file, combo, {s.path: s for s in combo.settings}) from None
    try:
        return build_scenario(variant_raw, file)
    except ScenarioError as exc:
        raise _blame(exc, file, combo, _loader_keys(variant_raw, file, combo)) from None


def _loader_keys(raw: dict[str, Any], file: Path,
                 combo: Combination) -> dict[str, Setting]:
    """Each override by the key path the loader's errors use (``pools[1].replicas``)."""
    keys = {}
    for s in combo.settings:
        try:
            keys[override_key(raw, s.path, file)] = s
        except ScenarioError:
            continue   # the override removed the list item it names: nothing to blame there
    return keys


def _blame(exc: ScenarioError, file: Path, combo: Combination,
           keys: Mapping[str, Setting]) -> ScenarioError:
    """The error re-keyed to the sweep entry that caused it, naming the variant."""
    hint = " ".join(filter(None, (exc.hint, f"In sweep variant {combo.name!r}.")))
    key = exc.key
    if exc.file == str(file):
        key = f"{combo.origin} → {exc.key}"
        for loader_key in sorted(keys, key=len, reverse=True):
            if exc.key == loader_key or exc.key.startswith((f"{loader_key}.", f"{loader_key}[")):
                key = keys[loader_key].origin + exc.key[len(loader_key):]
                break
    return ScenarioError(exc.file, key, exc.expected, exc.got, hint)
