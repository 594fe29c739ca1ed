"""A prefill replica of a disaggregated pool, stepped by the compiled prefill kernel.

It runs the built-in batch policies (chunked prefill, or continuous batching's whole
prompts) on a replica that only ever prefills, with one SimPy wake-up per step instead of
a generator resuming and a policy object planning each step in Python. Finished prompts are
handed on at the boundary where they finish.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from simulator.engine.clock import Clock
from simulator.engine.compiled import INF, CompiledReplica
from simulator.engine.state import RequestTable
from simulator.kernels.prefill import prefill_advance, release_blocks
from simulator.kernels.replica_state import (
    ST_LAST_STEP_S,
    ST_Q_TAIL,
    ST_STEP_END_S,
    ST_STEP_KIND,
    ST_WHOLE_PROMPTS,
)

__all__ = ["PrefillReplica"]


class PrefillReplica(CompiledReplica):
    """``on_prefill_done(request, last_step_s)`` takes each prompt that needs decoding;
    ``on_finished(rows)`` hears of requests whose only token came out of prefill."""

    role = "prefill"

    def __init__(self, env: Clock, index: int, cost: np.ndarray, kv_blocks: int,
                 block_tokens: int, max_batch: int, max_batch_tokens: int,
                 whole_prompts: bool, table: RequestTable,
                 on_prefill_done: Callable[[int, float], None],
                 on_finished: Callable[[np.ndarray], None]) -> None:
        super().__init__(env, index, cost, kv_blocks, block_tokens, max_batch,
                         max_batch_tokens, table)
        self.st[ST_WHOLE_PROMPTS] = 1.0 if whole_prompts else 0.0
        self.admitted = np.zeros(max_batch, dtype=np.int64)
        self.takes = np.zeros(max_batch, dtype=np.int64)
        self.out = np.zeros(max_batch, dtype=np.int64)
        self.on_prefill_done = on_prefill_done
        self.on_finished = on_finished

    def enqueue(self, request: int) -> None:
        """A request arrives: it waits in line for memory and a batch slot."""
        _, tail = self._queue_room()
        self.q[tail] = request
        self.st[ST_Q_TAIL] = tail + 1
        now = float(self.env.now)
        if now >= self.next_s:
            self.advance(now)
        if self.st[ST_STEP_KIND] == 0.0:   # idle: it may start at once
            self.next_s = now
            self.advance(now)

    @property
    def prompt_tokens_computed(self) -> int:
        """Prompt tokens run through this replica's steps, counted per finished prompt
        (the kernel keeps no such sum): a prefill replica never preempts, so each prompt
        was computed once, less the prefix loaded from KV tiers."""
        t = self.table
        mine = (t.prefill_replica == self.index) & ~np.isnan(t.prefill_end_s)
        return int((t.input_tokens[mine] - t.kv_hit_tokens[mine]).sum())

    def release(self, request: int) -> None:
        """The request's KV has left for its decode replica: free its blocks here."""
        now = float(self.env.now)
        if now >= self.next_s:
            self.advance(now)
        if release_blocks(self.st, self.table.ints, request, now):
            self.next_s = now       # a waiting request may fit now
            self.advance(now)

    def advance(self, now: float) -> None:
        """Process step boundaries up to ``now``, handing on prompts as they finish."""
        if now < self.next_s:
            return
        st = self.st
        table = self.table
        while True:
            count = prefill_advance(self.cost, st, self.q, self.admitted, self.takes,
                                    table.ints, table.times, self.out, now)
            if not count:
                break
            step_s = float(st[ST_LAST_STEP_S])   # the step that finished them
            for request in self.out[:count].tolist():
                if request >= 0:
                    self.on_prefill_done(request, step_s)
                else:
                    self.on_finished(np.array([-request - 1], dtype=np.int64))
        self.next_s = float(st[ST_STEP_END_S]) if st[ST_STEP_KIND] != 0.0 else INF
        self._schedule()
