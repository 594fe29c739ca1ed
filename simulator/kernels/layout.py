"""Row layout of the request table that compiled kernels index directly.

The engine keeps per-request integers in one 2-D array and per-request times in another
(``RequestTable.ints`` and ``.times``), so a kernel takes the whole table as two arguments.
These constants name the rows; the engine's named columns are views of the same rows.
"""

TI_INPUT = 0
TI_OUTPUT = 1
TI_CACHED = 2
TI_TARGET = 3
TI_GENERATED = 4
TI_BLOCKS_FIRST = 5
TI_BLOCKS_DECODE = 6
TI_PREEMPTIONS = 7
N_TI = 8

TIME_COLUMNS = (
    "arrival_s",
    "prefill_start_s",
    "prefill_end_s",
    "kv_transfer_start_s",
    "kv_transfer_end_s",
    "decode_start_s",
    "first_token_s",
    "last_token_s",
)
TF_PREFILL_START = TIME_COLUMNS.index("prefill_start_s")
TF_PREFILL_END = TIME_COLUMNS.index("prefill_end_s")
TF_KV_TRANSFER_START = TIME_COLUMNS.index("kv_transfer_start_s")
TF_KV_TRANSFER_END = TIME_COLUMNS.index("kv_transfer_end_s")
TF_DECODE_START = TIME_COLUMNS.index("decode_start_s")
TF_FIRST_TOKEN = TIME_COLUMNS.index("first_token_s")
TF_LAST_TOKEN = TIME_COLUMNS.index("last_token_s")
