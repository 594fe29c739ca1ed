"""A disaggregated decode replica and the link that feeds it, run by the compiled kernel.

A decode replica behind a KV link changes only when a transfer lands or a step ends, and a
transfer's landing time is known when it starts. So it needs no SimPy event per step: the
kernel (:func:`simulator.kernels.decode.decode_advance`) runs it forward to whatever time
someone looks at it (a router, the link, the end of the run). It runs *eagerly*, with an
event at every step boundary, only when something must react the moment a boundary passes:
a link waiting for memory, closed-loop users waiting for answers, the last requests
draining, or a run asked not to skip ahead. Both ways give identical results.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from simulator.engine.clock import Clock
from simulator.engine.compiled import INF, CompiledReplica
from simulator.engine.state import RequestTable
from simulator.kernels.decode import decode_advance, start_transfer
from simulator.kernels.replica_state import (
    ST_Q_HEAD,
    ST_Q_TAIL,
    ST_STATUS,
    ST_STEP_END_S,
    ST_STEP_KIND,
    STATUS_FULL,
)

__all__ = ["DecodeReplica"]


class DecodeReplica(CompiledReplica):
    """Continuous batching with paged KV on one decode replica, advanced lazily.

    ``on_finished(rows)`` hears of completed requests (in the order they finished) as soon
    as the replica is advanced past them; its link hears (``on_room``) after every advance
    that processed a boundary while it waits for memory.
    """

    role = "decode"

    def __init__(self, env: Clock, index: int, cost: np.ndarray, kv_blocks: int,
                 block_tokens: int, max_batch: int, max_batch_tokens: int,
                 table: RequestTable, itl_hist: np.ndarray,
                 on_finished: Callable[[np.ndarray], None], eager: bool) -> None:
        super().__init__(env, index, cost, kv_blocks, block_tokens, max_batch,
                         max_batch_tokens, table)
        self.itl_hist = itl_hist
        self.on_finished = on_finished
        self.on_room: Callable[[], None] | None = None
        self.slots = np.zeros(max_batch, dtype=np.int64)
        self.rc = np.zeros(max(64, max_batch), dtype=np.int64)
        self.done_rows = np.zeros(4 * max_batch, dtype=np.int64)
        self.held = 0                 # requests given memory here and not yet finished
        self.always_eager = eager
        self.draining = False
        self.link_waiting = False
        self.eager = eager

    # ----- what the link calls (simulator.engine.transfer.TransferTarget)
    def wait_for_room(self, waiting: bool) -> None:
        if waiting != self.link_waiting:
            self.set_eager(link_waiting=waiting)

    def transfer_landed(self, request: int) -> None:
        """Nothing to do: the request joins from the queue ``accept_transfer`` put it in."""

    def accept_transfer(self, request: int, blocks: int, duration_s: float) -> None:
        """Take memory for a transfer starting now and queue the request to join when its
        KV lands (the first step boundary at or after that with a free batch slot). The
        replica has been advanced to now (``room_blocks``)."""
        st = self.st
        head, tail = self._queue_room()
        self.held += 1
        if self.held > len(self.rc):
            self.rc = np.concatenate([self.rc, np.zeros(len(self.rc), dtype=np.int64)])
        lands_s = start_transfer(st, self.q, self.qt, self.table.ints, self.table.times,
                                 request, blocks, float(self.env.now), duration_s)
        if head == tail and st[ST_STEP_KIND] == 0.0:
            self.next_s = lands_s     # idle until it lands
            self._schedule()

    def set_eager(self, *, draining: bool | None = None, link_waiting: bool | None = None
                  ) -> None:
        if draining is not None:
            self.draining = draining
        if link_waiting is not None:
            self.link_waiting = link_waiting
        self.eager = self.always_eager or self.draining or self.link_waiting
        self._schedule()

    # ----- running
    def advance(self, now: float) -> None:
        """Process every step boundary up to ``now``."""
        if now < self.next_s:
            return
        st = self.st
        table = self.table
        while True:
            count = decode_advance(self.cost, st, self.slots, self.q, self.qt, self.rc,
                                   table.ints, table.times, self.itl_hist, self.done_rows, now)
            if count:
                self.held -= count
                self.on_finished(self.done_rows[:count])
            if st[ST_STATUS] != STATUS_FULL:
                break
        if st[ST_STEP_KIND] != 0.0:
            self.next_s = float(st[ST_STEP_END_S])
        elif st[ST_Q_HEAD] < st[ST_Q_TAIL]:
            self.next_s = float(self.qt[int(st[ST_Q_HEAD])])
        else:
            self.next_s = INF
        if self.link_waiting and self.on_room is not None:
            self.on_room()
        if self.eager:
            self._schedule()
