"""KV memory and KV transfer arithmetic."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _blocks_short(ctx: np.ndarray, blocks: np.ndarray, n: int, block_tokens: int,
                  steps: int) -> int:
    short = 0
    for j in range(n):
        need = (ctx[j] + steps + block_tokens - 1) // block_tokens
        if need > blocks[j]:
            short += need - blocks[j]
    return short


@njit(cache=True)
def steps_until_kv_full(ctx: np.ndarray, blocks: np.ndarray, n: int, free_blocks: int,
                        block_tokens: int, kmax: int) -> int:
    """Largest k ≤ kmax such that k decode steps of the batch find the blocks they fill.

    A decode step writes the token at position ``ctx`` (0-based), so after ``i`` steps a
    request needs ``ceil((ctx + i) / block_tokens)`` blocks. The shortfall grows with ``k``,
    so a binary search finds the answer.
    """
    if kmax <= 0:
        return 0
    if _blocks_short(ctx, blocks, n, block_tokens, kmax) <= free_blocks:
        return kmax
    lo = 0      # known to fit
    hi = kmax   # known not to fit
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _blocks_short(ctx, blocks, n, block_tokens, mid) <= free_blocks:
            lo = mid
        else:
            hi = mid
    return lo


@njit(cache=True)
def kv_transfer_s(kv_bytes: float, bandwidth_bytes_per_s: float, latency_s: float,
                  overlap_s: float, layers: float, layerwise: bool) -> float:
    """Time a KV transfer adds after the prompt's last step.

    Layer-wise transfers start while the last prefill step runs (``overlap_s`` long), so
    only what does not fit in that window shows, and never less than the last layer.
    """
    wire_s = kv_bytes / bandwidth_bytes_per_s
    if not layerwise:
        return latency_s + wire_s
    return latency_s + max(wire_s - overlap_s, wire_s / layers)
