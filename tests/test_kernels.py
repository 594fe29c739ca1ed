"""Kernels against hand calculations and against the plain-numpy reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import simulator.kernels as kernels
from simulator.kernels import (
    ACC_BATCH_AREA,
    ACC_BUSY_S,
    ACC_ENERGY_J,
    ACC_NOW_S,
    HIST_BINS,
    HIST_BINS_PER_DECADE,
    HIST_LO_LOG10,
    N_ACC,
    N_PARAMS,
    P_ACT_BYTES_PER_TOKEN,
    P_AFD_ATTN_ACT_BYTES_PER_TOKEN,
    P_AFD_CHIPS,
    P_AFD_ETA_KV_MEMORY,
    P_ATTN_FLOPS_PER_PAIR,
    P_ATTN_PEAK_FLOPS,
    P_CHIPS,
    P_ETA_COMPUTE,
    P_ETA_KV_MEMORY,
    P_ETA_MEMORY,
    P_EXPERT_ACT_BYTES_PER_TOKEN,
    P_HEAD_ACT_BYTES_PER_SEQ,
    P_HOST_S_PER_TOKEN,
    P_IDLE_W,
    P_KV_BYTES_PER_TOKEN,
    P_LAYER_SYNC_S,
    P_MAX_W,
    P_MEM_BW,
    P_MOE_LAYERS,
    P_OVERLAP,
    P_PEAK_FLOPS,
    P_SHARDS,
    P_STEP_OVERHEAD_S,
    P_TP,
    decode_span,
    histogram_add,
    histogram_quantiles,
    kv_transfer_s,
    moe_touched_experts,
    new_histogram,
    step_cost,
    step_cost_ranked,
    steps_until_kv_full,
)
from simulator.kernels.reference import (
    decode_span_ref,
    step_cost_ref,
    steps_until_kv_full_ref,
)

LO, BPD = HIST_LO_LOG10, HIST_BINS_PER_DECADE


def _vector(**slots: float) -> np.ndarray:
    p = np.zeros(N_PARAMS)
    for name, value in slots.items():
        p[getattr(kernels, name)] = value
    return p


def gpu_dense(tp: int) -> np.ndarray:
    """Llama-3.3-70B at fp8 on H100 SXM, tp-way tensor parallel (figures as in test_costs).

    The cost-vector slots are whole-replica figures; only shards, tp and chips change with tp.
    """
    return _vector(
        P_LIN_FLOPS_PER_TOKEN=136_902_082_560.0,   # 2 × 80 layers × 855,638,016 params
        P_HEAD_FLOPS_PER_SEQ=2_101_346_304.0,      # 2 × 8192 × 128,256
        P_DENSE_WEIGHT_BYTES=69_501_714_432.0,     # 80 layers + lm_head, 1 byte each
        P_ATTN_FLOPS_PER_PAIR=2_621_440.0,         # 80 × 2 × 64 heads × (128 + 128)
        P_KV_BYTES_PER_TOKEN=163_840.0,            # 80 × 2 × 8 kv heads × 128 × 1 byte
        P_SHARDS=tp, P_PEAK_FLOPS=1978.9e12, P_ATTN_PEAK_FLOPS=1978.9e12, P_MEM_BW=3.35e12,
        P_ETA_COMPUTE=0.65, P_ETA_MEMORY=0.82, P_ETA_KV_MEMORY=0.82, P_TP=tp,
        P_ALLREDUCE_BW=450e9 * 0.75, P_ALLREDUCE_LATENCY_S=8e-6,
        P_LAYERS=80, P_HIDDEN=8192, P_ACT_BYTES=2.0, P_STEP_OVERHEAD_S=300e-6,
        P_IDLE_W=175.0, P_MAX_W=700.0, P_CHIPS=tp, P_OVERLAP=1.0,
    )


def gpu_moe(tp: int) -> np.ndarray:
    """A DeepSeek-like MoE: 58 MoE layers of 256 experts, top-8, 44 M params per expert."""
    return _vector(
        P_LIN_FLOPS_PER_TOKEN=2 * 36.5e9, P_HEAD_FLOPS_PER_SEQ=2 * 7168 * 129_280,
        P_DENSE_WEIGHT_BYTES=16.5e9, P_MOE_LAYERS=58, P_EXPERTS=256, P_TOP_K=8,
        P_EXPERT_BYTES=44_040_192.0, P_ATTN_FLOPS_PER_PAIR=61 * 278_528.0,
        P_KV_BYTES_PER_TOKEN=61 * 576.0,
        P_SHARDS=tp, P_PEAK_FLOPS=1978.9e12, P_ATTN_PEAK_FLOPS=1978.9e12, P_MEM_BW=3.35e12,
        P_ETA_COMPUTE=0.65, P_ETA_MEMORY=0.82, P_ETA_KV_MEMORY=0.82, P_TP=tp,
        P_ALLREDUCE_BW=450e9 * 0.75, P_ALLREDUCE_LATENCY_S=8e-6,
        P_LAYERS=61, P_HIDDEN=7168, P_ACT_BYTES=2.0, P_STEP_OVERHEAD_S=300e-6,
        P_IDLE_W=175.0, P_MAX_W=700.0, P_CHIPS=tp, P_OVERLAP=1.0,
    )


def lpu_dense() -> np.ndarray:
    """The 70B model spread over 256 LPUs (SRAM), synchronised layer by layer."""
    p = gpu_dense(1)
    p[P_SHARDS] = p[P_CHIPS] = 256
    p[P_PEAK_FLOPS], p[P_ATTN_PEAK_FLOPS], p[P_MEM_BW] = 1.23e15, 1.23e15, 150e12
    p[P_ETA_COMPUTE], p[P_ETA_MEMORY], p[P_ETA_KV_MEMORY] = 0.80, 0.90, 0.90
    p[P_LAYER_SYNC_S], p[P_STEP_OVERHEAD_S] = 12e-6, 20e-6
    p[P_IDLE_W], p[P_MAX_W] = 120.0, 400.0
    return p


def gpu_moe_ep(ep: int, imbalance: float) -> np.ndarray:
    """The MoE with experts over ``ep`` GPUs in 72-GPU NVLink domains, attention copied
    ep times (data-parallel), all-to-alls over NVLink inside a domain and NICs across."""
    p = gpu_moe(1)
    p[P_SHARDS] = p[P_CHIPS] = ep
    extra = _vector(P_DENSE_COPIES=ep, P_EXPERT_FLOPS_PER_TOKEN=2 * 58 * 8 * 44_040_192.0,
                    P_EP=ep, P_EP_IMBALANCE=imbalance, P_EP_DOMAIN=72,
                    P_EP_FAST_BW=900e9 * 0.75, P_EP_FAST_LATENCY_S=8e-6,
                    P_EP_SLOW_BW=50e9 * 0.75, P_EP_SLOW_LATENCY_S=10e-6)
    return p + extra


def lpu_split() -> np.ndarray:
    """FFN on 2,048 LPUs spanning 8 racks, attention and KV on 8 GPUs (attention–FFN split)."""
    p = lpu_dense()
    p[P_SHARDS] = p[P_CHIPS] = 2048
    extra = _vector(P_PP_STAGES=8, P_PP_HOP_BW=200e9, P_PP_HOP_LATENCY_S=5e-6,
                    P_AFD_CHIPS=8, P_AFD_PEAK_FLOPS=16.7e15, P_AFD_ATTN_PEAK_FLOPS=8.35e15,
                    P_AFD_MEM_BW=22e12,
                    P_AFD_ETA_COMPUTE=0.65, P_AFD_ETA_MEMORY=0.82, P_AFD_ETA_KV_MEMORY=0.82,
                    P_AFD_ATTN_FLOPS_PER_TOKEN=2 * 80 * 150_994_944.0,
                    P_AFD_ATTN_WEIGHT_BYTES=80 * 150_994_944.0,
                    P_AFD_EXCHANGE_BW=150e9, P_AFD_EXCHANGE_LATENCY_S=5e-6,
                    P_AFD_IDLE_W=450.0, P_AFD_MAX_W=1800.0, P_AFD_OVERLAP=0.5)
    return p + extra


def at_fp4(p: np.ndarray) -> np.ndarray:
    """FP4 weights: the linear layers at twice the FP8 peak, attention still at FP8."""
    q = p.copy()
    q[P_PEAK_FLOPS] = 2.0 * p[P_ATTN_PEAK_FLOPS]
    return q


def with_overlap(p: np.ndarray, overlap: float) -> np.ndarray:
    q = p.copy()
    q[P_OVERLAP] = overlap
    return q


def with_per_token_costs(p: np.ndarray) -> np.ndarray:
    """The activation traffic of the model each vector stands for (simulator.costs: the
    70B's 80 layers × 137,216 GEMM values, R1's dense path and its 8 experts, bf16) and a
    microsecond of host time per token."""
    q = p.copy()
    q[P_HOST_S_PER_TOKEN] = 1e-6
    if p[P_MOE_LAYERS] > 0:
        q[P_ACT_BYTES_PER_TOKEN], q[P_EXPERT_ACT_BYTES_PER_TOKEN] = 14_905_984.0, 19_005_440.0
        q[P_HEAD_ACT_BYTES_PER_SEQ] = 2.0 * (7168 + 129_280)
    else:
        q[P_ACT_BYTES_PER_TOKEN], q[P_HEAD_ACT_BYTES_PER_SEQ] = 21_954_560.0, 272_896.0
    if p[P_AFD_CHIPS] > 0:
        q[P_AFD_ATTN_ACT_BYTES_PER_TOKEN] = 80 * 34_816 * 2.0
    return q


VECTORS = {
    "dense-tp1": gpu_dense(1),
    "dense-tp8": gpu_dense(8),
    "moe-tp1": gpu_moe(1),
    "moe-tp8": gpu_moe(8),
    "lpu": lpu_dense(),
    "moe-ep64": gpu_moe_ep(64, 1.0),
    "moe-ep144-imbalanced": gpu_moe_ep(144, 1.3),
    "lpu-split": lpu_split(),
    "dense-tp1-serial": with_overlap(gpu_dense(1), 0.0),
    "moe-ep64-part-overlap": with_overlap(gpu_moe_ep(64, 1.0), 0.4),
    "moe-ep64-fp4": at_fp4(with_overlap(gpu_moe_ep(64, 1.0), 0.0)),
    "dense-tp8-per-token": with_per_token_costs(with_overlap(gpu_dense(8), 0.2)),
    "moe-ep144-imbalanced-per-token": with_per_token_costs(gpu_moe_ep(144, 1.3)),
    "lpu-split-per-token": with_per_token_costs(lpu_split()),
}


def _batch_sums(new: np.ndarray, cached: np.ndarray, sampling: np.ndarray
                ) -> tuple[float, float, float, float]:
    """The engine's sums: samplers, new tokens, causal pairs, cached tokens read."""
    pairs = float(np.sum(new * cached + new * (new + 1) // 2))
    return float(sampling.sum()), float(new.sum()), pairs, float(cached.sum())


requests = st.integers(1, 12).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, 600), min_size=n, max_size=n),
    st.lists(st.integers(0, 20_000), min_size=n, max_size=n),
    st.lists(st.booleans(), min_size=n, max_size=n),
))


# ---------------------------------------------------------------- step_cost
@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(sorted(VECTORS)), batch=requests)
def test_step_cost_matches_reference(name, batch):
    p = VECTORS[name]
    new, cached, sampling = (np.array(a, dtype=np.int64) for a in batch)
    got = step_cost(p, *_batch_sums(new, cached, sampling))
    want = step_cost_ref(p, new, cached, sampling)
    assert got == pytest.approx(want, rel=1e-12, abs=0.0)


@settings(max_examples=100, deadline=None)
@given(name=st.sampled_from(sorted(VECTORS)), batch=requests)
def test_energy_at_least_idle_power_for_the_step(name, batch):
    p = VECTORS[name]
    new, cached, sampling = (np.array(a, dtype=np.int64) for a in batch)
    time_s, energy_j = step_cost(p, *_batch_sums(new, cached, sampling))
    assert energy_j >= p[P_CHIPS] * p[P_IDLE_W] * time_s
    assert energy_j <= p[P_CHIPS] * p[P_MAX_W] * time_s * (1 + 1e-12)


def test_empty_step_costs_nothing():
    assert step_cost(gpu_dense(8), 0.0, 0.0, 0.0, 0.0) == (0.0, 0.0)


def test_batch1_decode_is_memory_bound():
    # H100 × 8: compute 8 × 1978.9e12 × 0.65 = 1.029028e16 FLOP/s,
    #           memory  8 × 3.35e12 × 0.82   = 2.1976e13 B/s.
    # lin:  weights 69,501,714,432 B / 2.1976e13 = 3.16262e-3 s
    #       (FLOPs 136.90e9 + 2.10e9 = 139.0e9 / 1.029e16 = 1.35e-5 s: 234× smaller)
    # attn: (1000 + 1) × 163,840 B / 2.1976e13 = 7.4629e-6 s
    # comm: 2 × 80 × (2 × 7/8 × 8192 × 2 B / 337.5e9 + 8e-6) = 160 × 8.08495e-6 = 1.29359e-3 s
    # step: 3.16262e-3 + 7.4629e-6 + 1.29359e-3 + 3e-4 = 4.76367e-3 s
    time_s, energy_j = step_cost(gpu_dense(8), 1.0, 1.0, 1001.0, 1000.0)
    assert time_s == pytest.approx(4.76367e-3, rel=1e-5)
    # energy: 8 × 175 W × 4.76367e-3 s + 8 × 525 W × (3.16262e-3 + 7.4629e-6) s
    #       = 6.66914 + 13.3143 = 19.9834 J
    assert energy_j == pytest.approx(19.9834, rel=1e-5)


def test_activations_add_to_the_memory_stream_of_a_prefill():
    # one 4,096-token prompt on one H100, math and memory run one after the other:
    # math 4,096 × 136,902,082,560 + 2,101,346,304 = 5.607568e14 FLOPs / 1.286285e15 FLOP/s
    #      = 0.4359477 s, so memory stays the shorter stream with or without activations;
    # activations 4,096 × 21,954,560 + 272,896 = 8.992735e10 B at 3.35e12 × 0.82 = 2.747e12
    # B/s add 3.273613e-2 s, drawing full power on the one chip (700 W)
    p = with_overlap(gpu_dense(1), 0.0)
    args = (1.0, 4096.0, 4096.0 * 4097.0 / 2.0, 0.0)
    base_s, base_j = step_cost(p, *args)
    with_act = with_per_token_costs(p)
    with_act[P_HOST_S_PER_TOKEN] = 0.0
    act_s, act_j = step_cost(with_act, *args)
    assert act_s - base_s == pytest.approx(3.273613e-2, rel=1e-6)
    assert act_j - base_j == pytest.approx(700.0 * 3.273613e-2, rel=1e-6)


def test_host_time_is_per_token_of_the_busiest_rank_at_idle_power():
    # 1 µs a token a chip. Tensor parallelism splits a 4,096-token prompt's wait over its
    # 8 GPUs: it adds 0.512 ms, the 8 chips idling at 175 W meanwhile
    p = gpu_dense(8)
    host = p.copy()
    host[P_HOST_S_PER_TOKEN] = 1e-6
    args = (1.0, 4096.0, 4096.0 * 4097.0 / 2.0, 0.0)
    (base_s, base_j), (host_s, host_j) = step_cost(p, *args), step_cost(host, *args)
    assert host_s - base_s == pytest.approx(0.512e-3, rel=1e-9)
    assert host_j - base_j == pytest.approx(8 * 175.0 * 0.512e-3, rel=1e-9)
    # 64 data-parallel ranks of one GPU: 6,400 tokens shared evenly take 100 µs; with the
    # busiest rank at 200 of them, 200 µs
    moe = gpu_moe_ep(64, 1.0)
    moe_host = moe.copy()
    moe_host[P_HOST_S_PER_TOKEN] = 1e-6
    even = (64.0, 6400.0, 6400.0 * 1000.0, 6400.0 * 999.0)
    assert (step_cost(moe_host, *even)[0] - step_cost(moe, *even)[0]
            == pytest.approx(1e-4, rel=1e-6))
    ranked = (*even, 200.0, 200.0 * 1000.0, 200.0 * 999.0)
    assert (step_cost_ranked(moe_host, *ranked)[0] - step_cost_ranked(moe, *ranked)[0]
            == pytest.approx(2e-4, rel=1e-6))


def test_the_kv_cache_streams_at_its_own_efficiency():
    # a long-context decode of 8 sequences on H100 × 8: the attention reads
    # 8 × (4,000 + 1) × 163,840 B = 5.24419e9 B, memory-bound at either efficiency
    # (its FLOPs, 8 × 4,001 × 2,621,440 = 8.39e10, take 8.2e-6 s at 1.029e16 FLOP/s)
    p = gpu_dense(8)
    slow = p.copy()
    slow[P_ETA_KV_MEMORY] = 0.41
    kv_bytes = 8 * 4001 * 163_840.0
    base_s, _ = step_cost(p, 8.0, 8.0, 8 * 4001.0, 8 * 4000.0)
    slow_s, _ = step_cost(slow, 8.0, 8.0, 8 * 4001.0, 8 * 4000.0)
    # only the cache's traffic slows: the weights still stream at η_memory
    assert slow_s - base_s == pytest.approx(kv_bytes / (8 * 3.35e12 * 0.41)
                                            - kv_bytes / (8 * 3.35e12 * 0.82), rel=1e-9)
    reference_s, _ = step_cost_ref(slow, np.ones(8), np.full(8, 4000.0))
    assert reference_s == pytest.approx(slow_s, rel=1e-9)


def test_the_attention_gpus_of_a_split_stream_the_cache_at_their_own_efficiency():
    # 64 sequences of 8,000 tokens on the split's 8 attention GPUs read 64 × 8,001 × 163,840 B
    # = 8.39e10 B of cache, far more than their attention weights' 80 × 150,994,944 B =
    # 1.21e10 B or the math, so the side is memory-bound at either η_kv
    p = lpu_split()
    slow = p.copy()
    slow[P_AFD_ETA_KV_MEMORY] = 0.41
    kv_bytes = 64 * 8001 * 163_840.0
    args = (64.0, 64.0, 64 * 8001.0, 64 * 8000.0)
    base_s, _ = step_cost(p, *args)
    slow_s, _ = step_cost(slow, *args)
    assert slow_s - base_s == pytest.approx(kv_bytes / (8 * 22e12 * 0.41)
                                            - kv_bytes / (8 * 22e12 * 0.82), rel=1e-9)
    reference_s, _ = step_cost_ref(slow, np.ones(64), np.full(64, 8000.0))
    assert reference_s == pytest.approx(slow_s, rel=1e-9)


def test_long_prefill_is_compute_bound():
    p = gpu_dense(8)
    # lin FLOPs 8192 × 136,902,082,560 + 2,101,346,304 = 1.1215040e15
    #   / 1.029028e16 = 0.1089867 s (weights 3.16e-3 s: compute-bound)
    # attn pairs 8192 × 8193 / 2 = 33,558,528 × 2,621,440 = 8.79717e13 FLOPs / 1.029028e16
    #   = 8.549006e-3 s (KV 8192 × 163,840 B / 2.1976e13 = 6.1e-5 s)
    # comm 160 × (1.75 × 8192 × 8192 × 2 B / 337.5e9 + 8e-6) = 0.1126310 s
    # step 0.1089867 + 0.0085490 + 0.1126310 + 0.0003 = 0.2304667 s
    time_s, _ = step_cost(p, 1.0, 8192.0, 33_558_528.0, 0.0)
    assert time_s == pytest.approx(0.2304667, rel=1e-6)
    # with attention, the network and the overhead switched off only t_lin is left
    lin_only = p.copy()
    lin_only[[P_ATTN_FLOPS_PER_PAIR, P_KV_BYTES_PER_TOKEN, P_STEP_OVERHEAD_S]] = 0.0
    lin_only[P_TP] = 1.0
    time_s, _ = step_cost(lin_only, 1.0, 8192.0, 33_558_528.0, 0.0)
    assert time_s == pytest.approx(1.1215040e15 / 1.029028e16, rel=1e-7)


def test_serial_roofline_adds_the_shorter_stream():
    # H100 × 1, batch 256 decode at 1000 cached tokens each:
    # lin  FLOPs 256 × (136,902,082,560 + 2,101,346,304) = 3.558488e13 / 1.286285e15
    #      = 2.766522e-2 s; weights 69,501,714,432 B / 2.747e12 = 2.530096e-2 s
    # attn pairs 256 × 1001 = 256,256 × 2,621,440 = 6.717621e11 FLOPs / 1.286285e15
    #      = 5.22246e-4 s
    #      KV (256,000 + 256) × 163,840 B / 2.747e12 = 1.528359e-2 s
    # ideal: 2.766522e-2 + 1.528359e-2 + 3e-4 = 4.324881e-2 s
    # serial: + 2.530096e-2 + 5.22246e-4 = 6.907201e-2 s; half overlap: 5.616041e-2 s
    args = (256.0, 256.0, 256.0 * 1001.0, 256_000.0)
    ideal_s, _ = step_cost(gpu_dense(1), *args)
    serial_s, serial_j = step_cost(with_overlap(gpu_dense(1), 0.0), *args)
    half_s, _ = step_cost(with_overlap(gpu_dense(1), 0.5), *args)
    assert ideal_s == pytest.approx(4.324881e-2, rel=1e-5)
    assert serial_s == pytest.approx(6.907201e-2, rel=1e-5)
    assert half_s == pytest.approx(5.616041e-2, rel=1e-5)
    # the chip draws its maximum for the whole exposed time: 175 × 6.9072e-2 + 525 ×
    # (6.907201e-2 − 3e-4) = 12.0876 + 36.1053 = 48.1929 J
    assert serial_j == pytest.approx(48.1929, rel=1e-4)


def test_attention_math_runs_at_its_own_rate():
    # one 8,192-token prompt on H100 × 1: 8192 × 8193 / 2 = 33,558,528 causal pairs
    # × 2,621,440 FLOPs = 8.797167e13 FLOPs; at 1978.9e12 × 0.65 = 1.286285e15 FLOP/s
    # that is 6.839205e-2 s, far above its KV write (8192 × 163,840 B / 2.747e12 = 4.886e-4).
    # FP4 weights double the linear layers' peak, not attention's: the step's attention
    # still takes 6.839205e-2 s, where charging it at the FP4 peak would give 3.419602e-2.
    args = (1.0, 8192.0, 8192.0 * 8193.0 / 2.0, 0.0)
    fp8_s, _ = step_cost(gpu_dense(1), *args)
    fp4 = at_fp4(gpu_dense(1))
    fp4_s, _ = step_cost(fp4, *args)
    fp4[P_ATTN_PEAK_FLOPS] = fp4[P_PEAK_FLOPS]
    attention_at_fp4_s, _ = step_cost(fp4, *args)
    lin_fp8_s = (8192 * 136_902_082_560.0 + 2_101_346_304.0) / 1.286285e15
    assert fp8_s - fp4_s == pytest.approx(lin_fp8_s / 2.0, rel=1e-5)
    assert fp4_s - attention_at_fp4_s == pytest.approx(3.419602e-2, rel=1e-5)


def test_lpu_step_pays_layer_sync():
    p = lpu_dense()
    # 256 LPUs: memory 256 × 150e12 × 0.9 = 3.456e16 B/s, compute 256 × 1.23e15 × 0.8
    # = 2.51904e17 FLOP/s. Batch 1, 1000 cached:
    # lin  max(139.003e9 / 2.51904e17 = 5.518e-7, 69.5017e9 / 3.456e16 = 2.01105e-6) s
    # attn max(1001 × 2,621,440 / 2.51904e17 = 1.04e-8, 1001 × 163,840 / 3.456e16 = 4.745e-9)
    # sync 80 × 12e-6 = 9.6e-4 s; overhead 2e-5 s
    # step 2.01105e-6 + 1.0417e-8 + 9.6e-4 + 2e-5 = 9.82021e-4 s
    time_s, energy_j = step_cost(p, 1.0, 1.0, 1001.0, 1000.0)
    assert time_s == pytest.approx(9.82021e-4, rel=1e-5)
    # energy 256 × 120 × 9.82021e-4 + 256 × 280 × 2.02146e-6 = 30.1677 + 0.144899 = 30.3126 J
    assert energy_j == pytest.approx(30.3126, rel=1e-5)


# ---------------------------------------------------------------- MoE
def test_moe_touched_experts():
    # one token touches exactly its top-k: 256 × (1 − 248/256) = 8
    assert moe_touched_experts(256.0, 8.0, 1.0) == pytest.approx(8.0, rel=1e-14)
    # 32 tokens: (1 − 8/256)^32 = 0.96875^32 = 0.3620553 → 256 × 0.6379447 = 163.3138
    assert moe_touched_experts(256.0, 8.0, 32.0) == pytest.approx(163.3138, rel=1e-6)
    # a large batch touches every expert
    assert moe_touched_experts(256.0, 8.0, 4096.0) == pytest.approx(256.0, rel=1e-12)
    assert moe_touched_experts(256.0, 8.0, 0.0) == 0.0
    assert moe_touched_experts(0.0, 0.0, 10.0) == 0.0


def test_moe_decode_reads_only_touched_experts():
    p = gpu_moe(8)
    p[[P_ATTN_FLOPS_PER_PAIR, P_KV_BYTES_PER_TOKEN, P_STEP_OVERHEAD_S]] = 0.0
    p[P_TP] = 1.0
    # batch 32: 16.5e9 + 58 × 163.3138 × 44,040,192 B = 16.5e9 + 417.158e9 = 433.658e9 B
    #   / (8 × 3.35e12 × 0.82 = 2.1976e13) = 1.973324e-2 s (FLOPs 32 × 73e9 = 2.34e12: 2.3e-4 s)
    time_s, _ = step_cost(p, 32.0, 32.0, 0.0, 0.0)
    assert time_s == pytest.approx(1.973324e-2, rel=1e-6)
    # batch 1: 16.5e9 + 58 × 8 × 44,040,192 = 36.9346e9 B / 2.1976e13 = 1.680681e-3 s
    time_s, _ = step_cost(p, 1.0, 1.0, 0.0, 0.0)
    assert time_s == pytest.approx(1.680681e-3, rel=1e-6)


# ---------------------------------------------------------------- decode_span
def _loop(p, n, kv, kmax, horizon_s, start_s):
    """decode_span spelled out with step_cost, accumulating the same way."""
    acc = np.zeros(N_ACC)
    acc[ACC_NOW_S] = start_s
    steps = 0
    while steps < kmax:
        t, e = step_cost(p, n, n, kv + n, kv)
        acc[ACC_NOW_S] += t
        acc[ACC_BUSY_S] += t
        acc[ACC_ENERGY_J] += e
        acc[ACC_BATCH_AREA] += n * t
        kv += n
        steps += 1
        if acc[ACC_NOW_S] >= horizon_s:
            break
    return steps, acc


def _span(p, n, kv, kmax, horizon_s, start_s=0.0, record_from=0):
    acc = np.zeros(N_ACC)
    acc[ACC_NOW_S] = start_s
    hist = new_histogram()
    steps = decode_span(p, float(n), float(kv), kmax, horizon_s, acc, record_from, hist, LO, BPD)
    return steps, acc, hist


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_decode_span_is_the_step_loop_bit_for_bit(name):
    p = VECTORS[name]
    steps, acc, hist = _span(p, 24, 24 * 3000, 200, math.inf, start_s=17.25)
    want_steps, want_acc = _loop(p, 24.0, 24 * 3000.0, 200, math.inf, 17.25)
    assert steps == want_steps == 200
    assert np.array_equal(acc, want_acc)
    assert hist.sum() == 200 * 24


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(sorted(VECTORS)),
       cached=st.lists(st.integers(0, 30_000), min_size=1, max_size=16),
       kmax=st.integers(1, 60), cut=st.integers(1, 60), start_s=st.floats(0.0, 1e4))
def test_decode_span_matches_reference(name, cached, kmax, cut, start_s):
    p = VECTORS[name]
    ctx = np.array(cached, dtype=np.int64)
    full = decode_span_ref(p, ctx, kmax, math.inf, start_s)
    # a horizon in the middle of step `cut` must stop the span right after that step
    cut = min(cut, kmax)
    horizon_s = start_s + sum(full.gaps_s[:cut]) - 0.5 * full.gaps_s[cut - 1]
    want = decode_span_ref(p, ctx, kmax, horizon_s, start_s)
    assert want.steps == cut
    steps, acc, hist = _span(p, len(ctx), ctx.sum(), kmax, horizon_s, start_s)
    assert steps == want.steps
    got = acc[[ACC_NOW_S, ACC_BUSY_S, ACC_ENERGY_J, ACC_BATCH_AREA]]
    assert got == pytest.approx([want.end_s, want.busy_s, want.energy_j, want.batch_area],
                                rel=1e-12, abs=0.0)
    assert hist.sum() == steps * len(ctx)


def test_decode_span_horizon_stops_at_first_boundary_at_or_past_it():
    p = gpu_dense(8)
    _, acc3 = _loop(p, 4.0, 4000.0, 3, math.inf, 0.0)
    end3 = acc3[ACC_NOW_S]
    # exactly on the end of step 3: stops there
    assert _span(p, 4, 4000, 100, end3)[0] == 3
    # just past it: step 4 is in progress at the horizon and completes
    assert _span(p, 4, 4000, 100, math.nextafter(end3, math.inf))[0] == 4
    # a horizon already behind the clock still runs one step
    assert _span(p, 4, 4000, 100, 0.0, start_s=5.0)[0] == 1


def test_decode_span_respects_kmax_and_records_from():
    p = lpu_dense()
    steps, acc, hist = _span(p, 7, 700, 0, math.inf)
    assert steps == 0 and not acc.any() and not hist.any()
    steps, _, hist = _span(p, 7, 700, 13, math.inf)
    assert steps == 13 and hist.sum() == 13 * 7
    # the first step's gaps are the engine's to record: 12 steps × 7 requests go in
    steps, _, hist = _span(p, 7, 700, 13, math.inf, record_from=1)
    assert steps == 13 and hist.sum() == 12 * 7
    # an LPU decode step at batch 7 is ≈ 0.98 ms, all 12 land in one or two adjacent bins
    assert np.count_nonzero(hist) <= 2


# ---------------------------------------------------------------- KV
@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(0, 300), st.integers(-1, 3)), min_size=1,
                     max_size=10),
       free_blocks=st.integers(0, 12), block_tokens=st.sampled_from([1, 4, 16, 64]),
       kmax=st.integers(0, 400))
def test_steps_until_kv_full_matches_brute_force(rows, free_blocks, block_tokens, kmax):
    ctx = np.array([c for c, _ in rows], dtype=np.int64)
    held = -(-ctx // block_tokens) + np.array([d for _, d in rows], dtype=np.int64)
    blocks = np.maximum(held, 0)
    got = steps_until_kv_full(ctx, blocks, len(ctx), free_blocks, block_tokens, kmax)
    assert got == steps_until_kv_full_ref(ctx, blocks, free_blocks, block_tokens, kmax)


def test_steps_until_kv_full_hand_case():
    # block 16; request A at 30 tokens holds 2 blocks (room to 32), B at 16 holds 1 (full).
    # k steps need ceil((30+k)/16) − 2 + ceil((16+k)/16) − 1 blocks:
    # k = 2 → 0 + 1 = 1; k = 3 → 1 + 1 = 2; k = 17 → 1 + 2 = 3
    ctx = np.array([30, 16], dtype=np.int64)
    blocks = np.array([2, 1], dtype=np.int64)
    assert steps_until_kv_full(ctx, blocks, 2, 0, 16, 100) == 0
    assert steps_until_kv_full(ctx, blocks, 2, 1, 16, 100) == 2
    assert steps_until_kv_full(ctx, blocks, 2, 2, 16, 100) == 16
    assert steps_until_kv_full(ctx, blocks, 2, 1000, 16, 100) == 100


def test_kv_transfer_bulk_and_layerwise():
    # 8192 tokens × 163,840 B = 1,342,177,280 B over 800 Gb/s = 100e9 B/s: 13.4217728 ms
    kv_bytes = 8192 * 163_840.0
    bulk = kv_transfer_s(kv_bytes, 100e9, 10e-6, 0.1, 80.0, False)
    assert bulk == pytest.approx(10e-6 + 13.4217728e-3, rel=1e-12)
    # layer-wise behind a 0.1 s step: only the last layer shows, 13.4217728e-3 / 80
    hidden = kv_transfer_s(kv_bytes, 100e9, 10e-6, 0.1, 80.0, True)
    assert hidden == pytest.approx(10e-6 + 1.6777216e-4, rel=1e-12)
    # behind a 5 ms step: 13.4217728 − 5 = 8.4217728 ms still shows
    partial = kv_transfer_s(kv_bytes, 100e9, 10e-6, 5e-3, 80.0, True)
    assert partial == pytest.approx(10e-6 + 8.4217728e-3, rel=1e-12)


# ---------------------------------------------------------------- histogram
def test_histogram_quantiles_match_numpy_on_lognormal():
    rng = np.random.default_rng(7)
    sample = rng.lognormal(mean=math.log(0.02), sigma=1.0, size=100_000)
    hist = new_histogram()
    for value in sample:
        histogram_add(hist, LO, BPD, float(value), 1.0)
    assert hist.sum() == 100_000
    qs = np.array([0.01, 0.1, 0.5, 0.9, 0.99])
    got = histogram_quantiles(hist, LO, BPD, qs)
    # a bin is 10**(1/200) wide: its geometric centre is within 10**(1/400) − 1 = 0.577 %
    np.testing.assert_allclose(got, np.quantile(sample, qs), rtol=0.006)


def test_histogram_edges():
    hist = new_histogram()
    assert hist.shape == (HIST_BINS,) and hist.dtype == np.float64
    assert np.isnan(histogram_quantiles(hist, LO, BPD, np.array([0.5]))).all()
    histogram_add(hist, LO, BPD, 0.0, 2.0)         # zero → bin 0
    histogram_add(hist, LO, BPD, -1.0, 1.0)        # negative → bin 0
    histogram_add(hist, LO, BPD, 1e9, 1.0)         # past 1e5 s → last bin
    histogram_add(hist, LO, BPD, math.inf, 1.0)    # → last bin
    assert hist[0] == 3.0 and hist[-1] == 2.0
    # 1e-3 s: (−3 − (−7)) × 200 = bin 800, whose centre is 10**(−3 + 0.5/200) = 1.005773e-3
    one = new_histogram()
    histogram_add(one, LO, BPD, 1e-3, 5.0)
    assert one[800] == 5.0
    got = histogram_quantiles(one, LO, BPD, np.array([0.0, 0.5, 1.0]))
    np.testing.assert_allclose(got, 1.005773e-3, rtol=1e-6)
