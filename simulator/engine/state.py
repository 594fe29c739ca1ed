"""Per-request state as one numpy array per field (struct of arrays).

A request is a row index. The engine never allocates an object per request or per token;
it reads and writes these columns, often many rows at once.
"""

from __future__ import annotations

import numpy as np

__all__ = ["RequestTable"]

_TIME_COLUMNS = (
    "arrival_s",
    "prefill_start_s",
    "prefill_end_s",
    "kv_transfer_start_s",
    "kv_transfer_end_s",
    "decode_start_s",
    "first_token_s",
    "last_token_s",
)


class RequestTable:
    """Every request's lengths, progress and timestamps.

    ``cached`` counts tokens whose KV is in memory; ``generated`` counts output tokens
    sampled so far (the first one comes out of prefill). Past its prompt a request keeps
    ``cached == input_tokens + generated - 1``. ``target`` is the context a request must
    have cached before it can decode: its prompt at first, and everything it had after a
    preemption threw its KV away.
    """

    def __init__(self, arrival_s: np.ndarray, input_tokens: np.ndarray,
                 output_tokens: np.ndarray, tier: np.ndarray) -> None:
        n = len(input_tokens)
        self.n = n
        self.input_tokens = np.asarray(input_tokens, dtype=np.int64)
        self.output_tokens = np.asarray(output_tokens, dtype=np.int64)
        self.tier = np.asarray(tier, dtype=np.int8)
        self.arrival_s = np.array(arrival_s, dtype=np.float64)
        self.prefill_start_s = np.full(n, np.nan)
        self.prefill_end_s = np.full(n, np.nan)
        self.kv_transfer_start_s = np.full(n, np.nan)
        self.kv_transfer_end_s = np.full(n, np.nan)
        self.decode_start_s = np.full(n, np.nan)
        self.first_token_s = np.full(n, np.nan)
        self.last_token_s = np.full(n, np.nan)
        self.cached = np.zeros(n, dtype=np.int64)
        self.target = self.input_tokens.copy()
        self.generated = np.zeros(n, dtype=np.int64)
        self.preemptions = np.zeros(n, dtype=np.int32)
        self.prefill_replica = np.full(n, -1, dtype=np.int32)
        self.decode_replica = np.full(n, -1, dtype=np.int32)
        # KV blocks a request holds on its prefill (or aggregated) replica and on its decode
        # replica: during a transfer it holds both.
        self.blocks_first = np.zeros(n, dtype=np.int64)
        self.blocks_decode = np.zeros(n, dtype=np.int64)
        self.done = np.zeros(n, dtype=bool)

    def columns(self) -> dict[str, np.ndarray]:
        """The per-request record, in the order the CSV writes it."""
        return {
            "request": np.arange(self.n),
            "tier": self.tier,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            **{name: getattr(self, name) for name in _TIME_COLUMNS},
            "preemptions": self.preemptions,
            "prefill_replica": self.prefill_replica,
            "decode_replica": self.decode_replica,
        }
