"""Time and energy of one batch step of one replica (roofline), and of decode stretches.

Conventions the engine relies on: a request with ``c`` cached tokens that gets ``p`` new
tokens in a step contributes ``p`` new tokens, ``p·c + p·(p+1)/2`` causal attention pairs
(each new token attends to the cache and to the new tokens up to itself) and ``c`` cached
tokens read. A decode token is ``p = 1``: ``c + 1`` pairs. The engine passes the sums over
the batch, so a step costs O(1) here whatever the batch size.

The cost vector ``p`` is a float64 array whose slots are named by the ``P_*`` constants;
``simulator.costs.replica_cost_vector`` fills it from a model card and a profile.
"""

from __future__ import annotations

import numpy as np
from numba import njit

P_LIN_FLOPS_PER_TOKEN = 0    # 2 × linear params per token, whole replica (no embedding, no lm_head)
P_HEAD_FLOPS_PER_SEQ = 1     # 2 · hidden · vocab, once per sequence that samples a token
P_DENSE_WEIGHT_BYTES = 2     # weights read every step: all but routed experts and the embedding
P_MOE_LAYERS = 3
P_EXPERTS = 4
P_TOP_K = 5
P_EXPERT_BYTES = 6           # one routed expert in one layer
P_ATTN_FLOPS_PER_PAIR = 7    # all layers
P_KV_BYTES_PER_TOKEN = 8     # all layers
P_SHARDS = 9                 # chips the work is split over (tp, or an LPU replica's chips)
P_PEAK_FLOPS = 10            # per chip, dense, at the weights' dtype
P_MEM_BW = 11                # per chip, bytes/s
P_ETA_COMPUTE = 12
P_ETA_MEMORY = 13
P_TP = 14
P_ALLREDUCE_BW = 15          # per direction, efficiency applied
P_ALLREDUCE_LATENCY_S = 16
P_LAYERS = 17
P_HIDDEN = 18
P_ACT_BYTES = 19
P_LAYER_SYNC_S = 20          # LPU per-layer chip-to-chip synchronisation
P_STEP_OVERHEAD_S = 21
P_IDLE_W = 22                # per chip
P_MAX_W = 23                 # per chip
P_CHIPS = 24                 # chips drawing power for the replica
N_PARAMS = 25

# Slots of the accumulator a decode stretch advances (the replica keeps the same four sums).
ACC_NOW_S = 0
ACC_BUSY_S = 1
ACC_ENERGY_J = 2
ACC_BATCH_AREA = 3
N_ACC = 4


@njit(cache=True)
def moe_touched_experts(experts: float, top_k: float, tokens: float) -> float:
    """Expected distinct experts a batch of ``tokens`` touches under uniform top-k routing."""
    if experts <= 0.0 or tokens <= 0.0:
        return 0.0
    return experts * (1.0 - (1.0 - top_k / experts) ** tokens)


@njit(cache=True)
def step_cost(p: np.ndarray, n_seqs: float, new_tokens: float, attn_pairs: float,
              kv_read_tokens: float) -> tuple[float, float]:
    """(time_s, energy_j) of one step. Linear layers and attention are separate rooflines."""
    if new_tokens <= 0.0 and n_seqs <= 0.0:
        return 0.0, 0.0
    shards = p[P_SHARDS]
    compute = shards * p[P_PEAK_FLOPS] * p[P_ETA_COMPUTE]
    memory = shards * p[P_MEM_BW] * p[P_ETA_MEMORY]
    lin_flops = new_tokens * p[P_LIN_FLOPS_PER_TOKEN] + n_seqs * p[P_HEAD_FLOPS_PER_SEQ]
    weight_bytes = p[P_DENSE_WEIGHT_BYTES]
    if p[P_MOE_LAYERS] > 0.0:
        weight_bytes += (p[P_MOE_LAYERS] * moe_touched_experts(p[P_EXPERTS], p[P_TOP_K], new_tokens)
                         * p[P_EXPERT_BYTES])
    t_lin = max(lin_flops / compute, weight_bytes / memory)
    t_attn = max(attn_pairs * p[P_ATTN_FLOPS_PER_PAIR] / compute,
                 (kv_read_tokens + new_tokens) * p[P_KV_BYTES_PER_TOKEN] / memory)
    t_comm = 0.0
    tp = p[P_TP]
    if tp > 1.0:
        volume = 2.0 * (tp - 1.0) / tp * new_tokens * p[P_HIDDEN] * p[P_ACT_BYTES]
        t_comm = 2.0 * p[P_LAYERS] * (volume / p[P_ALLREDUCE_BW] + p[P_ALLREDUCE_LATENCY_S])
    t_sync = p[P_LAYERS] * p[P_LAYER_SYNC_S]
    time_s = t_lin + t_attn + t_comm + t_sync + p[P_STEP_OVERHEAD_S]
    chips = p[P_CHIPS]
    energy_j = chips * p[P_IDLE_W] * time_s + chips * (p[P_MAX_W] - p[P_IDLE_W]) * (t_lin + t_attn)
    return time_s, energy_j


@njit(cache=True)
def histogram_add_weighted(hist: np.ndarray, lo_log10: float, bins_per_decade: float,
                           value: float, weight: float) -> None:
    if value <= 0.0:
        index = 0
    else:
        index = int(np.floor((np.log10(value) - lo_log10) * bins_per_decade))
    index = min(max(index, 0), hist.shape[0] - 1)
    hist[index] += weight


@njit(cache=True)
def decode_span(p: np.ndarray, n_seqs: float, kv_tokens: float, kmax: int, horizon_s: float,
                acc: np.ndarray, record_from: int, itl_hist: np.ndarray, lo_log10: float,
                bins_per_decade: float) -> int:
    """Advance pure-decode steps of an unchanging batch; return how many ran.

    ``acc`` holds the replica's running sums (``ACC_*``) and is advanced step by step with
    the same arithmetic a step-by-step simulation does, so skipping ahead gives bit-equal
    times. Stops after ``kmax`` steps, or after the first step that ends at or past the
    absolute time ``horizon_s`` (a step in progress always completes). Step durations from
    step index ``record_from`` on go into ``itl_hist``, ``n_seqs`` gaps each.
    """
    steps = 0
    kv = kv_tokens
    while steps < kmax:
        time_s, energy_j = step_cost(p, n_seqs, n_seqs, kv + n_seqs, kv)
        acc[ACC_NOW_S] += time_s
        acc[ACC_BUSY_S] += time_s
        acc[ACC_ENERGY_J] += energy_j
        acc[ACC_BATCH_AREA] += n_seqs * time_s
        if steps >= record_from:
            histogram_add_weighted(itl_hist, lo_log10, bins_per_decade, time_s, n_seqs)
        kv += n_seqs
        steps += 1
        if acc[ACC_NOW_S] >= horizon_s:
            break
    return steps
