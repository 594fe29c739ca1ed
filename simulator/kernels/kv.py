"""KV memory and KV transfer arithmetic.

Paged KV memory decides how far a decode batch can run before it must preempt, and the
transfer time decides what disaggregation adds to time to first token; both sit on the
engine's hot path, so they are compiled like the step costs.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from simulator.kernels.step import step_cost

__all__ = ["kv_transfer_s", "steps_until_kv_full"]


@njit(cache=True)
def kv_blocks_short(ctx: np.ndarray, blocks: np.ndarray, n: int, block_tokens: int,
                  steps: int) -> int:
    """New blocks the batch needs to run ``steps`` more decode steps."""
    short = 0
    for j in range(n):
        need = (ctx[j] + steps + block_tokens - 1) // block_tokens
        if need > blocks[j]:
            short += need - blocks[j]
    return short


@njit(cache=True)
def steps_until_kv_full(ctx: np.ndarray, blocks: np.ndarray, n: int, free_blocks: int,
                        block_tokens: int, kmax: int) -> int:
    """Largest k in [0, kmax] such that k decode steps of the batch find the blocks they fill.

    A decode step writes the token at position ``ctx`` (0-based), so after ``k`` steps a
    request needs ``ceil((ctx + k) / block_tokens)`` blocks. The shortfall never falls as
    ``k`` grows, so a binary search needs O(n log kmax) work; the common answer ``kmax``
    costs one pass. Returns 0 when not even zero steps fit.
    """
    if kmax <= 0:
        return 0
    if kv_blocks_short(ctx, blocks, n, block_tokens, kmax) <= free_blocks:
        return kmax
    lo = 0      # fits, or nothing does and 0 is the answer
    hi = kmax   # known not to fit
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if kv_blocks_short(ctx, blocks, n, block_tokens, mid) <= free_blocks:
            lo = mid
        else:
            hi = mid
    return lo


@njit(cache=True)
def kv_transfer_s(kv_bytes: float, bandwidth_bytes_per_s: float, latency_s: float,
                  overlap_s: float, layers: float, layerwise: bool) -> float:
    """Time a KV transfer adds after the prompt's last prefill step ends.

    Bulk: the whole cache leaves after the step. Layer-wise: each layer's KV leaves as soon
    as that layer is computed, so the wire time overlaps the last step (``overlap_s`` long)
    and only the rest shows; the last layer's share is produced at the very end of the
    step, so it can never be hidden.
    """
    wire_s = kv_bytes / bandwidth_bytes_per_s
    if not layerwise:
        return latency_s + wire_s
    return latency_s + max(wire_s - overlap_s, wire_s / max(layers, 1.0))


@njit(cache=True)
def span_kv_growth_area(p: np.ndarray, n_seqs: float, kv_tokens: float, steps: int,
                        ctx: np.ndarray, blocks: np.ndarray, n: int, block_tokens: int) -> float:
    """Block-seconds that a decode stretch's growing KV adds beyond the blocks it started with.

    A step holds the blocks for the token it writes from its start, so step ``i`` (from 0)
    runs with the blocks of ``i + 1`` tokens, as a step-by-step simulation counts them.
    """
    area = 0.0
    kv = kv_tokens
    for i in range(steps):
        time_s, _ = step_cost(p, n_seqs, n_seqs, kv + n_seqs, kv)
        area += kv_blocks_short(ctx, blocks, n, block_tokens, i + 1) * time_s
        kv += n_seqs
    return area


@njit(cache=True)
def grow_blocks(rows: np.ndarray, cached: np.ndarray, blocks: np.ndarray, block_tokens: int,
                ahead: int) -> int:
    """Give each row the blocks for its cached tokens plus ``ahead``; return blocks taken."""
    taken = 0
    for i in range(rows.shape[0]):
        r = rows[i]
        need = (cached[r] + ahead + block_tokens - 1) // block_tokens
        if need > blocks[r]:
            taken += need - blocks[r]
            blocks[r] = need
    return taken


@njit(cache=True)
def advance_decoders(rows: np.ndarray, steps: int, now_s: float, cached: np.ndarray,
                     generated: np.ndarray, last_token_s: np.ndarray,
                     output_tokens: np.ndarray, finished: np.ndarray) -> int:
    """Credit ``steps`` decode tokens to each row; list the rows that are done in
    ``finished`` and return how many there are."""
    count = 0
    for i in range(rows.shape[0]):
        r = rows[i]
        cached[r] += steps
        generated[r] += steps
        last_token_s[r] = now_s
        if generated[r] >= output_tokens[r]:
            finished[count] = r
            count += 1
    return count
