"""Numbers only: numba-compiled step costs, KV arithmetic and streaming histograms.

No SimPy, no YAML, no objects: plain floats and numpy arrays in and out, so the engine and
the tests can call them directly. ``reference`` holds a plain-numpy twin of each.
"""

from simulator.kernels.histogram import (
    HIST_BINS,
    HIST_BINS_PER_DECADE,
    HIST_LO_LOG10,
    histogram_add,
    histogram_add_gaps,
    histogram_quantiles,
    new_histogram,
)
from simulator.kernels.kv import (
    kv_blocks_short,
    kv_transfer_s,
    span_kv_growth_area,
    steps_until_kv_full,
)
from simulator.kernels.step import (
    ACC_BATCH_AREA,
    ACC_BUSY_S,
    ACC_ENERGY_J,
    ACC_NOW_S,
    N_ACC,
    N_PARAMS,
    P_ACT_BYTES,
    P_ALLREDUCE_BW,
    P_ALLREDUCE_LATENCY_S,
    P_ATTN_FLOPS_PER_PAIR,
    P_CHIPS,
    P_DENSE_WEIGHT_BYTES,
    P_ETA_COMPUTE,
    P_ETA_MEMORY,
    P_EXPERT_BYTES,
    P_EXPERTS,
    P_HEAD_FLOPS_PER_SEQ,
    P_HIDDEN,
    P_IDLE_W,
    P_KV_BYTES_PER_TOKEN,
    P_LAYER_SYNC_S,
    P_LAYERS,
    P_LIN_FLOPS_PER_TOKEN,
    P_MAX_W,
    P_MEM_BW,
    P_MOE_LAYERS,
    P_PEAK_FLOPS,
    P_SHARDS,
    P_STEP_OVERHEAD_S,
    P_TOP_K,
    P_TP,
    decode_span,
    moe_touched_experts,
    step_cost,
)

__all__ = [
    "ACC_BATCH_AREA", "ACC_BUSY_S", "ACC_ENERGY_J", "ACC_NOW_S", "HIST_BINS",
    "HIST_BINS_PER_DECADE", "HIST_LO_LOG10", "N_ACC", "N_PARAMS", "P_ACT_BYTES",
    "P_ALLREDUCE_BW", "P_ALLREDUCE_LATENCY_S", "P_ATTN_FLOPS_PER_PAIR", "P_CHIPS",
    "P_DENSE_WEIGHT_BYTES", "P_ETA_COMPUTE", "P_ETA_MEMORY", "P_EXPERTS", "P_EXPERT_BYTES",
    "P_HEAD_FLOPS_PER_SEQ", "P_HIDDEN", "P_IDLE_W", "P_KV_BYTES_PER_TOKEN", "P_LAYERS",
    "P_LAYER_SYNC_S", "P_LIN_FLOPS_PER_TOKEN", "P_MAX_W", "P_MEM_BW", "P_MOE_LAYERS",
    "P_PEAK_FLOPS", "P_SHARDS", "P_STEP_OVERHEAD_S", "P_TOP_K", "P_TP", "decode_span",
    "histogram_add", "histogram_add_gaps", "histogram_quantiles", "kv_blocks_short",
    "kv_transfer_s",
    "moe_touched_experts",
    "new_histogram", "span_kv_growth_area", "step_cost", "steps_until_kv_full",
]
