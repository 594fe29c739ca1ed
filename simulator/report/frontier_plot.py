"""``frontier.png``: the curve a planner puts in front of whoever signs the purchase.

matplotlib is an optional extra (``tokenfactory[plot]``): a simulator on a cluster node
has no use for it, so it is imported only here, when a picture is asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from simulator.sweep.curve import FrontierPoint

__all__ = ["PLOT_EXTRA", "PNG_FILE", "write_frontier_png"]

PNG_FILE = "frontier.png"
PLOT_EXTRA = 'pip install "tokenfactory[plot]"'


def write_frontier_png(scenario: str, key: str, points: Sequence[FrontierPoint],
                       path: Path) -> bool:
    """Draw the points in the order the key was varied; False when matplotlib is missing.

    The figure is drawn on its own Agg canvas rather than through pyplot, so a caller's
    own matplotlib backend and open figures are left alone.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import StrMethodFormatter
    except ImportError:
        return False

    spots: list[tuple[FrontierPoint, float, float]] = []
    for p in points:
        x, y = p.tokens_per_s_per_user_p50, p.tokens_per_s_per_mw
        if x is not None and y is not None:     # nothing measured (no tokens): no place on it
            spots.append((p, x, y))
    figure = Figure(figsize=(8, 5.5), dpi=120, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.plot([x for _, x, _ in spots], [y for _, _, y in spots], color="0.6", linewidth=1,
              zorder=1)
    groups = (("dominated", "tab:blue", 36, lambda p: not p.pareto and not p.overloaded),
              ("Pareto frontier", "tab:orange", 80, lambda p: p.pareto),
              ("overloaded (queues growing; off the frontier)", "tab:red", 36,
               lambda p: p.overloaded))
    for label, colour, size, member in groups:
        chosen = [(x, y) for p, x, y in spots if member(p)]
        if chosen:
            axes.scatter([x for x, _ in chosen], [y for _, y in chosen], s=size, color=colour,
                         edgecolor="black", linewidth=0.5, label=label, zorder=2)
    # Values past the point where the knob stops binding land on one spot (to float noise):
    # one label for all of them, rather than labels printed over each other.
    span_x = (max(x for _, x, _ in spots) - min(x for _, x, _ in spots)) if spots else 0.0
    span_y = (max(y for _, _, y in spots) - min(y for _, _, y in spots)) if spots else 0.0
    labels: dict[tuple[int, int], tuple[tuple[float, float], list[str]]] = {}
    for p, x, y in spots:
        cell = (round(x / (span_x or 1.0) * 200), round(y / (span_y or 1.0) * 200))
        labels.setdefault(cell, ((x, y), []))[1].append(p.label)
    for spot, names in labels.values():
        axes.annotate(", ".join(names), spot, textcoords="offset points", xytext=(6, 4),
                      fontsize=8)
    axes.margins(x=0.15, y=0.08)        # room on the right for the rightmost point's label
    axes.set_xlabel("tokens/s per user, p50 (tokens/s)")
    axes.set_ylabel("tokens/s per MW (tokens/s/MW)")
    axes.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    axes.grid(True, color="0.9")
    axes.legend(title=f"point labels: {key}", title_fontsize=8, fontsize=8)
    figure.suptitle(scenario)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return True
