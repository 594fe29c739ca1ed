"""Built-in batch schedulers."""

from __future__ import annotations

from simulator.policies.base import ReplicaView, StepPlan, admit_fcfs

__all__ = ["ChunkedPrefill", "ContinuousBatching"]


def _limits(max_batch: int, max_batch_tokens: int) -> tuple[int, int]:
    for name, value in (("max_batch", max_batch), ("max_batch_tokens", max_batch_tokens)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a whole number ≥ 1, got {value!r}")
    return max_batch, max_batch_tokens


class ContinuousBatching:
    """Iteration-level batching that gives prompts priority (Orca / vLLM v0 style).

    When prompts are waiting, a step runs whole prompts only, up to ``max_batch_tokens``;
    otherwise it runs one decode token for every running request. Decoding stalls while
    prompts are processed, which is what this policy costs in inter-token latency.
    """

    def __init__(self, max_batch: int = 64, max_batch_tokens: int = 8192) -> None:
        self.max_batch, self.max_batch_tokens = _limits(max_batch, max_batch_tokens)

    def plan(self, view: ReplicaView) -> StepPlan:
        admit = admit_fcfs(view, self.max_batch - view.n_running)
        if admit or view.n_prefilling:
            return StepPlan(admit, self.max_batch_tokens, decode=False, whole_prompts=True)
        return StepPlan(admit, 0, decode=True)


class ChunkedPrefill:
    """Mixed steps under one token budget (Sarathi-Serve / vLLM v1 style).

    Every step decodes all running requests first, then fills what is left of
    ``max_batch_tokens`` with prompt chunks, so prompts never stall decoding for long.
    """

    def __init__(self, max_batch: int = 256, max_batch_tokens: int = 8192) -> None:
        self.max_batch, self.max_batch_tokens = _limits(max_batch, max_batch_tokens)

    def plan(self, view: ReplicaView) -> StepPlan:
        admit = admit_fcfs(view, self.max_batch - view.n_running)
        budget = max(self.max_batch_tokens - view.n_decoding, 0)
        return StepPlan(admit, budget, decode=True)
