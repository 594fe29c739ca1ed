"""Data-parallel attention: a step waits for its busiest rank.

Hand calculations of where prompt chunks land and of what the busiest rank costs, the
kernel against the per-request numpy reference with explicit ranks, and a replica whose
prompts land on one rank while the others decode.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import aggregated
from hypothesis import given, settings
from hypothesis import strategies as st
from test_kernels import _vector, gpu_moe

from simulator import simulate
from simulator.costs import pool_cost_vector
from simulator.kernels import (
    P_CHIPS,
    P_DENSE_COPIES,
    P_OVERLAP,
    P_SHARDS,
    P_TP,
    busiest_rank_load,
    dp_ranks,
    step_cost,
    step_cost_ranked,
)
from simulator.kernels.reference import step_cost_ref


def moe_dp(chips: int, tp: int) -> np.ndarray:
    """test_kernels' DeepSeek-like MoE on ``chips`` H100s: experts over all of them, the
    dense layers tensor-parallel over ``tp`` and copied chips / tp times (data-parallel
    attention), one 8-GPU NVLink domain, a serial roofline half overlapped."""
    p = gpu_moe(tp)
    p[P_SHARDS] = p[P_CHIPS] = chips
    p[P_OVERLAP] = 0.5
    return p + _vector(
        P_DENSE_COPIES=chips // tp, P_EXPERT_FLOPS_PER_TOKEN=2 * 58 * 8 * 44_040_192.0,
        P_EP=chips, P_EP_IMBALANCE=1.0, P_EP_DOMAIN=8,
        P_EP_FAST_BW=900e9 * 0.75, P_EP_FAST_LATENCY_S=8e-6,
        P_EP_SLOW_BW=50e9 * 0.75, P_EP_SLOW_LATENCY_S=10e-6,
    )


def test_chunks_go_longest_first_to_the_least_loaded_rank():
    # 2 ranks: 1000 → r0; 600 → r1; 500 → r1 (1100); 200 → r0 (1200). r0 is the busiest:
    # tokens 1200 + 6 decoders / 2 = 1203
    # pairs  1000·0 + 1000·1001/2 + 200·50 + 200·201/2 = 500,500 + 10,000 + 20,100
    #        = 530,600, plus (3,000 cached + 6) / 2 = 1,503 → 532,103
    # cached read 0 + 50 + 3,000 / 2 = 1,550
    takes = np.array([600, 1000, 200, 500], dtype=np.int64)
    cached = np.array([0, 0, 50, 0], dtype=np.int64)
    assert busiest_rank_load(takes, cached, 4, 2.0, 6.0, 3000.0) == (1203.0, 532103.0, 1550.0)


def test_only_the_listed_chunks_count_and_ties_go_to_the_lower_rank():
    takes = np.array([300, 300, 9999], dtype=np.int64)
    cached = np.zeros(3, dtype=np.int64)
    # two equal chunks on two of four ranks: rank 0 holds the first, and is reported
    assert busiest_rank_load(takes, cached, 2, 4.0, 0.0, 0.0) == (300.0, 45150.0, 0.0)


def test_ranks_are_the_dense_copies_or_the_attention_gpus():
    assert dp_ranks(moe_dp(8, 1)) == 8.0
    assert dp_ranks(moe_dp(8, 2)) == 4.0
    assert dp_ranks(_vector()) == 1.0
    assert dp_ranks(_vector(P_DENSE_COPIES=8, P_AFD_CHIPS=16)) == 16.0


def test_a_prompt_on_one_rank_holds_up_the_step():
    p = moe_dp(8, 1)
    # 64 decoders at 2,000 cached tokens each, plus one 1,000-token prompt
    n, kv = 64.0, 128_000.0
    pairs = kv + n + 1000 * 1001 / 2
    total = (65.0, 1064.0, pairs, kv)
    balanced_s, _ = step_cost(p, *total)
    rank = busiest_rank_load(np.array([1000]), np.zeros(1), 1, 8.0, n, kv)
    ranked_s, _ = step_cost_ranked(p, *total, *rank)
    # Dense FLOPs per token 2·36.5e9 − 2·58·8·44,040,192 = 3.21307e10; the busiest rank has
    # 1,008 tokens, so the step does 8 × 1,008 − 1,064 = 7,000 tokens' more dense math at
    # 8 × 1978.9e12 × 0.65 FLOP/s: ≥ 7,000 × 3.21307e10 / 1.029028e16 = 21.9 ms more.
    assert ranked_s - balanced_s > 0.0218
    # decode alone is balanced, so both forms agree exactly
    decode = (n, n, kv + n, kv)
    assert step_cost_ranked(p, *decode, n / 8, (kv + n) / 8, kv / 8) == step_cost(p, *decode)


def test_tensor_parallel_groups_all_reduce_their_own_tokens():
    # tp 2 over 8 chips: 4 groups, each all-reduces its own quarter of 4,000 tokens
    p = moe_dp(8, 2)
    q = p.copy()
    q[P_TP] = 1.0   # the same step without the all-reduces
    args = (0.0, 4000.0, 4000 * 4001 / 2, 0.0)
    ring_s = step_cost(p, *args)[0] - step_cost(q, *args)[0]
    # 2 × 61 layers × (2 × 1/2 × 1,000 × 7,168 × 2 B / 337.5e9 + 8e-6) = 6.1583e-3 s
    assert ring_s == pytest.approx(2 * 61 * (1000 * 7168 * 2 / 337.5e9 + 8e-6), rel=1e-9)
    assert p[P_DENSE_COPIES] == 4.0


batches = st.integers(1, 10).flatmap(lambda n: st.tuples(
    st.lists(st.integers(1, 1500), min_size=n, max_size=n),
    st.lists(st.integers(0, 8000), min_size=n, max_size=n),
))


@settings(max_examples=120, deadline=None)
@given(shape=st.sampled_from([(8, 1), (8, 2), (16, 1)]), chunks=batches,
       decoders=st.integers(0, 40), context=st.integers(0, 4000))
def test_ranked_step_matches_reference_with_explicit_ranks(shape, chunks, decoders, context):
    """Chunks placed as busiest_rank_load places them, decoders spread evenly with equal
    context, against the reference's per-request, per-rank accounting."""
    p = moe_dp(*shape)
    ranks = int(dp_ranks(p))
    takes, cached = (np.array(a, dtype=np.int64) for a in chunks)
    n_dec = decoders * ranks   # an even spread
    # where the chunks land, placed in the same order as the kernel places them
    loads = np.zeros(ranks)
    chunk_rank = np.zeros(len(takes), dtype=np.int64)
    for i in np.argsort(-takes, kind="mergesort"):
        chunk_rank[i] = int(np.argmin(loads))
        loads[chunk_rank[i]] += takes[i]
    new = np.concatenate([takes, np.ones(n_dec, dtype=np.int64)])
    ctx = np.concatenate([cached, np.full(n_dec, context, dtype=np.int64)])
    rank_of = np.concatenate([chunk_rank, np.arange(n_dec) % ranks])
    want = step_cost_ref(p, new, ctx, ranks=rank_of)

    kv_dec = float(n_dec * context)
    pairs = float(np.sum(takes * cached + takes * (takes + 1) // 2)) + kv_dec + n_dec
    totals = (float(len(new)), float(new.sum()), pairs, float(cached.sum()) + kv_dec)
    rank = busiest_rank_load(takes, cached, len(takes), float(ranks), float(n_dec), kv_dec)
    assert step_cost_ranked(p, *totals, *rank) == pytest.approx(want, rel=1e-9)


def _r1_one_prompt(pools: list[dict], input_tokens: int) -> dict:
    data = aggregated()
    data["model"] = "deepseek-r1"
    data["precision"] = {"weights": "fp4", "kv_cache": "fp8"}
    data["pools"] = pools
    data["workload"] = {"requests": 1, "arrivals": {"process": "fixed", "rate_per_s": 1},
                        "lengths": {"source": "fixed", "input_tokens": input_tokens,
                                    "output_tokens": 2}}
    return data


@pytest.mark.parametrize("role", ["both", "prefill"])
def test_a_lone_prompt_runs_on_one_rank_in_both_engines(make_scenario, role):
    """The aggregated replica (Python) and the disaggregated prefill replica (compiled)
    charge a lone 1,000-token prompt to one of the 8 data-parallel ranks."""
    pool = {"name": "serve", "role": role, "system": "b200", "replicas": 1,
            "parallelism": {"tp": 1, "ep": 8},
            "scheduler": {"policy": "chunked_prefill", "max_batch": 64,
                          "max_batch_tokens": 8192}}
    pools = [pool]
    if role == "prefill":
        pools.append({"name": "decode", "role": "decode", "system": "b200", "replicas": 1,
                      "parallelism": {"tp": 1, "ep": 8},
                      "scheduler": {"policy": "continuous", "max_batch": 64}})
    data = _r1_one_prompt(pools, 1000)
    if role == "prefill":
        data["links"] = [{"from": "serve", "to": "decode", "bandwidth_gbps": 800,
                          "latency_us": 10, "transfer": "bulk"}]
    scenario = make_scenario(data)
    result = simulate(scenario)
    p = pool_cost_vector(scenario.model, scenario.pools[0], scenario.precision)
    prompt = (1.0, 1000.0, 1000 * 1001 / 2, 0.0)
    one_rank_s, _ = step_cost_ranked(p, *prompt, 1000.0, 1000 * 1001 / 2, 0.0)
    spread_s, _ = step_cost(p, *prompt)
    end_s = result.requests["prefill_end_s"][0] - result.requests["arrival_s"][0]
    assert end_s == pytest.approx(one_rank_s, rel=1e-12)
    assert one_rank_s > 1.5 * spread_s


@pytest.mark.parametrize(("policy", "seed"), [("chunked_prefill", 1), ("continuous", 2),
                                              ("chunked_prefill", 3)])
def test_compiled_and_python_replicas_place_chunks_alike(make_scenario, policy, seed):
    """Prompts arriving together on a data-parallel prefill pool: the compiled replica and
    the general Python one (the same policy under a user's name) give identical runs."""
    pools = [{"name": "serve", "role": "prefill", "system": "b200", "replicas": 1,
              "parallelism": {"tp": 1, "ep": 8},
              "scheduler": {"policy": policy, "max_batch": 48, "max_batch_tokens": 6000}},
             {"name": "decode", "role": "decode", "system": "b200", "replicas": 1,
              "parallelism": {"tp": 1, "ep": 8},
              "scheduler": {"policy": "continuous", "max_batch": 64}}]
    data = _r1_one_prompt(pools, 1000)
    data["seed"] = seed
    data["links"] = [{"from": "serve", "to": "decode", "bandwidth_gbps": 800,
                      "latency_us": 10, "transfer": "bulk"}]
    data["workload"] = {"requests": 40, "arrivals": {"process": "poisson", "rate_per_s": 400},
                        "lengths": {"source": "uniform", "input_tokens": [50, 2500],
                                    "output_tokens": [2, 40]}}
    compiled = simulate(make_scenario(data))
    data["pools"][0]["scheduler"]["policy"] = {
        "chunked_prefill": "test_engine:PythonChunkedPrefill",
        "continuous": "test_engine:PythonContinuous"}[policy]
    python = simulate(make_scenario(data))
    for name in compiled.requests:
        np.testing.assert_array_equal(compiled.requests[name], python.requests[name])
    # several prompts shared a step, so the placement over ranks was exercised
    assert compiled.summary["pools"]["serve"]["steps"] < 40
