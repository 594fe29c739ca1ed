"""Per-chip and per-system hardware profiles, read from ``hardware_profiles/*.yaml``.

Every number in a profile is a *figure*: a value with the source it came from and a tag
saying how far to trust it (vendor spec, third-party report, estimate, derived, fitted).
Keeping provenance next to the value lets a report say how much of a result rests on
guesses, and lets a reviewer trace any number back to where it was published.

The loader is strict on purpose: a typo in a profile would otherwise silently fall back to
nothing and skew every step time computed from it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from simulator.errors import ScenarioError, did_you_mean
from simulator.resources import find_profile

__all__ = ["TAGS", "Figure", "SystemProfile", "load_profile", "provenance_counts"]

TAGS = ("vendor", "third_party", "estimate", "derived", "fitted")

_DTYPES = ("bf16", "fp16", "fp8", "int8", "fp4")
_KINDS = ("gpu", "lpu")
_SCHEMA_VERSION = 1

# Checks a figure's value must pass; the text is what the error message says was expected.
_POSITIVE = "a number > 0"
_NON_NEGATIVE = "a number >= 0"
_FRACTION = "a number in (0, 1]"
_SHARE = "a number in [0, 1]"
_COUNT = "a whole number >= 1"

_CHIP_FIGURES = {
    "memory_bytes": _POSITIVE,
    "memory_bandwidth_bytes_per_s": _POSITIVE,
    "memory_usable_fraction": _FRACTION,
    "scaleup_bandwidth_bytes_per_s": _POSITIVE,
    "scaleup_latency_s": _NON_NEGATIVE,
    "scaleout_bandwidth_bytes_per_s": _POSITIVE,
    "scaleout_latency_s": _NON_NEGATIVE,
    "idle_power_w": _NON_NEGATIVE,
    "max_power_w": _POSITIVE,
}
_SYSTEM_FIGURES = {
    "scaleup_domain_chips": _COUNT,
    "overhead_power_w": _NON_NEGATIVE,
    "price_usd": _POSITIVE,
}
_EFFICIENCY_FIGURES = {
    "compute": _FRACTION,
    "memory": _FRACTION,
    "kv_memory": _FRACTION,
    "network": _FRACTION,
    "step_overhead_s": _NON_NEGATIVE,
    "host_time_per_token_s": _NON_NEGATIVE,
    "layer_sync_latency_s": _NON_NEGATIVE,
    "compute_memory_overlap": _SHARE,
}
_TOP_KEYS = (
    "schema_version", "name", "kind", "description", "chips_per_system",
    "chip", "system", "efficiency", "sources",
)
_FIGURE_KEYS = ("value", "source", "tag", "note")
_FIGURE_SHAPE = "a figure {value, source, tag, note (optional)}"
_SOURCES_SHAPE = "a mapping of source id -> 'title — URL'"


@dataclass(frozen=True)
class Figure:
    """One number from a profile with where it came from and how it was obtained."""

    value: float
    source: str
    tag: str
    note: str = ""


@dataclass(frozen=True)
class SystemProfile:
    """One scale-up system as sold and powered as a unit (HGX node, NVL72 rack, LPX rack).

    Per-chip figures are what the kernels divide work by; per-system figures are what a
    pool pays for in power and money, idle chips included.
    """

    name: str
    kind: str
    description: str
    chip_name: str
    chips_per_system: int
    dense_flops_per_s: dict[str, float]
    memory_bytes: float
    memory_bandwidth_bytes_per_s: float
    memory_usable_fraction: float
    scaleup_bandwidth_bytes_per_s: float
    scaleup_latency_s: float
    scaleup_domain_chips: int
    scaleout_bandwidth_bytes_per_s: float
    scaleout_latency_s: float
    idle_power_w: float
    max_power_w: float
    system_overhead_power_w: float
    system_price_usd: float
    compute_efficiency: float
    memory_efficiency: float
    kv_memory_efficiency: float
    network_efficiency: float
    step_overhead_s: float
    host_time_per_token_s: float
    layer_sync_latency_s: float
    compute_memory_overlap: float
    figures: dict[str, Figure]
    sources: dict[str, str]
    path: Path

    def flops_for(self, dtype: str) -> float:
        """Dense peak for ``dtype``; a chip without that datapath is refused, not emulated."""
        if dtype in self.dense_flops_per_s:
            return self.dense_flops_per_s[dtype]
        have = ", ".join(sorted(self.dense_flops_per_s))
        if dtype in _DTYPES:
            hint = f"{self.chip_name} has no published {dtype} throughput; use one of: {have}."
        else:
            hint = did_you_mean(dtype, self.dense_flops_per_s)
        raise ScenarioError(
            self.path,
            f"chip.dense_flops_per_s.{dtype}",
            f"a dtype this chip supports ({have})",
            dtype,
            hint,
        )

    @property
    def system_idle_power_w(self) -> float:
        return self.chips_per_system * self.idle_power_w + self.system_overhead_power_w

    @property
    def system_max_power_w(self) -> float:
        return self.chips_per_system * self.max_power_w + self.system_overhead_power_w


def provenance_counts(profile: SystemProfile) -> dict[str, int]:
    """How many of a profile's figures carry each tag, every tag listed even when zero."""
    counts = dict.fromkeys(TAGS, 0)
    for figure in profile.figures.values():
        counts[figure.tag] += 1
    return counts


def load_profile(
    name_or_path: str | Path, file: str | Path | None = None, key: str = "system"
) -> SystemProfile:
    """Load a shipped profile by name (``groq3-lpx``) or any profile by path.

    ``file`` and ``key`` say where the reference was written (a scenario and its key), so an
    unknown name is reported there; faults inside the profile name the profile file itself.
    """
    path = find_profile(str(name_or_path), file, key)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ScenarioError(path, "", "a valid YAML document", str(exc).replace("\n", " ")) from exc
    return _Reader(path).profile(raw)


class _Missing:
    """Stands for an absent key in an error message, distinct from an explicit null."""

    def __repr__(self) -> str:
        return "nothing (the key is missing)"


_MISSING = _Missing()


class _Reader:
    """Walks one profile document, collecting figures and naming dotted keys in errors."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sources: dict[str, str] = {}
        self.figures: dict[str, Figure] = {}

    def fail(self, key: str, expected: str, got: object, hint: str = "") -> ScenarioError:
        return ScenarioError(self.path, key, expected, got, hint)

    def mapping(self, value: object, key: str, allowed: tuple[str, ...]) -> Mapping[str, Any]:
        where = key or "top level"
        if not isinstance(value, Mapping):
            raise self.fail(key, f"a mapping at {where}", value)
        for name in value:
            if name not in allowed:
                dotted = f"{key}.{name}" if key else str(name)
                raise self.fail(dotted, f"one of the keys {', '.join(allowed)}", str(name),
                                did_you_mean(str(name), allowed))
        return value

    def require(
        self, section: Mapping[str, Any], name: str, prefix: str, expected: str = "a value"
    ) -> Any:
        dotted = f"{prefix}.{name}" if prefix else name
        if name not in section:
            raise self.fail(dotted, expected, _MISSING)
        return section[name]

    def text(self, section: Mapping[str, Any], name: str, prefix: str) -> str:
        value = self.require(section, name, prefix, "a non-empty string")
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{prefix}.{name}" if prefix else name, "a non-empty string", value)
        return value

    def figure(self, section: Mapping[str, Any], name: str, prefix: str, check: str) -> float:
        dotted = f"{prefix}.{name}" if prefix else name
        entry = self.mapping(self.require(section, name, prefix, _FIGURE_SHAPE), dotted,
                             _FIGURE_KEYS)
        value = _number(self.require(entry, "value", dotted, check))
        if value is None:
            raise self.fail(f"{dotted}.value", "a number", entry["value"])
        if not _passes(value, check):
            raise self.fail(f"{dotted}.value", check, entry["value"])
        source = self.require(entry, "source", dotted, "an id listed under sources:")
        if str(source) not in self.sources:
            raise self.fail(f"{dotted}.source", "an id listed under sources: "
                            f"({', '.join(sorted(self.sources))})", source,
                            did_you_mean(str(source), self.sources))
        tag = self.require(entry, "tag", dotted, f"one of {', '.join(TAGS)}")
        if tag not in TAGS:
            raise self.fail(f"{dotted}.tag", f"one of {', '.join(TAGS)}", tag,
                            did_you_mean(str(tag), TAGS))
        note = entry.get("note", "")
        if not isinstance(note, str):
            raise self.fail(f"{dotted}.note", "a string", note)
        self.figures[dotted] = Figure(value, str(source), str(tag), note)
        return value

    def read_sources(self, raw: object) -> None:
        if not isinstance(raw, Mapping) or not raw:
            raise self.fail("sources", _SOURCES_SHAPE, raw)
        for ident, cite in raw.items():
            if not isinstance(cite, str) or not cite.strip():
                raise self.fail(f"sources.{ident}", "a non-empty string 'title — URL'", cite)
            self.sources[str(ident)] = cite

    def profile(self, raw: object) -> SystemProfile:
        top = self.mapping(raw, "", _TOP_KEYS)
        version = self.require(top, "schema_version", "", str(_SCHEMA_VERSION))
        if version != _SCHEMA_VERSION:
            raise self.fail("schema_version", str(_SCHEMA_VERSION), version)
        self.text(top, "name", "")
        kind = self.text(top, "kind", "")
        if kind not in _KINDS:
            raise self.fail("kind", f"one of {', '.join(_KINDS)}", kind, did_you_mean(kind, _KINDS))
        self.read_sources(self.require(top, "sources", "", _SOURCES_SHAPE))

        chip = self.mapping(self.require(top, "chip", "", "a mapping"), "chip",
                            ("name", "dense_flops_per_s", *_CHIP_FIGURES))
        flops_section = self.mapping(self.require(chip, "dense_flops_per_s", "chip", "a mapping"),
                                     "chip.dense_flops_per_s", _DTYPES)
        if not flops_section:
            raise self.fail("chip.dense_flops_per_s", f"at least one of {', '.join(_DTYPES)}",
                            "an empty mapping")
        flops = {dtype: self.figure(flops_section, dtype, "chip.dense_flops_per_s", _POSITIVE)
                 for dtype in flops_section}
        per_chip = {name: self.figure(chip, name, "chip", check)
                    for name, check in _CHIP_FIGURES.items()}
        if per_chip["idle_power_w"] > per_chip["max_power_w"]:
            raise self.fail("chip.idle_power_w.value",
                            f"at most chip.max_power_w ({per_chip['max_power_w']:g} W)",
                            per_chip["idle_power_w"])

        system = self.mapping(self.require(top, "system", "", "a mapping"), "system",
                              tuple(_SYSTEM_FIGURES))
        per_system = {name: self.figure(system, name, "system", check)
                      for name, check in _SYSTEM_FIGURES.items()}
        efficiency = self.mapping(self.require(top, "efficiency", "", "a mapping"), "efficiency",
                                  tuple(_EFFICIENCY_FIGURES))
        eta = {name: self.figure(efficiency, name, "efficiency", check)
               for name, check in _EFFICIENCY_FIGURES.items()}

        return SystemProfile(
            name=self.path.stem,
            kind=kind,
            description=self.text(top, "description", ""),
            chip_name=self.text(chip, "name", "chip"),
            chips_per_system=int(self.figure(top, "chips_per_system", "", _COUNT)),
            dense_flops_per_s=flops,
            memory_bytes=per_chip["memory_bytes"],
            memory_bandwidth_bytes_per_s=per_chip["memory_bandwidth_bytes_per_s"],
            memory_usable_fraction=per_chip["memory_usable_fraction"],
            scaleup_bandwidth_bytes_per_s=per_chip["scaleup_bandwidth_bytes_per_s"],
            scaleup_latency_s=per_chip["scaleup_latency_s"],
            scaleup_domain_chips=int(per_system["scaleup_domain_chips"]),
            scaleout_bandwidth_bytes_per_s=per_chip["scaleout_bandwidth_bytes_per_s"],
            scaleout_latency_s=per_chip["scaleout_latency_s"],
            idle_power_w=per_chip["idle_power_w"],
            max_power_w=per_chip["max_power_w"],
            system_overhead_power_w=per_system["overhead_power_w"],
            system_price_usd=per_system["price_usd"],
            compute_efficiency=eta["compute"],
            memory_efficiency=eta["memory"],
            kv_memory_efficiency=eta["kv_memory"],
            network_efficiency=eta["network"],
            step_overhead_s=eta["step_overhead_s"],
            host_time_per_token_s=eta["host_time_per_token_s"],
            layer_sync_latency_s=eta["layer_sync_latency_s"],
            compute_memory_overlap=eta["compute_memory_overlap"],
            figures=dict(self.figures),
            sources=dict(self.sources),
            path=self.path,
        )


def _number(raw: object) -> float | None:
    """A finite float from an int, a float, or a string such as ``989.4e12``.

    PyYAML reads exponent notation without a sign or a dot in the mantissa as a string, so
    accepting numeric strings spares profile writers a trap that has nothing to do with them.
    """
    if isinstance(raw, bool):
        return None
    if isinstance(raw, (int, float)):
        value = float(raw)
    elif isinstance(raw, str):
        try:
            value = float(raw.replace("_", ""))
        except ValueError:
            return None
    else:
        return None
    return value if math.isfinite(value) else None


def _passes(value: float, check: str) -> bool:
    if check == _POSITIVE:
        return value > 0
    if check == _NON_NEGATIVE:
        return value >= 0
    if check == _FRACTION:
        return 0 < value <= 1
    if check == _SHARE:
        return 0 <= value <= 1
    return value >= 1 and value == int(value)
