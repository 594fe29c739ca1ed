"""Per-request state as one numpy array per field (struct of arrays).

A request is a row index. The engine never allocates an object per request or per token;
it reads and writes these columns, often many rows at once. The integer columns are rows of
one 2-D array and the time columns rows of another, so a compiled kernel takes the whole
table as two arguments (``ints``, ``times``) and indexes them with the row constants of
``simulator.kernels.layout``; Python code uses the named columns, views of those rows.
"""

from __future__ import annotations

import numpy as np

from simulator.kernels.layout import (
    N_TI,
    TI_BLOCKS_DECODE,
    TI_BLOCKS_FIRST,
    TI_CACHED,
    TI_GENERATED,
    TI_INPUT,
    TI_OUTPUT,
    TI_PREEMPTIONS,
    TI_TARGET,
    TIME_COLUMNS,
)

__all__ = ["RequestTable"]


class RequestTable:
    """Every request's lengths, progress and timestamps.

    ``cached`` counts tokens whose KV is in memory; ``generated`` counts output tokens
    sampled so far (the first one comes out of prefill). Past its prompt a request keeps
    ``cached == input_tokens + generated - 1``. ``target`` is the context a request must
    have cached before it can decode: its prompt at first, and everything it had after a
    preemption threw its KV away. ``blocks_first`` and ``blocks_decode`` are the KV blocks
    a request holds on its prefill (or aggregated) replica and on its decode replica:
    during a transfer it holds both. ``kv_hit_tokens`` is the prompt prefix loaded from KV
    offload tiers rather than computed (zero without tiers).
    """

    def __init__(self, arrival_s: np.ndarray, input_tokens: np.ndarray,
                 output_tokens: np.ndarray, tier: np.ndarray) -> None:
        n = len(input_tokens)
        self.n = n
        self.ints = np.zeros((N_TI, n), dtype=np.int64)
        self.times = np.full((len(TIME_COLUMNS), n), np.nan)
        self.input_tokens = self.ints[TI_INPUT]
        self.output_tokens = self.ints[TI_OUTPUT]
        self.cached = self.ints[TI_CACHED]
        self.target = self.ints[TI_TARGET]
        self.generated = self.ints[TI_GENERATED]
        self.blocks_first = self.ints[TI_BLOCKS_FIRST]
        self.blocks_decode = self.ints[TI_BLOCKS_DECODE]
        self.preemptions = self.ints[TI_PREEMPTIONS]
        self.input_tokens[:] = input_tokens
        self.output_tokens[:] = output_tokens
        self.target[:] = input_tokens
        for row, name in enumerate(TIME_COLUMNS):
            setattr(self, name, self.times[row])
        self.arrival_s[:] = arrival_s
        self.tier = np.asarray(tier, dtype=np.int8)
        self.prefill_replica = np.full(n, -1, dtype=np.int32)
        self.decode_replica = np.full(n, -1, dtype=np.int32)
        self.done = np.zeros(n, dtype=bool)
        self.kv_hit_tokens = np.zeros(n, dtype=np.int64)

    # Declared for type checkers; set as row views in __init__.
    arrival_s: np.ndarray
    prefill_start_s: np.ndarray
    prefill_end_s: np.ndarray
    kv_transfer_start_s: np.ndarray
    kv_transfer_end_s: np.ndarray
    decode_start_s: np.ndarray
    first_token_s: np.ndarray
    last_token_s: np.ndarray

    def columns(self) -> dict[str, np.ndarray]:
        """The per-request record, in the order the CSV writes it."""
        return {
            "request": np.arange(self.n),
            "tier": self.tier,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            **{name: getattr(self, name) for name in TIME_COLUMNS},
            "preemptions": self.preemptions,
            "prefill_replica": self.prefill_replica,
            "decode_replica": self.decode_replica,
        }
