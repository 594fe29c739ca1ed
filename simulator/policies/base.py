"""What a policy sees and what it returns.

Policies are small objects with one method. They see a narrow, read-only view of a replica
(or of a pool, for routers) and return a decision; the engine carries it out, keeping time,
memory and bookkeeping to itself. A user policy is a class with the same method, named in a
scenario by ``package.module:Class``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

import numpy as np

__all__ = ["ReplicaView", "Router", "RouterView", "Scheduler", "StepPlan", "admit_fcfs"]


class StepPlan(NamedTuple):
    """The next batch step of one replica.

    ``admit`` are waiting request ids to start now (they get KV blocks and a batch slot).
    Prompt tokens of running requests are processed in admission order up to
    ``prefill_token_budget``; with ``whole_prompts`` a prompt is only scheduled when all of
    it fits what is left of the budget (or nothing else was scheduled yet, so that a prompt
    longer than the budget still runs). With ``decode`` every running request past its
    prompt gets one new token in this step.
    """

    admit: Sequence[int]
    prefill_token_budget: int
    decode: bool = True
    whole_prompts: bool = False


class ReplicaView(Protocol):
    """The state a scheduler may read. Request ids index the run's request table."""

    @property
    def now_s(self) -> float: ...
    @property
    def waiting(self) -> Sequence[int]: ...
    @property
    def n_running(self) -> int: ...
    @property
    def n_decoding(self) -> int: ...
    @property
    def n_prefilling(self) -> int: ...
    @property
    def free_kv_blocks(self) -> int: ...
    def kv_blocks_needed(self, request: int) -> int: ...
    def prompt_tokens(self, request: int) -> int: ...


class Scheduler(Protocol):
    """Forms each batch step of a replica (continuous batching, chunked prefill, ...).

    ``max_batch`` bounds the running requests; the engine reads it to know when a new
    arrival cannot change the batch, which lets it skip ahead over unchanged decode steps.
    """

    max_batch: int

    def plan(self, view: ReplicaView) -> StepPlan: ...


class RouterView:
    """Per-replica load of one pool, for choosing where a request goes.

    ``outstanding`` counts requests queued, in transfer or running, per replica;
    ``free_kv_blocks`` is worked out only if a router reads it. ``input_tokens`` and
    ``output_tokens`` are the request's lengths (read from the run's per-request columns).
    """

    __slots__ = (
        "_free",
        "_free_kv_blocks",
        "_inputs",
        "_outputs",
        "outstanding",
        "request",
    )

    def __init__(self, request: int, inputs: np.ndarray, outputs: np.ndarray,
                 outstanding: np.ndarray, free_kv_blocks: Callable[[], np.ndarray]) -> None:
        self.request = request
        self._inputs = inputs
        self._outputs = outputs
        self.outstanding = outstanding
        self._free_kv_blocks = free_kv_blocks
        self._free: np.ndarray | None = None

    @property
    def input_tokens(self) -> int:
        return int(self._inputs[self.request])

    @property
    def output_tokens(self) -> int:
        return int(self._outputs[self.request])

    @property
    def free_kv_blocks(self) -> np.ndarray:
        if self._free is None:
            self._free = self._free_kv_blocks()
        return self._free


class Router(Protocol):
    def choose(self, view: RouterView) -> int: ...


def admit_fcfs(view: ReplicaView, limit: int) -> list[int]:
    """Waiting requests in queue order while slots and KV blocks last.

    Stops at the first request that does not fit, so a long prompt is not overtaken
    forever by short ones (first come, first served).
    """
    admitted: list[int] = []
    free = view.free_kv_blocks
    for request in view.waiting:
        if len(admitted) >= limit:
            break
        need = view.kv_blocks_needed(request)
        if need > free:
            break
        free -= need
        admitted.append(request)
    return admitted
