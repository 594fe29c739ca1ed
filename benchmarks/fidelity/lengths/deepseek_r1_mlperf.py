"""Write deepseek-r1-mlperf.csv: per-sample lengths standing in for MLPerf's DeepSeek-R1 set.

MLPerf does not publish the output-length distribution of its 4,388 DeepSeek-R1 samples,
only the mean (3,886.2 reference tokens) and the 20,000-token cap. NVIDIA's v5.1 Server
logs give it indirectly: time per output token is nearly the same for every request
(GB200 NVL72 p50 61.3 ms, p99 64.5 ms; GB300 NVL72 66.1 / 70.8 ms), so a request's
latency is its mean TTFT plus its output length times that TPOT, and the latency
percentiles read as length percentiles. Both systems agree to 1 %:

    percentile      50     90      95      97      99     99.9
    GB200 NVL72  1,971  8,767  12,328  14,954  18,932  (cap)
    GB300 NVL72  1,978  8,708  12,231  14,776  18,886  (cap)

(mlperf_log_summary.txt of deepseek-r1 Server, closed/NVIDIA/results/GB200-NVL72_GB200-
186GB_aarch64x72_TRT and GB300-NVL72_GB300-288GB_aarch64x72_TRT, mlcommons/
inference_results_v5.1, read in the mirror ykamiset/inference_results_v5.1 at e9ccad4.)

Between those points the quantile function is interpolated in log space; below the median,
where the logs say nothing, it is a power of the rank whose exponent makes the mean 3,700
tokens, what the submitter's model produced (completed tokens ÷ completed samples: 3,744,
3,676, 3,714 and 3,657 in the four logs), not the reference answers' 3,886.

Prompts are the real ones: ``deepseek-r1-reference.csv`` holds each sample's prompt length
and reference-answer length in tokens (mean 803.8 and 4,043.4, the latter MLCommons' own
``mean-output-tok-len``; see README.md here for where the counts come from). Each sample
keeps its prompt, and its output is the log-derived length of the same rank as its
reference answer, so the pairing survives: short math prompts draw long reasoning (the
two correlate at about -0.4). Run from anywhere: ``python deepseek_r1_mlperf.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SAMPLES = 4388
MEAN_OUTPUT_TOKENS = 3700.0
RANKS = np.array([0.5, 0.9, 0.95, 0.97, 0.99, 0.999, 1.0])
OUTPUT_TOKENS = np.array([1975.0, 8740.0, 12280.0, 14865.0, 18910.0, 20000.0, 20000.0])
REFERENCE = Path(__file__).with_name("deepseek-r1-reference.csv")


def output_lengths(mean_tokens: float = MEAN_OUTPUT_TOKENS) -> np.ndarray:
    """One output length per sample, in rank order, with the given mean."""
    rank = (np.arange(SAMPLES) + 0.5) / SAMPLES
    upper = np.exp(np.interp(rank, RANKS, np.log(OUTPUT_TOKENS)))

    def lengths(power: float) -> np.ndarray:
        lower = OUTPUT_TOKENS[0] * (rank / RANKS[0]) ** power
        return np.maximum(1, np.rint(np.where(rank < RANKS[0], lower, upper))).astype(np.int64)

    low, high = 0.01, 100.0       # a larger power lowers the mean
    for _ in range(100):
        power = (low * high) ** 0.5
        if lengths(power).mean() > mean_tokens:
            low = power
        else:
            high = power
    return lengths(power)


def main() -> None:
    reference = np.loadtxt(REFERENCE, delimiter=",", skiprows=1, dtype=np.int64)
    outputs = np.empty(SAMPLES, dtype=np.int64)
    outputs[np.argsort(reference[:, 1], kind="mergesort")] = output_lengths()
    rows = "".join(f"{i},{o}\n" for i, o in zip(reference[:, 0], outputs, strict=True))
    path = Path(__file__).with_name("deepseek-r1-mlperf.csv")
    path.write_text("num_prefill_tokens,num_decode_tokens\n" + rows, encoding="utf-8")

if __name__ == "__main__":
    main()
