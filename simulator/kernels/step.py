"""Time and energy of one batch step of one replica (roofline), and of decode stretches.

Conventions the engine relies on: a request with ``c`` cached tokens that gets ``p`` new
tokens in a step contributes ``p`` new tokens, ``p·c + p·(p+1)/2`` causal attention pairs
(each new token attends to the cache and to the new tokens up to itself) and ``c`` cached
tokens read. A decode token is ``p = 1``: ``c + 1`` pairs. ``n_seqs`` counts the requests
that sample a token in the step (decoders, and prompts whose last chunk runs), since the
lm_head runs only for them. The engine passes sums over the batch, so a step costs O(1)
here whatever the batch size.

The cost vector ``p`` is a float64 array whose slots are named by the ``P_*`` constants;
``simulator.costs.replica_cost_vector`` fills it from a model card and a profile.

Per step, with ``S`` chips sharing the work at peak × efficiency::

    t_lin  = roofline(FLOPs of linear layers and lm_head,
                      weight bytes read + activation bytes the GEMMs read and write)
    t_attn = roofline(pairs · FLOPs per pair at the attention dtype's peak,
                      (cached + new tokens) · KV bytes per token)
    t_comm = two ring all-reduces of the new tokens' activations per layer (TP > 1)
           + two all-to-alls per MoE layer (expert parallelism, EP > 1)
           + a hop per extra system a replica spans (pipeline stages)
    t_sync = (layers + MoE layers) · chip-to-chip sync (LPU pipelines; an MoE layer is two
             stages: the router's choice, then the chips holding the chosen experts)
    t_host = idle wait per token · the busiest rank's new tokens / S
    time   = t_lin + t_attn + t_comm + t_sync + t_host + fixed step overhead

Activation traffic grows with the tokens of the step, as the FLOPs do, while the weights
are read once: at large token counts it is what memory still carries. Each GEMM reads its
input and writes its output once in bf16, with the elementwise work between them (norms,
rotary, activation functions, quantisation, residual adds) taken as fused into those.
Its share of a token's time is set by bytes per FLOP, about 1 / hidden size, so it
weighs most on small models at fast low-precision math (Llama 3.1 8B at FP4).

where ``roofline(c, m) = max(c, m) + (1 − overlap) · min(c, m)`` for the compute time ``c``
and memory time ``m`` at ``S`` chips' peak × efficiency. ``overlap = 1`` is the ideal
roofline, each stream hidden under the other. A GPU step is dozens of kernels per layer
(GEMMs, norms, activations, quantisation, attention) run one after the other, so near the
ridge point, where neither stream dominates, much of the shorter one shows; that is what
makes a 40 ms TPOT limit cost throughput that a 200 ms limit does not.

With data-parallel attention (dense layers copied over ``R`` ranks, or the attention GPUs
of an attention–FFN split) each rank runs its own requests' dense layers and attention,
and the ranks meet at every MoE layer, so ``step_cost_ranked`` charges that rank-local work
at ``R ×`` the busiest rank's load; the routed experts and the weights read stay shared.

With the attention–FFN split, attention (its projections, the pairs and the KV cache) runs
on separate GPUs (``t_side`` instead of ``t_attn``) and every layer sends the activations
there and back. Chips draw their maximum power only while computing or reading memory;
waiting on the network, on synchronisation or on the host they sit at idle power.

The host term is time a chip spends neither computing nor moving memory, in proportion
to the tokens it works on: the serving engine's loop (each token's inputs, positions and
cache slots built, samples read back) where it does not overlap the chip, and the launch
and synchronisation gaps between kernels. It is charged per chip, so a tensor-parallel
group shares it like the math. It is what makes a small model on a fast chip slower, and
cooler, than its math and memory say: MLPerf's measured wall power puts 8 B200s serving
Llama 3.1 8B at ~855 W each against ~975 W for Llama 2 70B, which idle time explains and
a busy GPU cannot.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from simulator.kernels.histogram import histogram_add

P_LIN_FLOPS_PER_TOKEN = 0    # 2 × linear params per token, whole replica (no embedding, no lm_head)
P_HEAD_FLOPS_PER_SEQ = 1     # 2 · hidden · vocab, once per sequence that samples a token
P_DENSE_WEIGHT_BYTES = 2     # read every step: all but routed experts and embedding, plus lm_head
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
P_ALLREDUCE_BW = 15          # bytes/s per direction, network efficiency applied
P_ALLREDUCE_LATENCY_S = 16
P_LAYERS = 17
P_HIDDEN = 18
P_ACT_BYTES = 19             # bytes per activation value exchanged by all-reduces
P_LAYER_SYNC_S = 20          # LPU per-layer chip-to-chip synchronisation
P_STEP_OVERHEAD_S = 21
P_IDLE_W = 22                # per chip
P_MAX_W = 23                 # per chip
P_CHIPS = 24                 # chips drawing power for the replica
# Parallel layouts beyond plain tensor parallelism; each term is skipped at its neutral value.
P_DENSE_COPIES = 25          # copies of the dense weights over the shards (data-parallel attention)
P_EXPERT_FLOPS_PER_TOKEN = 26   # routed experts' share of P_LIN_FLOPS_PER_TOKEN
P_EP = 27                    # expert-parallel ranks (experts split over this many chips)
P_EP_IMBALANCE = 28          # busiest rank's expert load over the mean (≥ 1)
P_EP_DOMAIN = 29             # chips per scale-up domain
P_EP_FAST_BW = 30            # bytes/s per chip per direction inside the domain
P_EP_FAST_LATENCY_S = 31
P_EP_SLOW_BW = 32            # bytes/s per chip per direction between domains (scale-out NIC)
P_EP_SLOW_LATENCY_S = 33
P_PP_STAGES = 34             # systems a replica spans, passed through in sequence
P_PP_HOP_BW = 35             # bytes/s of one stage-to-stage hop
P_PP_HOP_LATENCY_S = 36
P_SPEC_DRAFT_TOKENS = 37     # speculative tokens proposed per step (MTP / EAGLE heads)
P_SPEC_TOKENS_MILLI = 38     # accepted tokens per step per sequence × 1000, rounded
P_SPEC_DRAFT_FRACTION = 39   # one draft pass's cost as a fraction of a decode step
P_AFD_CHIPS = 40             # attention–FFN split: GPUs holding attention and KV (0: no split)
P_AFD_PEAK_FLOPS = 41
P_AFD_MEM_BW = 42
P_AFD_ETA_COMPUTE = 43
P_AFD_ETA_MEMORY = 44
P_AFD_ATTN_FLOPS_PER_TOKEN = 45   # attention projections, all layers
P_AFD_ATTN_WEIGHT_BYTES = 46      # attention weights, all layers (inside P_DENSE_WEIGHT_BYTES)
P_AFD_EXCHANGE_BW = 47            # bytes/s between the attention GPUs and the FFN chips
P_AFD_EXCHANGE_LATENCY_S = 48
P_AFD_IDLE_W = 49
P_AFD_MAX_W = 50
P_OVERLAP = 51               # share of the shorter of math and memory time hidden under the other
P_AFD_OVERLAP = 52           # the same, on the attention GPUs
P_ATTN_PEAK_FLOPS = 53       # per chip, dense, at the attention math's dtype (see costs)
P_AFD_ATTN_PEAK_FLOPS = 54   # the same, on the attention GPUs
P_EXPERT_PEAK_FLOPS = 55     # per chip, dense, at the routed experts' dtype (0: as P_PEAK_FLOPS)
P_ETA_KV_MEMORY = 56         # share of peak bandwidth reached streaming the KV cache
P_AFD_ETA_KV_MEMORY = 57     # the same, on the attention GPUs
P_ACT_BYTES_PER_TOKEN = 58   # activations one new token's dense GEMMs read and write, all layers
P_EXPERT_ACT_BYTES_PER_TOKEN = 59    # the same through the routed experts it is sent to
P_HEAD_ACT_BYTES_PER_SEQ = 60        # the lm_head's input and logits, per sampling sequence
P_AFD_ATTN_ACT_BYTES_PER_TOKEN = 61  # attention projections' share of P_ACT_BYTES_PER_TOKEN
P_HOST_S_PER_TOKEN = 62      # a chip's idle wait per new token it works on (host loop, kernel gaps)
N_PARAMS = 63

# Slots of the running sums a replica keeps, which a decode stretch advances in place.
ACC_NOW_S = 0         # absolute simulated time at the end of the last step
ACC_BUSY_S = 1        # sum of step times
ACC_ENERGY_J = 2
ACC_BATCH_AREA = 3    # decoding batch size × step time, summed
N_ACC = 4


@njit(cache=True)
def moe_touched_experts(experts: float, top_k: float, tokens: float) -> float:
    """Expected distinct experts ``tokens`` tokens touch, each routed to ``top_k`` of ``experts``.

    Under uniform routing an expert escapes one token with probability 1 − k/E, so it
    escapes all of them with (1 − k/E)^T; only touched experts' weights are read.
    """
    if experts <= 0.0 or tokens <= 0.0:
        return 0.0
    return experts * (1.0 - (1.0 - top_k / experts) ** tokens)


@njit(cache=True)
def roofline_s(compute_s: float, memory_s: float, overlap: float) -> float:
    """Time of work needing ``compute_s`` of math and ``memory_s`` of memory traffic, of
    which ``overlap`` of the shorter runs under the longer (1: the ideal roofline)."""
    return max(compute_s, memory_s) + (1.0 - overlap) * min(compute_s, memory_s)


@njit(cache=True)
def all_to_all_s(p: np.ndarray, tokens: float) -> float:
    """One expert-parallel all-to-all (dispatch or combine) of ``tokens`` tokens.

    Each rank holds tokens / ep of them and sends each to ``top_k`` experts spread evenly
    over the ep ranks: 1/ep stays on the chip, the ranks sharing its scale-up domain are
    reached over the fast fabric and the rest over the scale-out NIC. The two fabrics run
    at once, so the slower of the two sets the time; the busiest rank carries ``imbalance`` ×
    the mean. Leaving the domain therefore costs a step in bandwidth (NVLink 900 GB/s vs a
    50–200 GB/s NIC) and in latency.
    """
    ep = p[P_EP]
    domain = min(p[P_EP_DOMAIN], ep)
    sent_bytes = tokens / ep * p[P_TOP_K] * p[P_HIDDEN] * p[P_ACT_BYTES] * p[P_EP_IMBALANCE]
    fast_s = sent_bytes * (domain - 1.0) / ep / p[P_EP_FAST_BW]
    if domain >= ep:
        return fast_s + p[P_EP_FAST_LATENCY_S]
    slow_s = sent_bytes * (ep - domain) / ep / p[P_EP_SLOW_BW]
    return max(fast_s + p[P_EP_FAST_LATENCY_S], slow_s + p[P_EP_SLOW_LATENCY_S])


@njit(cache=True)
def step_cost(p: np.ndarray, n_seqs: float, new_tokens: float, attn_pairs: float,
              kv_read_tokens: float) -> tuple[float, float]:
    """(time_s, energy_j) of one step whose work every data-parallel rank shares evenly
    (always so without data-parallel ranks); an empty step costs nothing."""
    return _step_cost(p, n_seqs, new_tokens, attn_pairs, kv_read_tokens,
                      new_tokens, attn_pairs, kv_read_tokens)


@njit(cache=True)
def step_cost_ranked(p: np.ndarray, n_seqs: float, new_tokens: float, attn_pairs: float,
                     kv_read_tokens: float, rank_tokens: float, rank_pairs: float,
                     rank_kv_read_tokens: float) -> tuple[float, float]:
    """(time_s, energy_j) of one step of a replica with data-parallel attention, given the
    busiest rank's own new tokens, attention pairs and cached tokens read.

    Each rank runs the dense layers and attention of its own requests, and the ranks meet
    at every MoE layer's all-to-all, so the step waits for the busiest rank: a prompt chunk
    is not split over ranks, and a rank prefilling one holds the others up while they
    decode (TensorRT-LLM's attention-DP balance study measures this on DeepSeek). Routed
    experts still see every rank's tokens spread over the expert-parallel ranks.
    """
    ranks = dp_ranks(p)
    return _step_cost(p, n_seqs, new_tokens, attn_pairs, kv_read_tokens,
                      max(new_tokens, ranks * rank_tokens), max(attn_pairs, ranks * rank_pairs),
                      max(kv_read_tokens, ranks * rank_kv_read_tokens))


@njit(cache=True)
def dp_ranks(p: np.ndarray) -> float:
    """Ranks each running their own requests' attention: the attention GPUs under the
    attention–FFN split, else the copies of the dense layers (1 without data parallelism)."""
    if p[P_AFD_CHIPS] > 0.0:
        return p[P_AFD_CHIPS]
    return max(p[P_DENSE_COPIES], 1.0)


@njit(cache=True)
def _step_cost(p: np.ndarray, n_seqs: float, new_tokens: float, attn_pairs: float,
               kv_read_tokens: float, peak_tokens: float, peak_pairs: float,
               peak_kv_read_tokens: float) -> tuple[float, float]:
    """The step, with the rank-local work (dense layers, attention, the sends of the
    all-to-all and of tensor-parallel all-reduces) charged at ``peak_*``: the batch as it
    would be if every data-parallel rank carried the busiest one's load (≥ the totals)."""
    if new_tokens <= 0.0 and n_seqs <= 0.0:
        return 0.0, 0.0
    shards = p[P_SHARDS]
    flops_per_s = shards * p[P_PEAK_FLOPS] * p[P_ETA_COMPUTE]
    bytes_per_s = shards * p[P_MEM_BW] * p[P_ETA_MEMORY]

    afd_chips = p[P_AFD_CHIPS]
    # dense layers run rank by rank, except on the FFN chips of an attention–FFN split
    dense_tokens = new_tokens if afd_chips > 0.0 else peak_tokens
    # routed experts in their own format (an FP4 expert checkpoint): their FLOPs counted
    # at the dense peak's rate, so FP4 experts on an FP8 model cost half
    expert_scale = 1.0
    if p[P_EXPERT_PEAK_FLOPS] > 0.0:
        expert_scale = p[P_PEAK_FLOPS] / p[P_EXPERT_PEAK_FLOPS]
    expert_flops = new_tokens * p[P_EXPERT_FLOPS_PER_TOKEN] * expert_scale
    lin_flops = (dense_tokens * (p[P_LIN_FLOPS_PER_TOKEN] - p[P_EXPERT_FLOPS_PER_TOKEN])
                 + expert_flops + n_seqs * p[P_HEAD_FLOPS_PER_SEQ])
    # memory traffic of the linear layers: weights read, activations read and written
    weight_bytes = p[P_DENSE_WEIGHT_BYTES]
    if p[P_DENSE_COPIES] > 1.0:
        weight_bytes *= p[P_DENSE_COPIES]
    lin_bytes = (weight_bytes + dense_tokens * p[P_ACT_BYTES_PER_TOKEN]
                 + n_seqs * p[P_HEAD_ACT_BYTES_PER_SEQ])
    ep = p[P_EP]
    if p[P_MOE_LAYERS] > 0.0:
        touched = moe_touched_experts(p[P_EXPERTS], p[P_TOP_K], new_tokens)
        expert_bytes = (p[P_MOE_LAYERS] * touched * p[P_EXPERT_BYTES]
                        + new_tokens * p[P_EXPERT_ACT_BYTES_PER_TOKEN])
        if ep > 1.0 and p[P_EP_IMBALANCE] > 1.0:
            # the step waits for the busiest rank, which holds imbalance × its share
            extra = p[P_EP_IMBALANCE] - 1.0
            lin_flops += extra * expert_flops
            expert_bytes += extra * expert_bytes
        lin_bytes += expert_bytes
    kv_bytes = (peak_kv_read_tokens + peak_tokens) * p[P_KV_BYTES_PER_TOKEN]
    attn_flops = peak_pairs * p[P_ATTN_FLOPS_PER_PAIR]

    t_side = 0.0    # attention on separate GPUs (attention–FFN split)
    t_comm = 0.0
    if afd_chips > 0.0:
        lin_flops -= new_tokens * p[P_AFD_ATTN_FLOPS_PER_TOKEN]
        proj_flops = peak_tokens * p[P_AFD_ATTN_FLOPS_PER_TOKEN]
        lin_bytes -= (p[P_AFD_ATTN_WEIGHT_BYTES]
                      + new_tokens * p[P_AFD_ATTN_ACT_BYTES_PER_TOKEN])
        side_act_bytes = peak_tokens * p[P_AFD_ATTN_ACT_BYTES_PER_TOKEN]
        # data-parallel attention: every GPU reads all attention weights and its own KV
        t_side = roofline_s((proj_flops / p[P_AFD_PEAK_FLOPS]
                             + attn_flops / p[P_AFD_ATTN_PEAK_FLOPS])
                            / (afd_chips * p[P_AFD_ETA_COMPUTE]),
                            ((p[P_AFD_ATTN_WEIGHT_BYTES] + side_act_bytes / afd_chips)
                             / p[P_AFD_ETA_MEMORY]
                             + kv_bytes / (afd_chips * p[P_AFD_ETA_KV_MEMORY])) / p[P_AFD_MEM_BW],
                            p[P_AFD_OVERLAP])
        t_attn = 0.0
        hop_bytes = new_tokens * p[P_HIDDEN] * p[P_ACT_BYTES]
        t_comm = 2.0 * p[P_LAYERS] * (hop_bytes / p[P_AFD_EXCHANGE_BW]
                                      + p[P_AFD_EXCHANGE_LATENCY_S])
    else:
        attn_flops_per_s = shards * p[P_ATTN_PEAK_FLOPS] * p[P_ETA_COMPUTE]
        kv_bytes_per_s = shards * p[P_MEM_BW] * p[P_ETA_KV_MEMORY]
        t_attn = roofline_s(attn_flops / attn_flops_per_s, kv_bytes / kv_bytes_per_s, p[P_OVERLAP])
    t_lin = roofline_s(lin_flops / flops_per_s, lin_bytes / bytes_per_s, p[P_OVERLAP])

    tp = p[P_TP]
    if tp > 1.0:
        # each data-parallel group of tp chips all-reduces its own tokens
        group_tokens = dense_tokens / max(p[P_DENSE_COPIES], 1.0)
        ring_bytes = 2.0 * (tp - 1.0) / tp * group_tokens * p[P_HIDDEN] * p[P_ACT_BYTES]
        t_comm += 2.0 * p[P_LAYERS] * (ring_bytes / p[P_ALLREDUCE_BW] + p[P_ALLREDUCE_LATENCY_S])
    if ep > 1.0:
        t_comm += 2.0 * p[P_MOE_LAYERS] * all_to_all_s(p, peak_tokens)
    if p[P_PP_STAGES] > 1.0:
        hop_bytes = new_tokens * p[P_HIDDEN] * p[P_ACT_BYTES]
        t_comm += (p[P_PP_STAGES] - 1.0) * (hop_bytes / p[P_PP_HOP_BW]
                                            + p[P_PP_HOP_LATENCY_S])
    t_sync = (p[P_LAYERS] + p[P_MOE_LAYERS]) * p[P_LAYER_SYNC_S]

    t_host = p[P_HOST_S_PER_TOKEN] * peak_tokens / shards

    busy_s = t_lin + t_attn
    time_s = busy_s + t_side + t_comm + t_sync + t_host + p[P_STEP_OVERHEAD_S]
    chips = p[P_CHIPS]
    energy_j = chips * p[P_IDLE_W] * time_s + chips * (p[P_MAX_W] - p[P_IDLE_W]) * busy_s
    if afd_chips > 0.0:
        energy_j += (afd_chips * p[P_AFD_IDLE_W] * time_s
                     + afd_chips * (p[P_AFD_MAX_W] - p[P_AFD_IDLE_W]) * t_side)
    return time_s, energy_j


@njit(cache=True)
def decode_step_cost(p: np.ndarray, n_seqs: float, kv_tokens: float) -> tuple[float, float]:
    """(time_s, energy_j) of one decode step of ``n_seqs`` sequences holding ``kv_tokens``.

    With speculative decoding each sequence verifies its token and k drafted ones in one
    pass (k + 1 new tokens, lm_head at every position), after k draft passes each costing
    ``P_SPEC_DRAFT_FRACTION`` of a plain decode step (an MTP or EAGLE head is about one
    layer of the model).
    """
    k = p[P_SPEC_DRAFT_TOKENS]
    if k <= 0.0:
        return step_cost(p, n_seqs, n_seqs, kv_tokens + n_seqs, kv_tokens)
    q = k + 1.0
    new = n_seqs * q
    time_s, energy_j = step_cost(p, new, new, q * kv_tokens + n_seqs * q * (q + 1.0) / 2.0,
                                 kv_tokens)
    draft_s, draft_j = step_cost(p, n_seqs, n_seqs, kv_tokens + n_seqs, kv_tokens)
    share = k * p[P_SPEC_DRAFT_FRACTION]
    return time_s + share * draft_s, energy_j + share * draft_j


@njit(cache=True)
def spec_accepted(emitted: int, tokens_milli: int) -> int:
    """Tokens one sequence accepts at its next step, having emitted ``emitted`` in decode.

    The mean m tokens per step is spread deterministically: after j steps a sequence has
    emitted floor(j·m) tokens, so each step accepts 1 or more and the long-run mean is m
    exactly, with no random draw to make results depend on event order. Integer
    arithmetic on m × 1000 keeps it exact; j is recovered from ``emitted`` because
    floor(j·m) is strictly increasing for m ≥ 1.
    """
    if tokens_milli <= 1000:
        return 1
    j = (emitted * 1000 + tokens_milli - 1) // tokens_milli
    return (j + 1) * tokens_milli // 1000 - emitted


@njit(cache=True)
def decode_span(p: np.ndarray, n_seqs: float, kv_tokens: float, kmax: int, horizon_s: float,
                acc: np.ndarray, record_from: int, itl_hist: np.ndarray, lo_log10: float,
                bins_per_decade: float) -> int:
    """Advance pure-decode steps of an unchanging batch; return how many ran.

    This is the engine's skip-ahead: one event for a stretch of decode steps in which the
    batch does not change. ``kv_tokens`` is the batch's cached tokens summed; step ``i``
    costs ``step_cost(p, n, n, kv + n, kv)`` and then ``kv += n``. ``acc`` holds the
    replica's running sums (``ACC_*``) and is advanced step by step with the same
    additions a one-step-at-a-time simulation makes, so skipping ahead gives bit-equal
    clocks and totals. Stops after ``kmax`` steps, or after the first step that ends at or
    past the absolute time ``horizon_s`` (a step in progress always completes; inf means
    no horizon); at least one step runs when ``kmax ≥ 1``. Durations of steps with index
    ``≥ record_from`` go into ``itl_hist``, ``n_seqs`` gaps each (the engine records each
    request's first gap itself, as it runs from the request's previous token).
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
            histogram_add(itl_hist, lo_log10, bins_per_decade, time_s, n_seqs)
        kv += n_seqs
        steps += 1
        if acc[ACC_NOW_S] >= horizon_s:
            break
    return steps
