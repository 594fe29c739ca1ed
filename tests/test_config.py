"""Scenario loading: strict keys, typed values, overrides and load-time feasibility."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from simulator.config import (
    ArrivalSpec,
    LengthSpec,
    PoolSpec,
    Scenario,
    TierSpec,
    WorkloadSpec,
    apply_overrides,
    load_scenario,
    parse_override,
)
from simulator.errors import ScenarioError

# Figures of the shipped cards and profiles the hand calculations below rely on.
LLAMA70_PARAMS = 70_552_387_584          # llama-3.3-70b total parameters (weights at fp8: bytes)
LLAMA70_KV_BYTES_PER_TOKEN_FP8 = 163_840  # 2 (K, V) × 8 heads × 128 dim × 80 layers × 1 byte
LPU_USABLE_BYTES = 500e6 * 0.95         # groq3-lpx: 500 MB SRAM × 0.95 usable
H100_USABLE_BYTES = 80e9 * 0.90         # h100-sxm: 80 GB HBM × 0.90 usable


def disaggregated() -> dict[str, Any]:
    return {
        "schema_version": 1,
        "name": "split",
        "seed": 7,
        "model": "llama-3.3-70b",
        "precision": {"weights": "fp8", "kv_cache": "fp8"},
        "workload": {
            "requests": 1000,
            "arrivals": {"process": "poisson", "rate_per_s": 40},
            "lengths": {"source": "fixed", "input_tokens": 1000, "output_tokens": 200},
            "tiers": {"free": 0.5, "premium": 0.3, "fast": 0.2},
        },
        "pools": [
            {"name": "prefill", "role": "prefill", "system": "h100-sxm", "replicas": 4,
             "parallelism": {"tp": 2},
             "scheduler": {"policy": "chunked_prefill", "max_batch_tokens": 8192}},
            {"name": "decode", "role": "decode", "system": "groq3-lpx", "replicas": 2,
             "chips_per_replica": "auto", "scheduler": {"policy": "continuous", "max_batch": 32}},
        ],
        "links": [{"from": "prefill", "to": "decode", "bandwidth_gbps": 800, "latency_us": 10,
                   "transfer": "layerwise"}],
        "router": {"policy": "least_outstanding"},
        "tiers": "gtc-2026",
    }


def aggregated() -> dict[str, Any]:
    raw = disaggregated()
    raw["pools"] = [{"name": "gpu", "role": "both", "system": "gb200-nvl72", "replicas": 1,
                     "parallelism": {"tp": 2}}]
    del raw["links"]
    return raw


def write(tmp_path: Path, raw: dict[str, Any], name: str = "scenario.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def refused(tmp_path: Path, raw: dict[str, Any], **kwargs: Any) -> str:
    path = write(tmp_path, raw)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, **kwargs)
    message = str(info.value)
    assert message.startswith(str(path)), message
    return message


def test_disaggregated_scenario_loads_with_resolved_sizes(tmp_path: Path) -> None:
    path = write(tmp_path, disaggregated())
    sc = load_scenario(path)
    assert isinstance(sc, Scenario) and sc.source == path
    assert (sc.name, sc.seed, sc.model.name) == ("split", 7, "llama-3.3-70b")
    assert sc.disaggregated
    assert isinstance(sc.workload, WorkloadSpec)
    assert sc.workload.arrivals == ArrivalSpec(process="poisson", rate_per_s=40.0)
    assert sc.workload.lengths == LengthSpec("fixed", input_tokens=(1000, 1000),
                                             output_tokens=(200, 200))
    # Shares come back for every tier of the table, in its order, so a request's tier index
    # is the table's: free, standard, premium, fast, ultra.
    assert sc.workload.tier_shares == (("free", 0.5), ("standard", 0.0), ("premium", 0.3),
                                       ("fast", 0.2), ("ultra", 0.0))
    assert sc.resolved["workload"]["tiers"] == {"free": 0.5, "premium": 0.3, "fast": 0.2}
    assert [t.name for t in sc.tiers] == ["free", "standard", "premium", "fast", "ultra"]
    assert sc.tiers[3] == TierSpec("fast", 45.0, 400.0, 1.0)

    prefill, decode = sc.pools
    assert isinstance(prefill, PoolSpec) and prefill.system.name == "h100-sxm"
    assert (prefill.tp, prefill.chips_per_replica, prefill.chips) == (2, 2, 8)
    assert prefill.scheduler.name == "chunked_prefill"
    assert prefill.scheduler.options == {"max_batch_tokens": 8192}
    # H100 KV room at tp=2: (2 × 72e9 − 70.552e9) / 163,840 = 73.448e9 / 163,840 = 448,288.
    assert prefill.kv_capacity_tokens == 448_288

    # LPU auto: reserve = max_batch 32 × (1000 + 200) = 38,400 tokens of KV;
    # need = 70.552e9 + 38,400 × 163,840 = 76.844e9 bytes; ÷ 0.475e9 per LPU = 161.8 → 162.
    reserve = 32 * (1000 + 200)
    need = LLAMA70_PARAMS + reserve * LLAMA70_KV_BYTES_PER_TOKEN_FP8
    assert math.ceil(need / LPU_USABLE_BYTES) == 162
    assert (decode.tp, decode.chips_per_replica, decode.chips) == (1, 162, 324)
    assert decode.systems == 2   # 324 LPUs need two 256-LPU racks
    # 162 × 0.475e9 − 70.552e9 = 6.3976e9 bytes ÷ 163,840 = 39,047 tokens.
    assert decode.kv_capacity_tokens == 39_047

    link = sc.links[0]
    assert (link.from_pool, link.to_pool, link.bandwidth_gbps, link.transfer) == (
        "prefill", "decode", 800.0, "layerwise")
    assert sc.router.name == "least_outstanding" and sc.router.options == {}


def test_defaults_fill_in_for_an_aggregated_scenario(tmp_path: Path) -> None:
    raw = aggregated()
    for key in ("seed", "precision", "router", "tiers"):
        del raw[key]
    del raw["workload"]["tiers"]
    sc = load_scenario(write(tmp_path, raw))
    assert sc.seed == 0 and not sc.disaggregated and sc.links == ()
    assert (sc.precision.weights, sc.precision.kv_cache) == ("fp8", "fp8")
    assert dict(sc.workload.tier_shares) == {"free": 1.0, "standard": 0.0, "premium": 0.0,
                                             "fast": 0.0, "ultra": 0.0}
    assert sc.router.name == "least_outstanding"
    pool = sc.pools[0]
    assert (pool.scheduler.name, pool.kv_block_tokens) == ("continuous", 16)
    assert sc.resolved["router"] == {"policy": "least_outstanding"}
    assert sc.resolved["pools"][0]["scheduler"] == {"policy": "continuous"}


def test_unknown_key_names_file_key_and_a_suggestion(tmp_path: Path) -> None:
    raw = disaggregated()
    raw["pools"][0]["replics"] = raw["pools"][0].pop("replicas")
    message = refused(tmp_path, raw)
    assert "scenario.yaml: pools[0].replics:" in message
    assert "Did you mean 'replicas'?" in message


def test_unknown_top_level_key_is_refused(tmp_path: Path) -> None:
    raw = disaggregated()
    raw["routr"] = {"policy": "round_robin"}
    message = refused(tmp_path, raw)
    assert "routr" in message and "Did you mean 'router'?" in message


def test_negative_rate_is_refused(tmp_path: Path) -> None:
    raw = disaggregated()
    raw["workload"]["arrivals"]["rate_per_s"] = -5
    message = refused(tmp_path, raw)
    assert "workload.arrivals.rate_per_s: expected a number > 0" in message
    assert "got -5" in message


def test_bool_is_not_an_integer(tmp_path: Path) -> None:
    raw = disaggregated()
    raw["pools"][1]["replicas"] = True
    message = refused(tmp_path, raw)
    assert "pools[1].replicas: expected an integer ≥ 1" in message and "got True" in message


def test_key_of_another_arrival_process_is_refused(tmp_path: Path) -> None:
    raw = disaggregated()
    raw["workload"]["arrivals"]["cv"] = 2.0
    message = refused(tmp_path, raw)
    assert "workload.arrivals.cv: expected one of the keys process, rate_per_s" in message


def test_unknown_profile_lists_the_shipped_ones(tmp_path: Path) -> None:
    raw = disaggregated()
    raw["pools"][1]["system"] = "groq4-lpx"
    message = refused(tmp_path, raw)
    assert "pools[1].system" in message and "'groq4-lpx'" in message
    for known in ("groq3-lpx", "h100-sxm", "gb200-nvl72"):
        assert known in message
    assert "Did you mean 'groq3-lpx'?" in message


def test_model_too_big_for_one_gpu_gives_the_numbers(tmp_path: Path) -> None:
    raw = disaggregated()
    raw["model"] = "llama-3.1-405b"
    raw["pools"][0]["parallelism"] = {"tp": 1}
    message = refused(tmp_path, raw)
    # 405.85e9 params × 1 byte = 405.8 GB, all on one chip at tp=1; usable 80 × 0.9 = 72.0 GB;
    # the smallest tp with 405.85 / tp ≤ 72 is 6 (405.85 / 6 = 67.6), but 6 does not divide
    # the 128 attention heads; the smallest that does and fits is 8.
    assert "pools[0].parallelism.tp" in message
    assert "needs 405.8 GB of weights, 405.8 GB per chip at tp=1" in message
    assert "holds 72.0 GB usable (80 GB × 0.9)" in message
    assert "use tp = 8 or more" in message


def test_tp_beyond_the_scaleup_domain_is_refused(tmp_path: Path) -> None:
    raw = disaggregated()
    raw["pools"][0]["parallelism"] = {"tp": 16}
    message = refused(tmp_path, raw)
    assert "pools[0].parallelism.tp: expected at most 8" in message and "got 16" in message


def test_explicit_lpu_chip_count_must_hold_the_weights(tmp_path: Path) -> None:
    raw = disaggregated()
    raw["pools"][1]["chips_per_replica"] = 100
    message = refused(tmp_path, raw)
    # 100 × 0.475 GB = 47.5 GB < 70.6 GB; 70.552e9 / 0.475e9 = 148.5 → at least 149.
    assert "pools[1].chips_per_replica" in message
    assert "needs 70.6 GB of weights, but 100 × Groq 3 LPU (LP30) hold 47.5 GB" in message
    assert "use at least 149 chips, or auto" in message


def test_kv_room_must_hold_the_longest_request(tmp_path: Path) -> None:
    raw = disaggregated()
    raw["pools"][1]["chips_per_replica"] = 150
    raw["workload"]["lengths"]["input_tokens"] = 5000
    message = refused(tmp_path, raw)
    # 150 × 0.475e9 − 70.552e9 = 0.6976e9 bytes ÷ 163,840 per token = 4,257 tokens of KV,
    # short of the 5,000 + 200 = 5,200 the longest request needs.
    assert "pools[1].chips_per_replica" in message
    assert "room for 4,257 tokens of KV cache" in message
    assert "(5,000 in + 200 out) needs 5,200 tokens" in message


def test_longest_request_must_fit_the_context(tmp_path: Path) -> None:
    raw = disaggregated()
    raw["workload"]["lengths"] = {"source": "uniform", "input_tokens": [100, 130000],
                                  "output_tokens": [10, 2000]}
    message = refused(tmp_path, raw)
    assert "workload.lengths" in message and "131,072-token context" in message
    assert "130,000 + 2,000 = 132,000 tokens" in message


def test_zero_replicas_is_refused(tmp_path: Path) -> None:
    raw = disaggregated()
    raw["pools"][1]["replicas"] = 0
    message = refused(tmp_path, raw)
    assert "pools[1].replicas: expected an integer ≥ 1" in message and "got 0." in message
    assert "no replicas cannot serve requests" in message


def test_fp4_weights_on_an_lpu_are_refused(tmp_path: Path) -> None:
    raw = disaggregated()
    raw["precision"]["weights"] = "fp4"
    raw["pools"][0]["system"] = "gb200-nvl72"    # has FP4, so the LPU pool is the one refused
    message = refused(tmp_path, raw)
    assert "precision.weights" in message and "got 'fp4'" in message
    assert "pool 'decode' runs on groq3-lpx" in message
    assert "no fp4 datapath" in message


def test_mixing_both_with_prefill_is_not_supported(tmp_path: Path) -> None:
    raw = disaggregated()
    raw["pools"].append({"name": "agg", "role": "both", "system": "h100-sxm", "replicas": 1,
                         "parallelism": {"tp": 2}})
    message = refused(tmp_path, raw)
    assert "pools:" in message and "Mixing aggregated and disaggregated pools" in message


def test_missing_link_is_named(tmp_path: Path) -> None:
    raw = disaggregated()
    del raw["links"]
    message = refused(tmp_path, raw)
    assert "links: expected a link from every prefill pool to every decode pool" in message
    assert "no link from 'prefill' to 'decode'" in message


def test_link_to_an_unknown_pool(tmp_path: Path) -> None:
    raw = disaggregated()
    raw["links"][0]["to"] = "decod"
    message = refused(tmp_path, raw)
    assert "links[0].to" in message and "Did you mean 'decode'?" in message


def test_gpu_pool_refuses_chips_per_replica_and_lpu_refuses_parallelism(tmp_path: Path) -> None:
    raw = disaggregated()
    raw["pools"][0]["chips_per_replica"] = 2
    assert "write parallelism: {tp: N} instead" in refused(tmp_path, raw)
    raw = disaggregated()
    raw["pools"][1]["parallelism"] = {"tp": 4}
    assert "write chips_per_replica: auto" in refused(tmp_path, raw)


def test_tier_shares_must_sum_to_one_and_name_tiers(tmp_path: Path) -> None:
    raw = disaggregated()
    raw["workload"]["tiers"] = {"free": 0.5, "premium": 0.3}
    message = refused(tmp_path, raw)
    assert "workload.tiers: expected shares that sum to 1, got 'a sum of 0.8'" in message
    raw["workload"]["tiers"] = {"free": 0.5, "premum": 0.5}
    message = refused(tmp_path, raw)
    assert "workload.tiers.premum" in message and "Did you mean 'premium'?" in message


def test_inline_tier_list(tmp_path: Path) -> None:
    raw = disaggregated()
    raw["tiers"] = [{"name": "free", "price_usd_per_mtok": 0, "min_tokens_per_s_per_user": 5,
                     "max_ttft_s": 20},
                    {"name": "fast", "price_usd_per_mtok": 50, "min_tokens_per_s_per_user": 500,
                     "max_ttft_s": 1}]
    raw["workload"]["tiers"] = {"fast": 0.25, "free": 0.75}
    sc = load_scenario(write(tmp_path, raw))
    assert sc.tiers == (TierSpec("free", 0.0, 5.0, 20.0), TierSpec("fast", 50.0, 500.0, 1.0))
    assert sc.workload.tier_shares == (("free", 0.75), ("fast", 0.25))


def test_requests_and_duration_are_exclusive(tmp_path: Path) -> None:
    raw = disaggregated()
    raw["workload"]["duration_s"] = 60
    message = refused(tmp_path, raw)
    assert "workload: expected exactly one of requests or duration_s, got 'both'" in message


def test_schema_version_is_required(tmp_path: Path) -> None:
    raw = disaggregated()
    raw["schema_version"] = 2
    assert "schema_version: expected 1" in refused(tmp_path, raw)


def test_missing_file_syntax_error_and_non_mapping(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="expected a scenario file that exists"):
        load_scenario(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\npools: [\n  {name: a\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"bad\.yaml: expected valid YAML.*line 4, column 1"):
        load_scenario(bad)
    twice = tmp_path / "twice.yaml"
    twice.write_text("name: x\nname: y\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match="line 2, column 1: the key 'name' appears twice"):
        load_scenario(twice)
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match="top level is a mapping of keys, got 'a list'"):
        load_scenario(listed)


def test_overrides_by_name_and_by_index(tmp_path: Path) -> None:
    path = write(tmp_path, disaggregated())
    sc = load_scenario(path, overrides={"pools.decode.replicas": 5, "pools.0.replicas": 3,
                                        "workload.arrivals.rate_per_s": 1e3})
    assert sc.pool("decode").replicas == 5 and sc.pool("prefill").replicas == 3
    assert sc.workload.arrivals.rate_per_s == 1000.0
    # New keys where the schema has room: a scheduler option, an LPU's explicit chip count.
    sc = load_scenario(path, overrides={"pools.decode.scheduler.max_batch": 8,
                                        "pools.decode.chips_per_replica": 200})
    assert sc.pool("decode").scheduler.options == {"max_batch": 8}
    assert sc.pool("decode").chips_per_replica == 200


def test_bad_override_paths(tmp_path: Path) -> None:
    path = write(tmp_path, disaggregated())
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, overrides={"pools.decdoe.replicas": 2})
    message = str(info.value)
    assert "pools.decdoe.replicas" in message and "Did you mean 'decode'?" in message
    assert "'prefill', 'decode'" in message
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, overrides={"pools.decode.replics": 2})
    assert "Did you mean 'replicas'?" in str(info.value)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, overrides={"pools.7.replicas": 2})
    assert "an index 0 to 1" in str(info.value)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, overrides={"model.layers": 2})
    assert "model holds a plain value" in str(info.value)


def test_null_override_restores_the_default(tmp_path: Path) -> None:
    raw = disaggregated()
    out = apply_overrides(raw, {"workload.tiers": None, "pools.decode.scheduler.max_batch": None},
                          "scenario.yaml")
    assert "tiers" not in out["workload"]
    assert out["pools"][1]["scheduler"] == {"policy": "continuous"}
    assert raw["workload"]["tiers"] == {"free": 0.5, "premium": 0.3, "fast": 0.2}  # untouched


def test_parse_override() -> None:
    assert parse_override("pools.decode.replicas=4") == ("pools.decode.replicas", 4)
    assert parse_override("workload.arrivals.rate_per_s=2.5e2") == (
        "workload.arrivals.rate_per_s", 250.0)
    assert parse_override("router.policy=mypkg.routers:Sticky") == (
        "router.policy", "mypkg.routers:Sticky")
    assert parse_override("workload.tiers={free: 1}") == ("workload.tiers", {"free": 1})
    with pytest.raises(ScenarioError, match=r"^--set: expected KEY=VALUE"):
        parse_override("pools.decode.replicas")
    with pytest.raises(ScenarioError, match=r"^--set: pools\.\.replicas: expected KEY=VALUE"):
        parse_override("pools..replicas=3")
    with pytest.raises(ScenarioError, match=r"^--set: x: expected valid YAML"):
        parse_override("x=[1, 2")


def test_resolved_is_json_and_carries_overrides_and_seed(tmp_path: Path) -> None:
    path = write(tmp_path, disaggregated())
    sc = load_scenario(path, overrides={"pools.decode.replicas": 6}, seed=11)
    data = json.loads(json.dumps(sc.resolved))
    assert data == sc.resolved
    assert sc.seed == 11 and data["seed"] == 11
    assert data["pools"][1]["replicas"] == 6
    assert data["pools"][1]["chips_per_replica"] == 162
    assert data["pools"][1]["kv_capacity_tokens"] == 39_047
    assert data["pools"][0]["parallelism"] == {"tp": 2}
    assert data["model"] == "llama-3.3-70b" and data["pools"][1]["system"] == "groq3-lpx"
    assert data["workload"]["arrivals"] == {"process": "poisson", "rate_per_s": 40.0}
    assert [t["name"] for t in data["tiers"]] == ["free", "standard", "premium", "fast", "ultra"]
    with pytest.raises(ScenarioError, match=r"^--seed: seed: expected an integer ≥ 0, got -1"):
        load_scenario(path, seed=-1)


def test_shipped_tier_table() -> None:
    table = yaml.safe_load((Path(__file__).resolve().parents[1] / "workloads" / "tiers" /
                            "gtc-2026.yaml").read_text(encoding="utf-8"))
    prices = [(t["name"], t["price_usd_per_mtok"]) for t in table["tiers"]]
    assert prices == [("free", 0), ("standard", 3), ("premium", 6), ("fast", 45),
                      ("ultra", 150)]
    assert all(t["assumption"] and t["source"] for t in table["tiers"])


@given(st.integers(min_value=1, max_value=10_000), st.sampled_from(["prefill", "decode", "0"]))
def test_override_sets_exactly_one_value(replicas: int, pool: str) -> None:
    raw = disaggregated()
    out = apply_overrides(raw, {f"pools.{pool}.replicas": replicas}, "scenario.yaml")
    index = {"prefill": 0, "decode": 1, "0": 0}[pool]
    assert out["pools"][index]["replicas"] == replicas
    out["pools"][index]["replicas"] = raw["pools"][index]["replicas"]
    assert out == raw


# --- the shipped quickstart scenarios ------------------------------------------------------

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


def test_quickstart_aggregated_loads_with_hand_computed_kv_room() -> None:
    sc = load_scenario(SCENARIOS / "quickstart-aggregated.yaml")
    (serve,) = sc.pools
    assert (serve.role, serve.replicas, serve.tp, serve.chips_per_replica) == ("both", 18, 4, 4)
    # GB200: 186e9 bytes HBM × 0.90 usable × 4 GPUs = 669.6e9; minus 70,552,387,584 of
    # weights = 599,047,612,416 ÷ 163,840 per token = 3,656,296.9 → 3,656,296 tokens.
    assert serve.kv_capacity_tokens == 3_656_296
    assert (4 * 186e9 * 0.90 - LLAMA70_PARAMS) // LLAMA70_KV_BYTES_PER_TOKEN_FP8 == 3_656_296
    assert not sc.disaggregated and sc.links == () and sc.seed == 7
    assert serve.scheduler.options == {"max_batch": 128, "max_batch_tokens": 8192}


def test_quickstart_disaggregated_loads_with_hand_computed_kv_room() -> None:
    sc = load_scenario(SCENARIOS / "quickstart-disaggregated.yaml")
    prefill, decode = sc.pools
    assert (prefill.role, prefill.chips_per_replica) == ("prefill", 4)
    assert prefill.kv_capacity_tokens == 3_656_296          # as the aggregated GB200 pool
    assert (decode.role, decode.tp, decode.chips_per_replica) == ("decode", 1, 256)
    # Groq 3 LPX: 256 × 0.475e9 = 121.6e9; minus the weights = 51,047,612,416 ÷ 163,840
    # = 311,569.9 → 311,569 tokens.
    assert decode.kv_capacity_tokens == 311_569
    assert sc.disaggregated and sc.links[0].transfer == "layerwise"
    assert sc.workload.tier_shares == (
        ("free", 0.5), ("standard", 0.3), ("premium", 0.15), ("fast", 0.05), ("ultra", 0.0))


def test_lpu_auto_without_max_batch_sizes_for_64_requests(tmp_path: Path) -> None:
    raw = aggregated()
    raw["model"] = "llama-3.1-8b"
    raw["pools"] = [{"name": "lpu", "role": "both", "system": "groq3-lpx", "replicas": 1}]
    (pool,) = load_scenario(write(tmp_path, raw)).pools
    # llama-3.1-8b at fp8: 8,029,995,008 bytes of weights; KV 2 × 8 × 128 × 32 layers
    # = 65,536 bytes per token. 64 × (1,000 + 200) = 76,800 tokens = 5,033,164,800 bytes;
    # 13,063,159,808 ÷ 0.475e9 = 27.5 → 28 chips.
    assert pool.chips_per_replica == 28
    # 28 × 0.475e9 = 13.3e9 − 8,029,995,008 = 5,270,004,992 ÷ 65,536 = 80,413.
    assert pool.kv_capacity_tokens == 80_413


def test_prefill_pool_needs_room_for_the_prompt_only(tmp_path: Path) -> None:
    # A prefill replica hands its KV cache on after the first token, so only the prompt must
    # fit: 149 LPUs leave (149 × 0.475e9 − 70.552e9) ÷ 163,840 = 1,358 tokens, enough for a
    # 1,000-token prompt when prefilling, not for 1,000 + 5,000 when decoding.
    raw = disaggregated()
    raw["workload"]["lengths"]["output_tokens"] = 5000
    raw["pools"] = [
        {"name": "p", "role": "prefill", "system": "groq3-lpx", "replicas": 1,
         "chips_per_replica": 149},
        {"name": "d", "role": "decode", "system": "gb200-nvl72", "replicas": 1,
         "parallelism": {"tp": 1}},
    ]
    raw["links"] = [{"from": "p", "to": "d", "bandwidth_gbps": 400, "latency_us": 5}]
    assert load_scenario(write(tmp_path, raw)).pool("p").kv_capacity_tokens == 1_358
    raw["pools"][0]["role"], raw["pools"][1]["role"] = "decode", "prefill"
    raw["links"] = [{"from": "d", "to": "p", "bandwidth_gbps": 400, "latency_us": 5}]
    assert "room for 1,358 tokens" in refused(tmp_path, raw)
    assert "(1,000 in + 5,000 out) needs 6,000 tokens" in refused(tmp_path, raw)


# --- policies are built at load time ----------------------------------------------------------


def test_unknown_scheduler_policy_is_refused_at_load(tmp_path: Path) -> None:
    raw = disaggregated()
    raw["pools"][1]["scheduler"]["policy"] = "continous"
    message = refused(tmp_path, raw)
    assert "pools[1].scheduler.policy: expected one of chunked_prefill, continuous" in message
    assert "got 'continous'. Did you mean 'continuous'?" in message


def test_unknown_scheduler_option_is_refused_at_load(tmp_path: Path) -> None:
    raw = disaggregated()
    raw["pools"][0]["scheduler"]["max_btach"] = 32
    message = refused(tmp_path, raw)
    assert "pools[0].scheduler.max_btach: expected an option of chunked_prefill " \
        "(max_batch, max_batch_tokens)" in message
    assert "Did you mean 'max_batch'?" in message


def test_unknown_router_is_refused_at_load(tmp_path: Path) -> None:
    raw = disaggregated()
    raw["router"] = {"policy": "round_robn"}
    message = refused(tmp_path, raw)
    assert "router.policy" in message and "Did you mean 'round_robin'?" in message


def two_decode_pools() -> dict[str, Any]:
    raw = disaggregated()
    raw["pools"].append({**raw["pools"][1], "name": "decode2"})
    raw["links"].append({"from": "prefill", "to": "decode2", "bandwidth_gbps": 800,
                         "latency_us": 10})
    return raw


def test_two_prefill_pools_are_refused(tmp_path: Path) -> None:
    raw = disaggregated()
    raw["pools"].append({**raw["pools"][0], "name": "prefill2"})
    message = refused(tmp_path, raw)
    assert "pools: expected one pool of role 'prefill'" in message
    assert "Pools 'prefill', 'prefill2' share the role 'prefill'" in message


def test_two_decode_pools_must_split_the_tiers(tmp_path: Path) -> None:
    raw = two_decode_pools()
    message = refused(tmp_path, raw)
    assert "expected serves: on every decode pool but at most one" in message
    raw["pools"][2]["serves"] = ["fast", "fastest"]
    message = refused(tmp_path, raw)
    assert "pools.decode2.serves: expected tier names of the tier table" in message
    assert "'fastest'" in message
    raw["pools"][1]["serves"] = ["free"]
    raw["pools"][2]["serves"] = ["free"]
    message = refused(tmp_path, raw)
    assert "pools.decode2.serves: expected a tier no other decode pool serves" in message
    raw["pools"][2]["serves"] = ["fast"]
    message = refused(tmp_path, raw)
    assert "expected a decode pool for every tier" in message and "standard" in message
    raw["pools"][0]["serves"] = ["fast"]
    message = refused(tmp_path, raw)
    assert "pools[0].serves: expected serves only on a decode pool" in message


def test_a_catch_all_decode_pool_takes_the_other_tiers(tmp_path: Path) -> None:
    raw = two_decode_pools()
    raw["pools"][2]["serves"] = ["premium", "fast"]
    scenario = load_scenario(write(tmp_path, raw))
    routes = dict(zip((t.name for t in scenario.tiers), scenario.decode_pool_of_tier(),
                      strict=True))
    assert routes == {"free": "decode", "standard": "decode", "premium": "decode2",
                      "fast": "decode2", "ultra": "decode"}


def test_parse_override_splits_at_the_first_equals_sign() -> None:
    assert parse_override("a=b=c") == ("a", "b=c")
    with pytest.raises(ScenarioError) as info:
        parse_override("novalue")
    assert str(info.value) == ("--set: expected KEY=VALUE with a dotted key path, e.g. "
                               "pools.decode.replicas=4, got 'novalue'.")
