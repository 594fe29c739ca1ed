"""Built-in routers: which replica of a pool takes a request."""

from __future__ import annotations

from simulator.policies.base import RouterView

__all__ = ["LeastOutstanding", "MostFreeKV", "RoundRobin"]


class LeastOutstanding:
    """Fewest requests queued, in transfer or running; ties go to the lowest index."""

    def choose(self, view: RouterView) -> int:
        return int(view.outstanding.argmin())


class RoundRobin:
    """Each replica in turn, regardless of load."""

    def __init__(self) -> None:
        self._next = 0

    def choose(self, view: RouterView) -> int:
        choice = self._next % len(view.outstanding)
        self._next = choice + 1
        return choice


class MostFreeKV:
    """The replica with the most free KV blocks: balances memory rather than counts."""

    def choose(self, view: RouterView) -> int:
        return int(view.free_kv_blocks.argmax())
