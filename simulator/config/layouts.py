"""How a replica is laid out beyond tensor parallelism, read and checked at load time.

Expert parallelism, speculative decoding and the attention–FFN split each change what a
replica holds and how long its steps take; a layout that cannot work (experts split over
more chips than there are experts, a draft on a pool that never decodes, attention GPUs
with no room for KV) is refused here with the numbers that show why.
"""

from __future__ import annotations

from typing import Any

from simulator.config.checks import ATTENTION_SPLIT_KEYS, SPECULATIVE_KEYS, Section
from simulator.config.scenario import (
    AttentionSplitSpec,
    PolicySpec,
    Precision,
    SpeculativeSpec,
)
from simulator.errors import ScenarioError
from simulator.hardware import SystemProfile, load_profile
from simulator.models import ModelCard

__all__ = [
    "read_attention_split",
    "read_expert_parallel",
    "read_speculative",
    "split_resolved",
]

def read_expert_parallel(par: Section, model: ModelCard, system: SystemProfile,
                         tp: int) -> tuple[int, float]:
    """(ep, imbalance) of a GPU pool; ep = 1 when experts are split by tensor parallelism."""
    ep = par.integer("ep", default=1, meaning="GPUs the routed experts are spread over")
    imbalance = par.number("ep_imbalance", default=1.0)
    if ep == 1:
        if par.has("ep_imbalance"):
            raise par.fail("ep_imbalance", "no ep_imbalance without ep > 1", imbalance)
        return 1, 1.0
    if model.moe is None:
        raise par.fail("ep", f"1: {model.name} is dense and has no experts to spread", ep)
    if ep % tp:
        raise par.fail("ep", f"a multiple of tp = {tp} (each tensor-parallel group of the "
                       "data-parallel attention holds its share of the experts)", ep)
    if ep > model.moe.num_experts:
        raise par.fail("ep", f"at most {model.moe.num_experts}, the routed experts of "
                       f"{model.name}", ep)
    if imbalance < 1.0:
        raise par.fail("ep_imbalance", "a number ≥ 1 (the busiest rank's load over the mean)",
                       imbalance)
    if system.kind != "gpu":
        raise par.fail("ep", "expert parallelism on a GPU pool", system.name)
    return ep, imbalance


def read_speculative(sec: Section, model: ModelCard, role: str,
                     scheduler: PolicySpec) -> tuple[SpeculativeSpec | None, dict[str, Any]]:
    if not sec.has("speculative"):
        return None, {}
    spec = sec.section("speculative", SPECULATIVE_KEYS)
    if role != "decode" or scheduler.name != "continuous":
        raise sec.fail("speculative", "speculative decoding on a decode pool with the built-in "
                       "continuous scheduler", f"role {role!r}, scheduler {scheduler.name!r}",
                       "Drafted tokens are verified inside the compiled decode replica; "
                       "aggregated pools and custom schedulers do not model them yet.")
    k = spec.integer("draft_tokens", meaning="tokens drafted per step")
    acceptance = spec.number("acceptance", positive=False)
    if not 0.0 <= acceptance < 1.0:
        raise spec.fail("acceptance", "a probability in [0, 1)", acceptance)
    # an MTP or EAGLE head is about one layer of the model
    fraction = spec.number("draft_cost_fraction", default=1.0 / model.num_layers,
                           positive=False)
    out = SpeculativeSpec(draft_tokens=k, acceptance=acceptance, draft_cost_fraction=fraction)
    resolved = {"draft_tokens": k, "acceptance": acceptance, "draft_cost_fraction": fraction,
                "tokens_per_step": out.tokens_per_step}
    return out, resolved


def read_attention_split(sec: Section, model: ModelCard, precision: Precision,
                         system: SystemProfile, role: str) -> AttentionSplitSpec | None:
    """The GPUs that hold attention and KV when the pool's own chips run the FFN/experts.

    The exchange link defaults to what both sides can drive: the GPUs' and the FFN chips'
    scale-out NICs (the FFN side is filled in by ``split_resolved`` once its chip count is
    known), with the slower side's latency.
    """
    if not sec.has("attention_split"):
        return None
    split = sec.section("attention_split", ATTENTION_SPLIT_KEYS)
    if role != "decode" or system.kind != "lpu":
        raise sec.fail("attention_split", "an attention–FFN split on a decode pool of LPUs",
                       f"role {role!r} on {system.name}")
    gpu_ref = split.text("system")
    gpu = load_profile(gpu_ref, sec.file, split.at("system"))
    if gpu.kind != "gpu":
        raise split.fail("system", "a GPU system for attention and its KV cache", gpu_ref)
    try:
        gpu.flops_for(precision.weights)
    except ScenarioError:
        raise split.fail("system", f"a GPU with a {precision.weights} datapath",
                         gpu_ref) from None
    chips = split.integer("chips", meaning="GPUs holding attention and KV per replica")
    attn_bytes = model.num_layers * model.attention_params_per_layer * (
        precision.weight_bytes_per_param)
    usable = gpu.memory_bytes * gpu.memory_usable_fraction
    if attn_bytes >= usable:
        raise split.fail("system", "GPUs that hold all attention weights of the model",
                         gpu_ref, f"{model.name}'s attention weights are {attn_bytes / 1e9:.1f} "
                         f"GB, one {gpu.chip_name} holds {usable / 1e9:.1f} GB usable.")
    gbps = split.number("exchange_gbps", default=chips * gpu.scaleout_bandwidth_bytes_per_s
                        * 8.0 / 1e9)
    latency_us = split.number("exchange_latency_us", default=gpu.scaleout_latency_s * 1e6,
                              positive=False)
    return AttentionSplitSpec(system=gpu, chips=chips, exchange_bandwidth_gbps=gbps,
                              exchange_latency_us=latency_us)


def split_resolved(sec: Section, split: AttentionSplitSpec, ffn_chips: int,
                   ffn_system: SystemProfile) -> tuple[AttentionSplitSpec, dict[str, Any]]:
    """Cap a defaulted exchange at what the FFN chips' NICs carry and record the result."""
    given = sec.section("attention_split", ATTENTION_SPLIT_KEYS)
    gbps = split.exchange_bandwidth_gbps
    if not given.has("exchange_gbps"):
        gbps = min(gbps, ffn_chips * ffn_system.scaleout_bandwidth_bytes_per_s * 8.0 / 1e9)
    latency_us = split.exchange_latency_us
    if not given.has("exchange_latency_us"):
        latency_us = max(latency_us, ffn_system.scaleout_latency_s * 1e6)
    out = AttentionSplitSpec(system=split.system, chips=split.chips,
                             exchange_bandwidth_gbps=gbps, exchange_latency_us=latency_us)
    return out, {"system": given.text("system"), "chips": split.chips, "exchange_gbps": gbps,
                 "exchange_latency_us": latency_us}
