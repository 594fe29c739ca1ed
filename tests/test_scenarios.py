"""The shipped GTC 2026 sites run where their headers say: near, and under, their knee.

docs/economics.md compares the four sites at these rates; a change to the engine or the
profiles that moves a knee past its rate would turn that table into a study of queues.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator import load_scenario, simulate

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
SITES = ("hopper", "blackwell", "vera-rubin", "vr-lpx")


def _run(site: str, rate_scale: float = 1.0) -> dict:
    path = SCENARIOS / f"gtc2026-1gw-{site}.yaml"
    rate = load_scenario(path).resolved["workload"]["arrivals"]["rate_per_s"]
    scenario = load_scenario(path, overrides={"workload.arrivals.rate_per_s": rate * rate_scale})
    return simulate(scenario).summary


@pytest.mark.parametrize("site", SITES)
def test_each_site_runs_under_its_knee_and_near_it(site: str) -> None:
    shipped = _run(site)
    assert not shipped["overloaded"]
    assert shipped["requests_completed"] == shipped["requests"]
    # 30 % more traffic is past the knee: the first token waits at least twice as long
    beyond = _run(site, 1.3)
    assert beyond["ttft_s"]["p99"] > 2.0 * shipped["ttft_s"]["p99"]


def test_the_sites_rank_as_the_economics_page_says() -> None:
    sites = {name: _run(name)["site"] for name in SITES}
    per_mw = {name: s["tokens_per_s_per_mw"] for name, s in sites.items()}
    assert per_mw["vera-rubin"] > per_mw["blackwell"] > per_mw["vr-lpx"] > per_mw["hopper"]
    # only the LPX replica decodes fast enough for the $45 tier; nobody reaches $150
    fast = {name: s["tiers"]["fast"]["slo_attainment"] for name, s in sites.items()}
    assert fast["vr-lpx"] > 0.95
    assert fast["hopper"] == fast["blackwell"] == fast["vera-rubin"] == 0.0
    assert all(s["tiers"]["ultra"]["slo_attainment"] == 0.0 for s in sites.values())
