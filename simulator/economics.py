"""A site's tokens, costs and revenue, scaled up from one simulated pod.

The simulator runs one pod (the scenario's pools); a site is as many whole copies of it as
its power budget holds. Everything here is arithmetic on the scenario and the run's summary
dict, so a summary read back from ``summary.json`` or ``results.jsonl`` gives the same
numbers as a fresh run. The equations, also in docs/economics.md (SPY = 8,766 h × 3,600 s,
a year of 365.25 days):

    pod_it_power_w        = Σ systems × system max power    (sizing: nameplate)
                          = the run's power_w_mean           (sizing: measured)
    pod_facility_power_w  = pod_it_power_w × PUE
    pods                  = floor(site_power_w / pod_facility_power_w + 1e-9)
    tokens_per_s_site     = pods × output_tokens_per_s
    tokens_per_s_per_mw   = tokens_per_s_site / site_power_mw
    tokens_per_joule      = tokens_per_s_site / (pods × power_w_mean × PUE)
    electricity_usd/year  = pods × power_w_mean × PUE × 8,766 h / 1000 × USD per kWh
    pod_capex_usd         = Σ systems × price per system
    capex_usd/year        = pods × pod_capex_usd / amortisation_years
    cost_per_mtok_usd     = (capex + electricity per year) / (tokens_per_s_site × SPY) × 1e6
    revenue_per_year_usd  = pods × Σ_tiers revenue_usd_per_s × SPY

Sites are built for peak, so nameplate sizing counts every system a pod buys at full power,
idle chips included; electricity is paid on what is drawn, the run's mean power (idle
included). Capex is straight-line depreciation with no interest, residual value, staff,
network or building: the cost here is a floor. Revenue counts only output tokens of
requests that met their tier's SLO (the summary's ``revenue_usd_per_s``); cost is shared
among tiers by their share of all output tokens.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from simulator.config.scenario import EconomicsSpec, PoolSpec, Scenario
from simulator.errors import ScenarioError
from simulator.hardware import SystemProfile

__all__ = ["HOURS_PER_YEAR", "SECONDS_PER_YEAR", "check_site_holds_a_pod",
           "pod_idle_power_w", "pod_nameplate_power_w", "pod_systems", "site_economics",
           "system_price_usd", "whole_pods"]

HOURS_PER_YEAR = 8766.0                      # 365.25 days: leap years averaged in
SECONDS_PER_YEAR = HOURS_PER_YEAR * 3600.0
_POD_ROUNDING = 1e-9   # a site written as an exact multiple of a pod must not lose one


def pod_systems(pools: tuple[PoolSpec, ...]) -> dict[str, tuple[SystemProfile, int]]:
    """Whole systems one pod buys, by profile name: each pool's own systems and the GPU
    systems of its attention–FFN split (two pools of one profile add up)."""
    bought: dict[str, tuple[SystemProfile, int]] = {}

    def add(system: SystemProfile, count: int) -> None:
        bought[system.name] = (system, bought.get(system.name, (system, 0))[1] + count)

    for pool in pools:
        add(pool.system, pool.systems)
        if pool.attention_split is not None:
            add(pool.attention_split.system, pool.attention_systems)
    return bought


def pod_nameplate_power_w(pools: tuple[PoolSpec, ...]) -> float:
    return sum(n * s.system_max_power_w for s, n in pod_systems(pools).values())


def pod_idle_power_w(pools: tuple[PoolSpec, ...]) -> float:
    """The least a pod draws, so the least a measured run can report."""
    return sum(n * s.system_idle_power_w for s, n in pod_systems(pools).values())


def system_price_usd(system: SystemProfile, spec: EconomicsSpec) -> float:
    return spec.capex_usd.get(system.name, system.system_price_usd)


def whole_pods(site_power_w: float, pod_facility_power_w: float) -> int:
    """Pods that fit the budget; a pod drawing nothing cannot size a site, so it gives 0."""
    if pod_facility_power_w <= 0:
        return 0
    return math.floor(site_power_w / pod_facility_power_w + _POD_ROUNDING)


def check_site_holds_a_pod(spec: EconomicsSpec, pools: tuple[PoolSpec, ...],
                           file: str | Path | None) -> None:
    """Refuse a site too small for one pod, before the run rather than as pods = 0 after it.

    Measured sizing is only known after the run; its lower bound, the pod's idle power,
    is checked instead.
    """
    nameplate = spec.sizing == "nameplate"
    it_w = pod_nameplate_power_w(pools) if nameplate else pod_idle_power_w(pools)
    facility_w = it_w * spec.pue
    site_w = spec.site_power_mw * 1e6
    if whole_pods(site_w, facility_w) >= 1:
        return
    listing = ", ".join(
        f"{n} × {s.name} at "
        f"{(s.system_max_power_w if nameplate else s.system_idle_power_w) / 1e3:,.1f} kW"
        for s, n in pod_systems(pools).values())
    what = "nameplate" if nameplate else "idle (the least a measured run draws)"
    raise ScenarioError(
        file, "economics.site_power_mw",
        f"a site with room for at least one pod ({facility_w / 1e3:,.1f} kW of facility power)",
        f"{spec.site_power_mw:g} MW ({site_w / 1e3:,.1f} kW)",
        f"One pod's {what} IT power is {it_w / 1e3:,.1f} kW ({listing}) × PUE {spec.pue:g} = "
        f"{facility_w / 1e3:,.1f} kW, more than the site's {site_w / 1e3:,.1f} kW; raise "
        "site_power_mw or make the pools smaller.")


def _per_mtok(cost_usd_per_year: float, tokens_per_s: float) -> float | None:
    return (cost_usd_per_year / (tokens_per_s * SECONDS_PER_YEAR) * 1e6
            if tokens_per_s > 0 else None)


def _tiers(summary: dict[str, Any], pods: int, cost_usd_per_year: float) -> dict[str, Any]:
    duration_s = summary["duration_s"]
    per_s = pods / duration_s if duration_s > 0 else 0.0
    total_tokens = summary["output_tokens"]
    out: dict[str, Any] = {}
    for name, tier in summary["tiers"].items():
        share = tier["output_tokens"] / total_tokens if total_tokens > 0 else 0.0
        tokens_per_s = tier["output_tokens"] * per_s
        cost = cost_usd_per_year * share
        out[name] = {
            "tokens_per_s_site": tokens_per_s,
            "paid_tokens_per_s_site": tier["paid_output_tokens"] * per_s,
            "slo_attainment": tier["slo_attainment"],
            "revenue_per_year_usd": pods * tier["revenue_usd_per_s"] * SECONDS_PER_YEAR,
            "cost_usd_per_year": cost,
            "cost_per_mtok_usd": _per_mtok(cost, tokens_per_s),
        }
    return out


def _row(name: str, value: Any, unit: str, source: str) -> dict[str, Any]:
    return {"name": name, "value": value, "unit": unit, "source": source}


def _price_source(system: SystemProfile, spec: EconomicsSpec) -> str:
    if system.name in spec.capex_usd:
        return f"scenario economics.capex_usd.{system.name}"
    figure = system.figures["system.price_usd"]   # every profile has it: the loader checks
    cite = system.sources.get(figure.source, figure.source)
    return f"profile {system.name}: system.price_usd ({figure.tag}, {figure.source}: {cite})"


def _assumptions(scenario: Scenario, spec: EconomicsSpec,
                 summary: dict[str, Any]) -> list[dict[str, Any]]:
    given = "scenario economics."
    rows = [
        _row("site_power_mw", spec.site_power_mw, "MW", given + "site_power_mw"),
        _row("pue", spec.pue, "facility W / IT W", given + "pue"),
        _row("electricity_usd_per_kwh", spec.electricity_usd_per_kwh, "USD/kWh",
             given + "electricity_usd_per_kwh"),
        _row("amortisation_years", spec.amortisation_years, "years",
             given + "amortisation_years (straight line, no interest, no residual value)"),
        _row("sizing", spec.sizing, "",
             given + "sizing (nameplate: every system at max power; measured: run's mean)"),
    ]
    pools_of: dict[str, list[str]] = {}
    for pool in scenario.pools:
        pools_of.setdefault(pool.system.name, []).append(pool.name)
        if pool.attention_split is not None:
            pools_of.setdefault(pool.attention_split.system.name, []).append(
                f"{pool.name} (attention split)")
    for name, (system, count) in pod_systems(scenario.pools).items():
        rows += [
            _row(f"systems_per_pod.{name}", count, "systems",
                 f"pools {', '.join(pools_of[name])}: whole systems, idle chips included"),
            _row(f"price_usd_per_system.{name}", system_price_usd(system, spec), "USD",
                 _price_source(system, spec)),
            _row(f"max_power_w_per_system.{name}", system.system_max_power_w, "W",
                 f"profile {name}: chips_per_system × chip.max_power_w + "
                 "system.overhead_power_w"),
        ]
    rows += [
        _row("power_w_mean", summary["power_w_mean"], "W",
             "simulated run: one pod's mean IT power, idle included"),
        _row("output_tokens_per_s", summary["output_tokens_per_s"], "tokens/s",
             "simulated run: one pod's output tokens per second"),
    ]
    rows += [_row(f"price_usd_per_mtok.{name}", tier["price_usd_per_mtok"], "USD per M tokens",
                  "scenario tiers: paid only for output tokens of requests that met the SLO")
             for name, tier in summary["tiers"].items()]
    rows.append(_row("seconds_per_year", SECONDS_PER_YEAR, "s", "8,766 h (365.25 days) × 3,600"))
    return rows


def site_economics(scenario: Scenario, summary: dict[str, Any]) -> dict[str, Any]:
    """The site level of a run: pods in the budget, cost, revenue, per tier and in total."""
    spec = scenario.economics
    if spec is None:
        raise ValueError(f"scenario {scenario.name!r} has no economics: block")
    power_w = summary["power_w_mean"]
    pod_it_w = pod_nameplate_power_w(scenario.pools) if spec.sizing == "nameplate" else power_w
    pod_facility_w = pod_it_w * spec.pue
    pods = whole_pods(spec.site_power_mw * 1e6, pod_facility_w)
    tokens_per_s = pods * summary["output_tokens_per_s"]
    drawn_w = pods * power_w * spec.pue
    pod_capex = sum(n * system_price_usd(s, spec) for s, n in pod_systems(scenario.pools).values())
    capex_per_year = pods * pod_capex / spec.amortisation_years
    electricity_per_year = drawn_w * HOURS_PER_YEAR / 1000 * spec.electricity_usd_per_kwh
    cost = capex_per_year + electricity_per_year
    revenue_usd_per_s = sum(t["revenue_usd_per_s"] for t in summary["tiers"].values())
    return {
        "site_power_mw": spec.site_power_mw,
        "pue": spec.pue,
        "electricity_usd_per_kwh": spec.electricity_usd_per_kwh,
        "amortisation_years": spec.amortisation_years,
        "sizing": spec.sizing,
        "pod_it_power_w": pod_it_w,
        "pod_facility_power_w": pod_facility_w,
        "pods": pods,
        "site_facility_power_mw_used": pods * pod_facility_w / 1e6,
        "pod_capex_usd": pod_capex,
        "tokens_per_s_site": tokens_per_s,
        "tokens_per_s_per_mw": tokens_per_s / spec.site_power_mw,
        "tokens_per_joule": tokens_per_s / drawn_w if drawn_w > 0 else None,
        "capex_usd_per_year": capex_per_year,
        "electricity_usd_per_year": electricity_per_year,
        "cost_usd_per_year": cost,
        "cost_per_mtok_usd": _per_mtok(cost, tokens_per_s),
        "revenue_per_year_usd": pods * revenue_usd_per_s * SECONDS_PER_YEAR,
        "tiers": _tiers(summary, pods, cost),
        "assumptions": _assumptions(scenario, spec, summary),
    }
