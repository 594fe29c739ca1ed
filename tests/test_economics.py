"""Site economics: pods in a power budget, cost, revenue, and the ``economics:`` key."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from simulator import ScenarioError, load_scenario, simulate
from simulator.config.scenario import EconomicsSpec, Scenario
from simulator.economics import SECONDS_PER_YEAR, site_economics

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "scenarios" / "quickstart-disaggregated.yaml"

# The quickstart's pod, from the shipped profiles: one GB200 NVL72 (18 prefill replicas ×
# tp 4 = 72 GPUs) and one Groq 3 LPX (256 LPUs).
GB200_MAX_W = 72 * 1200.0 + 33_600.0       # 120,000 W
LPX_MAX_W = 256 * 400.0 + 20_000.0         # 122,400 W
GB200_IDLE_W = 72 * 300.0 + 33_600.0       # 55,200 W
LPX_IDLE_W = 256 * 120.0 + 20_000.0        # 50,720 W
POD_NAMEPLATE_W = GB200_MAX_W + LPX_MAX_W  # 242,400 W
POD_CAPEX_USD = 3.75e6 + 3.5e6             # profile prices per system

SITE = {"site_power_mw": 1, "pue": 1.25, "electricity_usd_per_kwh": 0.1,
        "amortisation_years": 5}


def quickstart(tmp_path: Path, economics: dict[str, Any] | None = None,
               **changes: Any) -> Path:
    raw = yaml.safe_load(QUICKSTART.read_text(encoding="utf-8"))
    raw["workload"]["requests"] = 300
    if economics is not None:
        raw["economics"] = economics
    raw.update(changes)
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def refused(tmp_path: Path, economics: Any) -> str:
    path = quickstart(tmp_path, economics)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    return message


@functools.cache
def site_scenario() -> Scenario:
    return load_scenario(QUICKSTART, overrides={"economics": SITE})


def summary(tokens_per_s: float = 10_000.0, power_w: float = 150_000.0,
            paid_fast_tokens: float = 30_000.0) -> dict[str, Any]:
    """A 10 s run: 60 % of the tokens free, 40 % fast ($45 per M), part of them paid."""
    tokens = tokens_per_s * 10.0
    tiers = {
        "free": {"output_tokens": 0.6 * tokens, "paid_output_tokens": 0.6 * tokens,
                 "slo_attainment": 1.0, "revenue_usd_per_s": 0.0, "price_usd_per_mtok": 0.0},
        "fast": {"output_tokens": 0.4 * tokens, "paid_output_tokens": paid_fast_tokens,
                 "slo_attainment": 0.75, "price_usd_per_mtok": 45.0,
                 "revenue_usd_per_s": paid_fast_tokens * 45.0 / 1e6 / 10.0},
    }
    return {"duration_s": 10.0, "output_tokens": tokens, "output_tokens_per_s": tokens_per_s,
            "power_w_mean": power_w, "tiers": tiers}


def with_site(**changes: Any) -> Scenario:
    scenario = site_scenario()
    assert scenario.economics is not None
    return dataclasses.replace(scenario,
                               economics=dataclasses.replace(scenario.economics, **changes))


def test_hand_calculated_site() -> None:
    site = site_economics(site_scenario(), summary())
    # Pod: 120.0 + 122.4 = 242.4 kW at nameplate; × PUE 1.25 = 303.0 kW; 1 MW holds 3 pods.
    assert site["pod_it_power_w"] == pytest.approx(POD_NAMEPLATE_W)
    assert site["pod_facility_power_w"] == pytest.approx(303_000.0)
    assert site["pods"] == 3
    assert site["site_facility_power_mw_used"] == pytest.approx(0.909)
    assert site["tokens_per_s_site"] == pytest.approx(30_000.0)
    assert site["tokens_per_s_per_mw"] == pytest.approx(30_000.0)
    # Drawn: 3 × 150 kW × 1.25 = 562.5 kW; 30,000 / 562,500 = 0.0533 tokens per joule.
    assert site["tokens_per_joule"] == pytest.approx(30_000 / 562_500)
    # 562.5 kW × 8,766 h × $0.10 = $493,087.50; capex 3 × $7.25M / 5 years = $4.35M.
    assert site["electricity_usd_per_year"] == pytest.approx(493_087.5)
    assert site["pod_capex_usd"] == pytest.approx(POD_CAPEX_USD)
    assert site["capex_usd_per_year"] == pytest.approx(4_350_000.0)
    assert site["cost_usd_per_year"] == pytest.approx(4_843_087.5)
    # 30,000 tokens/s × 31,557,600 s = 946,728 M tokens a year; $4,843,087.50 / 946,728.
    assert site["cost_per_mtok_usd"] == pytest.approx(5.115606066)
    # 30,000 paid fast tokens in 10 s at $45 per M = $0.135/s per pod; × 3 pods × 1 year.
    assert site["revenue_per_year_usd"] == pytest.approx(12_780_828.0)
    free, fast = site["tiers"]["free"], site["tiers"]["fast"]
    assert (free["tokens_per_s_site"], fast["tokens_per_s_site"]) == pytest.approx(
        (18_000.0, 12_000.0))
    assert fast["paid_tokens_per_s_site"] == pytest.approx(9_000.0)
    assert fast["slo_attainment"] == 0.75
    assert (free["revenue_per_year_usd"], fast["revenue_per_year_usd"]) == pytest.approx(
        (0.0, 12_780_828.0))
    assert (free["cost_usd_per_year"], fast["cost_usd_per_year"]) == pytest.approx(
        (0.6 * 4_843_087.5, 0.4 * 4_843_087.5))
    assert fast["cost_per_mtok_usd"] == pytest.approx(site["cost_per_mtok_usd"])


def test_schema_and_assumptions_trace_every_input() -> None:
    site = site_economics(site_scenario(), summary())
    assert list(site) == [
        "site_power_mw", "pue", "electricity_usd_per_kwh", "amortisation_years", "sizing",
        "pod_it_power_w", "pod_facility_power_w", "pods", "site_facility_power_mw_used",
        "pod_capex_usd", "tokens_per_s_site", "tokens_per_s_per_mw", "tokens_per_joule",
        "capex_usd_per_year", "electricity_usd_per_year", "cost_usd_per_year",
        "cost_per_mtok_usd", "revenue_per_year_usd", "tiers", "assumptions"]
    rows = {row["name"]: row for row in site["assumptions"]}
    assert all(set(row) == {"name", "value", "unit", "source"} for row in rows.values())
    assert rows["price_usd_per_system.groq3-lpx"]["value"] == 3.5e6
    assert "estimate" in rows["price_usd_per_system.groq3-lpx"]["source"]
    assert rows["systems_per_pod.gb200-nvl72"]["value"] == 1
    assert rows["max_power_w_per_system.groq3-lpx"]["value"] == pytest.approx(LPX_MAX_W)
    assert rows["seconds_per_year"]["value"] == SECONDS_PER_YEAR == 31_557_600
    for name in ("site_power_mw", "pue", "electricity_usd_per_kwh", "amortisation_years",
                 "sizing", "power_w_mean", "output_tokens_per_s", "price_usd_per_mtok.fast"):
        assert name in rows


def test_measured_sizing_and_a_capex_override(tmp_path: Path) -> None:
    economics = {**SITE, "sizing": "measured", "capex_usd": {"groq3-lpx": 2e6}}
    scenario = load_scenario(quickstart(tmp_path, economics))
    assert scenario.economics == EconomicsSpec(1.0, 1.25, 0.1, 5.0, "measured",
                                               {"groq3-lpx": 2e6})
    assert scenario.resolved["economics"]["capex_usd"] == {"gb200-nvl72": 3.75e6,
                                                           "groq3-lpx": 2e6}
    site = site_economics(scenario, summary())
    # 150 kW measured × 1.25 = 187.5 kW; 1 MW holds 5 pods.
    assert site["pod_it_power_w"] == 150_000.0
    assert site["pods"] == 5
    assert site["pod_capex_usd"] == pytest.approx(3.75e6 + 2e6)
    rows = {row["name"]: row for row in site["assumptions"]}
    assert rows["price_usd_per_system.groq3-lpx"]["source"] == (
        "scenario economics.capex_usd.groq3-lpx")


def test_a_run_reports_its_site_and_a_run_without_economics_does_not(tmp_path: Path) -> None:
    plain = simulate(load_scenario(quickstart(tmp_path))).summary
    assert "site" not in plain and "economics" not in plain["scenario"]
    s = simulate(load_scenario(quickstart(tmp_path, SITE))).summary
    assert s["site"] == site_economics(site_scenario(), s)
    assert sum(t["output_tokens"] for t in s["tiers"].values()) == s["output_tokens"]
    assert all(t["paid_output_tokens"] <= t["output_tokens"] for t in s["tiers"].values())
    assert s["site"]["tokens_per_s_site"] == pytest.approx(3 * s["output_tokens_per_s"])


def test_a_tier_that_never_meets_its_slo_earns_nothing_but_still_costs(tmp_path: Path) -> None:
    tiers = [{"name": "free", "price_usd_per_mtok": 0, "min_tokens_per_s_per_user": 1,
              "max_ttft_s": 60},
             {"name": "instant", "price_usd_per_mtok": 500, "min_tokens_per_s_per_user": 1,
              "max_ttft_s": 1e-6}]
    path = quickstart(tmp_path, SITE, tiers=tiers)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw["workload"]["tiers"] = {"free": 0.5, "instant": 0.5}
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    site = simulate(load_scenario(path)).summary["site"]
    instant = site["tiers"]["instant"]
    assert instant["slo_attainment"] == 0.0
    assert instant["paid_tokens_per_s_site"] == 0.0
    assert instant["revenue_per_year_usd"] == 0.0
    assert site["revenue_per_year_usd"] == 0.0
    assert instant["tokens_per_s_site"] > 0 and instant["cost_usd_per_year"] > 0
    assert (instant["cost_usd_per_year"] + site["tiers"]["free"]["cost_usd_per_year"]
            == pytest.approx(site["cost_usd_per_year"]))


@settings(max_examples=60, deadline=None)
@given(k=st.integers(1, 1000), pue=st.floats(1.0, 2.0), price=st.floats(0.0, 0.5),
       years=st.floats(0.5, 10.0), tokens_per_s=st.floats(1.0, 1e6),
       power_w=st.floats(1e4, 3e5))
def test_doubling_a_whole_multiple_of_pods_doubles_everything(
        k: int, pue: float, price: float, years: float, tokens_per_s: float,
        power_w: float) -> None:
    run = summary(tokens_per_s, power_w, paid_fast_tokens=0.3 * tokens_per_s * 10.0)
    site_mw = k * POD_NAMEPLATE_W * pue / 1e6
    one = site_economics(with_site(site_power_mw=site_mw, pue=pue,
                                   electricity_usd_per_kwh=price, amortisation_years=years),
                         run)
    two = site_economics(with_site(site_power_mw=2 * site_mw, pue=pue,
                                   electricity_usd_per_kwh=price, amortisation_years=years),
                         run)
    assert one["pods"] == k and two["pods"] == 2 * k
    for key in ("revenue_per_year_usd", "cost_usd_per_year", "tokens_per_s_site"):
        assert two[key] == 2 * one[key]
    assert two["cost_per_mtok_usd"] == pytest.approx(one["cost_per_mtok_usd"], rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(tokens_per_s=st.floats(1.0, 1e6), paid_share=st.floats(0.0, 1.0))
def test_unpaid_tokens_earn_nothing_and_tiers_share_the_whole_cost(
        tokens_per_s: float, paid_share: float) -> None:
    paid = paid_share * 0.4 * tokens_per_s * 10.0
    site = site_economics(site_scenario(), summary(tokens_per_s, paid_fast_tokens=paid))
    fast = site["tiers"]["fast"]
    assert (fast["revenue_per_year_usd"] == 0.0) == (paid == 0.0)
    assert fast["cost_usd_per_year"] > 0
    assert sum(t["cost_usd_per_year"] for t in site["tiers"].values()) == pytest.approx(
        site["cost_usd_per_year"])
    assert site["revenue_per_year_usd"] == pytest.approx(fast["revenue_per_year_usd"])


@settings(max_examples=60, deadline=None)
@given(low=st.floats(0.01, 1.0), high=st.floats(0.01, 1.0), peak=st.floats(1e3, 1e5),
       price=st.floats(0.0, 0.5))
def test_cost_per_token_falls_as_utilisation_rises(low: float, high: float, peak: float,
                                                   price: float) -> None:
    """Same hardware, more load: throughput grows with load, power only from idle upward."""
    assume(high > low * 1.001)
    scenario = with_site(electricity_usd_per_kwh=price)
    idle_w, dynamic_w = GB200_IDLE_W + LPX_IDLE_W, POD_NAMEPLATE_W - GB200_IDLE_W - LPX_IDLE_W

    def cost_per_mtok(load: float) -> float:
        run = summary(load * peak, idle_w + load * dynamic_w)
        value = site_economics(scenario, run)["cost_per_mtok_usd"]
        assert value is not None
        return float(value)

    assert cost_per_mtok(high) < cost_per_mtok(low)


def test_a_site_smaller_than_one_pod_is_refused_with_the_numbers(tmp_path: Path) -> None:
    message = refused(tmp_path, {**SITE, "site_power_mw": 0.2, "pue": 1.1})
    # 242.4 kW nameplate × 1.1 = 266.6 kW against 200 kW.
    assert "economics.site_power_mw" in message
    assert "242.4 kW" in message and "266.6 kW" in message and "200.0 kW" in message
    assert "1 × gb200-nvl72 at 120.0 kW, 1 × groq3-lpx at 122.4 kW" in message


def test_measured_sizing_checks_the_pod_idle_power(tmp_path: Path) -> None:
    # Measured: only the idle floor is known before the run, 55.2 + 50.72 = 105.9 kW.
    assert load_scenario(quickstart(tmp_path, {**SITE, "site_power_mw": 0.2, "pue": 1.0,
                                               "sizing": "measured"})).economics is not None
    message = refused(tmp_path, {**SITE, "site_power_mw": 0.1, "pue": 1.0,
                                 "sizing": "measured"})
    assert "idle" in message and "105.9 kW" in message


@pytest.mark.parametrize(("economics", "expected"), [
    ({**SITE, "pue": 0.9}, "economics.pue: expected a finite number ≥ 1"),
    ({**SITE, "pue": "low"}, "economics.pue: expected a finite number ≥ 1"),
    ({**SITE, "site_power": 1}, "Did you mean 'site_power_mw'?"),
    ({k: v for k, v in SITE.items() if k != "amortisation_years"},
     "economics.amortisation_years: expected this key to be present"),
    ({**SITE, "amortisation_years": 0}, "economics.amortisation_years: expected a number > 0"),
    ({**SITE, "electricity_usd_per_kwh": -0.1},
     "economics.electricity_usd_per_kwh: expected a number ≥ 0"),
    ({**SITE, "sizing": "peak"}, "economics.sizing: expected one of 'nameplate', 'measured'"),
    ({**SITE, "capex_usd": {"groq3-lpx": -1}},
     "economics.capex_usd.groq3-lpx: expected a number ≥ 0"),
    ({**SITE, "capex_usd": {"groq3-lxp": 1e6}}, "Did you mean 'groq3-lpx'?"),
    ({**SITE, "capex_usd": [1e6]}, "economics.capex_usd: expected a mapping of profile name"),
    ([1], "economics: expected a mapping"),
])
def test_bad_economics_is_refused(tmp_path: Path, economics: Any, expected: str) -> None:
    assert expected in refused(tmp_path, economics)


def test_overrides_reach_economics_and_an_unused_profile_price_is_allowed() -> None:
    scenario = load_scenario(QUICKSTART, overrides={
        "economics": SITE, "economics.capex_usd.h100-sxm": 3e5,
        "economics.site_power_mw": 2})
    assert scenario.economics is not None and scenario.economics.site_power_mw == 2.0
    # h100-sxm is not in this pod: it changes nothing and stays out of the resolved prices.
    assert set(scenario.resolved["economics"]["capex_usd"]) == {"gb200-nvl72", "groq3-lpx"}
