"""One model instance: a queue, a running batch, paged KV memory and a SimPy process.

A replica wakes once per batch step, or once per stretch of decode steps in which the
batch cannot change (skip-ahead), asks its scheduler for the next step, asks the kernels
what the step costs, and waits that long. It never computes FLOPs or bytes itself.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import simpy

from simulator.engine.clock import Clock
from simulator.engine.state import RequestTable
from simulator.kernels import (
    ACC_BATCH_AREA,
    ACC_BUSY_S,
    ACC_ENERGY_J,
    ACC_NOW_S,
    HIST_BINS_PER_DECADE,
    HIST_LO_LOG10,
    N_ACC,
    advance_decoders,
    chunked_step_cost,
    decode_span,
    grow_blocks,
    histogram_add_gaps,
    kv_blocks_short,
    span_kv_growth_area,
    step_cost,
    steps_until_kv_full,
)
from simulator.policies.base import Scheduler, StepPlan

__all__ = ["Replica"]

_INF = float("inf")
_NONE = np.zeros(0, dtype=np.int64)


class Replica:
    """Continuous batching with paged KV on one replica of a pool.

    ``role`` decides what a finished prompt means: on a ``prefill`` replica the request
    leaves through ``on_prefill_done`` (its KV stays here until the transfer releases it);
    on a ``both`` replica it starts decoding in place. ``ready`` holds requests whose KV
    already arrived (disaggregated decode); they need a batch slot but no memory.
    """

    def __init__(
        self,
        env: Clock,
        index: int,
        role: str,
        cost: np.ndarray,
        kv_blocks: int,
        block_tokens: int,
        scheduler: Scheduler,
        table: RequestTable,
        itl_hist: np.ndarray,
        on_prefill_done: Callable[[int, float], None],
        on_complete: Callable[[int], None],
        skip_ahead: bool = True,
    ) -> None:
        self.env = env
        self.index = index
        self.role = role
        self.cost = cost
        self.kv_blocks_total = kv_blocks
        self.free_blocks = kv_blocks
        self.block_tokens = block_tokens
        self.scheduler = scheduler
        self.max_batch: int | None = getattr(scheduler, "max_batch", None)
        self.table = table
        self.blocks = table.blocks_decode if role == "decode" else table.blocks_first
        self.itl_hist = itl_hist
        self._scratch_hist = np.zeros_like(itl_hist)
        self.on_prefill_done = on_prefill_done
        self.on_complete = on_complete
        self.skip_ahead = skip_ahead
        self.on_room: Callable[[], None] | None = None   # set by a link feeding it

        self.waiting: deque[int] = deque()
        self.ready: deque[int] = deque()
        self.prefilling: list[int] = []
        self.decoding: list[int] = []
        self.kv_decoding_tokens = 0   # sum of `cached` over `decoding`
        # Set by a preemption, cleared when a request finishes: until then nothing that
        # needs memory is admitted, or the preempted request would be readmitted and
        # preempted again without end (thrashing).
        self.memory_pressure = False
        # (start, n, kv0, kmax, ctx, blocks) while a decode stretch runs: its blocks are
        # taken step by step, so free memory mid-stretch depends on the clock.
        self._span: tuple[float, int, float, int, np.ndarray, np.ndarray] | None = None
        self._wake: simpy.Event | None = None

        # busy time, energy and decoding batch size × time, advanced step by step by both
        # the per-step path and the skip-ahead kernel with the same arithmetic
        self.acc = np.zeros(N_ACC)
        self.steps = 0
        self.preemptions = 0
        self.prompt_tokens_computed = 0   # recomputation after a preemption included
        self._kv_area = 0.0
        self._kv_mark_s = 0.0
        self.process = env.process(self._run())

    @property
    def busy_s(self) -> float:
        return float(self.acc[ACC_BUSY_S])

    @property
    def energy_j(self) -> float:
        return float(self.acc[ACC_ENERGY_J])

    @property
    def batch_token_area(self) -> float:
        return float(self.acc[ACC_BATCH_AREA])

    # ----- the view a scheduler reads (simulator.policies.ReplicaView)
    @property
    def now_s(self) -> float:
        return float(self.env.now)

    @property
    def n_running(self) -> int:
        return len(self.prefilling) + len(self.decoding)

    @property
    def n_decoding(self) -> int:
        return len(self.decoding)

    @property
    def n_prefilling(self) -> int:
        return len(self.prefilling)

    @property
    def free_kv_blocks(self) -> int:
        if self.memory_pressure and self.n_running:
            return 0
        return self.free_blocks

    def kv_blocks_needed(self, request: int) -> int:
        need = -(-int(self.table.target[request]) // self.block_tokens)
        return max(need - int(self.blocks[request]), 0)

    def prompt_tokens(self, request: int) -> int:
        return int(self.table.target[request] - self.table.cached[request])

    # ----- what the pool and the network call
    def enqueue(self, request: int) -> None:
        """A request that needs memory here (a new prompt, or KV lost to preemption)."""
        self.waiting.append(request)
        self._nudge()

    # ----- what a link calls (simulator.engine.transfer.TransferTarget)
    def transfer_landed(self, request: int) -> None:
        """A request whose KV has arrived: it only needs a batch slot."""
        self.ready.append(request)
        self._nudge()

    def wait_for_room(self, waiting: bool) -> None:
        """Nothing to arrange: every release calls ``on_room``."""

    def room_blocks(self) -> int:
        """Free blocks at this instant: in a stretch, less those its started steps hold."""
        if self._span is None:
            return self.free_blocks
        start, n, kv0, kmax, ctx, blocks = self._span
        trial = self.acc.copy()
        trial[ACC_NOW_S] = start
        started = decode_span(self.cost, float(n), kv0, kmax, float(self.env.now), trial, kmax,
                              self._scratch_hist, HIST_LO_LOG10, HIST_BINS_PER_DECADE)
        return self.free_blocks - int(kv_blocks_short(ctx, blocks, n, self.block_tokens, started))

    def _span_short_of_blocks(self) -> bool:
        assert self._span is not None
        _, n, _, kmax, ctx, blocks = self._span
        return int(kv_blocks_short(ctx, blocks, n, self.block_tokens, kmax)) > self.free_blocks

    def accept_transfer(self, request: int, blocks: int, duration_s: float) -> None:
        """Memory taken now for an incoming KV transfer; its landing is known already."""
        self._kv_mark()
        self.free_blocks -= blocks
        self.blocks[request] += blocks
        table = self.table
        now = float(self.env.now)
        lands_s = now + duration_s
        table.kv_transfer_start_s[request] = now
        table.kv_transfer_end_s[request] = lands_s
        table.first_token_s[request] = lands_s
        table.last_token_s[request] = lands_s
        table.generated[request] = 1
        if self._span is not None and self._span_short_of_blocks():
            self._nudge(force=True)   # the stretch no longer has room for all its steps: cut it

    def release(self, request: int) -> None:
        """Free every block ``request`` holds here (its KV left, or it finished)."""
        held = int(self.blocks[request])
        if held:
            self._kv_mark()
            self.free_blocks += held
            self.blocks[request] = 0
            if self.waiting or self._span is not None:   # only they wait on memory
                self._nudge(force=True)
            if self.on_room is not None:
                self.on_room()

    def kv_occupancy_mean(self, end_s: float) -> float:
        self._kv_mark(end_s)
        if end_s <= 0 or self.kv_blocks_total == 0:
            return 0.0
        return self._kv_area / (end_s * self.kv_blocks_total)

    # ----- internals
    def _kv_mark(self, now: float | None = None) -> None:
        t = float(self.env.now) if now is None else now
        self._kv_area += (self.kv_blocks_total - self.free_blocks) * (t - self._kv_mark_s)
        self._kv_mark_s = t

    def _nudge(self, force: bool = False) -> None:
        """Wake the replica if it sleeps, or cut a skip-ahead span short if a slot is free."""
        if self._wake is None or self._wake.triggered:
            return
        if force or self.max_batch is None or self.n_running < self.max_batch:
            self._wake.succeed()

    def _run(self) -> Generator[simpy.Event, Any, None]:
        while True:
            self._admit_ready()
            plan = self.scheduler.plan(self) if (self.waiting or self.prefilling) else None
            if plan is not None:
                for request in plan.admit:
                    self._admit(request)
            chunks = self._chunks(plan) if plan is not None else []
            decode = plan is None or plan.decode
            if decode and self.decoding and not self._ensure_kv():
                continue
            if chunks:
                yield from self._step(chunks, decode)
                continue
            if decode and self.decoding:
                yield from self._decode_span()
                continue
            self._wake = self.env.event()
            yield self._wake
            self._wake = None

    def _admit_ready(self) -> None:
        if not self.ready:
            return
        limit = self.max_batch if self.max_batch is not None else len(self.ready) + self.n_running
        while self.ready and self.n_running < limit:
            request = self.ready.popleft()
            self._start_decoding(request)
            if math.isnan(self.table.decode_start_s[request]):
                self.table.decode_start_s[request] = self.env.now

    def _admit(self, request: int) -> None:
        self.waiting.remove(request)
        need = self.kv_blocks_needed(request)
        self._kv_mark()
        self.free_blocks -= need
        self.blocks[request] += need
        if math.isnan(self.table.prefill_start_s[request]):
            self.table.prefill_start_s[request] = self.env.now
        self.prefilling.append(request)

    def _chunks(self, plan: StepPlan) -> list[tuple[int, int]]:
        budget = plan.prefill_token_budget
        table = self.table
        chunks: list[tuple[int, int]] = []
        for request in self.prefilling:
            if budget <= 0:
                break
            left = int(table.target[request] - table.cached[request])
            if plan.whole_prompts:
                if left > budget and chunks:
                    break
                take = left
            else:
                take = min(left, budget)
            chunks.append((request, take))
            budget -= take
        return chunks

    def _start_decoding(self, request: int) -> None:
        self.decoding.append(request)
        self.kv_decoding_tokens += int(self.table.cached[request])

    def _ensure_kv(self) -> bool:
        """Preempt the newest decoder while the next decode step cannot get its blocks."""
        dec = np.asarray(self.decoding, dtype=np.int64)
        ctx = self.table.cached[dec]
        if steps_until_kv_full(ctx, self.blocks[dec], len(dec), self.free_blocks,
                               self.block_tokens, 1) >= 1:
            return True
        self._preempt(self.decoding[-1])
        return False

    def _preempt(self, request: int) -> None:
        """Recompute preemption: drop the request's KV; it queues first to rebuild it."""
        table = self.table
        self.decoding.remove(request)
        self.kv_decoding_tokens -= int(table.cached[request])
        table.cached[request] = 0
        table.target[request] = table.input_tokens[request] + table.generated[request] - 1
        table.preemptions[request] += 1
        self.preemptions += 1
        self.memory_pressure = True
        self._kv_mark()
        self.free_blocks += int(self.blocks[request])
        self.blocks[request] = 0
        self.waiting.appendleft(request)

    def _grow_blocks(self, dec: np.ndarray, ahead: int) -> None:
        """Give decoders the blocks for their cached tokens plus ``ahead`` being written."""
        taken = int(grow_blocks(dec, self.table.cached, self.blocks, self.block_tokens, ahead))
        if taken:
            self._kv_mark()   # reads free_blocks, which the kernel left alone
            self.free_blocks -= taken

    def _step(self, chunks: list[tuple[int, int]], decode: bool
              ) -> Generator[simpy.Event, Any, None]:
        table = self.table
        dec = np.asarray(self.decoding, dtype=np.int64) if decode and self.decoding else _NONE
        n_dec = len(dec)
        requests = np.array([request for request, _ in chunks], dtype=np.int64)
        takes = np.array([take for _, take in chunks], dtype=np.int64)
        time_s, energy_j = chunked_step_cost(self.cost, takes, table.cached[requests],
                                             table.target[requests], len(chunks), float(n_dec),
                                             float(self.kv_decoding_tokens) if n_dec else 0.0)
        if n_dec:
            self._grow_blocks(dec, 1)
        yield self.env.timeout(time_s)
        now = float(self.env.now)
        self.acc[ACC_BUSY_S] += time_s
        self.acc[ACC_ENERGY_J] += energy_j
        self.acc[ACC_BATCH_AREA] += n_dec * time_s
        self.steps += 1
        if n_dec:
            histogram_add_gaps(self.itl_hist, HIST_LO_LOG10, HIST_BINS_PER_DECADE,
                               table.last_token_s[dec], now, 0.0)
            self._advance_decoders(dec, 1, now)
        for request, take in chunks:
            table.cached[request] += take
            self.prompt_tokens_computed += take
            if table.cached[request] >= table.target[request]:
                self._prompt_done(request, now, time_s)

    def _decode_span(self) -> Generator[simpy.Event, Any, None]:
        """Decode steps of an unchanged batch: one event for the whole stretch.

        Without skip-ahead the stretch is one step long; the arithmetic is the same, so the
        two give identical results. A stretch is cut at the first step boundary after a
        request arrives that could join the batch.
        """
        table = self.table
        dec = np.asarray(self.decoding, dtype=np.int64)
        n = len(dec)
        kv0 = float(self.kv_decoding_tokens)
        # the batch's context and blocks stay as they are until the stretch ends
        ctx = table.cached[dec]
        held = self.blocks[dec]
        kmax = 1
        if self.skip_ahead:
            kmax = int((table.output_tokens[dec] - table.generated[dec]).min())
        kmax = int(steps_until_kv_full(ctx, held, n, self.free_blocks, self.block_tokens, kmax))
        start = float(self.env.now)
        # Each request's first gap runs from its last token; later gaps are step times.
        first_s, _ = step_cost(self.cost, float(n), float(n), kv0 + n, kv0)
        histogram_add_gaps(self.itl_hist, HIST_LO_LOG10, HIST_BINS_PER_DECADE,
                           table.last_token_s[dec], start, first_s)
        horizon = _INF
        self._span = (start, n, kv0, kmax, ctx, held)
        if kmax > 1:
            trial = self.acc.copy()
            trial[ACC_NOW_S] = start
            decode_span(self.cost, float(n), kv0, kmax, _INF, trial, kmax,
                        self._scratch_hist, HIST_LO_LOG10, HIST_BINS_PER_DECADE)
            self._wake = self.env.event()
            yield self.env.at(float(trial[ACC_NOW_S])) | self._wake
            self._wake = None
            if float(self.env.now) < trial[ACC_NOW_S]:
                horizon = float(self.env.now)
        self.acc[ACC_NOW_S] = start
        steps = int(decode_span(self.cost, float(n), kv0, kmax, horizon, self.acc, 1,
                                self.itl_hist, HIST_LO_LOG10, HIST_BINS_PER_DECADE))
        end = float(self.acc[ACC_NOW_S])
        if self.env.now < end:
            yield self.env.at(end)
        self._span = None
        self.steps += steps
        self._kv_mark(end)
        self._kv_area += span_kv_growth_area(self.cost, float(n), kv0, steps, ctx, held, n,
                                             self.block_tokens)
        self._advance_decoders(dec, steps, end)

    def _advance_decoders(self, dec: np.ndarray, steps: int, now: float) -> None:
        table = self.table
        done = np.empty(len(dec), dtype=np.int64)
        count = int(advance_decoders(dec, steps, now, table.cached, table.generated,
                                     table.last_token_s, table.output_tokens, done))
        self.kv_decoding_tokens += steps * len(dec)
        self._grow_blocks(dec, 0)
        if count:
            finished = done[:count]
            gone = set(finished.tolist())
            self.decoding = [r for r in self.decoding if r not in gone]
            self.kv_decoding_tokens -= int(table.cached[finished].sum())
            for request in finished.tolist():
                self._finish(request, now)

    def _prompt_done(self, request: int, now: float, step_s: float) -> None:
        table = self.table
        self.prefilling.remove(request)
        if table.generated[request] > 0:
            self._start_decoding(request)   # KV rebuilt after a preemption
            return
        table.prefill_end_s[request] = now
        if self.role == "prefill" and table.output_tokens[request] > 1:
            self.on_prefill_done(request, step_s)
            return
        table.generated[request] = 1
        table.first_token_s[request] = now
        table.last_token_s[request] = now
        if table.output_tokens[request] <= 1:
            self._finish(request, now)
        else:
            table.decode_start_s[request] = now
            self._start_decoding(request)

    def _finish(self, request: int, now: float) -> None:
        self.memory_pressure = False
        self.table.last_token_s[request] = now
        self.table.done[request] = True
        self.release(request)
        self.on_complete(request)
