"""``--set key.path=value`` overrides, applied to the raw YAML before validation.

Overrides act on the raw mapping rather than on the frozen Scenario so that an overridden
value passes through exactly the same checks as one written in the file, and so that a
sweep variant is nothing more than a scenario file with a few keys changed.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from simulator.config.checks import ANY_KEYS, SCHEMA, Items, join_key, parse_yaml
from simulator.errors import ScenarioError, did_you_mean

__all__ = ["apply_overrides", "override_key", "parse_override"]

_FORM = "KEY=VALUE with a dotted key path, e.g. pools.decode.replicas=4"


def parse_override(text: str, file: str | Path | None = None) -> tuple[str, Any]:
    """Split ``"pools.decode.replicas=4"`` into the key path and its value, read as YAML."""
    where = file if file is not None else "--set"
    if not isinstance(text, str) or "=" not in text:
        raise ScenarioError(where, "", _FORM, text)
    key, _, value_text = text.partition("=")
    key = key.strip()
    _check_path(key, where)
    if not value_text.strip():
        raise ScenarioError(where, key, "a value after '='", text,
                            "Write KEY=null to remove a key and let its default apply.")
    return key, parse_yaml(value_text, where, key)


def _check_path(key: Any, where: str | Path) -> list[str]:
    if not isinstance(key, str) or not key:
        raise ScenarioError(where, "", _FORM, key)
    parts = key.split(".")
    if any(not p or p != p.strip() for p in parts):
        raise ScenarioError(where, key, _FORM, key, "Each part between dots must be a "
                            "non-empty name without spaces.")
    return parts


def apply_overrides(raw: dict[str, Any], overrides: Mapping[str, Any],
                    file: str | Path | None) -> dict[str, Any]:
    """A copy of ``raw`` with each override set; ``raw`` itself is left untouched.

    A list item is addressed by its ``name`` (``pools.decode.replicas``) or by its index
    (``pools.1.replicas``). A null value removes the key, so its default applies again. A
    key that is absent may be added only where the schema has a place for it; values are
    not checked here, the validation that follows does that.
    """
    result = copy.deepcopy(raw)
    for path, value in overrides.items():
        _set(result, path, copy.deepcopy(value), file)
    return result


def override_key(raw: dict[str, Any], path: str, file: str | Path | None) -> str:
    """The key path the loader reports (``pools[1].replicas``) for an override path
    (``pools.decode.replicas``) in ``raw``, so an error found after the override was applied
    can be traced back to it.
    """
    node: Any = raw
    key = ""
    parts = _check_path(path, file if file is not None else "--set")
    for depth, part in enumerate(parts):
        if isinstance(node, list):
            index = _list_index(node, part, path, ".".join(parts[:depth]), file)
            key, node = join_key(key, index), node[index]
        else:
            key = join_key(key, part)
            node = node.get(part) if isinstance(node, dict) else None
    return key


def _set(root: dict[str, Any], path: str, value: Any, file: str | Path | None) -> None:
    parts = _check_path(path, file if file is not None else "--set")
    node: Any = root
    schema: Any = SCHEMA
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        here = ".".join(parts[:depth]) or "the top level"
        if isinstance(node, dict):
            if part not in node:
                allowed = _mapping_keys(schema)
                if allowed is not None and part not in allowed:
                    raise ScenarioError(
                        file, path, f"an override path whose part {part!r} is a key of "
                        f"{here} ({', '.join(sorted(set(allowed) | set(node)))})", part,
                        did_you_mean(part, set(allowed) | set(node)))
                if not last:
                    child = _child(schema, part)
                    if isinstance(child, Items):
                        raise ScenarioError(file, path, f"an override path into an existing "
                                            f"list; {part!r} is not set in the scenario", part,
                                            f"Set the whole list instead: {part}=[...].")
                    node[part] = {}
            if last:
                if value is None:
                    node.pop(part, None)
                else:
                    node[part] = value
                return
            node, schema = node[part], _child(schema, part)
        elif isinstance(node, list):
            index = _list_index(node, part, path, here, file)
            if last:
                if value is None:
                    del node[index]
                else:
                    node[index] = value
                return
            node = node[index]
            schema = schema.item if isinstance(schema, Items) else None
        else:
            raise ScenarioError(file, path, f"an override path; {here} holds a plain value, "
                                f"not a mapping or a list, so it has no {part!r}", node)


def _mapping_keys(schema: Any) -> set[str] | None:
    """Keys the schema allows at this mapping, or None where keys are free or unknown."""
    return set(schema) if isinstance(schema, dict) else None


def _child(schema: Any, part: str) -> Any:
    if schema is ANY_KEYS:
        return ANY_KEYS
    return schema.get(part) if isinstance(schema, dict) else None


def _list_index(items: list[Any], part: str, path: str, here: str,
                file: str | Path | None) -> int:
    names = [item.get("name") for item in items if isinstance(item, dict)]
    for index, item in enumerate(items):
        if isinstance(item, dict) and item.get("name") == part:
            return index
    if part.isdigit() and int(part) < len(items):
        return int(part)
    named = [str(n) for n in names if n is not None]
    choices = ", ".join(repr(n) for n in named)
    expected = (f"an override path whose part {part!r} names an item of {here}: "
                f"an index 0 to {len(items) - 1}" + (f" or a name ({choices})" if named else ""))
    if not items:
        expected = f"an override path; {here} is an empty list"
    raise ScenarioError(file, path, expected, part, did_you_mean(part, named))
