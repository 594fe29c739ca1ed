"""Pools and links, sized and checked at load time.

A scenario that cannot run — weights that do not fit a replica, a request longer than a
replica's KV room, a prefill pool with no way to ship its KV cache — is refused here with
the numbers that show why. Finding out at load time costs nothing; finding out in the
middle of a sweep costs the sweep.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from simulator.config.checks import (
    KV_TIER_KEYS,
    PARALLELISM_KEYS,
    POOL_KEYS,
    Section,
    join_key,
    read_policy,
)
from simulator.config.layouts import (
    read_attention_split,
    read_expert_parallel,
    read_speculative,
    split_resolved,
)
from simulator.config.scenario import ROLES, KVTierSpec, PoolSpec, Precision
from simulator.costs import (
    afd_kv_capacity_tokens,
    ffn_chips_for,
    ffn_weight_bytes,
    kv_capacity_tokens,
    lpu_chips_for,
    weight_bytes,
    weights_per_chip_bytes,
)
from simulator.errors import ScenarioError, did_you_mean
from simulator.hardware import SystemProfile, load_profile
from simulator.models import ModelCard
from simulator.workload import LengthStats

__all__ = ["DEFAULT_MAX_BATCH", "build_pools", "check_context"]

DEFAULT_MAX_BATCH = 64   # requests per decode batch assumed when sizing an LPU replica


def _gb(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:.1f} GB"


def check_context(model: ModelCard, stats: LengthStats, file: Path) -> None:
    """The longest prompt plus the longest output must fit the model's context window.

    The two maxima may come from different requests of a trace; adding them is the safe
    side, since nothing in a trace forbids one request from having both.
    """
    longest = stats.max_input_tokens + stats.max_output_tokens
    if longest > model.max_context_tokens:
        raise ScenarioError(
            file, "workload.lengths",
            f"requests that fit the {model.max_context_tokens:,}-token context of {model.name}",
            f"a longest request of {stats.max_input_tokens:,} + {stats.max_output_tokens:,} "
            f"= {longest:,} tokens", "Shorten the lengths or choose a longer-context model.")


def build_pools(top: Section, model: ModelCard, precision: Precision,
                stats: LengthStats) -> tuple[tuple[PoolSpec, ...], list[dict[str, Any]]]:
    items = top.get("pools")
    if not isinstance(items, list) or not items:
        raise top.fail("pools", "a non-empty list of pools", items)
    pools: list[PoolSpec] = []
    resolved: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        sec = Section(item, top.file, join_key("pools", i), POOL_KEYS)
        name = sec.text("name")
        if any(p.name == name for p in pools):
            raise sec.fail("name", "a pool name not used by another pool", name)
        pool, out = _pool(sec, model, precision, stats)
        pools.append(pool)
        resolved.append(out)
    return tuple(pools), resolved


def _pool(sec: Section, model: ModelCard, precision: Precision,
          stats: LengthStats) -> tuple[PoolSpec, dict[str, Any]]:
    name = sec.text("name")
    role = sec.text("role", choices=ROLES)
    system_ref = sec.text("system")
    system = load_profile(system_ref, sec.file, sec.at("system"))
    if type(sec.get("replicas")) is int and sec.get("replicas") < 1:
        raise sec.fail("replicas", "an integer ≥ 1 (model instances in this pool)",
                       sec.get("replicas"), f"A pool with no replicas cannot serve requests; "
                       f"give pool {name!r} at least one or remove it.")
    replicas = sec.integer("replicas", meaning="model instances in this pool")
    kv_block_tokens = sec.integer("kv_block_tokens", default=16)
    scheduler, scheduler_out = read_policy(sec, "scheduler", "continuous", "scheduler")
    kv_tiers = _kv_tiers(sec, role)
    _check_dtype(sec, name, system, precision)
    speculative, speculative_out = read_speculative(sec, model, role, scheduler)
    split = read_attention_split(sec, model, precision, system, role)
    ep, imbalance = 1, 1.0
    if system.kind == "lpu":
        tp, knob = 1, "chips_per_replica"
        chips = _lpu_chips(sec, model, system, precision, stats, split is not None)
    else:
        knob = "parallelism.tp"
        tp, ep, imbalance = _gpu_tp(sec, model, system, precision)
        chips = max(tp, ep)
    split_out: dict[str, Any] = {}
    if split is not None:
        knob = "attention_split.chips"
        split, split_out = split_resolved(sec, split, chips, system)
        capacity = afd_kv_capacity_tokens(model, precision, split)
    else:
        capacity = int(kv_capacity_tokens(model, system, precision, chips, tp, ep))
    need = stats.max_input_tokens + (stats.max_output_tokens if role != "prefill" else 0)
    if capacity < need:
        what = ("the longest prompt" if role == "prefill" else
                f"the longest request ({stats.max_input_tokens:,} in + "
                f"{stats.max_output_tokens:,} out)")
        raise ScenarioError(
            sec.file, sec.at(knob), "a replica whose KV cache holds the longest request", chips,
            f"Pool {name!r}: one replica of {chips} × {system.chip_name} has room for "
            f"{capacity:,} tokens of KV cache after the weights, but {what} needs {need:,} "
            f"tokens; give each replica more chips.")
    out: dict[str, Any] = {"name": name, "role": role, "system": system_ref,
                           "replicas": replicas}
    if system.kind != "lpu":
        out["parallelism"] = {"tp": tp} if ep == 1 else {"tp": tp, "ep": ep,
                                                          "ep_imbalance": imbalance}
    out.update(chips_per_replica=chips, kv_block_tokens=kv_block_tokens,
               scheduler=scheduler_out, kv_capacity_tokens=capacity)
    if kv_tiers:
        out["kv_tiers"] = [asdict(tier) for tier in kv_tiers]
    if speculative_out:
        out["speculative"] = speculative_out
    if split_out:
        out["attention_split"] = split_out
    serves = _serves(sec, role)
    if serves:
        out["serves"] = list(serves)
    pool = PoolSpec(name=name, role=role, system=system, replicas=replicas, tp=tp,
                    chips_per_replica=chips, scheduler=scheduler,
                    kv_block_tokens=kv_block_tokens, kv_capacity_tokens=capacity,
                    kv_tiers=kv_tiers, ep=ep, ep_imbalance=imbalance,
                    speculative=speculative, attention_split=split, serves=serves)
    return pool, out


def _serves(sec: Section, role: str) -> tuple[str, ...]:
    """The tiers a decode pool takes; their names are checked against the tier table once
    every pool is read (:func:`check_roles`)."""
    if not sec.has("serves"):
        return ()
    items = sec.get("serves")
    if not isinstance(items, list) or not items or not all(isinstance(t, str) for t in items):
        raise sec.fail("serves", "a non-empty list of tier names", items)
    if role != "decode":
        raise sec.fail("serves", "serves only on a decode pool", items,
                       "Requests are routed by tier when they leave prefill for decode.")
    if len(set(items)) != len(items):
        raise sec.fail("serves", "each tier named once", items)
    return tuple(items)


def _kv_tiers(sec: Section, role: str) -> tuple[KVTierSpec, ...]:
    """KV offload tiers, fastest first. A loaded prefix saves prefill work, so tiers on a
    pool that never prefills would do nothing: they are refused rather than ignored."""
    items = sec.get("kv_tiers", [])
    if not isinstance(items, list):
        raise sec.fail("kv_tiers", "a list of tiers, fastest first, each with name, "
                       "bandwidth_gbps, latency_us and hit_rate", items)
    if items and role == "decode":
        raise sec.fail("kv_tiers", "no kv_tiers on a decode pool", items,
                       "A tier replaces prefill compute with a load; give the tiers to the "
                       "prefill pool.")
    tiers: list[KVTierSpec] = []
    for i, item in enumerate(items):
        tier = Section(item, sec.file, join_key(sec.at("kv_tiers"), i), KV_TIER_KEYS)
        name = tier.text("name")
        if any(t.name == name for t in tiers):
            raise tier.fail("name", "a tier name not used by another tier of this pool", name)
        meaning = "share of the prompt tokens no faster tier holds that this one holds"
        hit_rate = tier.number("hit_rate", positive=False, meaning=meaning)
        if hit_rate >= 1.0:
            raise tier.fail("hit_rate", f"a number ≥ 0 and < 1 ({meaning})", hit_rate,
                            "The prompt's last token is always computed, to produce logits.")
        tiers.append(KVTierSpec(
            name=name,
            bandwidth_gbps=tier.number("bandwidth_gbps", meaning="gigabits per second into "
                                       "one replica"),
            latency_us=tier.number("latency_us", positive=False, meaning="microseconds"),
            hit_rate=hit_rate))
    return tuple(tiers)


def _check_dtype(sec: Section, name: str, system: SystemProfile, precision: Precision) -> None:
    formats = [("weights", precision.weights)]
    if precision.experts is not None:
        formats.append(("experts", precision.experts))
    for key, dtype in formats:
        try:
            system.flops_for(dtype)
        except ScenarioError:
            have = ", ".join(sorted(system.dense_flops_per_s))
            raise ScenarioError(
                sec.file, f"precision.{key}",
                f"a dtype that {system.chip_name} computes in ({have}), as pool {name!r} "
                f"runs on {system.name}", dtype,
                f"{system.chip_name} has no {dtype} datapath; choose one of {have} "
                f"or another system for pool {name!r}.") from None


def _usable_bytes(system: SystemProfile) -> float:
    return system.memory_bytes * system.memory_usable_fraction


def _memory_text(system: SystemProfile) -> str:
    return (f"{_gb(_usable_bytes(system))} usable ({system.memory_bytes / 1e9:g} GB × "
            f"{system.memory_usable_fraction:g})")


def _gpu_tp(sec: Section, model: ModelCard, system: SystemProfile,
            precision: Precision) -> tuple[int, int, float]:
    """(tp, ep, ep_imbalance); a replica spans max(tp, ep) GPUs."""
    if sec.has("chips_per_replica"):
        raise sec.fail("chips_per_replica", "no chips_per_replica on a GPU pool",
                       sec.get("chips_per_replica"), f"A GPU replica spans parallelism.tp "
                       f"chips of {system.name}; write parallelism: {{tp: N}} instead.")
    par = sec.section("parallelism", PARALLELISM_KEYS)
    tp = par.integer("tp", default=1, meaning="GPUs per replica")
    domain = system.scaleup_domain_chips
    if tp > domain:
        raise par.fail("tp", f"at most {domain}, the scale-up domain of {system.name}", tp,
                       "Tensor parallelism runs over the scale-up fabric and does not span "
                       "systems.")
    ep, imbalance = read_expert_parallel(par, model, system, tp)
    usable = _usable_bytes(system)
    if ep > 1:
        per_chip = weights_per_chip_bytes(model, precision, ep, tp, ep)
        if per_chip > usable:
            raise par.fail("ep", "an expert-parallel degree whose share of the weights fits "
                           "one GPU", ep, f"{_gb(per_chip)} per chip (the non-expert weights "
                           f"/ tp={tp} plus the experts / ep={ep}) against "
                           f"{_memory_text(system)}; raise ep or tp.")
        return tp, ep, imbalance
    per_chip = weights_per_chip_bytes(model, precision, tp)
    if per_chip > usable:
        # suggest a degree that splits the attention heads evenly, as engines require
        fits = [n for n in range(tp + 1, domain + 1)
                if weights_per_chip_bytes(model, precision, n) <= usable
                and model.num_attention_heads % n == 0]
        advice = (f"use tp = {fits[0]} or more" if fits else
                  f"even tp={domain}, the whole scale-up domain, is not enough: use a "
                  "system with more memory per chip or a smaller weight dtype")
        raise par.fail(
            "tp", "a tensor-parallel degree whose weight shard fits one GPU's usable memory",
            tp, f"{model.name} at {precision.weights} needs "
            f"{_gb(weight_bytes(model, precision))} of weights, "
            f"{_gb(per_chip)} per chip at tp={tp}, but one {system.chip_name} holds "
            f"{_memory_text(system)}; {advice}.")
    return tp, 1, 1.0


def _lpu_chips(sec: Section, model: ModelCard, system: SystemProfile, precision: Precision,
               stats: LengthStats, ffn_only: bool) -> int:
    """LPUs per replica; under the attention–FFN split they hold only the FFN/experts."""
    if sec.has("parallelism"):
        raise sec.fail("parallelism", "no parallelism on an LPU pool", sec.get("parallelism"),
                       "An LPU replica is as many chips as its weights and KV cache need in "
                       "SRAM; write chips_per_replica: auto (or a number) instead.")
    value = sec.get("chips_per_replica", "auto")
    if value == "auto" and ffn_only:
        return ffn_chips_for(model, system, precision)
    if value == "auto":
        # Size for a full batch of average requests: reserve KV room for max_batch (the
        # scheduler's option, DEFAULT_MAX_BATCH if unset) × (mean input + mean output)
        # tokens, and never less than the one longest request (input + output), so that
        # `auto` always passes the KV check below. lpu_chips_for then adds SRAM for the
        # weights and returns the smallest chip count that holds both.
        options = Section(sec.get("scheduler", {}), sec.file, sec.at("scheduler"), None)
        max_batch = options.integer("max_batch", default=DEFAULT_MAX_BATCH)
        batch_tokens = max_batch * (stats.mean_input_tokens + stats.mean_output_tokens)
        reserve_tokens = max(math.ceil(batch_tokens),
                             stats.max_input_tokens + stats.max_output_tokens)
        return int(lpu_chips_for(model, system, precision, reserve_tokens))
    if isinstance(value, str):
        raise sec.fail("chips_per_replica", "auto or an integer ≥ 1", value,
                       did_you_mean(value, ["auto"]))
    chips = sec.integer("chips_per_replica", meaning="LPUs per replica, or auto")
    usable = _usable_bytes(system)
    total = (ffn_weight_bytes(model, precision) if ffn_only
             else weight_bytes(model, precision))
    if total / chips > usable:
        least = math.ceil(total / usable)
        raise sec.fail(
            "chips_per_replica", "enough chips for the weights to fit in their memory", chips,
            f"{model.name} at {precision.weights} needs {_gb(total)} of weights, but "
            f"{chips} × {system.chip_name} hold {_gb(chips * usable)} (each "
            f"{_memory_text(system)}); use at least {least} chips, or auto.")
    return chips
