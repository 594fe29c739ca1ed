"""A token factory for one run: pools of replicas, the links between them, arrivals.

One :class:`Factory` owns one SimPy ``Environment``; nothing is shared between runs, so
runs in the same process (or in a sweep's workers) cannot disturb each other.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import simpy

from simulator.config.scenario import PoolSpec, Scenario
from simulator.costs import pool_cost_vector
from simulator.engine.clock import Clock
from simulator.engine.decoder import DecodeReplica
from simulator.engine.kv_tiers import TierLoads
from simulator.engine.prefiller import PrefillReplica
from simulator.engine.replica import Replica
from simulator.engine.state import RequestTable
from simulator.engine.transfer import KVLink
from simulator.kernels import new_histogram
from simulator.policies import ChunkedPrefill, ContinuousBatching, RouterView, build_policy
from simulator.workload import Requests

__all__ = ["Factory", "Pool"]

Progress = Callable[[int, int], None]


@dataclass
class Pool:
    """Replicas of one role; ``lazy`` when they are compiled decode replicas that must be
    advanced to the present before anyone reads their load; ``kv_loads`` when prompts
    load a prefix from KV offload tiers before they queue."""

    spec: PoolSpec
    replicas: list[Any]
    router: Any
    outstanding: np.ndarray
    ingress: list[KVLink] = field(default_factory=list)
    lazy: bool = False
    kv_loads: TierLoads | None = None

    def free_blocks(self) -> np.ndarray:
        return np.fromiter((r.room_blocks() for r in self.replicas), dtype=np.int64,
                           count=len(self.replicas))


class Factory:
    """Builds the simulation from a validated scenario and runs it to the last completion."""

    def __init__(self, scenario: Scenario, requests: Requests, skip_ahead: bool = True) -> None:
        self.scenario = scenario
        self.env = Clock()
        self.table = RequestTable(requests.arrival_s, requests.input_tokens,
                                  requests.output_tokens, requests.tier)
        self.n = len(requests)
        self.itl_hist = new_histogram()
        self.skip_ahead = skip_ahead
        self.completed = 0
        self._upstream = self.n     # requests not yet handed to a decode link nor finished
        self.done = self.env.event()
        self._progress: Progress | None = None
        self._progress_every = max(self.n // 200, 1)
        self.pools = {spec.name: self._build_pool(spec) for spec in scenario.pools}
        entry_role = "prefill" if scenario.disaggregated else "both"
        self.entry = next(p for p in self.pools.values() if p.spec.role == entry_role)
        # decode pools by tier: a request leaving prefill goes to the pool of its tier
        self.decodes = [p for p in self.pools.values() if p.spec.role == "decode"]
        self.decode_of_tier = [self.pools[name] for name in scenario.decode_pool_of_tier()]
        for pool in self.decodes:
            self._connect(self.entry, pool)
        self._waiters: dict[int, simpy.Event] = {}
        self._next_request = 0
        arrivals = scenario.workload.arrivals
        if arrivals.process == "closed_loop":
            think_rng = np.random.default_rng(np.random.SeedSequence((scenario.seed, 1)))
            for _ in range(int(arrivals.concurrency or 1)):
                self.env.process(self._user(arrivals.think_time_s, think_rng))
        else:
            self.env.process(self._open_arrivals())

    # ----- construction
    def _build_pool(self, spec: PoolSpec) -> Pool:
        sc = self.scenario
        cost = pool_cost_vector(sc.model, spec, sc.precision)
        blocks = spec.kv_capacity_tokens // spec.kv_block_tokens
        key = f"pools.{spec.name}.scheduler"
        pool = Pool(spec, [], build_policy(sc.router, "router", sc.source, "router"),
                    np.zeros(spec.replicas, dtype=np.int64))
        if spec.kv_tiers:
            pool.kv_loads = TierLoads(
                spec.kv_tiers, self.table, spec.kv_block_tokens,
                sc.model.kv_bytes_per_token(sc.precision.kv_bytes_per_value), spec.replicas)
        for index in range(spec.replicas):
            scheduler = build_policy(spec.scheduler, "scheduler", sc.source, key)
            if spec.role == "decode" and type(scheduler) is ContinuousBatching:
                # the compiled decode replica implements exactly this policy
                pool.lazy = True
                eager = not self.skip_ahead or sc.workload.arrivals.process == "closed_loop"
                pool.replicas.append(DecodeReplica(
                    self.env, index, cost, blocks, spec.kv_block_tokens, scheduler.max_batch,
                    scheduler.max_batch_tokens, self.table, self.itl_hist,
                    self._finished_in(pool, index), eager))
                continue
            if spec.role == "prefill" and type(scheduler) in (ChunkedPrefill, ContinuousBatching):
                # the compiled prefill replica implements exactly these policies
                pool.replicas.append(PrefillReplica(
                    self.env, index, cost, blocks, spec.kv_block_tokens, scheduler.max_batch,
                    scheduler.max_batch_tokens, type(scheduler) is ContinuousBatching,
                    self.table, self._prefill_done_in(pool, index),
                    self._finished_in(pool, index)))
                continue
            pool.replicas.append(Replica(
                self.env, index, spec.role, cost, blocks, spec.kv_block_tokens, scheduler,
                self.table, self.itl_hist, self._prefill_done_in(pool, index),
                self._completed_in(pool, index), self.skip_ahead))
        return pool

    def _connect(self, source: Pool, target: Pool) -> None:
        sc = self.scenario
        link = next(lk for lk in sc.links
                    if lk.from_pool == source.spec.name and lk.to_pool == target.spec.name)
        kv_per_token = sc.model.kv_bytes_per_token(sc.precision.kv_bytes_per_value)
        for replica in target.replicas:
            target.ingress.append(KVLink(
                self.env, replica, self.table, link.bandwidth_gbps * 1e9 / 8.0,
                link.latency_us * 1e-6, link.transfer == "layerwise", kv_per_token,
                sc.model.num_layers, self._release_prefill))

    def _prefill_done_in(self, pool: Pool, index: int) -> Callable[[int, float], None]:
        def prefill_done(request: int, last_step_s: float) -> None:
            pool.outstanding[index] -= 1
            target = self.decode_of_tier[self.table.tier[request]]
            choice = self._choose(target, request)
            self.table.decode_replica[request] = choice
            target.outstanding[choice] += 1
            target.ingress[choice].submit(request, last_step_s)
            self._handed_on()
        return prefill_done

    def _handed_on(self, count: int = 1) -> None:
        """Once every request has reached a decode link, decode replicas run to the end
        eagerly, so the last completion happens on the clock."""
        self._upstream -= count
        if self._upstream == 0:
            for pool in self.decodes:
                if pool.lazy:
                    for replica in pool.replicas:
                        replica.set_eager(draining=True)

    def _finished_in(self, pool: Pool, index: int) -> Callable[[np.ndarray], None]:
        def finished(rows: np.ndarray) -> None:
            count = len(rows)
            self.table.done[rows] = True
            pool.outstanding[index] -= count
            if pool is self.entry:
                self._handed_on(count)
            before = self.completed
            self.completed += count
            if self._waiters:
                for request in rows.tolist():
                    waiter = self._waiters.pop(request, None)
                    if waiter is not None:
                        waiter.succeed()
            every = self._progress_every
            if self._progress is not None and self.completed // every != before // every:
                self._progress(self.completed, self.n)
            if self.completed == self.n:
                self.done.succeed()
        return finished

    def _completed_in(self, pool: Pool, index: int) -> Callable[[int], None]:
        finished = self._finished_in(pool, index)

        def completed(request: int) -> None:
            finished(np.array([request], dtype=np.int64))
        return completed

    def _release_prefill(self, request: int) -> None:
        self.entry.replicas[int(self.table.prefill_replica[request])].release(request)

    # ----- routing and arrivals
    def _choose(self, pool: Pool, request: int) -> int:
        if len(pool.replicas) == 1:
            return 0
        if pool.lazy:
            now = float(self.env.now)
            for replica in pool.replicas:
                if now >= replica.next_s:
                    replica.advance(now)
        view = RouterView(request, self.table.input_tokens, self.table.output_tokens,
                          pool.outstanding, pool.free_blocks)
        return int(pool.router.choose(view))

    def _route(self, request: int) -> None:
        choice = self._choose(self.entry, request)
        self.table.prefill_replica[request] = choice
        self.entry.outstanding[choice] += 1
        loads = self.entry.kv_loads
        if loads is None:
            self.entry.replicas[choice].enqueue(request)
            return
        now = float(self.env.now)
        ready_s = loads.start(request, choice, now)
        if ready_s > now:
            self.env.at(ready_s).callbacks.append(partial(self._loaded, request))
        else:
            self._loaded(request)

    def _loaded(self, request: int, _event: simpy.Event | None = None) -> None:
        """The prompt's prefix has landed from the KV tiers: it queues for the rest."""
        self.table.cached[request] = self.table.kv_hit_tokens[request]
        self.entry.replicas[int(self.table.prefill_replica[request])].enqueue(request)

    def _open_arrivals(self) -> Generator[simpy.Event, Any, None]:
        env = self.env
        for request, at_s in enumerate(self.table.arrival_s.tolist()):
            delay = at_s - env.now
            if delay > 0:
                yield env.timeout(delay)
            self._route(request)

    def _user(self, think_time_s: float, rng: np.random.Generator
              ) -> Generator[simpy.Event, Any, None]:
        """One closed-loop user: ask, wait for the whole answer, think, ask again."""
        env = self.env
        while self._next_request < self.n:
            request = self._next_request
            self._next_request += 1
            self.table.arrival_s[request] = env.now
            reply = env.event()
            self._waiters[request] = reply
            self._route(request)
            yield reply
            if think_time_s > 0:
                yield env.timeout(rng.exponential(think_time_s))

    # ----- running
    def run(self, progress: Progress | None = None) -> float:
        """Simulate until every request has completed; return the end time in seconds."""
        if self.n == 0:
            return 0.0
        self._progress = progress
        self.env.run(until=self.done)
        if progress is not None:
            progress(self.completed, self.n)
        return float(self.env.now)
