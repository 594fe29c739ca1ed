"""Reading a scenario's ``sweep:`` block into the combinations of overrides it asks for.

Only the shape of the block is checked here (which keys, which types); whether each
override path and value makes a valid scenario is for the loader to say once the overrides
are applied. Keeping this module free of the loader lets ``build_scenario`` refuse a
malformed block even in ``tokenfactory run``, which never expands it.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.config.checks import SWEEP_ITEM_KEYS, SWEEP_KEYS, Section, join_key, plain_data
from simulator.errors import ScenarioError

__all__ = ["Combination", "Setting", "read_sweep"]


@dataclass(frozen=True)
class Setting:
    """One override of a variant, with the place in the file it came from (for errors)."""

    path: str       # dotted override path, as for --set
    value: Any
    origin: str     # e.g. sweep.grid.pools.decode.replicas[2] or sweep.list[0].set.seed


@dataclass(frozen=True)
class Combination:
    """The overrides of one variant, in the order they are applied."""

    settings: tuple[Setting, ...]
    origin: str     # sweep.grid, sweep.list[i], or sweep.list[i] × sweep.grid
    name: str       # the list item's name, else its overrides as k=v, k=v


def _show(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _short_paths(paths: set[str]) -> dict[str, str]:
    """Each path by its shortest dotted tail that no other path shares.

    ``pools.decode.replicas`` reads as ``replicas`` unless the sweep also varies
    ``pools.prefill.replicas``; then the two read ``decode.replicas`` and
    ``prefill.replicas``. Names stay short enough for a table and still unambiguous.
    """
    short = {}
    for path in paths:
        parts = path.split(".")
        for n in range(1, len(parts) + 1):
            tail = ".".join(parts[-n:])
            if not any(other != path and (other == tail or other.endswith(f".{tail}"))
                       for other in paths):
                break
        short[path] = tail
    return short


def read_sweep(block: Any, file: str | Path) -> list[Combination]:
    """Every combination the block asks for: list items (in order) × grid product.

    A variant's default name is its overrides as ``k=v, k=v`` with shortened keys; a list
    item's own name replaces its part of that.
    """
    sec = Section(block, file, "sweep", SWEEP_KEYS,
                  "a mapping with grid (values to combine) and/or list (variants)")
    if not sec.data:
        raise ScenarioError(file, "sweep", "grid, list or both", {},
                            "grid: {key.path: [values]} tries every combination; "
                            "list: [{name, set: {key.path: value}}] names each variant.")
    grid = _grid(sec) if sec.has("grid") else [()]
    items = _items(sec) if sec.has("list") else [(None, ())]
    short = _short_paths({s.path for _, own in items for s in own} | {s.path for s in grid[0]})

    def label(settings: tuple[Setting, ...]) -> str:
        return ", ".join(f"{short[s.path]}={_show(s.value)}" for s in settings)

    combos = []
    for index, (given, own) in enumerate(items):
        paths = {s.path for s in own}
        for s in grid[0]:
            if s.path in paths:
                raise ScenarioError(file, f"sweep.grid.{s.path}",
                                    f"a key not also set by sweep.list[{index}]", s.path,
                                    "A key may vary in the grid or in the list, not both.")
        origin = " × ".join(([f"sweep.list[{index}]"] if sec.has("list") else [])
                            + (["sweep.grid"] if sec.has("grid") else []))
        for settings in grid:
            name = ", ".join(filter(None, (given or label(own), label(settings))))
            combos.append(Combination(own + settings, origin, name))
    return combos


def _grid(sec: Section) -> list[tuple[Setting, ...]]:
    grid = sec.section("grid", None, "a mapping of key.path -> [values to try]")
    if not grid.data:
        raise ScenarioError(sec.file, grid.key, "at least one key.path with values to try", {})
    axes = []
    for path, values in grid.data.items():
        where = grid.at(path)
        if not isinstance(values, list) or not values:
            raise ScenarioError(sec.file, where, "a non-empty list of values to try", values,
                                "Write one value as a one-item list, or set it in the "
                                "scenario itself.")
        axes.append([Setting(path, plain_data(v, sec.file, join_key(where, i)),
                             join_key(where, i))
                     for i, v in enumerate(values)])
    return list(itertools.product(*axes))


def _items(sec: Section) -> list[tuple[str | None, tuple[Setting, ...]]]:
    items = sec.get("list")
    if not isinstance(items, list) or not items:
        raise sec.fail("list", "a non-empty list of variants, each {name, set: {key.path: "
                       "value}}", items)
    out = []
    for index, item in enumerate(items):
        where = join_key("sweep.list", index)
        entry = Section(item, sec.file, where, SWEEP_ITEM_KEYS,
                        "a mapping with set (key.path -> value) and an optional name")
        label = entry.text("name") if entry.has("name") else None
        if not entry.has("set"):
            raise entry.fail("set", "a mapping of key.path -> value for this variant")
        own = entry.section("set", None, "a mapping of key.path -> value")
        if not own.data:
            raise ScenarioError(sec.file, own.key, "at least one key.path -> value", {})
        out.append((label, tuple(Setting(path, plain_data(v, sec.file, own.at(path)),
                                         own.at(path)) for path, v in own.data.items())))
    return out
