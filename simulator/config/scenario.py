"""The validated, frozen form of a scenario file.

The loader (``simulator.config.loader``) is the only constructor: it checks every key and
resolves profiles and model cards, so the engine can trust these objects without checking
them again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.hardware import SystemProfile
from simulator.models import ModelCard

__all__ = [
    "ArrivalSpec",
    "AttentionSplitSpec",
    "EconomicsSpec",
    "KVTierSpec",
    "LengthSpec",
    "LinkSpec",
    "PolicySpec",
    "PoolSpec",
    "Precision",
    "Scenario",
    "SpeculativeSpec",
    "TierSpec",
    "WorkloadSpec",
]

ROLES = ("prefill", "decode", "both")
DTYPE_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "fp4": 0.5, "int4": 0.5}
# KV caches are also stored below 4 bits (KIVI, KVQuant-style 3-bit); values only, the
# per-group scales (a few per cent more) are not counted.
KV_DTYPE_BYTES = {**DTYPE_BYTES, "int3": 0.375}


@dataclass(frozen=True)
class Precision:
    """Storage and math formats. ``experts`` is the routed experts' format when it differs
    from the rest of the weights (NVFP4 and MXFP4 checkpoints of MoE models quantise the
    experts only); None means the same as ``weights``."""

    weights: str = "fp8"
    kv_cache: str = "fp8"
    experts: str | None = None

    @property
    def weight_bytes_per_param(self) -> float:
        return DTYPE_BYTES[self.weights]

    @property
    def expert_dtype(self) -> str:
        return self.weights if self.experts is None else self.experts

    @property
    def expert_bytes_per_param(self) -> float:
        return DTYPE_BYTES[self.expert_dtype]

    @property
    def kv_bytes_per_value(self) -> float:
        return KV_DTYPE_BYTES[self.kv_cache]


@dataclass(frozen=True)
class ArrivalSpec:
    """How requests arrive. ``process`` is poisson | gamma | fixed | trace | closed_loop."""

    process: str
    rate_per_s: float | None = None        # poisson, gamma, fixed
    cv: float | None = None                # gamma: coefficient of variation of the gaps
    concurrency: int | None = None         # closed_loop: users, each with one request in flight
    think_time_s: float = 0.0              # closed_loop: mean pause before the next ask
    path: Path | None = None               # trace: file whose timestamps are replayed
    speedup: float = 1.0                   # trace: divide replayed gaps by this


@dataclass(frozen=True)
class LengthSpec:
    """Prompt and output lengths. ``source`` is trace | fixed | uniform."""

    source: str
    path: Path | None = None                       # trace
    input_tokens: tuple[int, int] | None = None    # fixed: (n, n); uniform: (low, high) inclusive
    output_tokens: tuple[int, int] | None = None


@dataclass(frozen=True)
class TierSpec:
    """An SLO tier: a price paid only for requests that meet both latency bounds."""

    name: str
    price_usd_per_mtok: float
    min_tokens_per_s_per_user: float   # floor on 1 / TPOT
    max_ttft_s: float                  # ceiling on time to first token


@dataclass(frozen=True)
class WorkloadSpec:
    requests: int | None
    duration_s: float | None
    arrivals: ArrivalSpec
    lengths: LengthSpec
    # (tier name, share): every tier of the table, in its order
    tier_shares: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class PolicySpec:
    """A policy named in YAML: a registered short name or ``package.module:Class``."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SpeculativeSpec:
    """Speculative decoding (MTP or EAGLE heads): k drafted tokens checked in one pass."""

    draft_tokens: int
    acceptance: float              # probability each drafted token is accepted, given the last was
    draft_cost_fraction: float     # one draft pass / one decode step of the model

    @property
    def tokens_per_step(self) -> float:
        """Expected tokens a sequence gains per step: 1 + a + a² + … + a^k."""
        return sum(self.acceptance ** i for i in range(self.draft_tokens + 1))


@dataclass(frozen=True)
class AttentionSplitSpec:
    """Attention–FFN split: attention and the KV cache on GPUs, the FFN/experts elsewhere."""

    system: SystemProfile
    chips: int                     # GPUs per replica, data-parallel over the batch
    exchange_bandwidth_gbps: float # activations GPU ↔ FFN chips, per replica, per direction
    exchange_latency_us: float     # one way, per layer crossing


@dataclass(frozen=True)
class KVTierSpec:
    """A slower store holding KV cache of earlier prompts (host DRAM, a networked KV pool).

    ``hit_rate`` is the share of a prompt's tokens found here among those no faster tier
    had; loading them costs ``latency + bytes / bandwidth`` instead of computing them.
    """

    name: str
    bandwidth_gbps: float          # gigabits per second into one replica
    latency_us: float
    hit_rate: float                # in [0, 1)


@dataclass(frozen=True)
class PoolSpec:
    name: str
    role: str                      # prefill | decode | both
    system: SystemProfile
    replicas: int
    tp: int                        # tensor-parallel degree on GPUs; 1 on LPUs
    chips_per_replica: int         # resolved: tp for GPUs, SRAM-driven for LPUs
    scheduler: PolicySpec
    kv_block_tokens: int = 16
    kv_capacity_tokens: int = 0    # resolved at load: KV room of one replica, in tokens
    ep: int = 1                    # expert-parallel degree (GPUs); chips_per_replica = ep then
    ep_imbalance: float = 1.0      # busiest expert rank's load over the mean
    speculative: SpeculativeSpec | None = None
    attention_split: AttentionSplitSpec | None = None
    kv_tiers: tuple[KVTierSpec, ...] = ()   # fastest first; prefill and both pools only
    serves: tuple[str, ...] = ()   # decode pools: the tiers routed here (empty: the rest)

    @property
    def chips(self) -> int:
        return self.replicas * self.chips_per_replica

    @property
    def systems(self) -> int:
        """Whole systems bought and powered for this pool (idle chips included)."""
        per = self.system.chips_per_system
        return -(-self.chips // per)

    @property
    def attention_chips(self) -> int:
        """GPUs an attention–FFN split adds over all replicas (0 without a split)."""
        split = self.attention_split
        return 0 if split is None else self.replicas * split.chips

    @property
    def attention_systems(self) -> int:
        """Whole GPU systems those attention GPUs occupy."""
        split = self.attention_split
        return 0 if split is None else -(-self.attention_chips // split.system.chips_per_system)


@dataclass(frozen=True)
class LinkSpec:
    """The network that carries KV cache from one pool to another."""

    from_pool: str
    to_pool: str
    bandwidth_gbps: float          # gigabits per second, per receiving replica
    latency_us: float
    transfer: str = "bulk"         # bulk | layerwise


@dataclass(frozen=True)
class EconomicsSpec:
    """What a site costs and how many pods it holds (equations in docs/economics.md).

    ``sizing`` says which power a pod is provisioned at: "nameplate" (every system it buys
    at full power, idle chips included, as sites are built for peak) or "measured" (the
    run's mean power). ``capex_usd`` maps a profile name to a price per system that
    replaces the profile's ``system.price_usd``.
    """

    site_power_mw: float
    pue: float                      # facility power / IT power, ≥ 1
    electricity_usd_per_kwh: float
    amortisation_years: float       # straight line, no interest
    sizing: str = "nameplate"       # nameplate | measured
    capex_usd: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    name: str
    seed: int
    model: ModelCard
    precision: Precision
    workload: WorkloadSpec
    pools: tuple[PoolSpec, ...]
    links: tuple[LinkSpec, ...]
    router: PolicySpec
    tiers: tuple[TierSpec, ...]
    economics: EconomicsSpec | None = None
    source: Path | None = None
    resolved: dict[str, Any] = field(default_factory=dict)   # the config as plain data, for results

    def pool(self, name: str) -> PoolSpec:
        for p in self.pools:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def disaggregated(self) -> bool:
        return any(p.role != "both" for p in self.pools)

    def decode_pool_of_tier(self) -> tuple[str, ...]:
        """For each tier, the decode pool its requests decode on (the loader has checked
        that exactly one pool takes each tier); empty when the scenario is aggregated."""
        decodes = [p for p in self.pools if p.role == "decode"]
        if not decodes:
            return ()
        rest = next((p.name for p in decodes if not p.serves), decodes[0].name)
        return tuple(next((p.name for p in decodes if tier.name in p.serves), rest)
                     for tier in self.tiers)
