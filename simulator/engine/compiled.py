"""What compiled replicas share: the state vector, the arrival queue and eager wake-ups.

A compiled replica keeps its state in arrays a kernel advances from one step boundary to
the next (:mod:`simulator.kernels.replica_state`). The engine calls ``advance(now)``
whenever someone needs the replica as it is now; when something must happen the moment a
boundary passes, the replica keeps one SimPy wake-up pending at its next boundary.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import simpy

from simulator.engine.clock import Clock
from simulator.engine.state import RequestTable
from simulator.kernels.replica_state import (
    ST_BATCH_AREA,
    ST_BUSY_S,
    ST_ENERGY_J,
    ST_FREE_BLOCKS,
    ST_KV_AREA,
    ST_PREEMPTIONS,
    ST_Q_HEAD,
    ST_Q_TAIL,
    ST_STEPS,
    kv_mark,
    new_replica_state,
)

__all__ = ["CompiledReplica"]

INF = float("inf")


class CompiledReplica(ABC):
    role = ""

    def __init__(self, env: Clock, index: int, cost: np.ndarray, kv_blocks: int,
                 block_tokens: int, max_batch: int, max_batch_tokens: int,
                 table: RequestTable) -> None:
        self.env = env
        self.index = index
        self.cost = cost
        self.kv_blocks_total = kv_blocks
        self.block_tokens = block_tokens
        self.table = table
        self.st = new_replica_state(kv_blocks, max_batch, block_tokens, max_batch_tokens)
        self.q = np.zeros(64, dtype=np.int64)
        self.qt = np.zeros(64)
        self.next_s = INF            # the earliest time at which advancing changes anything
        self.eager = True            # keep a wake-up pending at the next boundary
        self._wake: simpy.Event | None = None
        self._wake_s = INF

    @abstractmethod
    def advance(self, now: float) -> None:
        """Process every step boundary up to ``now``."""

    # ----- what the summary, the routers and the tests read
    @property
    def free_blocks(self) -> int:
        self.advance(float(self.env.now))
        return int(self.st[ST_FREE_BLOCKS])

    def room_blocks(self) -> int:
        return self.free_blocks

    @property
    def busy_s(self) -> float:
        return float(self.st[ST_BUSY_S])

    @property
    def energy_j(self) -> float:
        return float(self.st[ST_ENERGY_J])

    @property
    def batch_token_area(self) -> float:
        return float(self.st[ST_BATCH_AREA])

    @property
    def steps(self) -> int:
        return int(self.st[ST_STEPS])

    @property
    def preemptions(self) -> int:
        return int(self.st[ST_PREEMPTIONS])

    def kv_occupancy_mean(self, end_s: float) -> float:
        self.advance(end_s)
        kv_mark(self.st, end_s)
        if end_s <= 0 or self.kv_blocks_total == 0:
            return 0.0
        return float(self.st[ST_KV_AREA]) / (end_s * self.kv_blocks_total)

    # ----- internals
    def _queue_room(self) -> tuple[int, int]:
        """Make room at the tail of the queue (compacting, or doubling when over half full);
        return (head, tail)."""
        st = self.st
        head, tail = int(st[ST_Q_HEAD]), int(st[ST_Q_TAIL])
        if tail == len(self.q):
            live = tail - head
            size = len(self.q) * 2 if live > len(self.q) // 2 else len(self.q)
            q, qt = np.zeros(size, dtype=np.int64), np.zeros(size)
            q[:live], qt[:live] = self.q[head:tail], self.qt[head:tail]
            self.q, self.qt = q, qt
            head, tail = 0, live
            st[ST_Q_HEAD], st[ST_Q_TAIL] = 0, live
        return head, tail

    def _schedule(self) -> None:
        """When eager, keep one wake-up pending at the next boundary."""
        when = self.next_s
        if when == INF or not self.eager:
            return
        if self._wake is not None and self._wake_s == when:
            return
        wake = self.env.at(when)
        wake.callbacks.append(self._woken)
        self._wake = wake
        self._wake_s = when

    def _woken(self, event: simpy.Event) -> None:
        if event is not self._wake:
            return        # superseded by a wake-up for an earlier boundary
        self._wake = None
        self.advance(float(self.env.now))
