"""KV offload tiers: prefix hits loaded from host DRAM or a KV store instead of computed."""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
import pytest
from conftest import aggregated, disaggregated
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator import simulate
from simulator.config.scenario import KVTierSpec, Precision
from simulator.costs import replica_cost_vector
from simulator.engine.factory import Factory
from simulator.engine.kv_tiers import tier_hit_tokens
from simulator.errors import ScenarioError
from simulator.hardware import load_profile
from simulator.kernels.step import step_cost
from simulator.models import load_model
from simulator.workload import generate

KV_BYTES_PER_TOKEN = 163_840   # llama-3.3-70b at fp8: 2 × 8 heads × 128 dim × 80 layers × 1 B
HOST = {"name": "host_dram", "bandwidth_gbps": 400, "latency_us": 5, "hit_rate": 0.4}
STORE = {"name": "network_store", "bandwidth_gbps": 100, "latency_us": 50, "hit_rate": 0.5}
FIXTURE_OK = [HealthCheck.function_scoped_fixture]


def _tier(hit_rate: float) -> KVTierSpec:
    return KVTierSpec("t", 100.0, 0.0, hit_rate)


def _with_tiers(data: dict[str, Any], *tiers: dict[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(data)
    data["pools"][0]["kv_tiers"] = [dict(t) for t in tiers]
    return data


def _one_request(data: dict[str, Any]) -> dict[str, Any]:
    data["workload"] = {"requests": 1, "arrivals": {"process": "fixed", "rate_per_s": 1},
                        "lengths": {"source": "fixed", "input_tokens": 2048,
                                    "output_tokens": 8}}
    return data


def test_hits_are_whole_blocks_of_what_faster_tiers_missed():
    # 2048 × 0.4 = 819.2 → 51 blocks of 16 = 816; (2048 − 816) × 0.5 = 616 → 38 blocks = 608
    hits = tier_hit_tokens((_tier(0.4), _tier(0.5)), np.array([2048]), 16)
    assert hits[:, 0].tolist() == [816, 608]
    # the last token is always computed: 16 × 0.99 would round to 15 (no whole block) and
    # 17 × 0.99 to one block of 16, leaving one token; with blocks of 1, 16 keeps its last
    assert tier_hit_tokens((_tier(0.99),), np.array([16, 17]), 16)[0].tolist() == [0, 16]
    assert tier_hit_tokens((_tier(0.999999),), np.array([16]), 1)[0].tolist() == [15]
    assert tier_hit_tokens((_tier(0.0),), np.array([5000]), 16)[0].tolist() == [0]


def test_one_request_waits_for_its_loads_then_computes_only_the_rest(make_scenario):
    scenario = make_scenario(_with_tiers(_one_request(aggregated(replicas=1)), HOST, STORE))
    result = simulate(scenario)
    # loads, one after the other: latency + hit tokens × KV bytes / bandwidth (bits → bytes)
    host_s = 5e-6 + 816 * KV_BYTES_PER_TOKEN / (400e9 / 8)
    store_s = 50e-6 + 608 * KV_BYTES_PER_TOKEN / (100e9 / 8)
    assert host_s + store_s == pytest.approx(0.0106980464, rel=1e-12)
    # then one chunked-prefill step of the 624 missing tokens on 1,424 cached ones
    p = replica_cost_vector(load_model("llama-3.3-70b"), load_profile("h100-sxm"),
                            Precision(), 2, 2)
    new, cached = 624, 2048 - 624
    step_s, _ = step_cost(p, 1.0, float(new), new * cached + new * (new + 1) / 2, float(cached))
    r = result.requests
    assert r.ttft_s[0] == pytest.approx(host_s + store_s + step_s, rel=1e-12)
    assert r.prefill_start_s[0] - r.arrival_s[0] == pytest.approx(host_s + store_s, rel=1e-12)
    pool = result.summary["pools"]["serve"]
    assert pool["kv_tier_hit_tokens"] == {"host_dram": 816, "network_store": 608}
    assert pool["prefill_tokens_computed"] == 624
    assert pool["kv_tier_load_s"]["mean"] == pytest.approx(host_s + store_s, rel=1e-12)
    assert result.summary["queue_wait_s"]["mean"] == 0.0   # loading is not queueing
    assert result.summary["scenario"]["pools"][0]["kv_tiers"] == [
        {**HOST, "bandwidth_gbps": 400.0, "latency_us": 5.0},
        {**STORE, "bandwidth_gbps": 100.0, "latency_us": 50.0}]


def test_loads_from_one_tier_into_one_replica_queue_behind_each_other(make_scenario):
    data = _with_tiers(_one_request(disaggregated(replicas=1)), HOST)
    data["workload"]["requests"] = 3
    data["workload"]["arrivals"]["rate_per_s"] = 1e6   # 1 µs apart, loads take ~2.7 ms
    scenario = make_scenario(data)
    factory = Factory(scenario, generate(scenario.workload, scenario.seed, scenario.source))
    factory.run()
    loads = factory.entry.kv_loads
    assert loads is not None
    load_s = 5e-6 + 816 * KV_BYTES_PER_TOKEN / (400e9 / 8)
    ready = loads.ready_s
    assert ready[0] - factory.table.arrival_s[0] == pytest.approx(load_s, rel=1e-12)
    np.testing.assert_allclose(np.diff(ready), load_s, rtol=1e-9)
    # the decode side still receives the whole prompt's KV
    assert (factory.table.blocks_first == 0).all()
    (decode,) = factory.decodes
    assert sum(link.bytes_moved for link in decode.ingress) == \
        3 * 2048 * KV_BYTES_PER_TOKEN


def _comparable(summary: dict[str, Any]) -> str:
    pools = {name: {k: v for k, v in pool.items() if not k.startswith("kv_tier")}
             for name, pool in summary["pools"].items()}
    return json.dumps(dict(summary, scenario=None, pools=pools), sort_keys=True, default=str)


@pytest.mark.parametrize("build", [aggregated, disaggregated])
def test_a_zero_hit_rate_changes_nothing(make_scenario, build):
    data = build()
    data["workload"]["requests"] = 40
    plain = simulate(make_scenario(data))
    tiered = simulate(make_scenario(_with_tiers(data, dict(HOST, hit_rate=0.0))))
    for name in plain.requests:
        np.testing.assert_array_equal(plain.requests[name], tiered.requests[name])
    assert _comparable(plain.summary) == _comparable(tiered.summary)
    entry = next(iter(tiered.summary["pools"].values()))
    assert entry["kv_tier_hit_tokens"] == {"host_dram": 0}
    assert entry["prefill_tokens_computed"] == plain.summary["input_tokens"]


@settings(max_examples=8, deadline=None, suppress_health_check=FIXTURE_OK)
@given(low=st.floats(0.0, 0.95), more=st.floats(0.0, 0.5), store=st.floats(0.0, 0.9),
       aggregate=st.booleans())
def test_a_higher_hit_rate_never_computes_more(make_scenario, low, more, store, aggregate):
    data = aggregated() if aggregate else disaggregated()
    data["workload"]["requests"] = 25
    high = min(low + more, 0.99)
    computed = []
    for rate in (low, high):
        result = simulate(make_scenario(_with_tiers(data, dict(HOST, hit_rate=rate),
                                                    dict(STORE, hit_rate=store))))
        entry = next(iter(result.summary["pools"].values()))
        # without preemption every prompt runs once, less its loaded prefix
        assert result.summary["preemptions"] == 0
        hits = sum(entry["kv_tier_hit_tokens"].values())
        assert entry["prefill_tokens_computed"] + hits == result.summary["input_tokens"]
        computed.append(entry["prefill_tokens_computed"])
    assert computed[1] <= computed[0]


def _refused(make_scenario, data: dict[str, Any]) -> str:
    with pytest.raises(ScenarioError) as info:
        make_scenario(data)
    return str(info.value)


@pytest.mark.parametrize("change, key, expected", [
    ({"hitrate": 0.3}, "pools[0].kv_tiers[1].hitrate", "one of the keys name, bandwidth"),
    ({"hit_rate": 1.0}, "pools[0].kv_tiers[1].hit_rate", "a number ≥ 0 and < 1"),
    ({"hit_rate": -0.1}, "pools[0].kv_tiers[1].hit_rate", "a number ≥ 0"),
    ({"bandwidth_gbps": 0}, "pools[0].kv_tiers[1].bandwidth_gbps", "a number > 0"),
    ({"latency_us": -1}, "pools[0].kv_tiers[1].latency_us", "a number ≥ 0"),
    ({"name": "host_dram"}, "pools[0].kv_tiers[1].name", "a tier name not used"),
])
def test_bad_tiers_are_refused_with_their_key_path(make_scenario, change, key, expected):
    tier = {**STORE, **change}
    if "hitrate" in change:
        del tier["hit_rate"]
    message = _refused(make_scenario, _with_tiers(aggregated(), HOST, tier))
    assert f": {key}: expected {expected}" in message
    assert "scenario" in message.split(":")[0]   # the file comes first


def test_tiers_on_a_decode_pool_or_not_a_list_are_refused(make_scenario):
    data = disaggregated()
    data["pools"][1]["kv_tiers"] = [HOST]
    assert ": pools[1].kv_tiers: expected no kv_tiers on a decode pool" in \
        _refused(make_scenario, data)
    data = aggregated()
    data["pools"][0]["kv_tiers"] = HOST
    assert ": pools[0].kv_tiers: expected a list of tiers" in _refused(make_scenario, data)


def test_a_tier_can_be_overridden_by_name(make_scenario):
    scenario = make_scenario(_with_tiers(aggregated(), HOST),
                             **{"pools.serve.kv_tiers.host_dram.hit_rate": 0.25})
    assert scenario.pools[0].kv_tiers == (KVTierSpec("host_dram", 400.0, 5.0, 0.25),)
