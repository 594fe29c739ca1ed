"""KV cache of earlier prompts, loaded back from slower tiers instead of recomputed.

Serving stacks keep the KV of past prompts in host DRAM or a networked store and load it
when a new prompt shares the prefix. Each tier holds a fixed share of the prompt tokens the
faster tiers lacked, rounded down to whole KV blocks, so the hits follow from the prompt
length alone: no random draws, and a scenario's seeded traffic is untouched.

A routed request loads its hits tier after tier into its prefill replica; loads from one
tier into one replica queue behind each other, and since each load's duration is known
when it is queued, its landing time is known at once (as on a :class:`KVLink`). The
request joins the replica's queue when its last load lands, with the loaded prefix counted
as cached context.
"""

from __future__ import annotations

import numpy as np

from simulator.config.scenario import KVTierSpec
from simulator.engine.state import RequestTable

__all__ = ["TierLoads", "tier_hit_tokens"]


def tier_hit_tokens(tiers: tuple[KVTierSpec, ...], input_tokens: np.ndarray,
                    block_tokens: int) -> np.ndarray:
    """Tokens each tier holds of each prompt, shape (tiers, requests).

    A tier holds ``hit_rate`` of the tokens still missing, in whole blocks (KV is stored
    and fetched by block). The prompt's last token is always left to compute: its logits
    give the first output token.
    """
    hits = np.zeros((len(tiers), len(input_tokens)), dtype=np.int64)
    missing = np.asarray(input_tokens, dtype=np.int64).copy()
    for i, tier in enumerate(tiers):
        share = np.floor(missing * tier.hit_rate).astype(np.int64)
        hit = np.minimum(share // block_tokens, (missing - 1) // block_tokens) * block_tokens
        hits[i] = hit
        missing -= hit
    return hits


class TierLoads:
    """The tiers of one prefill (or aggregated) pool and the loads into its replicas."""

    def __init__(self, tiers: tuple[KVTierSpec, ...], table: RequestTable, block_tokens: int,
                 kv_bytes_per_token: float, replicas: int) -> None:
        self.names = tuple(t.name for t in tiers)
        hits = tier_hit_tokens(tiers, table.input_tokens, block_tokens)
        table.kv_hit_tokens[:] = hits.sum(axis=0)
        latency_s = np.array([t.latency_us * 1e-6 for t in tiers])[:, None]
        bandwidth_bytes_per_s = np.array([t.bandwidth_gbps * 1e9 / 8.0 for t in tiers])[:, None]
        load_s = np.where(hits > 0, latency_s + hits * kv_bytes_per_token / bandwidth_bytes_per_s,
                          0.0)
        # one row per request: Python floats and ints, read once when the request is routed
        self._hits: list[list[int]] = hits.T.tolist()
        self._load_s: list[list[float]] = load_s.T.tolist()
        self._free_s = [[0.0] * len(tiers) for _ in range(replicas)]
        self.loaded_tokens = [0] * len(tiers)
        self.ready_s = np.full(table.n, np.nan)

    def start(self, request: int, replica: int, now_s: float) -> float:
        """Queue the request's loads into ``replica``, each tier after the previous one and
        behind earlier loads from the same tier; return when the last lands (``now_s`` if
        no tier holds any of the prompt)."""
        free_s = self._free_s[replica]
        t = now_s
        for i, (hit, load_s) in enumerate(zip(self._hits[request], self._load_s[request],
                                                strict=True)):
            if hit:
                t = max(t, free_s[i]) + load_s
                free_s[i] = t
                self.loaded_tokens[i] += hit
        self.ready_s[request] = t
        return t

    def hit_tokens_by_tier(self) -> dict[str, int]:
        return dict(zip(self.names, self.loaded_tokens, strict=True))
