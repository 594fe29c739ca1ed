"""KV cache moving from a prefill replica to a decode replica over the network.

The decode side pulls (as NIXL-style engines do): it first reserves room for the KV, then
reads it over its link, one transfer at a time, so transfers into one replica queue behind
each other and a full decode replica holds prefill memory hostage (back-pressure).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import simpy

from simulator.engine.replica import Replica
from simulator.engine.state import RequestTable
from simulator.kernels import kv_transfer_s

__all__ = ["KVIngress"]


class KVIngress:
    """The receiving end of one link on one decode replica."""

    def __init__(
        self,
        env: simpy.Environment,
        replica: Replica,
        table: RequestTable,
        bandwidth_bytes_per_s: float,
        latency_s: float,
        layerwise: bool,
        kv_bytes_per_token: float,
        layers: int,
        release_source: Callable[[int], None],
    ) -> None:
        self.env = env
        self.replica = replica
        self.table = table
        self.bandwidth_bytes_per_s = bandwidth_bytes_per_s
        self.latency_s = latency_s
        self.layerwise = layerwise
        self.kv_bytes_per_token = kv_bytes_per_token
        self.layers = layers
        self.release_source = release_source
        self.queue: deque[tuple[int, float]] = deque()
        self.sending = False
        self.busy_s = 0.0
        self.bytes_moved = 0.0
        self.transfers = 0
        replica.on_blocks_freed = self.pump

    def submit(self, request: int, overlap_s: float) -> None:
        self.queue.append((request, overlap_s))
        self.pump()

    def pump(self) -> None:
        """Start the head transfer now if the link is free and the replica has room; it is
        tried again whenever the replica frees blocks and when a transfer lands."""
        if self.sending or not self.queue:
            return
        table = self.table
        replica = self.replica
        request, overlap_s = self.queue[0]
        need = -(-int(table.cached[request]) // replica.block_tokens)
        if need > replica.free_blocks_now():
            return
        self.queue.popleft()
        replica.reserve(request, need)
        kv_bytes = float(table.cached[request]) * self.kv_bytes_per_token
        duration_s = kv_transfer_s(kv_bytes, self.bandwidth_bytes_per_s, self.latency_s,
                                   overlap_s, float(self.layers), self.layerwise)
        table.kv_transfer_start_s[request] = self.env.now
        self.sending = True
        self.busy_s += duration_s
        self.bytes_moved += kv_bytes
        self.transfers += 1
        self.env.timeout(duration_s, request).callbacks.append(self._landed)

    def _landed(self, event: Any) -> None:
        request = int(event.value)
        now = float(self.env.now)
        table = self.table
        table.kv_transfer_end_s[request] = now
        table.first_token_s[request] = now
        table.last_token_s[request] = now
        table.generated[request] = 1
        self.sending = False
        self.release_source(request)
        self.replica.enqueue_ready(request)
        self.pump()
