"""Turn a finished run into the result names a planner reads (``summary.json``).

Latency percentiles over requests are exact (one value per request is kept anyway);
inter-token gaps come from the streaming histogram, so memory never grows with tokens.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simulator import __version__
from simulator.config.scenario import AttentionSplitSpec, PoolSpec, Scenario
from simulator.economics import site_economics
from simulator.engine.factory import Factory, Pool
from simulator.hardware import provenance_counts
from simulator.kernels import HIST_BINS_PER_DECADE, HIST_LO_LOG10, histogram_quantiles

__all__ = ["latency_stats", "request_latencies", "summarise"]

_QUANTILES = np.array([0.5, 0.9, 0.99])


def latency_stats(values: np.ndarray) -> dict[str, float | None]:
    """mean, p50, p90, p99 (linear interpolation); None when there are no values."""
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return {"mean": None, "p50": None, "p90": None, "p99": None}
    p50, p90, p99 = np.quantile(values, _QUANTILES)
    return {"mean": float(values.mean()), "p50": float(p50), "p90": float(p90),
            "p99": float(p99)}


def _hist_stats(hist: np.ndarray, total_s: float) -> dict[str, float | None]:
    count = float(hist.sum())
    if count <= 0:
        return {"mean": None, "p50": None, "p90": None, "p99": None}
    p50, p90, p99 = histogram_quantiles(hist, HIST_LO_LOG10, HIST_BINS_PER_DECADE, _QUANTILES)
    return {"mean": total_s / count, "p50": float(p50), "p90": float(p90), "p99": float(p99)}


def request_latencies(factory: Factory) -> dict[str, np.ndarray]:
    """Per-request TTFT, TPOT and end-to-end latency (NaN where undefined)."""
    t = factory.table
    ttft = t.first_token_s - t.arrival_s
    decoded = t.output_tokens > 1
    tpot = np.full(t.n, np.nan)
    tpot[decoded] = ((t.last_token_s[decoded] - t.first_token_s[decoded])
                     / (t.output_tokens[decoded] - 1))
    return {"ttft_s": ttft, "tpot_s": tpot, "e2e_s": t.last_token_s - t.arrival_s}


def _layout_summary(spec: PoolSpec) -> dict[str, Any]:
    """Chip counts of the layouts that add hardware or change tokens per step."""
    out: dict[str, Any] = {}
    if spec.ep > 1:
        out["ep"] = spec.ep
    if spec.speculative is not None:
        out["tokens_per_step"] = spec.speculative.tokens_per_step
    split = spec.attention_split
    if split is not None:
        out["attention_split"] = {
            "system": split.system.name, "chips_per_replica": split.chips,
            "chips": spec.attention_chips, "systems": spec.attention_systems}
    return out


def _split_idle_energy_j(pool: Pool, split: AttentionSplitSpec, end_s: float) -> float:
    """Attention GPUs of an attention–FFN split outside their replicas' steps, plus the
    rest of the GPU systems they occupy (spare GPUs and each system's overhead)."""
    gpu = split.system
    idle_s = sum(end_s - replica.busy_s for replica in pool.replicas)
    gpus, systems = pool.spec.attention_chips, pool.spec.attention_systems
    return (split.chips * gpu.idle_power_w * idle_s
            + (systems * gpu.chips_per_system - gpus) * gpu.idle_power_w * end_s
            + systems * gpu.system_overhead_power_w * end_s)


def _pool_summary(pool: Pool, end_s: float, queue_wait_s: float) -> dict[str, Any]:
    spec = pool.spec
    system = spec.system
    energy = 0.0
    busy = 0.0
    batch_area = 0.0
    for replica in pool.replicas:
        energy += replica.energy_j + spec.chips_per_replica * system.idle_power_w * (
            end_s - replica.busy_s)
        busy += replica.busy_s
        batch_area += replica.batch_token_area
    spare_chips = spec.systems * system.chips_per_system - spec.chips
    energy += spare_chips * system.idle_power_w * end_s
    energy += spec.systems * system.system_overhead_power_w * end_s
    if spec.attention_split is not None:
        energy += _split_idle_energy_j(pool, spec.attention_split, end_s)
    return {
        "role": spec.role,
        "system": system.name,
        "replicas": spec.replicas,
        "chips_per_replica": spec.chips_per_replica,
        "chips": spec.chips,
        "systems": spec.systems,
        "kv_capacity_tokens": spec.kv_capacity_tokens,
        "utilisation": busy / (end_s * spec.replicas) if end_s > 0 else 0.0,
        "energy_j": energy,
        "power_w_mean": energy / end_s if end_s > 0 else 0.0,
        "kv_occupancy_mean": float(np.mean([r.kv_occupancy_mean(end_s) for r in pool.replicas])),
        "queue_len_mean": queue_wait_s / end_s if end_s > 0 else 0.0,
        "batch_size_mean": batch_area / busy if busy > 0 else 0.0,
        "steps": int(sum(r.steps for r in pool.replicas)),
        "preemptions": int(sum(r.preemptions for r in pool.replicas)),
        **_layout_summary(pool.spec),
    }


def _queued_s(factory: Factory) -> np.ndarray:
    """When each request joined its first pool's queue: on arrival, or once its prefix
    landed from the KV offload tiers (loading is not queueing)."""
    loads = factory.entry.kv_loads
    return factory.table.arrival_s if loads is None else loads.ready_s


def _prefill_work(factory: Factory) -> dict[str, Any]:
    """Prompt tokens the entry pool computed, and the prefix its KV tiers loaded instead."""
    pool = factory.entry
    out: dict[str, Any] = {
        "prefill_tokens_computed": int(sum(r.prompt_tokens_computed for r in pool.replicas)),
        "kv_tier_hit_tokens": {},
    }
    loads = pool.kv_loads
    if loads is not None:
        t = factory.table
        loaded = t.kv_hit_tokens > 0
        out["kv_tier_hit_tokens"] = loads.hit_tokens_by_tier()
        out["kv_tier_load_s"] = latency_stats((loads.ready_s - t.arrival_s)[loaded])
    return out


def _queue_waits(factory: Factory) -> dict[str, float]:
    """Total time requests spent queued before each pool (Little: mean length = total / T)."""
    t = factory.table
    waits = {factory.entry.spec.name: float(np.nansum(t.prefill_start_s - _queued_s(factory)))}
    waiting = (np.nan_to_num(t.kv_transfer_start_s - t.prefill_end_s)
               + np.nan_to_num(t.decode_start_s - t.kv_transfer_end_s))
    for pool in factory.decodes:
        waits[pool.spec.name] = float(waiting[_decoded_on(factory, pool)].sum())
    return waits


def _decoded_on(factory: Factory, pool: Pool) -> np.ndarray:
    """Which requests decode on ``pool``: those of the tiers it serves."""
    mine = np.array([target is pool for target in factory.decode_of_tier], dtype=bool)
    return mine[factory.table.tier]


def _link_summary(factory: Factory, end_s: float) -> dict[str, Any]:
    t = factory.table
    out: dict[str, Any] = {}
    for pool in factory.decodes:
        ingress = pool.ingress
        busy = sum(i.busy_s for i in ingress)
        mine = _decoded_on(factory, pool)
        out[f"{factory.entry.spec.name}->{pool.spec.name}"] = {
            "transfers": int(sum(i.transfers for i in ingress)),
            "bytes": sum(i.bytes_moved for i in ingress),
            "utilisation": busy / (end_s * len(ingress)) if end_s > 0 else 0.0,
            "transfer_s": latency_stats((t.kv_transfer_end_s - t.kv_transfer_start_s)[mine]),
        }
    return out


def _slo_met(scenario: Scenario, factory: Factory, lat: dict[str, np.ndarray]) -> np.ndarray:
    t = factory.table
    ttft_cap = np.array([tier.max_ttft_s for tier in scenario.tiers])[t.tier]
    speed_floor = np.array([tier.min_tokens_per_s_per_user for tier in scenario.tiers])[t.tier]
    with np.errstate(divide="ignore", invalid="ignore"):
        speed = np.where(t.output_tokens > 1, 1.0 / lat["tpot_s"], np.inf)
    return (lat["ttft_s"] <= ttft_cap) & (speed >= speed_floor)


def _tier_summary(scenario: Scenario, factory: Factory, met: np.ndarray,
                  end_s: float) -> dict[str, Any]:
    t = factory.table
    out: dict[str, Any] = {}
    for index, tier in enumerate(scenario.tiers):
        mine = t.tier == index
        count = int(mine.sum())
        if count == 0:
            continue
        paid_tokens = float(t.output_tokens[mine & met].sum())
        out[tier.name] = {
            "requests": count,
            "output_tokens": int(t.output_tokens[mine].sum()),
            "paid_output_tokens": int(paid_tokens),
            "slo_attainment": float(met[mine].mean()),
            "goodput_rps": float((mine & met).sum()) / end_s if end_s > 0 else 0.0,
            "revenue_usd_per_s": (paid_tokens * tier.price_usd_per_mtok / 1e6 / end_s
                                  if end_s > 0 else 0.0),
            "price_usd_per_mtok": tier.price_usd_per_mtok,
            "min_tokens_per_s_per_user": tier.min_tokens_per_s_per_user,
            "max_ttft_s": tier.max_ttft_s,
        }
    return out


def _backlog(factory: Factory) -> tuple[int, float, bool]:
    """Requests in the system at the last arrival, the time to drain them, and overload.

    Overload means the queue was still growing: requests arriving in the last quarter of
    the arrivals waited for their first token more than 1.5 × (+10 ms) as long as those of
    the second quarter (judged only with at least 40 arrivals). Comparing waits rather than
    counting completions keeps a short run, whose requests are still in flight when
    arrivals stop, from looking overloaded. Closed-loop users wait for replies, so they
    cannot overload.
    """
    t = factory.table
    last_arrival = float(np.nanmax(t.arrival_s))
    backlog = int(((t.arrival_s <= last_arrival) & (t.last_token_s > last_arrival)).sum())
    drain = float(np.nanmax(t.last_token_s)) - last_arrival
    if factory.scenario.workload.arrivals.process == "closed_loop":
        return backlog, drain, False
    order = np.argsort(t.arrival_s, kind="stable")
    quarter = len(order) // 4
    if quarter < 10:
        return backlog, drain, False
    wait = t.first_token_s - t.arrival_s
    second = float(np.mean(wait[order[quarter:2 * quarter]]))
    last = float(np.mean(wait[order[3 * quarter:]]))
    return backlog, drain, last > 1.5 * second + 0.01


def summarise(scenario: Scenario, factory: Factory, end_s: float) -> dict[str, Any]:
    t = factory.table
    lat = request_latencies(factory)
    met = _slo_met(scenario, factory, lat)
    waits = _queue_waits(factory)
    pools = {name: _pool_summary(pool, end_s, waits.get(name, 0.0))
             for name, pool in factory.pools.items()}
    pools[factory.entry.spec.name].update(_prefill_work(factory))
    energy = sum(p["energy_j"] for p in pools.values())
    out_tokens = float(t.output_tokens.sum())
    power_w = energy / end_s if end_s > 0 else 0.0
    itl_total_s = float(np.nansum(t.last_token_s - t.first_token_s))
    with np.errstate(divide="ignore"):
        speed = np.where(t.output_tokens > 1, 1.0 / lat["tpot_s"], np.nan)
    e2e = latency_stats(lat["e2e_s"])
    backlog, drain_s, overloaded = _backlog(factory)
    systems = {p.spec.system.name: p.spec.system for p in factory.pools.values()}
    systems.update({p.spec.attention_split.system.name: p.spec.attention_split.system
                    for p in factory.pools.values() if p.spec.attention_split is not None})
    out: dict[str, Any] = {
        "name": scenario.name,
        "version": __version__,
        "seed": scenario.seed,
        "latency_backend": "roofline-numba",
        "scenario": scenario.resolved,
        "provenance": {name: provenance_counts(s) for name, s in sorted(systems.items())},
        "requests": int(t.n),
        "requests_completed": int(t.done.sum()),
        "duration_s": end_s,
        "input_tokens": int(t.input_tokens.sum()),
        "output_tokens": int(out_tokens),
        "ttft_s": latency_stats(lat["ttft_s"]),
        "tpot_s": latency_stats(lat["tpot_s"]),
        "itl_s": _hist_stats(factory.itl_hist, itl_total_s),
        "e2e_s": e2e,
        "queue_wait_s": latency_stats(t.prefill_start_s - _queued_s(factory)),
        "output_tokens_per_s": out_tokens / end_s if end_s > 0 else 0.0,
        "requests_per_s": t.n / end_s if end_s > 0 else 0.0,
        "tokens_per_s_per_user": latency_stats(speed),
        "goodput_rps": float(met.sum()) / end_s if end_s > 0 else 0.0,
        "slo_attainment": float(met.mean()) if t.n else 0.0,
        "energy_j": energy,
        "power_w_mean": power_w,
        "joules_per_token": energy / out_tokens if out_tokens else None,
        "tokens_per_joule": out_tokens / energy if energy > 0 else None,
        "tokens_per_s_per_mw": (out_tokens / end_s) / (power_w / 1e6) if power_w > 0 else None,
        "preemptions": int(t.preemptions.sum()),
        "backlog_at_last_arrival": backlog,
        "drain_s": drain_s,
        "overloaded": overloaded,
        "pools": pools,
        "links": _link_summary(factory, end_s),
        "tiers": _tier_summary(scenario, factory, met, end_s),
    }
    if scenario.economics is not None:
        # Scaled from the finished summary, so a saved summary.json reproduces it.
        out["site"] = site_economics(scenario, out)
    return out
