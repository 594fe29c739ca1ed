"""A prefill replica of a disaggregated pool, stepped in compiled code.

A prefill replica does one thing: admit prompts first come first served while batch slots
and KV blocks last, and run them through in steps of at most ``max_batch_tokens`` new
tokens, either cut into chunks (chunked prefill) or whole (continuous batching). Each
finished prompt is handed on at the boundary where it finishes, so the engine wakes at
every boundary; the kernel does all the work between wake-ups in one call.

Arrays: ``st`` (``ST_*`` slots of :mod:`simulator.kernels.replica_state`), ``q`` (arrived
requests waiting, ``q[head:tail]``), ``admitted`` (prompts holding memory, in admission
order), ``takes`` (tokens each admitted prompt gets in the step in progress) and the request
table's ``ints``/``times`` rows. Prompts finished at a boundary are listed in ``out``:
``r`` for one to hand on to decode, ``-r - 1`` for one whose only token came out of
prefill, which is done.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from simulator.kernels.layout import (
    TF_FIRST_TOKEN,
    TF_LAST_TOKEN,
    TF_PREFILL_END,
    TF_PREFILL_START,
    TI_BLOCKS_FIRST,
    TI_CACHED,
    TI_GENERATED,
    TI_OUTPUT,
    TI_TARGET,
)
from simulator.kernels.ranks import chunked_step_cost
from simulator.kernels.replica_state import (
    ST_BLOCK_TOKENS,
    ST_BUSY_S,
    ST_CLOCK_S,
    ST_ENERGY_J,
    ST_FREE_BLOCKS,
    ST_LAST_STEP_S,
    ST_MAX_BATCH,
    ST_MAX_BATCH_TOKENS,
    ST_N,
    ST_N_CHUNK,
    ST_Q_HEAD,
    ST_Q_TAIL,
    ST_STEP_END_S,
    ST_STEP_ENERGY_J,
    ST_STEP_KIND,
    ST_STEP_TIME_S,
    ST_STEPS,
    ST_WHOLE_PROMPTS,
    kv_mark,
)


@njit(cache=True)
def release_blocks(st: np.ndarray, ints: np.ndarray, request: int, now_s: float) -> bool:
    """The request's KV left for decode: free its blocks; return whether an idle replica
    has requests waiting that might now fit."""
    kv_mark(st, now_s)
    st[ST_FREE_BLOCKS] += ints[TI_BLOCKS_FIRST, request]
    ints[TI_BLOCKS_FIRST, request] = 0
    return st[ST_STEP_KIND] == 0.0 and st[ST_Q_HEAD] < st[ST_Q_TAIL]


@njit(cache=True)
def _finish_step(st: np.ndarray, admitted: np.ndarray, takes: np.ndarray, ints: np.ndarray,
                 times: np.ndarray, out: np.ndarray) -> int:
    """Close the step in progress; list the prompts it finished in ``out``."""
    t = st[ST_STEP_END_S]
    st[ST_LAST_STEP_S] = st[ST_STEP_TIME_S]
    st[ST_BUSY_S] += st[ST_STEP_TIME_S]
    st[ST_ENERGY_J] += st[ST_STEP_ENERGY_J]
    st[ST_STEPS] += 1.0
    st[ST_STEP_KIND] = 0.0
    st[ST_CLOCK_S] = t
    n = int(st[ST_N])
    n_out = 0
    kept = 0
    for i in range(n):
        r = admitted[i]
        if i < st[ST_N_CHUNK]:
            ints[TI_CACHED, r] += takes[i]
        if ints[TI_CACHED, r] >= ints[TI_TARGET, r]:
            times[TF_PREFILL_END, r] = t
            out[n_out] = r
            n_out += 1
            if ints[TI_OUTPUT, r] <= 1:
                out[n_out - 1] = -r - 1   # marks a request that is done, not handed on
                # the only token came out of prefill: done here, memory back at once
                ints[TI_GENERATED, r] = 1
                times[TF_FIRST_TOKEN, r] = t
                times[TF_LAST_TOKEN, r] = t
                kv_mark(st, t)
                st[ST_FREE_BLOCKS] += ints[TI_BLOCKS_FIRST, r]
                ints[TI_BLOCKS_FIRST, r] = 0
        else:
            admitted[kept] = r
            kept += 1
    st[ST_N] = kept
    st[ST_N_CHUNK] = 0.0
    return n_out


@njit(cache=True)
def _admit(st: np.ndarray, q: np.ndarray, admitted: np.ndarray, ints: np.ndarray,
           times: np.ndarray) -> int:
    """Waiting requests in arrival order while slots and blocks last; stop at the first
    that does not fit, so a long prompt is not overtaken forever. Returns how many."""
    bt = int(st[ST_BLOCK_TOKENS])
    n = int(st[ST_N])
    head = int(st[ST_Q_HEAD])
    tail = int(st[ST_Q_TAIL])
    free = int(st[ST_FREE_BLOCKS])
    taken = 0
    count = 0
    while head < tail and n < st[ST_MAX_BATCH]:
        r = q[head]
        need = max((ints[TI_TARGET, r] + bt - 1) // bt - ints[TI_BLOCKS_FIRST, r], 0)
        if need > free:
            break
        free -= need
        taken += need
        ints[TI_BLOCKS_FIRST, r] += need
        if np.isnan(times[TF_PREFILL_START, r]):
            times[TF_PREFILL_START, r] = st[ST_CLOCK_S]
        admitted[n] = r
        n += 1
        head += 1
        count += 1
    if taken:
        kv_mark(st, st[ST_CLOCK_S])
        st[ST_FREE_BLOCKS] -= taken
    st[ST_Q_HEAD] = head
    st[ST_N] = n
    return count


@njit(cache=True)
def _start_step(p: np.ndarray, st: np.ndarray, admitted: np.ndarray, takes: np.ndarray,
                ints: np.ndarray) -> None:
    """Prompt tokens of the admitted, in order, within the step's token budget."""
    budget = int(st[ST_MAX_BATCH_TOKENS])
    whole = st[ST_WHOLE_PROMPTS] > 0.0
    chunk = 0
    for i in range(int(st[ST_N])):
        if budget <= 0:
            break
        r = admitted[i]
        left = ints[TI_TARGET, r] - ints[TI_CACHED, r]
        if whole:
            if left > budget and chunk > 0:
                break
            take = left
        else:
            take = min(left, budget)
        takes[i] = take
        chunk += 1
        budget -= take
    cached = np.empty(chunk)
    targets = np.empty(chunk)
    for i in range(chunk):
        cached[i] = ints[TI_CACHED, admitted[i]]
        targets[i] = ints[TI_TARGET, admitted[i]]
    time_s, energy_j = chunked_step_cost(p, takes, cached, targets, chunk, 0.0, 0.0)
    st[ST_N_CHUNK] = chunk
    st[ST_STEP_KIND] = 1.0
    st[ST_STEP_TIME_S] = time_s
    st[ST_STEP_ENERGY_J] = energy_j
    st[ST_STEP_END_S] = st[ST_CLOCK_S] + time_s


@njit(cache=True)
def prefill_advance(p: np.ndarray, st: np.ndarray, q: np.ndarray, admitted: np.ndarray,
                    takes: np.ndarray, ints: np.ndarray, times: np.ndarray, out: np.ndarray,
                    until_s: float) -> int:
    """Process step boundaries up to ``until_s``; return how many prompts finished.

    Stops right after a boundary that finished prompts (returning how many, above zero),
    with the next step already started, so the engine hands them on at that time; returns
    0 once every boundary up to ``until_s`` is processed.
    """
    if st[ST_STEP_KIND] == 0.0:
        st[ST_CLOCK_S] = max(st[ST_CLOCK_S], until_s)   # idle until now: nothing changed
    n_out = 0
    while True:
        if st[ST_STEP_KIND] != 0.0:
            if st[ST_STEP_END_S] > until_s:
                return 0
            n_out = _finish_step(st, admitted, takes, ints, times, out)
        if st[ST_Q_HEAD] < st[ST_Q_TAIL]:
            _admit(st, q, admitted, ints, times)
        if st[ST_N] > 0.0:
            _start_step(p, st, admitted, takes, ints)
        if n_out > 0:
            return n_out
        if st[ST_STEP_KIND] == 0.0:
            return 0
