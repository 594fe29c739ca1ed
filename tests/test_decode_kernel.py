"""The compiled decode replica against a hand calculation and its own invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_kernels import gpu_dense, lpu_dense

from simulator.engine.state import RequestTable
from simulator.kernels import step_cost
from simulator.kernels.decode import decode_advance, start_transfer
from simulator.kernels.histogram import new_histogram
from simulator.kernels.replica_state import (
    ST_BATCH_AREA,
    ST_BUSY_S,
    ST_ENERGY_J,
    ST_FREE_BLOCKS,
    ST_KV_AREA,
    ST_PREEMPTIONS,
    ST_STATUS,
    ST_STEPS,
    STATUS_FULL,
    new_replica_state,
)


class Bench:
    """A decode replica's arrays, driven by hand the way the engine drives them."""

    def __init__(self, cached: list[int], outputs: list[int], blocks: int, block_tokens: int,
                 max_batch: int, p: np.ndarray) -> None:
        n = len(cached)
        self.table = RequestTable(np.zeros(n), np.array(cached), np.array(outputs),
                                  np.zeros(n, dtype=np.int8))
        self.table.cached[:] = cached
        self.table.generated[:] = 1
        self.p = p
        self.block_tokens = block_tokens
        self.st = new_replica_state(blocks, max_batch, block_tokens, 4096)
        self.slots = np.zeros(max_batch, dtype=np.int64)
        self.q = np.zeros(n, dtype=np.int64)
        self.qt = np.zeros(n)
        self.rc = np.zeros(n + max_batch, dtype=np.int64)
        self.done = np.zeros(2 * max_batch, dtype=np.int64)
        self.hist = new_histogram()
        self.finished: list[int] = []

    def land(self, request: int, reserve_s: float, lands_s: float) -> None:
        need = -(-int(self.table.cached[request]) // self.block_tokens)
        landed = start_transfer(self.st, self.q, self.qt, self.table.ints, self.table.times,
                                request, need, reserve_s, lands_s - reserve_s)
        assert landed == lands_s
        assert self.table.first_token_s[request] == self.table.kv_transfer_end_s[request] == landed

    def advance(self, until_s: float) -> None:
        while True:
            count = decode_advance(self.p, self.st, self.slots, self.q, self.qt, self.rc,
                                   self.table.ints, self.table.times, self.hist, self.done,
                                   until_s)
            self.finished += self.done[:count].tolist()
            if self.st[ST_STATUS] != STATUS_FULL:
                return


def test_one_request_decodes_step_by_step_as_by_hand():
    p = lpu_dense()
    bench = Bench([100], [4], blocks=20, block_tokens=16, max_batch=8, p=p)
    bench.land(0, reserve_s=0.5, lands_s=1.0)
    bench.advance(0.9)
    assert bench.finished == [] and bench.table.cached[0] == 100   # nothing landed yet
    bench.advance(float("inf"))
    # three decode steps (the first token came with the transfer), context 100, 101, 102
    steps = [step_cost(p, 1.0, 1.0, c + 1.0, float(c)) for c in (100, 101, 102)]
    end = 1.0
    for time_s, _ in steps:
        end += time_s
    assert bench.finished == [0]
    assert bench.table.last_token_s[0] == end
    assert bench.table.decode_start_s[0] == 1.0
    assert bench.table.generated[0] == 4 and bench.table.cached[0] == 103
    assert bench.st[ST_STEPS] == 3
    busy = sum(s for s, _ in steps)
    assert bench.st[ST_BUSY_S] == pytest.approx(busy, rel=1e-12)
    assert bench.st[ST_BATCH_AREA] == pytest.approx(busy, rel=1e-12)
    assert bench.st[ST_ENERGY_J] == pytest.approx(sum(e for _, e in steps), rel=1e-12)
    # 7 blocks (100 tokens) from the reservation, never more (103 tokens still fit in 7)
    assert bench.st[ST_KV_AREA] == pytest.approx(7 * (end - 0.5), rel=1e-12)
    assert bench.st[ST_FREE_BLOCKS] == 20 and bench.table.blocks_decode[0] == 0
    assert bench.hist.sum() == 3


def test_a_request_landing_mid_step_joins_at_the_next_boundary():
    p = lpu_dense()
    bench = Bench([50, 50], [3, 2], blocks=100, block_tokens=16, max_batch=8, p=p)
    bench.land(0, 0.0, 1.0)
    first_s, _ = step_cost(p, 1.0, 1.0, 51.0, 50.0)
    bench.land(1, 0.0, 1.0 + first_s / 2)
    bench.advance(float("inf"))
    assert bench.table.decode_start_s[1] == 1.0 + first_s
    # its first gap runs from its landing to the end of its first step
    second_s, _ = step_cost(p, 2.0, 2.0, 51.0 + 50.0 + 2.0, 51.0 + 50.0)
    assert bench.table.last_token_s[1] == (1.0 + first_s) + second_s
    assert sorted(bench.finished) == [0, 1]


def test_tight_memory_preempts_the_newest_and_recomputes_it():
    p = gpu_dense(1)
    # two requests of 64 tokens in blocks of 16 hold 8 of 9 blocks; the first new token
    # each needs a fifth block: only one fits, so the newer one is preempted
    bench = Bench([64, 64], [3, 3], blocks=9, block_tokens=16, max_batch=4, p=p)
    bench.land(0, 0.0, 1.0)
    bench.land(1, 0.0, 1.0)
    bench.advance(float("inf"))
    assert bench.st[ST_PREEMPTIONS] >= 1
    assert bench.table.preemptions[1] >= 1 and bench.table.preemptions[0] == 0
    assert sorted(bench.finished) == [0, 1]
    assert (bench.table.generated == 3).all()
    assert bench.st[ST_FREE_BLOCKS] == 9


landings = st.lists(st.tuples(st.integers(1, 700), st.integers(2, 60),
                              st.floats(0.0, 0.2)), min_size=1, max_size=25)


@settings(max_examples=60, deadline=None)
@given(landings=landings, slack=st.integers(0, 40), block=st.sampled_from([1, 16, 64]),
       max_batch=st.integers(1, 12), looks=st.lists(st.floats(0.0, 3.0), max_size=30))
def test_advancing_in_steps_or_at_once_gives_the_same_replica(landings, slack, block, max_batch,
                                                              looks):
    cached = [c for c, _, _ in landings]
    outputs = [o for _, o, _ in landings]
    need = sum(-(-c // block) for c in cached)
    # as load-time checks ensure, the longest request fits the replica on its own
    need = max(need, max(-(-(c + o) // block) for c, o in zip(cached, outputs, strict=True)))
    lands = np.cumsum([t for _, _, t in landings])

    def run(stops: list[float]) -> Bench:
        bench = Bench(cached, outputs, blocks=need + slack, block_tokens=block,
                      max_batch=max_batch, p=gpu_dense(1))
        for i, t in enumerate(lands):
            bench.land(i, 0.0, float(t))
        for t in sorted(stops):
            bench.advance(t)
        bench.advance(float("inf"))
        return bench

    once, stepped = run([]), run(looks)
    np.testing.assert_array_equal(once.st, stepped.st)
    np.testing.assert_array_equal(once.table.ints, stepped.table.ints)
    np.testing.assert_array_equal(once.table.times, stepped.table.times)
    np.testing.assert_array_equal(once.hist, stepped.hist)
    assert once.finished == stepped.finished
    # every request finished exactly once, with all its tokens, and all memory came back
    assert sorted(once.finished) == list(range(len(landings)))
    assert (once.table.generated == once.table.output_tokens).all()
    assert once.st[ST_FREE_BLOCKS] == need + slack
    assert (once.table.blocks_decode == 0).all()
    assert once.hist.sum() == sum(o - 1 for o in outputs)
