"""Benchmark runners: reproduce a figure's benchmark rules and read off its metric.

Offline puts every request in the queue at t = 0 (MLPerf Offline, trtllm-bench's infinite
rate); Server and Interactive search the highest Poisson rate whose p99 TTFT and p99 TPOT
meet the benchmark's limits, as a submitter tunes the target QPS; single user runs one
request at a time (a per-user decode speed). Efficiency factors can be swapped in for a
run, which is how calibration tries them without writing profiles.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from simulator.api import simulate
from simulator.config.loader import build_scenario
from simulator.config.scenario import Scenario
from simulator.fidelity.figures import Figure
from simulator.result import Result
from simulator.workload import length_stats

__all__ = ["FACTOR_FIELDS", "Run", "run_figure", "with_factors"]

# Efficiency figures of a profile and the SystemProfile fields they set.
FACTOR_FIELDS = {
    "compute": "compute_efficiency",
    "memory": "memory_efficiency",
    "kv_memory": "kv_memory_efficiency",
    "network": "network_efficiency",
    "step_overhead_s": "step_overhead_s",
    "host_time_per_token_s": "host_time_per_token_s",
    "layer_sync_latency_s": "layer_sync_latency_s",
    "compute_memory_overlap": "compute_memory_overlap",
}
_AT_ONCE_PER_S = 1e9          # an arrival rate that puts every request in the queue at t = 0
_PROBE_REQUESTS = 6000        # enough for a steady flat-out rate; the full count is for latency
_FULL_BATCHES = 4             # a probe holds this many full batches per replica
_WALK_STEPS = 8               # steps of the walk towards the rate where the limits flip
_TOLERANCE = 0.03             # the rate is found to within 3 %


@dataclass(frozen=True)
class Run:
    figure_id: str
    simulated: float
    met_limits: bool           # server/interactive: a rate met both p99 limits
    rate_per_s: float | None   # server/interactive: the rate the metric was read at


def with_factors(scenario: Scenario, factors: dict[str, float] | None) -> Scenario:
    """The scenario with its pools' efficiency figures replaced (calibration trials)."""
    if not factors:
        return scenario
    changes: dict[str, Any] = {FACTOR_FIELDS[k]: v for k, v in factors.items()}
    pools = tuple(replace(p, system=replace(p.system, **changes)) for p in scenario.pools)
    return replace(scenario, pools=pools)


def _metric(figure: Figure, result: Result, rate_per_s: float | None = None) -> float:
    """The figure's metric as its benchmark reports it; throughput and energy per token
    at the steady throughput (:func:`_steady_per_s`)."""
    summary = result.summary
    if figure.metric == "tokens_per_s_per_user":
        return float(summary["tokens_per_s_per_user"]["p50"])
    tokens_per_s = _steady_per_s(result, result.requests.output_tokens, rate_per_s)
    if figure.metric == "joules_per_token":
        # the run's mean power over the steady throughput: MLPerf Power's wall power ÷
        # tokens/s, without the drain of a short run counting as slow tokens
        return float(summary["energy_j"] / summary["duration_s"]) / tokens_per_s
    return tokens_per_s


def _steady_per_s(result: Result, amount: np.ndarray, rate_per_s: float | None) -> float:
    """``amount`` (a per-request count) completed per second in steady state.

    As the long published runs see it: for a server run, the rate the limits were met at
    times the mean amount per request (completed per second while arrivals keep up);
    offline, the amount of the requests finishing between the 10th and 90th percentile of
    completion times over that window, which leaves out the ramp-up and the drain a short
    simulated run would otherwise weigh far more than a 24,000-sample benchmark does.
    """
    amount = np.asarray(amount, dtype=np.float64)
    if rate_per_s is not None:
        return rate_per_s * float(amount.mean())
    done = result.requests.last_token_s
    start, end = np.quantile(done, [0.1, 0.9])
    window = (done > start) & (done <= end)
    if end <= start or not window.any():
        return float(amount.sum() / result.summary["duration_s"])
    return float(amount[window].sum() / (end - start))


def _simulate(figure: Figure, arrivals: dict[str, Any], requests: int,
              factors: dict[str, float] | None, max_batch: int | None = None) -> Result:
    raw = figure.scenario(arrivals, requests)
    if max_batch is not None:
        raw["pools"][0]["scheduler"] = {**raw["pools"][0]["scheduler"], "max_batch": max_batch}
    return simulate(with_factors(build_scenario(raw, figure.path), factors))


def _meets(figure: Figure, result: Result) -> bool:
    summary = result.summary
    if figure.ttft_p99_s is not None and summary["ttft_s"]["p99"] > figure.ttft_p99_s:
        return False
    tpot = summary["tpot_s"]["p99"]
    if figure.tpot_p99_s is not None and tpot is not None and tpot > figure.tpot_p99_s:
        return False
    return not summary["overloaded"]


def run_figure(figure: Figure, factors: dict[str, float] | None = None) -> Run:
    """Simulate ``figure``'s benchmark; deterministic for a given figure and factors."""
    if figure.benchmark == "single_user":
        arrivals = {"process": "closed_loop", "concurrency": 1}
        result = _simulate(figure, arrivals, figure.requests or 20, factors)
        return Run(figure.id, _metric(figure, result), True, None)
    if figure.benchmark == "offline":
        requests = figure.requests or 3000
        if figure.window == "whole_run":
            return Run(figure.id, _whole_run_per_s(figure, requests, factors), True, None)
        offline = _simulate(figure, {"process": "fixed", "rate_per_s": _AT_ONCE_PER_S},
                            requests, factors)
        return Run(figure.id, _metric(figure, offline), True, None)
    return _search_rate(figure, factors)


def _whole_run_per_s(figure: Figure, requests: int,
                     factors: dict[str, float] | None) -> float:
    """Output tokens per second as LoadGen reads an Offline run: all tokens over the time
    the last sample finished, drain included.

    That is the right reading when the file carries the benchmark's own sample count and
    the drain is a real share of the run: with DeepSeek-R1's outputs of up to 20,000
    tokens the batch empties for the last 40 % of a 45-minute run. Every request is
    queued at t = 0 and spread evenly, so the replicas run independently: one replica is
    simulated with its share of the samples and its rate multiplied by the replica count.
    """
    replicas = int(figure.pool.get("replicas", 1))
    one = replace(figure, pool={**figure.pool, "replicas": 1})
    share = -(-requests // replicas)
    result = _simulate(one, {"process": "fixed", "rate_per_s": _AT_ONCE_PER_S}, share,
                       factors)
    tokens = float(result.requests.output_tokens.sum())
    return replicas * tokens / float(result.requests.last_token_s.max())


def _flat_out(figure: Figure, requests: int, factors: dict[str, float] | None) -> Result:
    """The offline probe whose steady rate caps a latency-bound search.

    It holds four full batches per replica: a few thousand requests over nine replicas of
    1,536 sequences never fill a batch, and would cap the search at a partly idle
    deployment's rate. Its batch is the one the KV cache holds at full length, as a
    submitter sizes an offline run, so a server max_batch beyond memory does not turn the
    probe into a study of recompute thrashing.
    """
    probe = min(requests, _PROBE_REQUESTS)
    at_once = {"process": "fixed", "rate_per_s": _AT_ONCE_PER_S}
    scenario = build_scenario(figure.scenario(at_once, probe), figure.path)
    pool = scenario.pools[0]
    batch = pool.scheduler.options.get("max_batch")
    if not batch:
        return _simulate(figure, at_once, probe, factors)
    stats = length_stats(scenario.workload.lengths, figure.path)
    full_length = stats.mean_input_tokens + stats.mean_output_tokens
    held = max(min(batch, int(pool.kv_capacity_tokens // max(full_length, 1.0))), 1)
    return _simulate(figure, at_once, max(probe, _FULL_BATCHES * pool.replicas * held),
                     factors, held)


def _search_rate(figure: Figure, factors: dict[str, float] | None) -> Run:
    """The highest Poisson rate meeting the limits, to within ``_TOLERANCE``.

    An offline probe gives the deployment's flat-out rate; the search walks down from just
    under it (or up to it, if that already passes) until the limits flip, then bisects.
    Latency rises with load, so the limits are met below some rate and missed above it;
    no rate above the flat-out one is credited, however well a short run copes with it.
    """
    requests = figure.requests or 2000
    probe = _flat_out(figure, requests, factors)
    capacity = _steady_per_s(probe, np.ones(len(probe.requests)), None)

    def trial(rate: float) -> tuple[bool, Result]:
        result = _simulate(figure, {"process": "poisson", "rate_per_s": rate}, requests,
                           factors)
        return _meets(figure, result), result

    rate = 0.9 * capacity
    ok, result = trial(rate)
    passed: tuple[float, Result] | None = (rate, result) if ok else None
    failed: float | None = None if ok else rate
    for _ in range(_WALK_STEPS):
        if passed is not None and (failed is not None or passed[0] >= capacity):
            break
        # never above the flat-out rate: a run far shorter than the published one can
        # meet the limits there only because its queue has not had time to build
        rate = min(rate * 1.25, capacity) if ok else rate * 0.7
        ok, result = trial(rate)
        if ok:
            passed = (rate, result)
        else:
            failed = rate
    if passed is None:
        return Run(figure.id, _metric(figure, result, rate), False, rate)
    if failed is not None:
        low, high = passed[0], failed
        while high - low > _TOLERANCE * low:
            rate = 0.5 * (low + high)
            ok, result = trial(rate)
            if ok:
                passed, low = (rate, result), rate
            else:
                high = rate
    return Run(figure.id, _metric(figure, passed[1], passed[0]), True, passed[0])
