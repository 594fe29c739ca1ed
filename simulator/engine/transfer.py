"""KV cache moving from a prefill replica to a decode replica over the network.

The decode side pulls (as NIXL-style engines do): it first reserves room for the KV, then
reads it over its link, one transfer at a time, so transfers into one replica queue behind
each other and a full decode replica holds prefill memory hostage (back-pressure).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import simpy

from simulator.engine.state import RequestTable
from simulator.kernels import kv_transfer_s

__all__ = ["KVLink", "TransferTarget"]


class TransferTarget(Protocol):
    """What a link needs of the decode replica it feeds.

    The replica calls ``on_room`` (which the link sets) whenever blocks it may be waiting
    for come free; ``wait_for_room(True)`` tells it the link is waiting, so it must not
    let such a moment pass unnoticed.
    """

    block_tokens: int
    on_room: Callable[[], None] | None

    def room_blocks(self) -> int: ...
    def wait_for_room(self, waiting: bool) -> None: ...
    def accept_transfer(self, request: int, blocks: int, duration_s: float) -> None: ...
    def transfer_landed(self, request: int) -> None: ...


class KVLink:
    """The receiving end of one link on one decode replica.

    Transfers run one at a time in arrival order: the head of the queue starts as soon as
    the replica has room for its KV, which it then holds; the link is busy until the KV
    lands, when the prefill replica's copy is released.
    """

    def __init__(self, env: simpy.Environment, replica: TransferTarget, table: RequestTable,
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
        replica.on_room = self.pump

    def submit(self, request: int, overlap_s: float) -> None:
        self.queue.append((request, overlap_s))
        self.pump()

    def pump(self) -> None:
        """Start the head transfer now if the link is free and the replica has room."""
        if self.sending or not self.queue:
            return
        replica = self.replica
        request, overlap_s = self.queue[0]
        cached = int(self.table.cached[request])
        need = -(-cached // replica.block_tokens)
        if need > replica.room_blocks():
            replica.wait_for_room(True)
            return
        replica.wait_for_room(False)
        self.queue.popleft()
        kv_bytes = cached * self.kv_bytes_per_token
        duration_s = kv_transfer_s(kv_bytes, self.bandwidth_bytes_per_s, self.latency_s,
                                   overlap_s, self.layers, self.layerwise)
        replica.accept_transfer(request, need, duration_s)
        self.sending = True
        self.busy_s += duration_s
        self.bytes_moved += kv_bytes
        self.transfers += 1
        self.env.timeout(duration_s, request).callbacks.append(self._landed)

    def _landed(self, event: Any) -> None:
        request = int(event.value)
        self.sending = False
        self.release_source(request)
        self.replica.transfer_landed(request)
        self.pump()
