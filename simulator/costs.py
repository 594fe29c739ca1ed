"""From a model card, a hardware profile and a precision to the kernels' plain numbers.

This is the one place that knows both the objects and the kernels' cost-vector layout, so
the engine never computes FLOPs or bytes itself.
"""

from __future__ import annotations

import math

import numpy as np

from simulator.config.scenario import (
    DTYPE_BYTES,
    AttentionSplitSpec,
    PoolSpec,
    Precision,
    SpeculativeSpec,
)
from simulator.errors import ScenarioError
from simulator.hardware import SystemProfile
from simulator.kernels import step as k
from simulator.models import ModelCard

__all__ = [
    "activation_values_per_token",
    "afd_kv_capacity_tokens",
    "attention_flops_per_s",
    "decode_step_s",
    "ffn_chips_for",
    "ffn_weight_bytes",
    "kv_capacity_tokens",
    "lpu_chips_for",
    "pool_cost_vector",
    "replica_cost_vector",
    "weight_bytes",
    "weights_per_chip_bytes",
]

ACTIVATION_BYTES = 2.0   # activations are bf16: GEMM inputs and outputs, all-reduces, all-to-alls


def replica_cost_vector(model: ModelCard, system: SystemProfile, precision: Precision,
                        shards: int, tp: int) -> np.ndarray:
    """The cost vector of one replica: ``shards`` chips share its work, ``tp`` of them by
    tensor parallelism (GPUs: shards = tp; LPUs: shards = chips per replica, tp = 1).

    Embedding lookups are a gather of one row per token, so neither their FLOPs nor the
    table's bytes are charged; the lm_head is a full matmul for each sampling sequence and
    its matrix is read every step (the embedding table itself when the two are tied).
    """
    _check_split(shards, tp)
    bpp = precision.weight_bytes_per_param
    head_params = model.vocab_size * model.hidden_size
    moe = model.moe
    p = np.zeros(k.N_PARAMS)
    p[k.P_LIN_FLOPS_PER_TOKEN] = 2.0 * (model.active_params - model.embedding_params
                                        - model.lm_head_params)
    p[k.P_HEAD_FLOPS_PER_SEQ] = 2.0 * head_params
    p[k.P_DENSE_WEIGHT_BYTES] = (model.non_expert_params - model.embedding_params
                                 - model.lm_head_params + head_params) * bpp
    if moe is not None:
        p[k.P_MOE_LAYERS] = model.moe_layers
        p[k.P_EXPERTS] = moe.num_experts
        p[k.P_TOP_K] = moe.experts_per_token
        p[k.P_EXPERT_BYTES] = model.expert_params * precision.expert_bytes_per_param
        p[k.P_EXPERT_FLOPS_PER_TOKEN] = (2.0 * model.moe_layers * moe.experts_per_token
                                         * model.expert_params)
        p[k.P_EXPERT_PEAK_FLOPS] = system.flops_for(precision.expert_dtype)
    p[k.P_ATTN_FLOPS_PER_PAIR] = model.num_layers * model.attn_flops_per_pair_per_layer
    p[k.P_KV_BYTES_PER_TOKEN] = (model.kv_bytes_per_token(precision.kv_bytes_per_value)
                                 * model.kv_copies(tp))
    p[k.P_SHARDS] = shards
    p[k.P_PEAK_FLOPS] = system.flops_for(precision.weights)
    p[k.P_ATTN_PEAK_FLOPS] = attention_flops_per_s(system, precision)
    p[k.P_MEM_BW] = system.memory_bandwidth_bytes_per_s
    p[k.P_ETA_COMPUTE] = system.compute_efficiency
    p[k.P_ETA_MEMORY] = system.memory_efficiency
    p[k.P_ETA_KV_MEMORY] = system.kv_memory_efficiency
    p[k.P_TP] = tp
    p[k.P_ALLREDUCE_BW] = system.scaleup_bandwidth_bytes_per_s * system.network_efficiency
    p[k.P_ALLREDUCE_LATENCY_S] = system.scaleup_latency_s
    p[k.P_LAYERS] = model.num_layers
    p[k.P_HIDDEN] = model.hidden_size
    p[k.P_ACT_BYTES] = ACTIVATION_BYTES
    p[k.P_LAYER_SYNC_S] = system.layer_sync_latency_s
    p[k.P_STEP_OVERHEAD_S] = system.step_overhead_s
    p[k.P_HOST_S_PER_TOKEN] = system.host_time_per_token_s
    p[k.P_OVERLAP] = system.compute_memory_overlap
    p[k.P_IDLE_W] = system.idle_power_w
    p[k.P_MAX_W] = system.max_power_w
    p[k.P_CHIPS] = shards
    dense_values, expert_values, _ = activation_values_per_token(model)
    p[k.P_ACT_BYTES_PER_TOKEN] = dense_values * ACTIVATION_BYTES
    p[k.P_EXPERT_ACT_BYTES_PER_TOKEN] = expert_values * ACTIVATION_BYTES
    p[k.P_HEAD_ACT_BYTES_PER_SEQ] = (model.hidden_size + model.vocab_size) * ACTIVATION_BYTES
    return p


def activation_values_per_token(model: ModelCard) -> tuple[int, int, int]:
    """Activation values one token's GEMMs read and write over all layers: (dense path,
    routed experts, attention projections alone, which the dense path includes).

    Each weight matrix K × N is one GEMM reading K values and writing N; matrices that
    share an input run fused, as serving engines run them (QKV; MLA's two down-projections;
    gate and up), so that input is read once.
    """
    h = model.hidden_size
    nh = model.num_attention_heads
    if model.mla is None:
        hd = model.head_dim
        attn = h + (nh + 2 * model.num_kv_heads) * hd + nh * hd + h
    else:
        m = model.mla
        attn = (h + m.q_lora_rank + m.kv_lora_rank + m.qk_rope_head_dim
                + m.q_lora_rank + nh * (m.qk_nope_head_dim + m.qk_rope_head_dim)
                + m.kv_lora_rank + nh * (m.qk_nope_head_dim + m.v_head_dim)
                + nh * m.v_head_dim + h)
    dense = model.num_layers * attn + model.dense_layers * (2 * h + 3 * model.intermediate_size)
    moe = model.moe
    if moe is None:
        return dense, 0, model.num_layers * attn
    expert = 2 * h + 3 * moe.expert_intermediate_size
    shared = 2 * h + 3 * moe.shared_experts * moe.expert_intermediate_size
    router = h + moe.num_experts
    dense += model.moe_layers * (router + (shared if moe.shared_experts else 0))
    return dense, model.moe_layers * moe.experts_per_token * expert, model.num_layers * attn


def attention_flops_per_s(system: SystemProfile, precision: Precision) -> float:
    """Dense peak of the attention math (scores and weighted values over the KV cache).

    It multiplies activations by cached keys and values, so it runs at the wider of the
    weights' and the cache's formats, and never below 8 bits: serving kernels dequantise a
    4-bit or 3-bit cache, and FP4 models run attention in FP8 or BF16 (TensorRT-LLM's
    DeepSeek-R1 recipes on B200: FP4 experts, FP8 attention for throughput). Charging
    attention at the FP4 peak would make an FP4 model's attention twice as fast as any
    kernel runs it. A chip without that datapath runs it at its weights' rate.
    """
    widest = max(precision.weight_bytes_per_param, precision.kv_bytes_per_value, 1.0)
    fallback = ("fp8", "int8") if widest == 1.0 else ("bf16", "fp16")
    for dtype in (precision.weights, precision.kv_cache, *fallback):
        if DTYPE_BYTES.get(dtype) == widest and dtype in system.dense_flops_per_s:
            return system.dense_flops_per_s[dtype]
    return system.flops_for(precision.weights)


def pool_cost_vector(model: ModelCard, pool: PoolSpec, precision: Precision) -> np.ndarray:
    """The cost vector of one replica of ``pool``, with every parallel layout it uses."""
    system = pool.system
    p = replica_cost_vector(model, system, precision, pool.chips_per_replica, pool.tp)
    if pool.ep > 1:
        _expert_parallel(p, model, system, pool.chips_per_replica, pool.tp, pool.ep,
                         pool.ep_imbalance)
    stages = -(-pool.chips_per_replica // system.chips_per_system)
    if system.kind == "lpu" and stages > 1:
        # a replica spanning racks passes each step's activations rack to rack
        p[k.P_PP_STAGES] = stages
        p[k.P_PP_HOP_BW] = (system.scaleout_bandwidth_bytes_per_s * system.chips_per_system
                            * system.network_efficiency)
        p[k.P_PP_HOP_LATENCY_S] = system.scaleout_latency_s
    if pool.speculative is not None:
        _speculative(p, pool.speculative)
    if pool.attention_split is not None:
        _attention_split(p, model, precision, system, pool.attention_split)
    return p


def _expert_parallel(p: np.ndarray, model: ModelCard, system: SystemProfile, chips: int,
                     tp: int, ep: int, imbalance: float) -> None:
    """Experts split over ``ep`` GPUs; the dense layers tensor-parallel over ``tp`` and
    copied chips / tp times (data-parallel attention), as wide-EP serving runs them."""
    moe = model.moe
    if moe is None:
        raise ScenarioError(None, "parallelism.ep", f"1 for the dense model {model.name}", ep)
    p[k.P_DENSE_COPIES] = chips // tp
    p[k.P_EP] = ep
    p[k.P_EP_IMBALANCE] = imbalance
    p[k.P_EP_DOMAIN] = system.scaleup_domain_chips
    p[k.P_EP_FAST_BW] = system.scaleup_bandwidth_bytes_per_s * system.network_efficiency
    p[k.P_EP_FAST_LATENCY_S] = system.scaleup_latency_s
    p[k.P_EP_SLOW_BW] = system.scaleout_bandwidth_bytes_per_s * system.network_efficiency
    p[k.P_EP_SLOW_LATENCY_S] = system.scaleout_latency_s


def _speculative(p: np.ndarray, spec: SpeculativeSpec) -> None:
    p[k.P_SPEC_DRAFT_TOKENS] = spec.draft_tokens
    p[k.P_SPEC_TOKENS_MILLI] = round(spec.tokens_per_step * 1000.0)
    p[k.P_SPEC_DRAFT_FRACTION] = spec.draft_cost_fraction


def _attention_split(p: np.ndarray, model: ModelCard, precision: Precision,
                     system: SystemProfile, split: AttentionSplitSpec) -> None:
    gpu = split.system
    p[k.P_AFD_CHIPS] = split.chips
    p[k.P_AFD_PEAK_FLOPS] = gpu.flops_for(precision.weights)
    p[k.P_AFD_ATTN_PEAK_FLOPS] = attention_flops_per_s(gpu, precision)
    p[k.P_AFD_MEM_BW] = gpu.memory_bandwidth_bytes_per_s
    p[k.P_AFD_ETA_COMPUTE] = gpu.compute_efficiency
    p[k.P_AFD_ETA_MEMORY] = gpu.memory_efficiency
    p[k.P_AFD_ETA_KV_MEMORY] = gpu.kv_memory_efficiency
    attn_params = model.num_layers * model.attention_params_per_layer
    p[k.P_AFD_ATTN_FLOPS_PER_TOKEN] = 2.0 * attn_params
    p[k.P_AFD_ATTN_WEIGHT_BYTES] = attn_params * precision.weight_bytes_per_param
    p[k.P_AFD_ATTN_ACT_BYTES_PER_TOKEN] = activation_values_per_token(model)[2] * ACTIVATION_BYTES
    p[k.P_AFD_EXCHANGE_BW] = (split.exchange_bandwidth_gbps * 1e9 / 8.0
                              * system.network_efficiency)
    p[k.P_AFD_EXCHANGE_LATENCY_S] = split.exchange_latency_us * 1e-6
    p[k.P_AFD_IDLE_W] = gpu.idle_power_w
    p[k.P_AFD_MAX_W] = gpu.max_power_w
    p[k.P_AFD_OVERLAP] = gpu.compute_memory_overlap


def weight_bytes(model: ModelCard, precision: Precision) -> float:
    """All of a model's weights, the routed experts at their own format."""
    if precision.experts is None:
        return model.weight_bytes(precision.weight_bytes_per_param)
    return model.weight_bytes(precision.weight_bytes_per_param, precision.expert_bytes_per_param)


def ffn_weight_bytes(model: ModelCard, precision: Precision) -> float:
    """Everything but the attention layers: what FFN chips hold under the attention–FFN split."""
    attn = model.num_layers * model.attention_params_per_layer
    return weight_bytes(model, precision) - attn * precision.weight_bytes_per_param


def ffn_chips_for(model: ModelCard, system: SystemProfile, precision: Precision) -> int:
    """Fewest chips whose usable memory holds the FFN/expert weights (attention elsewhere)."""
    return _chips_holding(ffn_weight_bytes(model, precision), system)


def afd_kv_capacity_tokens(model: ModelCard, precision: Precision,
                           split: AttentionSplitSpec) -> int:
    """KV tokens the attention GPUs of one replica hold, each keeping all attention weights."""
    gpu = split.system
    attn = model.num_layers * model.attention_params_per_layer * precision.weight_bytes_per_param
    room = split.chips * (gpu.memory_bytes * gpu.memory_usable_fraction - attn)
    return max(int(room // model.kv_bytes_per_token(precision.kv_bytes_per_value)), 0)


def _check_split(shards: int, tp: int) -> None:
    """A replica split over no chips, or over more TP ranks than chips, has no cost."""
    if shards < 1:
        raise ScenarioError(None, "chips_per_replica", "a whole number of chips ≥ 1", shards)
    if tp < 1 or tp > shards:
        raise ScenarioError(None, "parallelism.tp", f"a degree between 1 and {shards}", tp)


def weights_per_chip_bytes(model: ModelCard, precision: Precision, shards: int,
                           tp: int | None = None, ep: int = 1) -> float:
    """Weights each chip holds. Spread evenly over ``shards`` by default; with expert
    parallelism, the routed experts split over ``ep`` chips and the rest over ``tp``."""
    _check_split(shards, 1)
    if ep <= 1:
        return weight_bytes(model, precision) / shards
    return (model.non_expert_params / (tp or 1) * precision.weight_bytes_per_param
            + model.routed_expert_params / ep * precision.expert_bytes_per_param)


def kv_capacity_tokens(model: ModelCard, system: SystemProfile, precision: Precision,
                       chips: int, tp: int | None = None, ep: int = 1) -> int:
    """KV tokens one replica holds: usable memory of its chips less the weights."""
    held = chips * weights_per_chip_bytes(model, precision, chips, tp, ep) if ep > 1 else (
        weight_bytes(model, precision))
    room = chips * system.memory_bytes * system.memory_usable_fraction - held
    per_token = model.kv_bytes_per_token(precision.kv_bytes_per_value) * model.kv_copies(tp or 1)
    return max(int(room // per_token), 0)


def lpu_chips_for(model: ModelCard, system: SystemProfile, precision: Precision,
                  reserve_tokens: int) -> int:
    """Fewest chips whose usable SRAM holds the weights and ``reserve_tokens`` of KV."""
    need = (weight_bytes(model, precision)
            + reserve_tokens * model.kv_bytes_per_token(precision.kv_bytes_per_value))
    return _chips_holding(need, system)


def _chips_holding(need: float, system: SystemProfile) -> int:
    per_chip = system.memory_bytes * system.memory_usable_fraction
    chips = max(math.ceil(need / per_chip), 1)
    # the division can round up past a whole number when need is an exact multiple
    if chips > 1 and (chips - 1) * per_chip >= need:
        chips -= 1
    return chips


def decode_step_s(model: ModelCard, system: SystemProfile, precision: Precision, shards: int,
                  tp: int, batch: int, context_tokens: int) -> float:
    """One pure decode step of ``batch`` requests, each with ``context_tokens`` cached."""
    p = replica_cost_vector(model, system, precision, shards, tp)
    time_s, _ = k.decode_step_cost(p, float(batch), float(batch * context_tokens))
    return float(time_s)
