"""The state vector of a compiled replica: named slots of one float64 array.

A compiled replica keeps its scalars (clock, step in progress, free KV blocks, running
sums) in one array so a kernel takes them as a single argument and the engine reads them by
name. Decode and prefill replicas share the layout; a few slots belong to one of them.
"""

from __future__ import annotations

import numpy as np
from numba import njit

ST_CLOCK_S = 0          # last boundary processed (a step in progress started here)
ST_STEP_END_S = 1       # end of the step in progress; meaningless when ST_STEP_KIND is 0
ST_STEP_KIND = 2        # 0 idle, 1 decode, 2 prompt-only (recompute)
ST_STEP_TIME_S = 3
ST_STEP_ENERGY_J = 4
ST_N = 5                # decoders in the batch, or prompts admitted on a prefill replica
ST_N_PROMPT = 6         # of ``rc``'s first entries, how many are admitted (hold KV)
ST_N_CHUNK = 7          # of the admitted prompts, how many the step in progress computes
ST_N_RC = 8             # entries in ``rc``
ST_Q_HEAD = 9
ST_Q_TAIL = 10
ST_FREE_BLOCKS = 11
ST_TOTAL_BLOCKS = 12
ST_KV_TOKENS = 13       # cached tokens summed over the decoders
ST_KV_AREA = 14         # used blocks × seconds, up to ST_KV_MARK_S
ST_KV_MARK_S = 15
ST_BUSY_S = 16
ST_ENERGY_J = 17
ST_BATCH_AREA = 18      # decoders × step time, summed
ST_STEPS = 19
ST_PREEMPTIONS = 20
ST_PRESSURE = 21        # 1 after a preemption until a request finishes
ST_MAX_BATCH = 22
ST_BLOCK_TOKENS = 23
ST_MAX_BATCH_TOKENS = 24
ST_STATUS = 25          # decode replicas: why the last call returned (STATUS_*)
ST_WHOLE_PROMPTS = 26   # prefill replicas: 1 if a prompt only runs whole (no chunking)
ST_LAST_STEP_S = 27     # prefill replicas: duration of the step that ended last
N_ST = 28

STATUS_REACHED = 0      # every boundary up to the given time is processed
STATUS_FULL = 1         # the output buffer is full: drain it and call again


def new_replica_state(total_blocks: int, max_batch: int, block_tokens: int,
                      max_batch_tokens: int) -> np.ndarray:
    st = np.zeros(N_ST)
    st[ST_FREE_BLOCKS] = total_blocks
    st[ST_TOTAL_BLOCKS] = total_blocks
    st[ST_MAX_BATCH] = max_batch
    st[ST_BLOCK_TOKENS] = block_tokens
    st[ST_MAX_BATCH_TOKENS] = max_batch_tokens
    return st


@njit(cache=True)
def kv_mark(st: np.ndarray, t: float) -> None:
    """Bring the block-seconds integral up to ``t`` before the number of used blocks changes."""
    st[ST_KV_AREA] += (st[ST_TOTAL_BLOCKS] - st[ST_FREE_BLOCKS]) * (t - st[ST_KV_MARK_S])
    st[ST_KV_MARK_S] = t
