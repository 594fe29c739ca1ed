"""Cost vectors and memory sizing from model cards and profiles, against hand arithmetic."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from simulator.config.scenario import Precision
from simulator.costs import (
    attention_flops_per_s,
    decode_step_s,
    kv_capacity_tokens,
    lpu_chips_for,
    replica_cost_vector,
    weights_per_chip_bytes,
)
from simulator.errors import ScenarioError
from simulator.kernels import (
    N_PARAMS,
    P_ACT_BYTES,
    P_ACT_BYTES_PER_TOKEN,
    P_ALLREDUCE_BW,
    P_ALLREDUCE_LATENCY_S,
    P_ATTN_FLOPS_PER_PAIR,
    P_ATTN_PEAK_FLOPS,
    P_CHIPS,
    P_DENSE_WEIGHT_BYTES,
    P_ETA_COMPUTE,
    P_ETA_KV_MEMORY,
    P_ETA_MEMORY,
    P_EXPERT_ACT_BYTES_PER_TOKEN,
    P_EXPERT_BYTES,
    P_EXPERTS,
    P_HEAD_ACT_BYTES_PER_SEQ,
    P_HEAD_FLOPS_PER_SEQ,
    P_HIDDEN,
    P_IDLE_W,
    P_KV_BYTES_PER_TOKEN,
    P_LAYER_SYNC_S,
    P_LAYERS,
    P_LIN_FLOPS_PER_TOKEN,
    P_MAX_W,
    P_MEM_BW,
    P_MOE_LAYERS,
    P_OVERLAP,
    P_PEAK_FLOPS,
    P_SHARDS,
    P_STEP_OVERHEAD_S,
    P_TOP_K,
    P_TP,
)

FP8 = Precision("fp8", "fp8")
BF16_FP8 = Precision("bf16", "fp8")


def dense_model(tied: bool) -> SimpleNamespace:
    """10 layers of 12 M linear params, hidden 1000, vocab 5000 (5 M-param tables).

    total = 120 M + 5 M embedding (+ 5 M lm_head when untied); KV: 10 layers × 200 values.
    A layer: attention 8 heads × 125 with 4 KV heads (q 1 M, k and v 0.5 M each, o 1 M)
    and an MLP of width 3,000 (9 M).
    """
    head = 0 if tied else 5_000_000
    total = 120_000_000 + 5_000_000 + head
    return SimpleNamespace(
        name="dense", num_layers=10, hidden_size=1000, vocab_size=5000,
        num_attention_heads=8, num_kv_heads=4, head_dim=125, intermediate_size=3000,
        mla=None, dense_layers=10,
        tie_word_embeddings=tied, moe=None, moe_layers=0, expert_params=0,
        embedding_params=5_000_000, lm_head_params=head, active_params=total,
        non_expert_params=total, attn_flops_per_pair_per_layer=4000,
        kv_bytes_per_token=lambda b: 10 * 200 * b, kv_copies=lambda tp: 1,
        weight_bytes=lambda b: total * b,
        max_context_tokens=32_768,
    )


def moe_model() -> SimpleNamespace:
    """10 layers, 8 of them MoE with 64 experts of 3 M params, top-4; untied 5 M tables.

    non-expert = 100 M (attention, routers, shared experts) + 2 dense FFNs × 20 M
                 + 5 M + 5 M = 150 M
    routed     = 8 × 64 × 3 M = 1,536 M; total 1,686 M
    active     = 1,686 M − 8 × 60 idle × 3 M = 246 M
    """
    return SimpleNamespace(
        name="moe", num_layers=10, hidden_size=1000, vocab_size=5000,
        num_attention_heads=8, num_kv_heads=4, head_dim=125, intermediate_size=6000,
        mla=None, dense_layers=2, tie_word_embeddings=False,
        moe=SimpleNamespace(num_experts=64, experts_per_token=4, shared_experts=1,
                            expert_intermediate_size=1000),
        moe_layers=8, expert_params=3_000_000, embedding_params=5_000_000,
        lm_head_params=5_000_000, active_params=246_000_000, non_expert_params=150_000_000,
        attn_flops_per_pair_per_layer=4000, kv_bytes_per_token=lambda b: 10 * 200 * b,
        kv_copies=lambda tp: 1,
        weight_bytes=lambda b: 1_686_000_000 * b, max_context_tokens=32_768,
    )


def chip_rates(rates: dict[str, float]) -> SimpleNamespace:
    return SimpleNamespace(dense_flops_per_s=rates, flops_for=rates.__getitem__)


def gpu_system() -> SimpleNamespace:
    return SimpleNamespace(
        **vars(chip_rates({"fp8": 2.0e15, "bf16": 1.0e15})),
        name="gpu", kind="gpu", chips_per_system=8,
        memory_bytes=80e9, memory_bandwidth_bytes_per_s=3.0e12, memory_usable_fraction=0.9,
        scaleup_bandwidth_bytes_per_s=400e9, scaleup_latency_s=5e-6,
        idle_power_w=150.0, max_power_w=700.0,
        compute_efficiency=0.6, memory_efficiency=0.8, kv_memory_efficiency=0.8,
        network_efficiency=0.75,
        step_overhead_s=2e-4, host_time_per_token_s=0.0, layer_sync_latency_s=0.0,
        compute_memory_overlap=1.0,
    )


def lpu_system() -> SimpleNamespace:
    gpu = vars(gpu_system())
    return SimpleNamespace(**{
        **gpu, "name": "lpu", "kind": "lpu", "chips_per_system": 256,
        "memory_bytes": 230e6, "memory_usable_fraction": 0.9,
        "memory_bandwidth_bytes_per_s": 80e12, "layer_sync_latency_s": 10e-6,
        "idle_power_w": 100.0, "max_power_w": 300.0,
    })


@pytest.mark.parametrize("tied", [False, True])
def test_dense_vector(tied):
    p = replica_cost_vector(dense_model(tied), gpu_system(), FP8, 4, 4)
    assert p.shape == (N_PARAMS,) and p.dtype == np.float64
    # linear: 2 × 120 M (tables excluded either way); lm_head 2 × 1000 × 5000 = 10 M
    assert p[P_LIN_FLOPS_PER_TOKEN] == 240e6
    assert p[P_HEAD_FLOPS_PER_SEQ] == 10e6
    # bytes read each step: 120 M layer weights + the 5 M lm_head matrix (the embedding
    # table itself when tied), 1 byte each at fp8
    assert p[P_DENSE_WEIGHT_BYTES] == 125e6
    assert p[P_MOE_LAYERS] == p[P_EXPERTS] == p[P_TOP_K] == p[P_EXPERT_BYTES] == 0.0
    assert p[P_ATTN_FLOPS_PER_PAIR] == 10 * 4000
    assert p[P_KV_BYTES_PER_TOKEN] == 2000.0
    assert p[P_SHARDS] == p[P_TP] == p[P_CHIPS] == 4
    assert p[P_PEAK_FLOPS] == 2.0e15 and p[P_MEM_BW] == 3.0e12
    assert (p[P_ETA_COMPUTE], p[P_ETA_MEMORY], p[P_ETA_KV_MEMORY]) == (0.6, 0.8, 0.8)
    assert p[P_ALLREDUCE_BW] == 300e9              # 400e9 per direction × 0.75
    assert p[P_ALLREDUCE_LATENCY_S] == 5e-6
    assert (p[P_LAYERS], p[P_HIDDEN], p[P_ACT_BYTES]) == (10, 1000, 2.0)
    assert (p[P_LAYER_SYNC_S], p[P_STEP_OVERHEAD_S], p[P_OVERLAP]) == (0.0, 2e-4, 1.0)
    assert (p[P_IDLE_W], p[P_MAX_W]) == (150.0, 700.0)
    # activations, bf16: per layer QKV reads 1,000 and writes 2,000 values, o 1,000 and
    # 1,000, gate-up 1,000 and 6,000, down 3,000 and 1,000: 16,000 values × 10 layers
    assert p[P_ACT_BYTES_PER_TOKEN] == 320_000.0
    assert p[P_EXPERT_ACT_BYTES_PER_TOKEN] == 0.0
    assert p[P_HEAD_ACT_BYTES_PER_SEQ] == (1000 + 5000) * 2.0


BLACKWELL = {"bf16": 2.25e15, "fp16": 2.25e15, "fp8": 4.5e15, "int8": 4.5e15, "fp4": 9e15}


@pytest.mark.parametrize(("weights", "kv", "rates", "want"), [
    ("fp4", "fp8", BLACKWELL, 4.5e15),      # FP4 weights, attention in FP8
    ("fp4", "fp4", BLACKWELL, 4.5e15),      # a 4-bit cache is dequantised to FP8
    ("fp8", "int3", BLACKWELL, 4.5e15),
    ("bf16", "fp8", BLACKWELL, 2.25e15),    # BF16 queries against an FP8 cache
    ("fp8", "bf16", BLACKWELL, 2.25e15),
    ("fp8", "fp8", {"fp16": 188e12, "int8": 750e12}, 750e12),   # no FP8 path: INT8
    ("fp8", "bf16", {"fp8": 1.23e15}, 1.23e15),                 # only FP8: the weights' rate
])
def test_attention_runs_at_the_wider_format_never_below_8_bits(weights, kv, rates, want):
    assert attention_flops_per_s(chip_rates(rates), Precision(weights, kv)) == want


def test_moe_vector_at_bf16():
    p = replica_cost_vector(moe_model(), gpu_system(), BF16_FP8, 8, 8)
    # linear: 2 × (246 M active − 10 M tables) = 472 M
    assert p[P_LIN_FLOPS_PER_TOKEN] == 472e6
    # every step: (150 M − 10 M tables + 5 M lm_head) × 2 bytes = 290 MB
    assert p[P_DENSE_WEIGHT_BYTES] == 290e6
    assert (p[P_MOE_LAYERS], p[P_EXPERTS], p[P_TOP_K]) == (8, 64, 4)
    assert p[P_EXPERT_BYTES] == 6e6                # 3 M params × 2 bytes
    assert p[P_PEAK_FLOPS] == 1.0e15               # the weights' dtype sets the datapath
    assert p[P_ATTN_PEAK_FLOPS] == 1.0e15          # bf16 queries: attention at bf16 too
    assert p[P_KV_BYTES_PER_TOKEN] == 2000.0       # KV stays fp8
    # activations: attention 5,000 values a layer × 10; two dense MLPs of 2·1,000 + 3·6,000;
    # 8 MoE layers of router 1,000 + 64 and a shared expert 2·1,000 + 3·1,000
    assert p[P_ACT_BYTES_PER_TOKEN] == 2.0 * (50_000 + 2 * 20_000 + 8 * (1_064 + 5_000))
    # 8 MoE layers × top-4 experts of 2·1,000 + 3·1,000 values
    assert p[P_EXPERT_ACT_BYTES_PER_TOKEN] == 2.0 * 8 * 4 * 5_000


def test_lpu_vector_splits_over_the_replica_chips():
    p = replica_cost_vector(dense_model(False), lpu_system(), FP8, 256, 1)
    assert p[P_SHARDS] == p[P_CHIPS] == 256 and p[P_TP] == 1
    assert p[P_LAYER_SYNC_S] == 10e-6


def test_bad_split_is_refused():
    with pytest.raises(ScenarioError, match=r"parallelism\.tp"):
        replica_cost_vector(dense_model(False), gpu_system(), FP8, 4, 8)
    with pytest.raises(ScenarioError, match="chips_per_replica"):
        weights_per_chip_bytes(dense_model(False), FP8, 0)


def test_memory_sizing():
    model, gpu, lpu = dense_model(False), gpu_system(), lpu_system()
    # 130 M params × 2 bytes / 4 chips = 65 MB each
    assert weights_per_chip_bytes(model, BF16_FP8, 4) == 65e6
    # 1 GPU: (80e9 × 0.9 − 130e6) / 2000 B = 71.87e9 / 2000 = 35,935,000 tokens
    assert kv_capacity_tokens(model, gpu, FP8, 1) == 35_935_000
    # 1 LPU: 230e6 × 0.9 = 207e6 − 130e6 = 77e6 / 2000 = 38,500 tokens
    assert kv_capacity_tokens(model, lpu, FP8, 1) == 38_500
    # MoE at 1,686 MB does not fit one LPU: no room, not a negative count
    assert kv_capacity_tokens(moe_model(), lpu, FP8, 1) == 0
    # LPUs: 1,686e6 / 207e6 = 8.14 → 9 chips; with 100,000 reserved tokens
    # (1,686e6 + 200e6) / 207e6 = 9.11 → 10
    assert lpu_chips_for(moe_model(), lpu, FP8, 0) == 9
    assert lpu_chips_for(moe_model(), lpu, FP8, 100_000) == 10
    # 130 M fits one chip
    assert lpu_chips_for(model, lpu, FP8, 0) == 1


def test_lpu_chips_exact_fit_is_not_rounded_up():
    # 0.1 × 0.95 bytes per chip and a need of exactly 3 × that: the division gives
    # 3.0000000000000004 in floating point, but 3 chips hold it
    lpu = SimpleNamespace(**{**vars(lpu_system()), "memory_bytes": 0.1,
                             "memory_usable_fraction": 0.95})
    need = 3 * (0.1 * 0.95)
    tiny = SimpleNamespace(weight_bytes=lambda b: need * b, kv_bytes_per_token=lambda b: 0.0)
    assert need / (0.1 * 0.95) > 3.0
    assert lpu_chips_for(tiny, lpu, FP8, 0) == 3


def test_decode_step_on_fake_gpu():
    # dense untied, fp8, tp 4, batch 2 with 1000 cached each:
    # memory 4 × 3e12 × 0.8 = 9.6e12 B/s; compute 4 × 2e15 × 0.6 = 4.8e15 FLOP/s
    # lin  max((2 × 240e6 + 2 × 10e6) / 4.8e15 = 1.04e-7,
    #          (125e6 weights + 2 × 320,000 activations + 2 × 12,000 lm_head in and out)
    #          / 9.6e12 = 1.309e-5)
    # attn max(2002 × 40,000 / 4.8e15 = 1.67e-8, (2000 + 2) × 2000 / 9.6e12 = 4.170833e-7)
    # comm 2 × 10 × (2 × 3/4 × 2 × 1000 × 2 B / 300e9 + 5e-6) = 20 × 5.02e-6 = 1.004e-4
    # step 1.309e-5 + 4.170833e-7 + 1.004e-4 + 2e-4 = 3.1390708e-4 s
    step_s = decode_step_s(dense_model(False), gpu_system(), FP8, 4, 4, 2, 1000)
    assert step_s == pytest.approx(3.1390708e-4, rel=1e-6)


@pytest.mark.parametrize(("name", "tp", "copies"), [
    ("llama-3.1-405b", 8, 1),     # 8 KV heads over 8 GPUs: one head each
    ("llama-3.1-405b", 16, 2),    # 16 GPUs: each head kept twice
    ("deepseek-r1", 1, 1),
    ("deepseek-r1", 8, 8),        # one MLA latent: every GPU keeps all of it
])
def test_tensor_parallelism_past_the_kv_heads_replicates_the_cache(name, tp, copies):
    from simulator.hardware import load_profile
    from simulator.models import load_model

    model, b200 = load_model(name), load_profile("b200")
    fp4 = Precision("fp4", "fp8")
    assert model.kv_copies(tp) == copies
    p = replica_cost_vector(model, b200, fp4, tp, tp)
    assert p[P_KV_BYTES_PER_TOKEN] == copies * model.kv_bytes_per_token(1.0)
    room = tp * b200.memory_bytes * b200.memory_usable_fraction - model.weight_bytes(0.5)
    want = int(room // (copies * model.kv_bytes_per_token(1.0))) if room > 0 else 0
    assert kv_capacity_tokens(model, b200, fp4, tp, tp) == max(want, 0)


def test_real_llama_on_h100():
    from simulator.hardware import load_profile
    from simulator.models import load_model

    model, h100 = load_model("llama-3.3-70b"), load_profile("h100-sxm")
    p = replica_cost_vector(model, h100, FP8, 8, 8)
    # per layer: attention 2 × 8192² + 2 × 8192 × 8 × 128 = 150,994,944,
    #            FFN 3 × 8192 × 28,672 = 704,643,072 → 855,638,016 × 80 = 68,451,041,280
    assert p[P_LIN_FLOPS_PER_TOKEN] == 2 * 68_451_041_280
    assert p[P_HEAD_FLOPS_PER_SEQ] == 2 * 8192 * 128_256
    assert p[P_DENSE_WEIGHT_BYTES] == 68_451_041_280 + 8192 * 128_256
    assert p[P_KV_BYTES_PER_TOKEN] == 80 * 2 * 8 * 128
    # batch 1 with 1000 cached, by hand with the profile's (fitted) efficiencies: weights
    # are read at 8 × 3.35 TB/s × η_memory and the KV cache at × η_kv, the math at
    # 8 × 1978.9 TFLOP/s × η_compute with (1 − overlap) of it showing, two ring
    # all-reduces per layer over NVLink (450 GB/s × η_network) with 8 µs each, plus the
    # host's time and the step overhead
    eta_c, eta_m = h100.compute_efficiency, h100.memory_efficiency
    exposed = 1.0 - h100.compute_memory_overlap
    flops_s, bytes_s = 8 * 1978.9e12 * eta_c, 8 * 3.35e12 * eta_m
    lin_math_s = (2 * 68_451_041_280 + 2 * 8192 * 128_256) / flops_s
    # the token's activations: per layer QKV 8,192 in and 10,240 out, o 8,192 and 8,192,
    # gate-up 8,192 and 57,344, down 28,672 and 8,192 (137,216 values) × 80 layers, and
    # the lm_head's 8,192 in and 128,256 logits out, all bf16
    act_bytes = 2 * (137_216 * 80 + 8192 + 128_256)
    lin_memory_s = (68_451_041_280 + 8192 * 128_256 + act_bytes) / bytes_s
    kv_bytes_s = 8 * 3.35e12 * h100.kv_memory_efficiency   # the cache streams at η_kv
    attn_math_s, attn_memory_s = 1001 * 2_621_440 / flops_s, 1001 * 163_840 / kv_bytes_s
    assert lin_memory_s > 50 * lin_math_s and attn_memory_s > attn_math_s   # memory-bound
    t_lin = lin_memory_s + exposed * lin_math_s
    t_attn = attn_memory_s + exposed * attn_math_s
    t_comm = 2 * 80 * (2 * 7 / 8 * 8192 * 2 / (450e9 * h100.network_efficiency) + 8e-6)
    # one token's idle wait, split over the 8 chips like its math
    want = t_lin + t_attn + t_comm + h100.host_time_per_token_s / 8 + h100.step_overhead_s
    assert decode_step_s(model, h100, FP8, 8, 8, 1, 1000) == pytest.approx(want, rel=1e-12)
    # 8 × 80e9 × 0.9 = 576e9 − 70,552,387,584 = 505,447,612,416 B / 163,840 = 3,085,007.4
    assert kv_capacity_tokens(model, h100, FP8, 8) == 3_085_007
    # H100 has no fp4 datapath: refused, naming the profile key
    with pytest.raises(ScenarioError, match=r"dense_flops_per_s\.fp4"):
        replica_cost_vector(model, h100, Precision("fp4", "fp8"), 8, 8)


def test_activation_values_of_llama_3_1_8b_by_hand():
    from simulator.costs import activation_values_per_token
    from simulator.models import load_model

    # hidden 4096, 32 heads of 128 with 8 KV heads, MLP 14,336, 32 layers:
    # QKV 4,096 in and 6,144 out, o 4,096 and 4,096, gate-up 4,096 and 28,672,
    # down 14,336 and 4,096: 69,632 values a layer
    dense, experts, attention = activation_values_per_token(load_model("llama-3.1-8b"))
    assert (dense, experts, attention) == (32 * 69_632, 0, 32 * 18_432)
