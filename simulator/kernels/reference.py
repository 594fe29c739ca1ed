"""Plain-numpy twins of the kernels, written from per-request arrays.

The kernels take sums over the batch in closed form; these take each request's new and
cached tokens, count attention pairs token by token and step a decode stretch one step at
a time, so agreement checks the engine's bookkeeping convention as well as the arithmetic.
Used by tests only; never on a hot path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simulator.kernels import step as k

__all__ = ["DecodeSpanRef", "decode_span_ref", "step_cost_ref", "steps_until_kv_full_ref"]


def _pairs(new: int, cached: int) -> int:
    """Causal pairs of one request: new token i (1-based) sees the cache and tokens 1..i."""
    return int(np.sum(cached + np.arange(1, new + 1, dtype=np.int64)))


def _roofline(compute_s: float, memory_s: float, overlap: float) -> float:
    """Written as the two phases it stands for: the longer stream runs in full, and the
    part of the shorter one not hidden under it runs after."""
    longer, shorter = (compute_s, memory_s) if compute_s >= memory_s else (memory_s, compute_s)
    exposed = shorter - overlap * shorter
    return longer + exposed


def step_cost_ref(p: np.ndarray, new_tokens: np.ndarray, cached_tokens: np.ndarray,
                  sampling: np.ndarray | None = None, ranks: np.ndarray | None = None
                  ) -> tuple[float, float]:
    """One step from per-request arrays; ``sampling`` marks requests that emit a token
    (default: all of them) and ``ranks`` the data-parallel rank each request lives on
    (default: the work shared evenly)."""
    new = np.asarray(new_tokens, dtype=np.int64)
    cached = np.asarray(cached_tokens, dtype=np.int64)
    samples = float(len(new) if sampling is None else np.count_nonzero(sampling))
    tokens = float(new.sum())
    if tokens <= 0 and samples <= 0:
        return 0.0, 0.0
    # rank-local work (dense layers, attention) as if every rank were the busiest one
    local = np.ones(len(new), dtype=bool)
    n_ranks = 1.0
    if ranks is not None:
        rank_of = np.asarray(ranks, dtype=np.int64)
        n_ranks = float(k.dp_ranks(p))
        per_rank = np.bincount(rank_of, weights=new, minlength=int(n_ranks))
        local = rank_of == int(np.argmax(per_rank))
    local_tokens = max(tokens, n_ranks * float(new[local].sum()))

    compute_rate = p[k.P_SHARDS] * p[k.P_PEAK_FLOPS] * p[k.P_ETA_COMPUTE]
    memory_rate = p[k.P_SHARDS] * p[k.P_MEM_BW] * p[k.P_ETA_MEMORY]
    ep = int(p[k.P_EP])
    straggler = p[k.P_EP_IMBALANCE] if ep > 1 and p[k.P_EP_IMBALANCE] > 1 else 1.0

    # linear layers: every new token through the dense path, lm_head for samplers only
    expert_flops = tokens * p[k.P_EXPERT_FLOPS_PER_TOKEN]
    if p[k.P_EXPERT_PEAK_FLOPS] > 0:   # experts in their own format: time at their own peak
        expert_flops *= p[k.P_PEAK_FLOPS] / p[k.P_EXPERT_PEAK_FLOPS]
    dense_tokens = tokens if p[k.P_AFD_CHIPS] > 0 else local_tokens
    flops = (dense_tokens * (p[k.P_LIN_FLOPS_PER_TOKEN] - p[k.P_EXPERT_FLOPS_PER_TOKEN])
             + straggler * expert_flops + samples * p[k.P_HEAD_FLOPS_PER_SEQ])
    read = p[k.P_DENSE_WEIGHT_BYTES] * max(p[k.P_DENSE_COPIES], 1.0)
    # activations: each token's GEMMs read their inputs and write their outputs
    read += (dense_tokens * p[k.P_ACT_BYTES_PER_TOKEN]
             + straggler * tokens * p[k.P_EXPERT_ACT_BYTES_PER_TOKEN]
             + samples * p[k.P_HEAD_ACT_BYTES_PER_SEQ])
    if p[k.P_MOE_LAYERS] > 0:
        miss = (1.0 - p[k.P_TOP_K] / p[k.P_EXPERTS]) ** tokens
        read += (straggler * p[k.P_MOE_LAYERS] * p[k.P_EXPERTS] * (1.0 - miss)
                 * p[k.P_EXPERT_BYTES])

    # attention: pairs and KV traffic request by request
    pairs = float(sum(_pairs(int(a), int(c)) for a, c in zip(new, cached, strict=True)))
    kv_tokens = float(np.sum(cached)) + tokens   # read the cache, write the new tokens
    if ranks is not None:
        pairs = max(pairs, n_ranks * sum(_pairs(int(a), int(c))
                                         for a, c in zip(new[local], cached[local], strict=True)))
        kv_tokens = max(float(np.sum(cached)), n_ranks * float(np.sum(cached[local]))) + (
            local_tokens)
    attn_flops = pairs * p[k.P_ATTN_FLOPS_PER_PAIR]
    kv_bytes = kv_tokens * p[k.P_KV_BYTES_PER_TOKEN]
    side_s = 0.0
    comm_s = 0.0
    gpus = p[k.P_AFD_CHIPS]
    if gpus > 0:
        # attention and its projections run on the GPUs; the FFN chips keep the rest
        flops -= tokens * p[k.P_AFD_ATTN_FLOPS_PER_TOKEN]
        proj = local_tokens * p[k.P_AFD_ATTN_FLOPS_PER_TOKEN]
        read -= p[k.P_AFD_ATTN_WEIGHT_BYTES] + tokens * p[k.P_AFD_ATTN_ACT_BYTES_PER_TOKEN]
        side_read = (p[k.P_AFD_ATTN_WEIGHT_BYTES]
                     + local_tokens * p[k.P_AFD_ATTN_ACT_BYTES_PER_TOKEN] / gpus)
        per_gpu_flops = p[k.P_AFD_PEAK_FLOPS] * p[k.P_AFD_ETA_COMPUTE]
        attention_rate = p[k.P_AFD_ATTN_PEAK_FLOPS] * p[k.P_AFD_ETA_COMPUTE]
        side_s = _roofline((proj / per_gpu_flops + attn_flops / attention_rate) / gpus,
                           (side_read / p[k.P_AFD_ETA_MEMORY]
                            + kv_bytes / gpus / p[k.P_AFD_ETA_KV_MEMORY]) / p[k.P_AFD_MEM_BW],
                           p[k.P_AFD_OVERLAP])
        attention_s = 0.0
        for _layer in range(int(p[k.P_LAYERS])):   # there and back, every layer
            comm_s += 2 * (p[k.P_AFD_EXCHANGE_LATENCY_S]
                           + tokens * p[k.P_HIDDEN] * p[k.P_ACT_BYTES] / p[k.P_AFD_EXCHANGE_BW])
    else:
        attention_rate = p[k.P_SHARDS] * p[k.P_ATTN_PEAK_FLOPS] * p[k.P_ETA_COMPUTE]
        kv_rate = p[k.P_SHARDS] * p[k.P_MEM_BW] * p[k.P_ETA_KV_MEMORY]
        attention_s = _roofline(attn_flops / attention_rate, kv_bytes / kv_rate,
                                p[k.P_OVERLAP])
    linear_s = _roofline(flops / compute_rate, read / memory_rate, p[k.P_OVERLAP])

    # tensor parallelism: a ring all-reduce after attention and after the MLP of each layer
    tp = p[k.P_TP]
    if tp > 1:
        group_tokens = dense_tokens / max(p[k.P_DENSE_COPIES], 1.0)   # one tp group's own
        message_bytes = group_tokens * p[k.P_HIDDEN] * p[k.P_ACT_BYTES]
        per_reduce_s = (2 * (tp - 1) * (message_bytes / tp) / p[k.P_ALLREDUCE_BW]
                        + p[k.P_ALLREDUCE_LATENCY_S])
        for _layer in range(int(p[k.P_LAYERS])):
            comm_s += 2 * per_reduce_s
    if ep > 1:
        comm_s += 2 * p[k.P_MOE_LAYERS] * _all_to_all_ref(p, local_tokens, ep, straggler)
    stages = int(p[k.P_PP_STAGES])
    for _hop in range(stages - 1):
        comm_s += (p[k.P_PP_HOP_LATENCY_S]
                   + tokens * p[k.P_HIDDEN] * p[k.P_ACT_BYTES] / p[k.P_PP_HOP_BW])

    busy_s = linear_s + attention_s
    sync_s = sum(p[k.P_LAYER_SYNC_S] for _stage in range(int(p[k.P_LAYERS] + p[k.P_MOE_LAYERS])))
    # each chip waits on its own share of the tokens; the busiest rank's chips hold the step
    host_s = p[k.P_HOST_S_PER_TOKEN] * local_tokens / p[k.P_SHARDS]
    total_s = (busy_s + side_s + comm_s + sync_s + host_s
               + p[k.P_STEP_OVERHEAD_S])
    energy_j = p[k.P_CHIPS] * (p[k.P_IDLE_W] * (total_s - busy_s) + p[k.P_MAX_W] * busy_s)
    if gpus > 0:
        energy_j += gpus * (p[k.P_AFD_IDLE_W] * (total_s - side_s) + p[k.P_AFD_MAX_W] * side_s)
    return float(total_s), float(energy_j)


def _all_to_all_ref(p: np.ndarray, tokens: float, ep: int, straggler: float) -> float:
    """Rank 0's traffic to every other rank, destination by destination."""
    domain = int(min(p[k.P_EP_DOMAIN], ep))
    per_destination = (tokens / ep) * p[k.P_TOP_K] / ep * p[k.P_HIDDEN] * p[k.P_ACT_BYTES]
    fast_bytes = slow_bytes = 0.0
    for rank in range(1, ep):
        if rank < domain:
            fast_bytes += per_destination * straggler
        else:
            slow_bytes += per_destination * straggler
    if ep <= domain:
        return fast_bytes / p[k.P_EP_FAST_BW] + p[k.P_EP_FAST_LATENCY_S]
    return max(fast_bytes / p[k.P_EP_FAST_BW] + p[k.P_EP_FAST_LATENCY_S],
               slow_bytes / p[k.P_EP_SLOW_BW] + p[k.P_EP_SLOW_LATENCY_S])


@dataclass
class DecodeSpanRef:
    steps: int
    end_s: float
    busy_s: float
    energy_j: float
    batch_area: float
    gaps_s: list[float] = field(default_factory=list)


def decode_span_ref(p: np.ndarray, cached_tokens: np.ndarray, kmax: int, horizon_s: float,
                    start_s: float = 0.0) -> DecodeSpanRef:
    """Decode steps one at a time, each request gaining one token per step."""
    cached = np.asarray(cached_tokens, dtype=np.int64).copy()
    ones = np.ones_like(cached)
    out = DecodeSpanRef(0, start_s, 0.0, 0.0, 0.0)
    while out.steps < kmax:
        time_s, energy_j = step_cost_ref(p, ones, cached)
        out.end_s += time_s
        out.busy_s += time_s
        out.energy_j += energy_j
        out.batch_area += len(cached) * time_s
        out.gaps_s.append(time_s)
        cached += 1
        out.steps += 1
        if out.end_s >= horizon_s:
            break
    return out


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
