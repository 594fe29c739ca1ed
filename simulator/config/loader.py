"""Reading a scenario file into a validated, frozen :class:`Scenario`.

This is the only place a scenario is built, so the engine can trust what it receives: every
key is checked, every profile and model card resolved, every ``auto`` replaced by a number,
and a scenario that could not run (weights that do not fit, a request longer than a
replica's KV room) is refused here with the numbers that show why, instead of failing an
hour into a sweep.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from simulator.config.checks import (
    ARRIVAL_KEYS_BY_PROCESS,
    ECONOMICS_KEYS,
    LENGTH_KEYS_BY_SOURCE,
    MISSING,
    PRECISION_KEYS,
    SIZINGS,
    TIER_KEYS,
    TOP_KEYS,
    WORKLOAD_KEYS,
    Section,
    join_key,
    parse_yaml,
    read_policy,
)
from simulator.config.feasibility import build_pools, check_context
from simulator.config.overrides import apply_overrides
from simulator.config.scenario import (
    DTYPE_BYTES,
    KV_DTYPE_BYTES,
    ArrivalSpec,
    EconomicsSpec,
    LengthSpec,
    PoolSpec,
    Precision,
    Scenario,
    TierSpec,
    WorkloadSpec,
)
from simulator.config.topology import check_roles, read_links
from simulator.economics import check_site_holds_a_pod, pod_systems, system_price_usd
from simulator.errors import ScenarioError, did_you_mean
from simulator.models import load_model
from simulator.resources import data_root, list_profiles, resolve_file
from simulator.workload import length_stats

__all__ = ["build_scenario", "load_scenario", "raw_scenario", "read_mapping"]

SCHEMA_VERSION = 1
DEFAULT_TIER_TABLE = "gtc-2026"
_TABLE_KEYS = ("name", "description", "source", "tiers")


def load_scenario(path: str | Path, overrides: Mapping[str, Any] | None = None,
                  seed: int | None = None) -> Scenario:
    """Load, override, validate and resolve one scenario file.

    ``overrides`` are dotted key paths (as given to ``--set``) applied to the raw YAML
    first, so they go through every check a value written in the file would; ``seed``, when
    given, replaces the file's seed after them. A ``sweep:`` block is checked but not
    expanded: this is the base scenario (``simulator.sweep.expand_sweep`` gives the variants).
    """
    file = Path(path)
    return build_scenario(raw_scenario(file, overrides, seed), file)


def raw_scenario(file: Path, overrides: Mapping[str, Any] | None = None,
                 seed: int | None = None) -> dict[str, Any]:
    """The file's mapping with ``overrides`` and ``seed`` applied, not yet validated.

    Separate from :func:`load_scenario` because a sweep variant starts from here and adds
    its own overrides before validation.
    """
    raw = read_mapping(file, "a scenario file")
    if overrides:
        raw = apply_overrides(raw, overrides, file)
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ScenarioError("--seed", "seed", "an integer ≥ 0", seed)
        raw["seed"] = seed
    return raw


def read_mapping(file: Path, what: str) -> dict[str, Any]:
    """A YAML file whose top level is a mapping; anything else is a ScenarioError."""
    if not file.is_file():
        raise ScenarioError(file, "", f"{what} that exists", str(file))
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(file, "", f"{what} readable as UTF-8 text", str(exc)) from None
    data = parse_yaml(text, file)
    if not isinstance(data, dict):
        raise ScenarioError(file, "", f"{what} whose top level is a mapping of keys",
                            f"a {type(data).__name__}" if data is not None
                            else "an empty document")
    return data


def build_scenario(raw: dict[str, Any], file: Path) -> Scenario:
    """Validate a raw scenario mapping (already overridden) into a :class:`Scenario`."""
    version = raw.get("schema_version", MISSING)
    if version is MISSING:
        # A misspelt schema_version is likelier than a missing one: say so with its spelling.
        Section(raw, file, "", TOP_KEYS)
    if isinstance(version, bool) or version != SCHEMA_VERSION:
        raise ScenarioError(file, "schema_version", f"{SCHEMA_VERSION} (the only version so far)",
                            version)
    top = Section(raw, file, "", TOP_KEYS)
    for required in ("name", "model", "workload", "pools"):
        if not top.has(required):
            raise top.fail(required, "this key to be present (it has no default)")
    name = top.text("name")
    seed = top.integer("seed", default=0, minimum=0)
    model_ref = top.text("model")
    model = load_model(model_ref, file, "model")
    prec = top.section("precision", PRECISION_KEYS)
    weights = prec.text("weights", "fp8", choices=DTYPE_BYTES)
    experts = prec.text("experts", choices=DTYPE_BYTES) if prec.has("experts") else None
    if experts is not None and model.moe is None:
        raise prec.fail("experts", f"no experts format for the dense model {model.name}",
                        experts, "Only a mixture-of-experts model has routed experts; set "
                        "precision.weights alone.")
    precision = Precision(weights=weights, experts=experts,
                          kv_cache=prec.text("kv_cache", "fp8", choices=KV_DTYPE_BYTES))
    tiers, tiers_resolved = _tiers(top, file)
    workload, workload_resolved = _workload(top.section("workload", WORKLOAD_KEYS), tiers)
    stats = length_stats(workload.lengths, file)
    check_context(model, stats, file)
    pools, pools_resolved = build_pools(top, model, precision, stats)
    check_roles(pools, tiers, file)
    links, links_resolved = read_links(top, pools)
    router, router_resolved = read_policy(top, "router", "least_outstanding", "router")
    economics, economics_resolved = _economics(top, pools)
    if top.has("sweep"):
        # Imported here: the sweep package builds its variants with this module.
        from simulator.sweep.block import read_sweep

        read_sweep(top.get("sweep"), file)
    resolved = {
        "schema_version": SCHEMA_VERSION,
        "name": name,
        "seed": seed,
        "model": model_ref,
        "precision": {"weights": precision.weights,
                      **({"experts": precision.experts} if precision.experts else {}),
                      "kv_cache": precision.kv_cache},
        "workload": workload_resolved,
        "pools": pools_resolved,
        "links": links_resolved,
        "router": router_resolved,
        "tiers": tiers_resolved,
    }
    if economics_resolved is not None:
        # Absent when not given, so the sweep keys of scenarios without it do not change.
        resolved["economics"] = economics_resolved
    return Scenario(name=name, seed=seed, model=model, precision=precision, workload=workload,
                    pools=pools, links=links, router=router, tiers=tiers, economics=economics,
                    source=file, resolved=resolved)


def _economics(top: Section, pools: tuple[PoolSpec, ...]
               ) -> tuple[EconomicsSpec | None, dict[str, Any] | None]:
    """The site a pod is scaled to. Nothing is defaulted but the sizing: every price and
    efficiency it silently assumed would hide in a cost per token."""
    if not top.has("economics"):
        return None, None
    sec = top.section("economics", ECONOMICS_KEYS)
    for required in ("site_power_mw", "pue", "electricity_usd_per_kwh", "amortisation_years"):
        if not sec.has(required):
            raise sec.fail(required, "this key to be present (it has no default)")
    pue = sec.get("pue")
    if type(pue) not in (int, float) or not 1 <= pue < float("inf"):
        raise sec.fail("pue", "a finite number ≥ 1 (facility power / IT power)", pue,
                       "Cooling and power conversion add to the IT power, never take from "
                       "it; new sites run at about 1.1 to 1.4.")
    bought = pod_systems(pools)
    prices = sec.section("capex_usd", None, "a mapping of profile name -> USD per system")
    # A profile this pod does not buy is allowed (a sweep may swap systems), a typo is not.
    known = sorted(set(bought) | {p.stem for p in list_profiles()})
    for system in prices.data:
        if system not in known:
            raise prices.fail(system, f"the name of a hardware profile (this scenario buys "
                              f"{', '.join(bought)})", system, did_you_mean(system, known))
    spec = EconomicsSpec(
        site_power_mw=sec.number("site_power_mw", meaning="megawatts of facility power"),
        pue=float(pue),
        electricity_usd_per_kwh=sec.number("electricity_usd_per_kwh", positive=False,
                                           meaning="USD per kWh"),
        amortisation_years=sec.number("amortisation_years", meaning="straight-line years"),
        sizing=sec.text("sizing", "nameplate", choices=SIZINGS),
        capex_usd={s: prices.number(s, positive=False, meaning="USD per system")
                   for s in sorted(prices.data)})
    check_site_holds_a_pod(spec, pools, top.file)
    resolved = {"site_power_mw": spec.site_power_mw, "pue": spec.pue,
                "electricity_usd_per_kwh": spec.electricity_usd_per_kwh,
                "amortisation_years": spec.amortisation_years, "sizing": spec.sizing,
                "capex_usd": {name: system_price_usd(s, spec) for name, (s, _) in bought.items()}}
    return spec, resolved


def _workload(wl: Section, tiers: tuple[TierSpec, ...]) -> tuple[WorkloadSpec, dict[str, Any]]:
    arrivals, arrivals_resolved = _arrivals(wl)
    if wl.has("requests") == wl.has("duration_s"):
        got = "both" if wl.has("requests") else "neither"
        raise ScenarioError(wl.file, wl.key, "exactly one of requests or duration_s", got,
                            "requests stops after that many arrivals, duration_s after that "
                            "much simulated time.")
    requests = wl.integer("requests") if wl.has("requests") else None
    duration_s = wl.number("duration_s") if wl.has("duration_s") else None
    if arrivals.process == "closed_loop" and requests is None:
        raise wl.fail("duration_s", "requests instead of duration_s with closed_loop arrivals",
                      duration_s, "A closed loop has no arrival rate to run for a duration; "
                      "say how many requests its users send in total.")
    lengths, lengths_resolved = _lengths(wl)
    shares = _tier_shares(wl, tiers)
    resolved: dict[str, Any] = (
        {"requests": requests} if requests is not None else {"duration_s": duration_s})
    resolved.update(arrivals=arrivals_resolved, lengths=lengths_resolved, tiers=dict(shares))
    # every tier of the table, in its order, so that a request's tier index names its tier
    # there (unlisted tiers get share 0: never drawn, and the draws of the others unchanged)
    given = dict(shares)
    spec = WorkloadSpec(requests=requests, duration_s=duration_s, arrivals=arrivals,
                        lengths=lengths,
                        tier_shares=tuple((t.name, given.get(t.name, 0.0)) for t in tiers))
    return spec, resolved


def _by_kind(wl: Section, name: str, kind_key: str,
             keys_by_kind: Mapping[str, tuple[str, ...]]) -> tuple[Section, str]:
    """A mapping whose allowed keys depend on its ``process`` or ``source``."""
    if not wl.has(name):
        raise wl.fail(name, f"a mapping with {kind_key}: one of {', '.join(keys_by_kind)}")
    kind = Section(wl.get(name), wl.file, wl.at(name), None).text(kind_key, choices=keys_by_kind)
    return Section(wl.get(name), wl.file, wl.at(name), keys_by_kind[kind]), kind


def _arrivals(wl: Section) -> tuple[ArrivalSpec, dict[str, Any]]:
    sec, process = _by_kind(wl, "arrivals", "process", ARRIVAL_KEYS_BY_PROCESS)
    out: dict[str, Any] = {"process": process}
    if process in ("poisson", "gamma", "fixed"):
        out["rate_per_s"] = sec.number("rate_per_s", meaning="mean requests per second")
    if process == "gamma":
        out["cv"] = sec.number("cv", meaning="coefficient of variation of the gaps")
    if process == "trace":
        out["path"] = sec.text("path")
        out["speedup"] = sec.number("speedup", 1.0)
    if process == "closed_loop":
        out["concurrency"] = sec.integer("concurrency", meaning="users, one request each")
        out["think_time_s"] = sec.number("think_time_s", 0.0, positive=False)
    spec_args = dict(out)
    if process == "trace":
        spec_args["path"] = resolve_file(out["path"], sec.file, sec.at("path"))
    return ArrivalSpec(**spec_args), out


def _token_range(sec: Section, name: str, source: str) -> tuple[int, int]:
    if source == "fixed":
        n = sec.integer(name, meaning="tokens")
        return n, n
    value = sec.get(name)
    expected = "a list [low, high] of integers with 1 ≤ low ≤ high"
    if not isinstance(value, list) or len(value) != 2:
        raise sec.fail(name, expected, value)
    for i, bound in enumerate(value):
        if isinstance(bound, bool) or not isinstance(bound, int) or bound < 1:
            raise ScenarioError(sec.file, join_key(sec.at(name), i), "an integer ≥ 1 (tokens)",
                                bound)
    low, high = value
    if low > high:
        raise sec.fail(name, expected, value, "The lower bound comes first.")
    return low, high


def _lengths(wl: Section) -> tuple[LengthSpec, dict[str, Any]]:
    sec, source = _by_kind(wl, "lengths", "source", LENGTH_KEYS_BY_SOURCE)
    if source == "trace":
        path_text = sec.text("path")
        path = resolve_file(path_text, sec.file, sec.at("path"))
        return LengthSpec(source, path=path), {"source": source, "path": path_text}
    inputs = _token_range(sec, "input_tokens", source)
    outputs = _token_range(sec, "output_tokens", source)
    spec = LengthSpec(source, input_tokens=inputs, output_tokens=outputs)
    if source == "fixed":
        return spec, {"source": source, "input_tokens": inputs[0], "output_tokens": outputs[0]}
    return spec, {"source": source, "input_tokens": list(inputs), "output_tokens": list(outputs)}


def _tier_shares(wl: Section, tiers: tuple[TierSpec, ...]) -> tuple[tuple[str, float], ...]:
    """Shares in the order of the tier table, so the file's key order cannot change a run."""
    names = [t.name for t in tiers]
    if not wl.has("tiers"):
        return ((names[0], 1.0),)
    sec = wl.section("tiers", names, "a mapping of tier name -> share of requests")
    if not sec.data:
        raise ScenarioError(sec.file, sec.key, "at least one tier with a share", {})
    shares = {n: sec.number(n, meaning="share of requests") for n in names if sec.has(n)}
    total = sum(shares.values())
    if abs(total - 1.0) > 1e-6:
        raise ScenarioError(sec.file, sec.key, "shares that sum to 1", f"a sum of {total:g}",
                            f"Shares given: {shares}.")
    return tuple(shares.items())


def _tiers(top: Section, file: Path) -> tuple[tuple[TierSpec, ...], list[dict[str, Any]]]:
    value = top.get("tiers", DEFAULT_TIER_TABLE)
    if isinstance(value, str):
        table_file = _tier_table(value, file)
        table = Section(read_mapping(table_file, "a tier table"), table_file, "", _TABLE_KEYS)
        items, where, key = table.get("tiers"), table_file, "tiers"
    elif isinstance(value, list):
        items, where, key = value, file, "tiers"
    else:
        raise top.fail("tiers", "a tier table name (e.g. gtc-2026) or a list of tiers", value)
    if not isinstance(items, list) or not items:
        raise ScenarioError(where, key, "a non-empty list of tiers", items)
    tiers: list[TierSpec] = []
    for i, item in enumerate(items):
        sec = Section(item, where, join_key(key, i), TIER_KEYS)
        tier = TierSpec(
            name=sec.text("name"),
            price_usd_per_mtok=sec.number("price_usd_per_mtok", positive=False),
            min_tokens_per_s_per_user=sec.number("min_tokens_per_s_per_user", positive=False),
            max_ttft_s=sec.number("max_ttft_s"),
        )
        for note in ("source", "assumption"):
            if sec.has(note):
                sec.text(note)
        if any(t.name == tier.name for t in tiers):
            raise sec.fail("name", "a tier name not used by another tier", tier.name)
        tiers.append(tier)
    resolved = [{"name": t.name, "price_usd_per_mtok": t.price_usd_per_mtok,
                 "min_tokens_per_s_per_user": t.min_tokens_per_s_per_user,
                 "max_ttft_s": t.max_ttft_s} for t in tiers]
    return tuple(tiers), resolved


def _tier_table(name: str, file: Path) -> Path:
    if Path(name).suffix in (".yaml", ".yml"):
        return resolve_file(name, file, "tiers")
    folder = data_root() / "workloads" / "tiers"
    candidate = folder / f"{name}.yaml"
    if candidate.is_file():
        return candidate
    known = sorted(p.stem for p in folder.glob("*.yaml"))
    raise ScenarioError(file, "tiers", f"the name of a tier table in workloads/tiers/ "
                        f"({', '.join(known)}), a path to one, or an inline list", name,
                        did_you_mean(name, known))
