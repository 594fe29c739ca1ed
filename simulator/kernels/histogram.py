"""Streaming latency histogram with log-spaced bins.

A run emits millions of inter-token gaps; keeping them would make memory grow with tokens.
Fixed log-spaced bins keep it constant and bound the relative error instead of the
absolute one, which is what matters for latencies spanning microseconds to minutes.
200 bins per decade from 1e-7 s to 1e5 s: a bin is 10**(1/200) ≈ 1.0116 wide, so its
geometric centre is within 10**(1/400) − 1 ≈ 0.58 % of any value inside it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "HIST_BINS",
    "HIST_BINS_PER_DECADE",
    "HIST_LO_LOG10",
    "histogram_add",
    "histogram_quantiles",
    "new_histogram",
]

HIST_LO_LOG10 = -7.0
HIST_BINS_PER_DECADE = 200.0
HIST_BINS = 2400


def new_histogram() -> np.ndarray:
    """An empty histogram with the default bins (the metrics read it with the same)."""
    return np.zeros(HIST_BINS, dtype=np.float64)


@njit(cache=True)
def histogram_add(hist: np.ndarray, lo_log10: float, bins_per_decade: float, value: float,
                  weight: float) -> None:
    """Add ``weight`` counts of ``value``; out-of-range values land in the end bins.

    Zero, negative and NaN values go to bin 0 rather than raising, so one bad gap cannot
    stop a run; the clip happens on the float so that inf cannot overflow the index.
    """
    last = hist.shape[0] - 1
    if not value > 0.0:
        hist[0] += weight
        return
    position = np.floor((np.log10(value) - lo_log10) * bins_per_decade)
    position = min(max(position, 0.0), float(last))
    hist[int(position)] += weight


@njit(cache=True)
def histogram_quantiles(hist: np.ndarray, lo_log10: float, bins_per_decade: float,
                        qs: np.ndarray) -> np.ndarray:
    """The geometric centre of the bin holding each q-quantile of the weight (NaN if empty).

    The q-quantile's bin is the first whose cumulative weight reaches q · total; for q = 0
    that is the first non-empty bin, not bin 0.
    """
    out = np.full(qs.shape[0], np.nan)
    cumulative = np.cumsum(hist)
    total = cumulative[-1] if hist.shape[0] > 0 else 0.0
    if not total > 0.0:
        return out
    for i in range(qs.shape[0]):
        target = min(max(qs[i], 0.0), 1.0) * total
        if target <= 0.0:
            index = int(np.searchsorted(cumulative, 0.0, side="right"))
        else:
            index = int(np.searchsorted(cumulative, target, side="left"))
        index = min(index, hist.shape[0] - 1)
        out[i] = 10.0 ** (lo_log10 + (index + 0.5) / bins_per_decade)
    return out


@njit(cache=True)
def histogram_add_gaps(hist: np.ndarray, lo_log10: float, bins_per_decade: float,
                       since_s: np.ndarray, now_s: float, extra_s: float) -> None:
    """Add one gap per request: ``(now_s - since_s[i]) + extra_s``, weight 1 each."""
    for i in range(since_s.shape[0]):
        histogram_add(hist, lo_log10, bins_per_decade, (now_s - since_s[i]) + extra_s, 1.0)
