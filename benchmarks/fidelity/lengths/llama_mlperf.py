"""Write llama2-70b-mlperf.csv and llama3.1-8b-mlperf.csv from the datasets' token counts.

Both keep every sample's real prompt length (``*-reference.csv``; README.md here says where
the counts come from). The outputs need a step each:

* Llama 2 70B (OpenOrca, 24,576 samples). The reference file's output column is the
  GPT-4 answer (mean 218.9 tokens), not what Llama 2 70B writes, whose mean MLPerf gives as
  294.45 tokens a sample. Each answer is scaled by the one factor that makes the mean
  294.45 under the benchmark's 1,024-token cap. The shape this keeps is the one the
  loadgen logs show for the real model: NVIDIA's v5.1 GB200 Server log reads, as
  latency ÷ TPOT, p50 ~233, p90 ~495 and p99 ~943 tokens at its model's mean of 272, and
  the answers scaled to that mean give 237, 559 and 970. A uniform range around the mean,
  as the files had, has no such tail (its p99 is 582).
* Llama 3.1 8B (CNN/DailyMail, 13,368 samples): MLPerf caps the output at 128 tokens and
  the model nearly always reaches it (calibration.md: 141,565 tokens/s ÷ 1,097.6
  samples/s ≈ 129), so every output is 128; the reference summaries' lengths are not used.

Run from anywhere: ``python llama_mlperf.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
LLAMA2_MEAN_OUTPUT_TOKENS = 294.45
LLAMA2_OUTPUT_CAP = 1024
LLAMA31_8B_OUTPUT_TOKENS = 128


def _reference(name: str) -> np.ndarray:
    return np.loadtxt(HERE / name, delimiter=",", skiprows=1, dtype=np.int64)


def llama2_outputs(answers: np.ndarray) -> np.ndarray:
    """The answers scaled to MLPerf's mean under the cap (bisection on the factor)."""
    def scaled(factor: float) -> np.ndarray:
        return np.clip(np.rint(answers * factor), 1, LLAMA2_OUTPUT_CAP).astype(np.int64)

    low, high = 1.0, 4.0
    for _ in range(60):
        factor = (low + high) / 2
        if scaled(factor).mean() < LLAMA2_MEAN_OUTPUT_TOKENS:
            low = factor
        else:
            high = factor
    return scaled(high)


def _write(name: str, inputs: np.ndarray, outputs: np.ndarray) -> None:
    rows = "".join(f"{i},{o}\n" for i, o in zip(inputs, outputs, strict=True))
    (HERE / name).write_text("num_prefill_tokens,num_decode_tokens\n" + rows, encoding="utf-8")


def main() -> None:
    llama2 = _reference("llama2-70b-reference.csv")
    _write("llama2-70b-mlperf.csv", llama2[:, 0], llama2_outputs(llama2[:, 1]))
    llama31 = _reference("llama3.1-8b-reference.csv")
    _write("llama3.1-8b-mlperf.csv", llama31[:, 0],
           np.full(len(llama31), LLAMA31_8B_OUTPUT_TOKENS, dtype=np.int64))


if __name__ == "__main__":
    main()
