"""Plain-numpy twins of the kernels, written from per-request arrays.

The kernels take sums over the batch; these take each request's new and cached tokens and
sum themselves, so agreement between the two checks the engine's bookkeeping convention
as well as the arithmetic. Used by tests only; never on a hot path.
"""

from __future__ import annotations

import numpy as np

from simulator.kernels import step as k

__all__ = ["decode_span_ref", "step_cost_ref", "steps_until_kv_full_ref"]


def step_cost_ref(p: np.ndarray, new_tokens: np.ndarray, cached_tokens: np.ndarray,
                  sampling: np.ndarray) -> tuple[float, float]:
    """One step from per-request arrays (``sampling`` marks requests that emit a token)."""
    new = np.asarray(new_tokens, dtype=np.float64)
    cached = np.asarray(cached_tokens, dtype=np.float64)
    if new.sum() <= 0 and np.sum(sampling) <= 0:
        return 0.0, 0.0
    tokens = new.sum()
    flops_rate = p[k.P_SHARDS] * p[k.P_PEAK_FLOPS] * p[k.P_ETA_COMPUTE]
    byte_rate = p[k.P_SHARDS] * p[k.P_MEM_BW] * p[k.P_ETA_MEMORY]
    linear_flops = tokens * p[k.P_LIN_FLOPS_PER_TOKEN] + np.sum(sampling) * p[k.P_HEAD_FLOPS_PER_SEQ]
    experts = p[k.P_EXPERTS]
    touched = experts * (1 - (1 - p[k.P_TOP_K] / experts) ** tokens) if experts > 0 else 0.0
    weights = p[k.P_DENSE_WEIGHT_BYTES] + p[k.P_MOE_LAYERS] * touched * p[k.P_EXPERT_BYTES]
    linear_s = max(linear_flops / flops_rate, weights / byte_rate)
    pairs = np.sum(new * cached + new * (new + 1) / 2)
    kv_bytes = np.sum(cached + new) * p[k.P_KV_BYTES_PER_TOKEN]
    attention_s = max(pairs * p[k.P_ATTN_FLOPS_PER_PAIR] / flops_rate, kv_bytes / byte_rate)
    tp = p[k.P_TP]
    comm_s = 0.0
    if tp > 1:
        per_layer = (2 * (tp - 1) / tp * tokens * p[k.P_HIDDEN] * p[k.P_ACT_BYTES]
                     / p[k.P_ALLREDUCE_BW] + p[k.P_ALLREDUCE_LATENCY_S])
        comm_s = 2 * p[k.P_LAYERS] * per_layer
    busy_s = linear_s + attention_s
    total_s = busy_s + comm_s + p[k.P_LAYERS] * p[k.P_LAYER_SYNC_S] + p[k.P_STEP_OVERHEAD_S]
    watts_idle = p[k.P_CHIPS] * p[k.P_IDLE_W]
    energy = watts_idle * total_s + p[k.P_CHIPS] * (p[k.P_MAX_W] - p[k.P_IDLE_W]) * busy_s
    return float(total_s), float(energy)


def decode_span_ref(p: np.ndarray, cached_tokens: np.ndarray, kmax: int,
                    horizon_s: float, start_s: float = 0.0) -> tuple[int, float, float]:
    """Decode steps one at a time: (steps, end time, energy)."""
    cached = np.asarray(cached_tokens, dtype=np.float64).copy()
    ones = np.ones_like(cached)
    now, energy, steps = start_s, 0.0, 0
    while steps < kmax:
        t, e = step_cost_ref(p, ones, cached, ones)
        now += t
        energy += e
        cached += 1
        steps += 1
        if now >= horizon_s:
            break
    return steps, now, energy


def steps_until_kv_full_ref(ctx: np.ndarray, blocks: np.ndarray, free_blocks: int,
                            block_tokens: int, kmax: int) -> int:
    """Brute force: try k = 1, 2, ... until the blocks run out."""
    best = 0
    for steps in range(1, kmax + 1):
        need = -(-(ctx + steps) // block_tokens)
        if np.maximum(need - blocks, 0).sum() > free_blocks:
            break
        best = steps
    return best
