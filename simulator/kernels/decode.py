"""A disaggregated decode replica, advanced in compiled code from one step boundary to the next.

A decode replica fed by a KV link changes only when a transfer lands or a step ends, and
the time a transfer lands is known when it starts. So the whole replica (joins, decode
steps, completions, KV growth, recompute preemption) can run ahead in one call to any time
without an event per step: :func:`decode_advance` processes every step boundary up to a
given time. It is path independent: advancing to ``t1`` then ``t2`` gives bit-for-bit what
advancing straight to ``t2`` gives, which is what lets the engine run it lazily (only when
someone looks) or eagerly (an event per step) with identical results.

State lives in arrays the engine owns: ``st`` (the ``ST_*`` slots of ``replica_state``), the batch
``slots`` (request ids in join order), the KV-ready queue ``q``/``qt`` (request, time its
KV lands), the recompute list ``rc`` (preempted, waiting for memory; then being
re-prefilled) and the request table's ``ints``/``times`` rows.

At a boundary ``t``: finish the step that ended there; let queued requests whose KV landed
by ``t`` join while batch slots last; admit preempted requests for recompute when memory
allows (the anti-thrash rule: not while the batch runs under memory pressure); then run a
prompt-only step if any are being recomputed, else one decode token for the whole batch,
preempting the newest decoder while the step cannot get the KV blocks it writes into.

Finished requests are listed in ``done`` for the engine to account for; when the list is
full the call returns early (``STATUS_FULL``) and the engine calls again.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from simulator.kernels.histogram import HIST_BINS_PER_DECADE, HIST_LO_LOG10, histogram_add
from simulator.kernels.layout import (
    TF_DECODE_START,
    TF_FIRST_TOKEN,
    TF_KV_TRANSFER_END,
    TF_KV_TRANSFER_START,
    TF_LAST_TOKEN,
    TI_BLOCKS_DECODE,
    TI_CACHED,
    TI_GENERATED,
    TI_INPUT,
    TI_OUTPUT,
    TI_PREEMPTIONS,
    TI_TARGET,
)
from simulator.kernels.ranks import chunked_step_cost
from simulator.kernels.replica_state import (
    ST_BATCH_AREA,
    ST_BLOCK_TOKENS,
    ST_BUSY_S,
    ST_CLOCK_S,
    ST_ENERGY_J,
    ST_FREE_BLOCKS,
    ST_KV_TOKENS,
    ST_MAX_BATCH,
    ST_MAX_BATCH_TOKENS,
    ST_N,
    ST_N_CHUNK,
    ST_N_PROMPT,
    ST_N_RC,
    ST_PREEMPTIONS,
    ST_PRESSURE,
    ST_Q_HEAD,
    ST_Q_TAIL,
    ST_STATUS,
    ST_STEP_END_S,
    ST_STEP_ENERGY_J,
    ST_STEP_KIND,
    ST_STEP_TIME_S,
    ST_STEPS,
    STATUS_FULL,
    STATUS_REACHED,
    kv_mark,
)
from simulator.kernels.step import (
    P_SPEC_DRAFT_TOKENS,
    P_SPEC_TOKENS_MILLI,
    decode_step_cost,
    spec_accepted,
)


@njit(cache=True)
def start_transfer(st: np.ndarray, q: np.ndarray, qt: np.ndarray, ints: np.ndarray,
                   times: np.ndarray, request: int, blocks: int, now_s: float,
                   duration_s: float) -> float:
    """A transfer into the replica starts now: take its blocks, queue it to join when it
    lands, and stamp what its landing decides; return the landing time.

    The queue must have room (the engine grows it). Everything about the landing is known
    at the start, so the request's first token is stamped now: the kernel may read it
    when the request joins, before the engine hears that the transfer ended.
    """
    kv_mark(st, now_s)
    st[ST_FREE_BLOCKS] -= blocks
    ints[TI_BLOCKS_DECODE, request] = blocks
    lands_s = now_s + duration_s
    tail = int(st[ST_Q_TAIL])
    q[tail] = request
    qt[tail] = lands_s
    st[ST_Q_TAIL] = tail + 1
    ints[TI_GENERATED, request] = 1
    times[TF_KV_TRANSFER_START, request] = now_s
    times[TF_KV_TRANSFER_END, request] = lands_s
    times[TF_FIRST_TOKEN, request] = lands_s
    times[TF_LAST_TOKEN, request] = lands_s
    return lands_s


@njit(cache=True)
def _finish_step(p: np.ndarray, st: np.ndarray, slots: np.ndarray, rc: np.ndarray,
                 ints: np.ndarray, times: np.ndarray, hist: np.ndarray, done: np.ndarray,
                 n_done: int) -> int:
    """Close the step in progress at its end; return the new count of ``done``.

    A decoder gains one token per step, or with speculative decoding the tokens it
    accepted (``spec_accepted``), never more than it has left to produce.
    """
    milli = int(p[P_SPEC_TOKENS_MILLI])
    start = st[ST_CLOCK_S]
    t = st[ST_STEP_END_S]
    step_s = st[ST_STEP_TIME_S]
    kind = st[ST_STEP_KIND]
    st[ST_BUSY_S] += step_s
    st[ST_ENERGY_J] += st[ST_STEP_ENERGY_J]
    st[ST_STEPS] += 1.0
    st[ST_STEP_KIND] = 0.0
    st[ST_CLOCK_S] = t
    n = int(st[ST_N])
    if kind == 2.0:
        # recomputed prompts rejoin the batch with their KV rebuilt
        chunk = int(st[ST_N_CHUNK])
        n_rc = int(st[ST_N_RC])
        for i in range(chunk):
            r = rc[i]
            ints[TI_CACHED, r] = ints[TI_TARGET, r]
            st[ST_KV_TOKENS] += ints[TI_CACHED, r]
            slots[n] = r
            n += 1
        rc[: n_rc - chunk] = rc[chunk:n_rc].copy()
        st[ST_N_RC] = n_rc - chunk
        st[ST_N_PROMPT] -= chunk
        st[ST_N_CHUNK] = 0.0
        st[ST_N] = n
        return n_done
    st[ST_BATCH_AREA] += n * step_s
    regular = 0.0
    kept = 0
    for i in range(n):
        r = slots[i]
        last = times[TF_LAST_TOKEN, r]
        if last == start:
            regular += 1.0
        else:   # the first token after joining, or after a stall: timed from the last one
            histogram_add(hist, HIST_LO_LOG10, HIST_BINS_PER_DECADE, (start - last) + step_s, 1.0)
        gained = 1
        if milli > 1000:
            gained = min(spec_accepted(ints[TI_GENERATED, r] - 1, milli),
                         ints[TI_OUTPUT, r] - ints[TI_GENERATED, r])
        ints[TI_CACHED, r] += gained
        ints[TI_GENERATED, r] += gained
        times[TF_LAST_TOKEN, r] = t
        if ints[TI_GENERATED, r] >= ints[TI_OUTPUT, r]:
            st[ST_KV_TOKENS] -= ints[TI_CACHED, r] - gained
            kv_mark(st, t)
            st[ST_FREE_BLOCKS] += ints[TI_BLOCKS_DECODE, r]
            ints[TI_BLOCKS_DECODE, r] = 0
            st[ST_PRESSURE] = 0.0
            done[n_done] = r
            n_done += 1
        else:
            st[ST_KV_TOKENS] += gained
            slots[kept] = r
            kept += 1
    if regular > 0.0:
        histogram_add(hist, HIST_LO_LOG10, HIST_BINS_PER_DECADE, step_s, regular)
    st[ST_N] = kept
    return n_done


@njit(cache=True)
def _join_ready(st: np.ndarray, slots: np.ndarray, q: np.ndarray, qt: np.ndarray,
                ints: np.ndarray, times: np.ndarray) -> None:
    """Requests whose KV has landed take free batch slots, first come first served."""
    t = st[ST_CLOCK_S]
    n = int(st[ST_N])
    limit = int(st[ST_MAX_BATCH]) - int(st[ST_N_PROMPT])
    head = int(st[ST_Q_HEAD])
    tail = int(st[ST_Q_TAIL])
    while head < tail and n < limit and qt[head] <= t:
        r = q[head]
        head += 1
        slots[n] = r
        n += 1
        st[ST_KV_TOKENS] += ints[TI_CACHED, r]
        if np.isnan(times[TF_DECODE_START, r]):
            times[TF_DECODE_START, r] = t
    st[ST_Q_HEAD] = head
    st[ST_N] = n


@njit(cache=True)
def _admit_recompute(st: np.ndarray, rc: np.ndarray, ints: np.ndarray) -> None:
    """Preempted requests get their KV blocks back, in order, while slots and memory last."""
    bt = int(st[ST_BLOCK_TOKENS])
    running = int(st[ST_N]) + int(st[ST_N_PROMPT])
    slots_left = int(st[ST_MAX_BATCH]) - running
    free = int(st[ST_FREE_BLOCKS])
    if st[ST_PRESSURE] > 0.0 and running > 0:
        free = 0    # anti-thrash: a preempted request would only be preempted again
    k = int(st[ST_N_PROMPT])
    n_rc = int(st[ST_N_RC])
    taken = 0
    while k < n_rc and slots_left > 0:
        r = rc[k]
        need = (ints[TI_TARGET, r] + bt - 1) // bt
        if need > free:
            break
        free -= need
        taken += need
        ints[TI_BLOCKS_DECODE, r] = need
        k += 1
        slots_left -= 1
    if taken:
        kv_mark(st, st[ST_CLOCK_S])
        st[ST_FREE_BLOCKS] -= taken
    st[ST_N_PROMPT] = k


@njit(cache=True)
def _start_prompt_step(p: np.ndarray, st: np.ndarray, rc: np.ndarray, ints: np.ndarray) -> None:
    """Whole prompts, in admission order, within the token budget (the first always runs)."""
    budget = int(st[ST_MAX_BATCH_TOKENS])
    chunk = 0
    takes = np.zeros(int(st[ST_N_PROMPT]))
    for i in range(int(st[ST_N_PROMPT])):
        take = ints[TI_TARGET, rc[i]]
        if budget <= 0 or (take > budget and chunk > 0):
            break
        takes[chunk] = take
        chunk += 1
        budget -= take
    # each prompt rebuilds its whole KV on its own data-parallel rank
    time_s, energy_j = chunked_step_cost(p, takes, np.zeros(chunk), takes, chunk, 0.0, 0.0)
    st[ST_N_CHUNK] = chunk
    st[ST_STEP_KIND] = 2.0
    st[ST_STEP_TIME_S] = time_s
    st[ST_STEP_ENERGY_J] = energy_j
    st[ST_STEP_END_S] = st[ST_CLOCK_S] + time_s


@njit(cache=True)
def _preempt_newest(st: np.ndarray, slots: np.ndarray, rc: np.ndarray, ints: np.ndarray) -> None:
    """Recompute preemption: drop the newest decoder's KV; it waits first in line for memory."""
    n = int(st[ST_N]) - 1
    r = slots[n]
    st[ST_N] = n
    st[ST_KV_TOKENS] -= ints[TI_CACHED, r]
    ints[TI_CACHED, r] = 0
    ints[TI_TARGET, r] = ints[TI_INPUT, r] + ints[TI_GENERATED, r] - 1
    ints[TI_PREEMPTIONS, r] += 1
    st[ST_PREEMPTIONS] += 1.0
    st[ST_PRESSURE] = 1.0
    kv_mark(st, st[ST_CLOCK_S])
    st[ST_FREE_BLOCKS] += ints[TI_BLOCKS_DECODE, r]
    ints[TI_BLOCKS_DECODE, r] = 0
    k = int(st[ST_N_PROMPT])
    n_rc = int(st[ST_N_RC])
    rc[k + 1: n_rc + 1] = rc[k:n_rc].copy()
    rc[k] = r
    st[ST_N_RC] = n_rc + 1


@njit(cache=True)
def _blocks_short(p: np.ndarray, st: np.ndarray, slots: np.ndarray, ints: np.ndarray) -> int:
    """New blocks the batch needs for the tokens the next decode step writes (the
    token and any drafted ones being verified)."""
    bt = int(st[ST_BLOCK_TOKENS])
    ahead = bt + int(p[P_SPEC_DRAFT_TOKENS])
    short = 0
    for i in range(int(st[ST_N])):
        r = slots[i]
        need = (ints[TI_CACHED, r] + ahead) // bt   # ceil((cached + 1 + drafted) / bt)
        if need > ints[TI_BLOCKS_DECODE, r]:
            short += need - ints[TI_BLOCKS_DECODE, r]
    return short


@njit(cache=True)
def _start_decode_step(p: np.ndarray, st: np.ndarray, slots: np.ndarray, ints: np.ndarray,
                       short: int) -> None:
    bt = int(st[ST_BLOCK_TOKENS])
    ahead = bt + int(p[P_SPEC_DRAFT_TOKENS])
    if short:
        kv_mark(st, st[ST_CLOCK_S])
        st[ST_FREE_BLOCKS] -= short
        for i in range(int(st[ST_N])):
            r = slots[i]
            need = (ints[TI_CACHED, r] + ahead) // bt
            if need > ints[TI_BLOCKS_DECODE, r]:
                ints[TI_BLOCKS_DECODE, r] = need
    time_s, energy_j = decode_step_cost(p, st[ST_N], st[ST_KV_TOKENS])
    st[ST_STEP_KIND] = 1.0
    st[ST_STEP_TIME_S] = time_s
    st[ST_STEP_ENERGY_J] = energy_j
    st[ST_STEP_END_S] = st[ST_CLOCK_S] + time_s


@njit(cache=True)
def decode_advance(p: np.ndarray, st: np.ndarray, slots: np.ndarray, q: np.ndarray,
                   qt: np.ndarray, rc: np.ndarray, ints: np.ndarray, times: np.ndarray,
                   hist: np.ndarray, done: np.ndarray, until_s: float) -> int:
    """Process every step boundary at or before ``until_s``; return how many requests
    finished (listed in ``done``).

    An idle replica with nothing queued stays idle; one whose next queued request lands
    after ``until_s`` waits for it. Returns early with ``ST_STATUS = STATUS_FULL`` when
    ``done`` might not hold another step's completions.
    """
    n_done = 0
    max_batch = int(st[ST_MAX_BATCH])
    st[ST_STATUS] = STATUS_REACHED
    while True:
        if st[ST_STEP_KIND] != 0.0:
            if st[ST_STEP_END_S] > until_s:
                return n_done
            if n_done + max_batch > done.shape[0]:
                st[ST_STATUS] = STATUS_FULL
                return n_done
            n_done = _finish_step(p, st, slots, rc, ints, times, hist, done, n_done)
        _join_ready(st, slots, q, qt, ints, times)
        if st[ST_N_RC] > st[ST_N_PROMPT]:
            _admit_recompute(st, rc, ints)
        if st[ST_N_PROMPT] > 0.0:
            _start_prompt_step(p, st, rc, ints)
            continue
        if st[ST_N] > 0.0:
            short = _blocks_short(p, st, slots, ints)
            if short > st[ST_FREE_BLOCKS]:
                _preempt_newest(st, slots, rc, ints)
                continue
            _start_decode_step(p, st, slots, ints, short)
            continue
        # idle: wait for the next transfer to land
        head = int(st[ST_Q_HEAD])
        if head < int(st[ST_Q_TAIL]) and qt[head] <= until_s:
            st[ST_CLOCK_S] = max(st[ST_CLOCK_S], qt[head])
            continue
        return n_done
