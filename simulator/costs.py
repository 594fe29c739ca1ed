"""From a model card, a hardware profile and a precision to the kernels' plain numbers.

This is the one place that knows both the objects and the kernels' cost-vector layout, so
the engine never computes FLOPs or bytes itself.
"""

from __future__ import annotations

import math

import numpy as np

from simulator.config.scenario import Precision
from simulator.errors import ScenarioError
from simulator.hardware import SystemProfile
from simulator.kernels import step as k
from simulator.models import ModelCard

__all__ = [
    "decode_step_s",
    "kv_capacity_tokens",
    "lpu_chips_for",
    "replica_cost_vector",
    "weights_per_chip_bytes",
]

ACTIVATION_BYTES = 2.0   # activations exchanged by tensor-parallel all-reduces are bf16


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
        p[k.P_EXPERT_BYTES] = model.expert_params * bpp
    p[k.P_ATTN_FLOPS_PER_PAIR] = model.num_layers * model.attn_flops_per_pair_per_layer
    p[k.P_KV_BYTES_PER_TOKEN] = model.kv_bytes_per_token(precision.kv_bytes_per_value)
    p[k.P_SHARDS] = shards
    p[k.P_PEAK_FLOPS] = system.flops_for(precision.weights)
    p[k.P_MEM_BW] = system.memory_bandwidth_bytes_per_s
    p[k.P_ETA_COMPUTE] = system.compute_efficiency
    p[k.P_ETA_MEMORY] = system.memory_efficiency
    p[k.P_TP] = tp
    p[k.P_ALLREDUCE_BW] = system.scaleup_bandwidth_bytes_per_s * system.network_efficiency
    p[k.P_ALLREDUCE_LATENCY_S] = system.scaleup_latency_s
    p[k.P_LAYERS] = model.num_layers
    p[k.P_HIDDEN] = model.hidden_size
    p[k.P_ACT_BYTES] = ACTIVATION_BYTES
    p[k.P_LAYER_SYNC_S] = system.layer_sync_latency_s
    p[k.P_STEP_OVERHEAD_S] = system.step_overhead_s
    p[k.P_IDLE_W] = system.idle_power_w
    p[k.P_MAX_W] = system.max_power_w
    p[k.P_CHIPS] = shards
    return p


def _check_split(shards: int, tp: int) -> None:
    """A replica split over no chips, or over more TP ranks than chips, has no cost."""
    if shards < 1:
        raise ScenarioError(None, "chips_per_replica", "a whole number of chips ≥ 1", shards)
    if tp < 1 or tp > shards:
        raise ScenarioError(None, "parallelism.tp", f"a degree between 1 and {shards}", tp)


def weights_per_chip_bytes(model: ModelCard, precision: Precision, shards: int) -> float:
    """Weights each chip holds when a replica's weights are spread evenly over ``shards``."""
    _check_split(shards, 1)
    return model.weight_bytes(precision.weight_bytes_per_param) / shards


def kv_capacity_tokens(model: ModelCard, system: SystemProfile, precision: Precision,
                       chips: int) -> int:
    """KV tokens one replica holds: usable memory of its chips less the weights."""
    room = (chips * system.memory_bytes * system.memory_usable_fraction
            - model.weight_bytes(precision.weight_bytes_per_param))
    per_token = model.kv_bytes_per_token(precision.kv_bytes_per_value)
    return max(int(room // per_token), 0)


def lpu_chips_for(model: ModelCard, system: SystemProfile, precision: Precision,
                  reserve_tokens: int) -> int:
    """Fewest chips whose usable SRAM holds the weights and ``reserve_tokens`` of KV."""
    need = (model.weight_bytes(precision.weight_bytes_per_param)
            + reserve_tokens * model.kv_bytes_per_token(precision.kv_bytes_per_value))
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
    kv = float(batch * context_tokens)
    time_s, _ = k.step_cost(p, float(batch), float(batch), kv + batch, kv)
    return float(time_s)
