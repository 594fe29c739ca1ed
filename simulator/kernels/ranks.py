"""Which data-parallel rank a step's prompt chunks load most, and what such a step costs.

With data-parallel attention every request lives on one rank, so a prompt chunk runs
there whole while the other ranks decode (see ``step_cost_ranked``). Chunks are placed
longest first on the least loaded rank, as a scheduler spreading a step's new prompts
over the ranks would; decoders are taken as evenly spread. The result is that rank's
share of the step, to pass to ``step_cost_ranked``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from simulator.kernels.step import dp_ranks, step_cost, step_cost_ranked


@njit(cache=True)
def busiest_rank_load(takes: np.ndarray, cached: np.ndarray, n_chunks: int, ranks: float,
                      n_decode: float, kv_decode_tokens: float) -> tuple[float, float, float]:
    """(new tokens, attention pairs, cached tokens read) of the busiest of ``ranks`` ranks.

    ``takes[i]`` new tokens of chunk ``i`` extend a prompt holding ``cached[i]`` (for
    ``i < n_chunks``); ``n_decode`` decoders holding ``kv_decode_tokens`` in all add their
    even share to every rank. Ties go to the lower rank, so the result never depends on
    anything but the arguments.
    """
    r = max(int(ranks), 1)
    tokens = np.zeros(r)
    pairs = np.zeros(r)
    kv = np.zeros(r)
    order = np.argsort(-takes[:n_chunks], kind="mergesort")
    for i in order:
        take = float(takes[i])
        c = float(cached[i])
        j = int(np.argmin(tokens))
        tokens[j] += take
        pairs[j] += take * c + take * (take + 1.0) / 2.0
        kv[j] += c
    b = int(np.argmax(tokens))
    share = 1.0 / r
    return (tokens[b] + n_decode * share,
            pairs[b] + (kv_decode_tokens + n_decode) * share,
            kv[b] + kv_decode_tokens * share)


@njit(cache=True)
def chunked_step_cost(p: np.ndarray, takes: np.ndarray, cached: np.ndarray,
                      targets: np.ndarray, n_chunks: int, n_decode: float,
                      kv_decode_tokens: float) -> tuple[float, float]:
    """(time_s, energy_j) of a step running prompt chunks beside ``n_decode`` decoders.

    Chunk ``i`` adds ``takes[i]`` tokens to a prompt holding ``cached[i]`` of its
    ``targets[i]``; one that reaches its target samples a token. Every engine prices a
    chunked step here, so the Python and compiled replicas cannot drift apart.
    """
    sampling = n_decode
    new_tokens = n_decode
    pairs = kv_decode_tokens + n_decode
    kv_read = kv_decode_tokens
    for i in range(n_chunks):
        take = float(takes[i])
        c = float(cached[i])
        new_tokens += take
        pairs += take * c + take * (take + 1) / 2
        kv_read += c
        if c + take >= targets[i]:
            sampling += 1.0
    ranks = dp_ranks(p)
    if ranks <= 1.0:
        return step_cost(p, sampling, new_tokens, pairs, kv_read)
    rank_tokens, rank_pairs, rank_kv = busiest_rank_load(takes, cached, n_chunks, ranks,
                                                         n_decode, kv_decode_tokens)
    return step_cost_ranked(p, sampling, new_tokens, pairs, kv_read,
                            rank_tokens, rank_pairs, rank_kv)
