"""Figure files: one published (or a user's own) measurement and how to reproduce it.

A figure names a deployment (system, model, precision, replicas, parallelism), a benchmark
(offline, server, interactive, single user), the traffic's lengths and the number that was
measured. It is deliberately a small file a user writes by hand from a results page, not a
scenario: the benchmark decides the arrivals, so a figure cannot disagree with the rules of
the benchmark it claims to reproduce. The format is documented in benchmarks/fidelity/README.md.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from simulator.config.checks import PRECISION_KEYS, Section
from simulator.config.loader import read_mapping
from simulator.errors import ScenarioError

__all__ = ["BENCHMARKS", "METRICS", "WINDOWS", "Figure", "load_figure", "load_figures",
           "scale_inputs"]

BENCHMARKS = ("offline", "server", "interactive", "single_user")
METRICS = ("output_tokens_per_s", "tokens_per_s_per_user", "joules_per_token")
TAGS = ("measured", "third_party", "vendor", "user")
_KEYS = ("schema_version", "id", "title", "source", "tag", "metric", "published", "system",
         "model", "precision", "replicas", "parallelism", "chips_per_replica", "scheduler",
         "benchmark", "requests", "window", "limits", "lengths", "assumptions")
WINDOWS = ("steady", "whole_run")
_LIMIT_KEYS = ("ttft_p99_s", "tpot_p99_s")
_SCHEDULER_KEYS = ("max_batch", "max_batch_tokens")


@dataclass(frozen=True)
class Figure:
    id: str
    title: str
    source: str
    tag: str
    metric: str
    published: float
    system: str
    model: str
    benchmark: str
    requests: int | None
    ttft_p99_s: float | None
    tpot_p99_s: float | None
    pool: dict[str, Any]           # the scenario pool the deployment becomes (role: both)
    precision: dict[str, Any]
    lengths: dict[str, Any]
    assumptions: str
    path: Path
    window: str = "steady"         # offline: how throughput is read (see runners)

    def scenario(self, arrivals: dict[str, Any], requests: int, seed: int = 1
                 ) -> dict[str, Any]:
        """The raw scenario that runs this deployment under ``arrivals``."""
        return {
            "schema_version": 1,
            "name": self.id,
            "seed": seed,
            "model": self.model,
            "precision": dict(self.precision),
            "workload": {"requests": requests, "arrivals": arrivals,
                         "lengths": dict(self.lengths)},
            "pools": [dict(self.pool)],
            "tiers": "gtc-2026",
        }


def load_figures(folder: str | Path) -> list[Figure]:
    """Every ``*.yaml`` figure in ``folder``, sorted by id; an empty folder is an error."""
    root = Path(folder)
    if not root.is_dir():
        raise ScenarioError(root, "", "a directory of figure files (*.yaml)", str(root))
    figures = [load_figure(path) for path in sorted(root.glob("*.yaml"))]
    if not figures:
        raise ScenarioError(root, "", "at least one figure file (*.yaml)", "none")
    seen: dict[str, Path] = {}
    for fig in figures:
        if fig.id in seen:
            raise ScenarioError(fig.path, "id", f"an id not used by {seen[fig.id].name}", fig.id)
        seen[fig.id] = fig.path
    return sorted(figures, key=lambda f: f.id)


def load_figure(path: str | Path) -> Figure:
    file = Path(path)
    top = Section(read_mapping(file, "a figure file"), file, "", _KEYS)
    if top.get("schema_version", None) != 1:
        raise top.fail("schema_version", "1", top.get("schema_version"))
    benchmark = top.text("benchmark", choices=BENCHMARKS)
    limits = top.section("limits", _LIMIT_KEYS)
    latency_bound = benchmark in ("server", "interactive")
    if latency_bound and not (limits.has("ttft_p99_s") or limits.has("tpot_p99_s")):
        raise top.fail("limits", f"ttft_p99_s and/or tpot_p99_s for a {benchmark} benchmark",
                       top.get("limits"))
    if not latency_bound and top.has("limits"):
        raise top.fail("limits", f"no limits for a {benchmark} benchmark", top.get("limits"))
    pool: dict[str, Any] = {"name": "serve", "role": "both", "system": top.text("system"),
                            "replicas": top.integer("replicas", default=1)}
    if top.has("parallelism") and top.has("chips_per_replica"):
        raise top.fail("chips_per_replica", "parallelism (GPUs) or chips_per_replica (LPUs), "
                       "not both", top.get("chips_per_replica"))
    for key in ("parallelism", "chips_per_replica"):
        if top.has(key):
            pool[key] = top.get(key)
    scheduler = top.section("scheduler", _SCHEDULER_KEYS)
    pool["scheduler"] = {"policy": "chunked_prefill", **scheduler.data}
    metric = top.text("metric", choices=METRICS)
    window = top.text("window", default="steady", choices=WINDOWS)
    if window == "whole_run" and benchmark != "offline":
        raise top.fail("window", f"steady for a {benchmark} benchmark (whole_run reads an "
                       "offline run)", window)
    if window == "whole_run" and metric == "joules_per_token":
        raise top.fail("window", "steady for joules_per_token (a whole_run simulates one "
                       "replica, not the deployment whose power was measured)", window)
    lengths = top.get("lengths", None)
    if not isinstance(lengths, dict):
        raise top.fail("lengths", "a lengths mapping as in a scenario's workload.lengths",
                       lengths)
    return Figure(
        id=top.text("id"), title=top.text("title", default=top.text("id")),
        source=top.text("source"), tag=top.text("tag", choices=TAGS),
        metric=metric, published=top.number("published"),
        system=top.text("system"), model=top.text("model"), benchmark=benchmark,
        requests=top.integer("requests") if top.has("requests") else None,
        ttft_p99_s=limits.number("ttft_p99_s") if limits.has("ttft_p99_s") else None,
        tpot_p99_s=limits.number("tpot_p99_s") if limits.has("tpot_p99_s") else None,
        pool=pool, precision=dict(top.section("precision", PRECISION_KEYS).data),
        lengths=lengths, assumptions=str(top.get("assumptions", "")), path=file,
        window=window)


def scale_inputs(figure: Figure, scale: float) -> Figure:
    """``figure`` with the bounds of its drawn prompt lengths multiplied by ``scale``.

    MLPerf publishes output lengths but not input lengths, so the ``uniform`` prompt ranges
    of its figures are estimates; this asks how much a result rests on one. Fixed lengths
    are the benchmark's definition (trtllm-bench's ISL), and traces are data, so both stay.
    """
    if not scale > 0.0:
        raise ScenarioError(figure.path, "input_scale", "a factor > 0", scale)
    lengths = figure.lengths
    if scale == 1.0 or lengths.get("source") != "uniform":
        return figure
    low, high = lengths["input_tokens"]
    scaled = [max(1, round(low * scale)), max(1, round(high * scale))]
    return replace(figure, lengths={**lengths, "input_tokens": scaled})
