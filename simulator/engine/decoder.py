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

from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from simulator.engine.clock import Clock
from simulator.engine.compiled import INF, CompiledReplica
from simulator.engine.state import RequestTable
from simulator.kernels import kv_transfer_s
from simulator.kernels.decode import decode_advance, start_transfer
from simulator.kernels.replica_state import (
    ST_FREE_BLOCKS,
    ST_Q_HEAD,
    ST_Q_TAIL,
    ST_STATUS,
    ST_STEP_END_S,
    ST_STEP_KIND,
    STATUS_FULL,
)

__all__ = ["DecodeReplica", "KVLink"]


class DecodeReplica(CompiledReplica):
    """Continuous batching with paged KV on one decode replica, advanced lazily.

    ``on_finished(rows)`` hears of completed requests (in the order they finished) as soon
    as the replica is advanced past them; ``on_advanced`` is called after every advance
    that processed a boundary while ``link_waiting`` is set.
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
        self.on_advanced: Callable[[], None] | None = None
        self.slots = np.zeros(max_batch, dtype=np.int64)
        self.rc = np.zeros(max(64, max_batch), dtype=np.int64)
        self.done_rows = np.zeros(4 * max_batch, dtype=np.int64)
        self.held = 0                 # requests given memory here and not yet finished
        self.always_eager = eager
        self.draining = False
        self.link_waiting = False
        self.eager = eager

    # ----- what the link calls
    def start_transfer(self, request: int, blocks: int, duration_s: float) -> float:
        """Take memory for a transfer starting now and queue the request to join when its
        KV lands (the first step boundary at or after that with a free batch slot); return
        the landing time. The replica must have been advanced to now."""
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
        return lands_s

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
        if self.link_waiting and self.on_advanced is not None:
            self.on_advanced()
        if self.eager:
            self._schedule()


class KVLink:
    """The receiving end of one link into a :class:`DecodeReplica`.

    Transfers run one at a time in arrival order (NIXL-style pull): the head of the queue
    starts as soon as the replica has room for its KV, which it then holds; the link is
    busy until the KV lands, when the prefill replica's copy is released.
    """

    def __init__(self, env: Clock, replica: DecodeReplica, table: RequestTable,
                 bandwidth_bytes_per_s: float, latency_s: float, layerwise: bool,
                 kv_bytes_per_token: float, layers: int,
                 release_source: Callable[[int], None]) -> None:
        self.env = env
        self.replica = replica
        self.table = table
        self.bandwidth_bytes_per_s = bandwidth_bytes_per_s
        self.latency_s = latency_s
        self.layerwise = layerwise
        self.kv_bytes_per_token = kv_bytes_per_token
        self.layers = float(layers)
        self.release_source = release_source
        self.queue: deque[tuple[int, float]] = deque()
        self.sending = False
        self.busy_s = 0.0
        self.bytes_moved = 0.0
        self.transfers = 0
        replica.on_advanced = self.pump

    def submit(self, request: int, overlap_s: float) -> None:
        self.queue.append((request, overlap_s))
        if not self.sending:
            self.pump()

    def pump(self) -> None:
        """Start the head transfer if the link is free and the replica has room."""
        if self.sending or not self.queue:
            return
        replica = self.replica
        now = float(self.env.now)
        if now >= replica.next_s:
            replica.advance(now)
        request, overlap_s = self.queue[0]
        cached = int(self.table.cached[request])
        need = -(-cached // replica.block_tokens)
        if need > replica.st[ST_FREE_BLOCKS]:
            if not replica.link_waiting:
                replica.set_eager(link_waiting=True)
            return
        if replica.link_waiting:
            replica.set_eager(link_waiting=False)
        self.queue.popleft()
        kv_bytes = cached * self.kv_bytes_per_token
        duration_s = kv_transfer_s(kv_bytes, self.bandwidth_bytes_per_s, self.latency_s,
                                   overlap_s, self.layers, self.layerwise)
        replica.start_transfer(request, need, duration_s)
        self.sending = True
        self.busy_s += duration_s
        self.bytes_moved += kv_bytes
        self.transfers += 1
        self.env.timeout(duration_s, request).callbacks.append(self._landed)

    def _landed(self, event: Any) -> None:
        self.sending = False
        self.release_source(int(event.value))
        self.pump()
