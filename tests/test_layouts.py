"""Expert parallelism, speculative decoding, the attention–FFN split and LPU pipelines,
against hand calculations, and the load-time checks that refuse layouts that cannot work."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import disaggregated
from test_decode_kernel import Bench
from test_kernels import gpu_moe_ep, lpu_dense, lpu_split

from simulator import ScenarioError, load_scenario, simulate
from simulator.config.scenario import SpeculativeSpec
from simulator.costs import pool_cost_vector
from simulator.kernels import (
    P_AFD_CHIPS,
    P_AFD_ETA_KV_MEMORY,
    P_AFD_ETA_MEMORY,
    P_EP_DOMAIN,
    P_PP_STAGES,
    P_SPEC_DRAFT_FRACTION,
    P_SPEC_DRAFT_TOKENS,
    P_SPEC_TOKENS_MILLI,
    all_to_all_s,
    decode_step_cost,
    spec_accepted,
    step_cost,
)
from simulator.kernels.replica_state import ST_STEPS

SCENARIO = "scenarios/afd-vs-lpu-decode.yaml"


# ---------------------------------------------------------------- speculative decoding
def mtp(p: np.ndarray, draft_tokens: int, acceptance: float, fraction: float) -> np.ndarray:
    spec = SpeculativeSpec(draft_tokens, acceptance, fraction)
    p = p.copy()
    p[P_SPEC_DRAFT_TOKENS] = draft_tokens
    p[P_SPEC_TOKENS_MILLI] = round(spec.tokens_per_step * 1000)
    p[P_SPEC_DRAFT_FRACTION] = fraction
    return p


def test_mtp_one_draft_at_acceptance_0_7_gives_1_7_tokens_per_step_less_its_cost():
    assert SpeculativeSpec(1, 0.7, 0.0).tokens_per_step == pytest.approx(1.7, abs=1e-15)
    assert SpeculativeSpec(3, 0.5, 0.0).tokens_per_step == pytest.approx(1.875, abs=1e-15)
    # after j steps a sequence has floor(1.7 j) tokens: 1, 3, 5, 6, 8, 10, 11, 13, 15, 17
    emitted, gained = 0, []
    for _ in range(10):
        gained.append(spec_accepted(emitted, 1700))
        emitted += gained[-1]
    assert gained == [1, 2, 2, 1, 2, 2, 1, 2, 2, 2] and emitted == 17

    # the step: 8 sequences × 1,000 cached tokens verify 2 tokens each, after one draft
    # pass costing 1/80 of a plain decode step (an MTP head is about one of 80 layers)
    plain = lpu_dense()
    p = mtp(plain, 1, 0.7, 1 / 80)
    n, kv = 8.0, 8000.0
    verify_s, verify_j = step_cost(plain, 16.0, 16.0, 2 * kv + n * 3, kv)
    draft_s, draft_j = step_cost(plain, n, n, kv + n, kv)
    time_s, energy_j = decode_step_cost(p, n, kv)
    assert time_s == pytest.approx(verify_s + draft_s / 80, rel=1e-12)
    assert energy_j == pytest.approx(verify_j + draft_j / 80, rel=1e-12)
    # tokens per second per user: 1.7 per step at the longer step, vs 1 per plain step
    speedup = (1.7 / time_s) / (1.0 / decode_step_cost(plain, n, kv)[0])
    assert speedup == pytest.approx(1.7 * draft_s / (verify_s + draft_s / 80), rel=1e-12)
    assert 1.6 < speedup < 1.7   # a sync-bound LPU step barely grows with 2 tokens


def test_speculative_decode_replica_finishes_in_fewer_steps_by_hand():
    p = mtp(lpu_dense(), 1, 0.7, 1 / 80)
    bench = Bench([100], [18], blocks=20, block_tokens=16, max_batch=8, p=p)
    bench.land(0, reserve_s=0.0, lands_s=1.0)
    bench.advance(float("inf"))
    # 17 tokens after the first: floor(1.7 j) reaches 17 at j = 10 steps
    assert bench.finished == [0] and bench.st[ST_STEPS] == 10
    end, cached = 1.0, 100
    for gained in [1, 2, 2, 1, 2, 2, 1, 2, 2, 2]:
        end += decode_step_cost(p, 1.0, float(cached))[0]
        cached += gained
    assert bench.table.last_token_s[0] == end
    assert bench.table.generated[0] == 18 and cached == 117


def test_speculation_raises_per_user_speed_in_a_simulation(make_scenario):
    data = disaggregated()
    data["workload"]["lengths"] = {"source": "fixed", "input_tokens": 512,
                                   "output_tokens": 200}
    plain = simulate(make_scenario(data, **{"workload.requests": 40}))
    spec = simulate(make_scenario(data, **{"workload.requests": 40,
                                           "pools.decode.speculative": {
                                               "draft_tokens": 1, "acceptance": 0.7}}))
    ratio = spec.summary["tokens_per_s_per_user"]["p50"] / plain.summary[
        "tokens_per_s_per_user"]["p50"]
    assert 1.55 < ratio < 1.7
    assert spec.summary["pools"]["decode"]["tokens_per_step"] == pytest.approx(1.7)
    assert spec.summary["output_tokens"] == plain.summary["output_tokens"]


# ---------------------------------------------------------------- expert parallelism
def test_all_to_all_by_hand_inside_and_across_nvlink_domains():
    tokens = 256.0
    inside = gpu_moe_ep(64, 1.0)
    # 4 tokens per rank × top-8 × 7168 × 2 bytes; 63/64 of it leaves the chip over NVLink
    sent = 256 / 64 * 8 * 7168 * 2.0
    assert all_to_all_s(inside, tokens) == pytest.approx(
        sent * 63 / 64 / (900e9 * 0.75) + 8e-6, rel=1e-12)
    across = gpu_moe_ep(144, 1.3)
    sent = 256 / 144 * 8 * 7168 * 2.0 * 1.3
    nvlink_s = sent * 71 / 144 / (900e9 * 0.75)
    nic_s = sent * 72 / 144 / (50e9 * 0.75)
    assert all_to_all_s(across, tokens) == pytest.approx(max(nvlink_s + 8e-6, nic_s + 10e-6),
                                                         rel=1e-12)


def test_all_to_all_time_jumps_when_ep_leaves_the_nvlink_domain():
    """Same batch, balanced load: within one 72-GPU domain more ranks means less to send
    each; past it, half of every rank's tokens go over an 18× slower NIC."""
    tokens = 4096.0
    times = {ep: all_to_all_s(gpu_moe_ep(ep, 1.0), tokens) for ep in (36, 72, 144)}
    assert times[36] > times[72]
    assert times[144] > 2.5 * times[72]
    # a whole decode step at batch 256 on the same 144 GPUs, in one 144-GPU domain
    # (a Kyber-style rack) or in two 72-GPU racks: only the fabric differs
    two_racks = gpu_moe_ep(144, 1.0)
    one_domain = two_racks.copy()
    one_domain[P_EP_DOMAIN] = 144
    batch = (256.0, 256.0, 256 * 2000.0, 255 * 2000.0)
    gap_s = step_cost(two_racks, *batch)[0] - step_cost(one_domain, *batch)[0]
    a2a_gap_s = 2 * 58 * (all_to_all_s(two_racks, 256.0) - all_to_all_s(one_domain, 256.0))
    assert gap_s == pytest.approx(a2a_gap_s, rel=1e-9) and gap_s > 3e-4


def test_imbalance_slows_the_step_by_the_busiest_rank():
    balanced = step_cost(gpu_moe_ep(64, 1.0), 512.0, 512.0, 512 * 1000.0, 511 * 1000.0)[0]
    skewed = step_cost(gpu_moe_ep(64, 1.5), 512.0, 512.0, 512 * 1000.0, 511 * 1000.0)[0]
    assert skewed > balanced


# ---------------------------------------------------------------- attention–FFN split
def test_attention_ffn_split_step_by_hand():
    p = lpu_split()
    n, kv = 16.0, 16 * 4000.0
    time_s, energy_j = step_cost(p, n, n, kv + n, kv)
    # FFN side: 2,048 LPUs, without the attention projections and their weights
    lin_flops = n * (136_902_082_560.0 - 2 * 80 * 150_994_944.0) + n * 2_101_346_304.0
    lin_bytes = 69_501_714_432.0 - 80 * 150_994_944.0
    t_lin = max(lin_flops / (2048 * 1.23e15 * 0.80), lin_bytes / (2048 * 150e12 * 0.90))
    # attention side: 8 Rubin GPUs, each reading all attention weights and its share of KV,
    # with half of the shorter of math and memory traffic showing (overlap 0.5); the
    # projections at the weights' peak, the pairs at the attention dtype's (half of it)
    side_math_s = (n * 2 * 80 * 150_994_944.0 / 16.7e15
                   + (kv + n) * 2_621_440.0 / 8.35e15) / (8 * 0.65)
    side_memory_s = (8 * 80 * 150_994_944.0 + (kv + n) * 163_840.0) / (8 * 22e12 * 0.82)
    t_side = max(side_math_s, side_memory_s) + 0.5 * min(side_math_s, side_memory_s)
    exchange = 2 * 80 * (5e-6 + n * 8192 * 2 / 150e9)
    pipeline = 7 * (5e-6 + n * 8192 * 2 / 200e9)
    want = t_lin + t_side + exchange + pipeline + 80 * 12e-6 + 20e-6
    assert time_s == pytest.approx(want, rel=1e-12)
    assert energy_j == pytest.approx(
        2048 * (120 * want + 280 * t_lin) + 8 * (450 * want + 1350 * t_side), rel=1e-12)


def test_afd_vs_lpu_scenario_three_layouts():
    """The shipped study: chip counts and layouts resolve as its header says."""
    lpu = load_scenario(SCENARIO)
    gpu = load_scenario(SCENARIO, overrides={
        "pools.decode.system": "vera-rubin-nvl72", "pools.decode.chips_per_replica": None,
        "pools.decode.parallelism": {"tp": 1, "ep": 72}})
    afd = load_scenario(SCENARIO, overrides={
        "pools.decode.attention_split": {"system": "vera-rubin-nvl72", "chips": 8}})
    full, split = lpu.pool("decode"), afd.pool("decode")
    # 1T params at fp8 over 475 MB of usable SRAM per LPU: ~2,150 LPUs, nine racks
    assert 2100 < full.chips_per_replica < 2300 and full.systems == 9
    assert split.chips_per_replica < full.chips_per_replica
    assert split.attention_split is not None and split.attention_split.chips == 8
    # KV moves to HBM: far more room than the SRAM reserve
    assert split.kv_capacity_tokens > 100 * full.kv_capacity_tokens
    assert pool_cost_vector(lpu.model, full, lpu.precision)[P_PP_STAGES] == 9
    afd_vector = pool_cost_vector(afd.model, split, afd.precision)
    assert afd_vector[P_AFD_CHIPS] == 8
    # the attention GPUs stream weights and cache at their own profile's two efficiencies
    rubin = split.attention_split.system
    assert (afd_vector[P_AFD_ETA_MEMORY], afd_vector[P_AFD_ETA_KV_MEMORY]) == (
        rubin.memory_efficiency, rubin.kv_memory_efficiency)
    assert rubin.kv_memory_efficiency != rubin.memory_efficiency
    assert gpu.pool("decode").chips_per_replica == 72 and gpu.pool("decode").ep == 72


# ---------------------------------------------------------------- load-time refusals
def _moe(data: dict) -> dict:
    data["model"] = "deepseek-r1"
    data["workload"]["lengths"] = {"source": "fixed", "input_tokens": 1000,
                                   "output_tokens": 100}
    return data


@pytest.mark.parametrize(("change", "key", "words"), [
    ({"pools.prefill.parallelism": {"tp": 8, "ep": 8}}, "pools[0].parallelism.ep",
     "dense and has no experts"),
    ({"pools.decode.speculative": {"draft_tokens": 1, "acceptance": 1.0}},
     "pools[1].speculative.acceptance", "[0, 1)"),
    ({"pools.prefill.speculative": {"draft_tokens": 1, "acceptance": 0.5}},
     "pools[0].speculative", "decode pool"),
    ({"pools.prefill.attention_split": {"system": "vera-rubin-nvl72", "chips": 4}},
     "pools[0].attention_split", "decode pool of LPUs"),
    ({"pools.decode.attention_split": {"system": "groq3-lpx", "chips": 4}},
     "pools[1].attention_split.system", "GPU system"),
])
def test_impossible_layouts_are_refused_at_load(make_scenario, change, key, words):
    with pytest.raises(ScenarioError) as err:
        make_scenario(disaggregated(), **change)
    assert err.value.key == key and words in str(err.value)


def test_expert_parallel_degree_checks(make_scenario):
    data = _moe(disaggregated({"chips_per_replica": "auto"}, system="vera-rubin-nvl72",
                              parallelism={"tp": 8, "ep": 72}))
    assert make_scenario(data).pool("prefill").chips_per_replica == 72
    with pytest.raises(ScenarioError, match="a multiple of tp = 8"):
        make_scenario(data, **{"pools.prefill.parallelism.ep": 44})
    with pytest.raises(ScenarioError, match="at most 256"):
        make_scenario(data, **{"pools.prefill.parallelism.ep": 264})


# ---------------------------------------------------------------- KV compression
def test_kv_quantisation_speeds_up_kv_bound_decode_in_proportion_to_bytes():
    """A decode step's attention reads the KV cache, so its time falls with the KV dtype's
    bytes: fp8 → int4 saves 0.5 byte a value, fp8 → int3 0.625. (A bf16 cache also moves
    the attention math to bf16, so bf16 → fp8 saves more than its bytes.)"""
    from simulator.config.scenario import Precision
    from simulator.costs import decode_step_s
    from simulator.hardware import load_profile
    from simulator.models import load_model

    model, h100 = load_model("llama-3.3-70b"), load_profile("h100-sxm")
    t = {kv: decode_step_s(model, h100, Precision("fp8", kv), 8, 8, 64, 8000)
         for kv in ("bf16", "fp8", "int4", "int3")}
    assert t["bf16"] > t["fp8"] > t["int4"] > t["int3"]
    saved_per_byte = (t["fp8"] - t["int4"]) / 0.5
    assert (t["fp8"] - t["int3"]) == pytest.approx(0.625 * saved_per_byte, rel=1e-9)
    assert (t["bf16"] - t["fp8"]) > saved_per_byte
