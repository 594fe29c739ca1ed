"""The Pareto frontier of a sweep: speed per user against tokens per megawatt.

These are the two sides of a token factory's trade: faster tokens per user earn a higher
price tier, more tokens per megawatt earn more from a fixed power budget. A variant is on
the frontier when no other variant is at least as good on both and better on one.
"""

from __future__ import annotations

from collections.abc import Sequence

from simulator.sweep.results import SweepResult

__all__ = ["frontier", "pareto_frontier"]

Point = tuple[float | None, float | None]


def pareto_frontier(points: Sequence[Point]) -> list[int]:
    """Indices of the points no other point dominates (higher is better on both axes).

    A point with a missing coordinate (None) is left out: it cannot be compared. Equal
    points do not dominate each other, so both stay.
    """
    valid = [(i, x, y) for i, (x, y) in enumerate(points) if x is not None and y is not None]
    return [i for i, x, y in valid
            if not any(ox >= x and oy >= y and (ox > x or oy > y) for _, ox, oy in valid)]


def frontier(results: Sequence[SweepResult]) -> list[str]:
    """Names of the variants on the frontier of (tokens/s per user p50, tokens/s per MW).

    Overloaded variants are left out: their queues were still growing, so their tokens per
    megawatt is that of a factory at full load with waits that grow with the run's length,
    which would push every sustainable design off the frontier.
    """
    points: list[Point] = [
        (None, None) if r.summary["overloaded"]
        else (r.summary["tokens_per_s_per_user"]["p50"], r.summary["tokens_per_s_per_mw"])
        for r in results]
    return [results[i].name for i in pareto_frontier(points)]
