"""Model cards: the architecture figures every cost in the simulator is derived from.

A card keeps only what a serving cost depends on (dimensions, attention kind, expert
layout) plus the authors' published parameter counts, so a test can hold the derived
counts against them and a mistyped dimension shows up as a wrong model size, not as a
plausible but wrong latency.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from simulator.errors import ScenarioError, did_you_mean
from simulator.resources import find_model

__all__ = ["MLASpec", "MoESpec", "ModelCard", "load_model"]

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class MoESpec:
    num_experts: int
    experts_per_token: int
    shared_experts: int
    expert_intermediate_size: int
    dense_layers: int


@dataclass(frozen=True)
class MLASpec:
    q_lora_rank: int
    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int


@dataclass(frozen=True)
class ModelCard:
    """One model's architecture; derived counts ignore norms and biases (well under 0.01 %)."""

    name: str
    hidden_size: int
    num_layers: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool
    max_context_tokens: int
    moe: MoESpec | None
    mla: MLASpec | None
    published_total_params: float
    published_active_params: float
    sources: dict[str, str] = field(hash=False)
    path: Path

    @property
    def attention_params_per_layer(self) -> int:
        h, nh = self.hidden_size, self.num_attention_heads
        if self.mla is None:
            hd = self.head_dim
            return h * nh * hd + 2 * h * self.num_kv_heads * hd + nh * hd * h
        m = self.mla
        q_a = h * m.q_lora_rank
        q_b = m.q_lora_rank * nh * (m.qk_nope_head_dim + m.qk_rope_head_dim)
        kv_a = h * (m.kv_lora_rank + m.qk_rope_head_dim)
        kv_b = m.kv_lora_rank * nh * (m.qk_nope_head_dim + m.v_head_dim)
        out = nh * m.v_head_dim * h
        return q_a + q_b + kv_a + kv_b + out

    @property
    def dense_ffn_params_per_layer(self) -> int:
        return 3 * self.hidden_size * self.intermediate_size

    @property
    def expert_params(self) -> int:
        if self.moe is None:
            return 0
        return 3 * self.hidden_size * self.moe.expert_intermediate_size

    @property
    def router_params_per_layer(self) -> int:
        return 0 if self.moe is None else self.hidden_size * self.moe.num_experts

    @property
    def dense_layers(self) -> int:
        return self.num_layers if self.moe is None else self.moe.dense_layers

    @property
    def moe_layers(self) -> int:
        return self.num_layers - self.dense_layers

    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def lm_head_params(self) -> int:
        return 0 if self.tie_word_embeddings else self.vocab_size * self.hidden_size

    @property
    def _moe_layer_ffn_params(self) -> int:
        if self.moe is None:
            return 0
        experts = self.moe.num_experts + self.moe.shared_experts
        return self.router_params_per_layer + experts * self.expert_params

    @property
    def total_params(self) -> int:
        return (
            self.num_layers * self.attention_params_per_layer
            + self.dense_layers * self.dense_ffn_params_per_layer
            + self.moe_layers * self._moe_layer_ffn_params
            + self.embedding_params
            + self.lm_head_params
        )

    @property
    def active_params(self) -> int:
        """Parameters one token touches; the embedding row is counted whole, as authors do."""
        if self.moe is None:
            return self.total_params
        idle = self.moe.num_experts - self.moe.experts_per_token
        return self.total_params - self.moe_layers * idle * self.expert_params

    @property
    def routed_expert_params(self) -> int:
        if self.moe is None:
            return 0
        return self.moe_layers * self.moe.num_experts * self.expert_params

    @property
    def non_expert_params(self) -> int:
        return self.total_params - self.routed_expert_params

    @property
    def kv_values_per_token_per_layer(self) -> int:
        """MLA caches one latent plus one shared RoPE key per token, whatever the head count."""
        if self.mla is None:
            return 2 * self.num_kv_heads * self.head_dim
        return self.mla.kv_lora_rank + self.mla.qk_rope_head_dim

    @property
    def attn_flops_per_pair_per_layer(self) -> int:
        """FLOPs of one (query token, context token) pair: a score dot product and a value sum.

        MLA is counted in the weight-absorbed form because that is how decode runs: the
        key and value up-projections are folded into the query and output projections so
        each step reads only the cached latent, and the pair cost is then set by the
        latent width (kv_lora + rope for the score, kv_lora for the value), not by the
        per-head widths. Prefill done in the expanded form costs less per pair (for
        DeepSeek-R1 2 * 128 * (192 + 128) = 81,920 against 278,528 here), so this is an
        upper bound there; one form keeps prefill and decode on the same footing.
        """
        nh = self.num_attention_heads
        if self.mla is None:
            return 2 * nh * (self.head_dim + self.head_dim)
        qk_dim = self.mla.kv_lora_rank + self.mla.qk_rope_head_dim
        return 2 * nh * (qk_dim + self.mla.kv_lora_rank)

    def kv_bytes_per_token(self, bytes_per_value: float) -> float:
        return self.kv_values_per_token_per_layer * self.num_layers * bytes_per_value

    def kv_copies(self, tp: int) -> int:
        """Copies of each cached token a ``tp``-way tensor-parallel replica stores and reads.

        Tensor parallelism splits attention by KV head. With more GPUs than KV heads each
        head is kept on tp / heads of them, and MLA's single latent on every one, so each
        GPU stores and reads the whole latent cache: an R1 replica at tp 8 holds 8 copies.
        """
        groups = 1 if self.mla is not None else self.num_kv_heads
        return max(1, -(-tp // groups))

    def weight_bytes(self, bytes_per_param: float,
                     expert_bytes_per_param: float | None = None) -> float:
        """All weights; the routed experts at their own width when one is given."""
        if expert_bytes_per_param is None:
            return self.total_params * bytes_per_param
        return (self.non_expert_params * bytes_per_param
                + self.routed_expert_params * expert_bytes_per_param)


_TOP_INT_KEYS = (
    "hidden_size",
    "num_layers",
    "num_attention_heads",
    "num_kv_heads",
    "head_dim",
    "intermediate_size",
    "vocab_size",
    "max_context_tokens",
)
_TOP_KEYS = (
    "schema_version", "name", *_TOP_INT_KEYS, "tie_word_embeddings",
    "moe", "mla", "published", "sources",
)
_OPTIONAL_TOP_KEYS = ("moe", "mla")
_MOE_KEYS = (
    "num_experts",
    "experts_per_token",
    "shared_experts",
    "expert_intermediate_size",
    "dense_layers",
)
_MOE_MAY_BE_ZERO = ("shared_experts", "dense_layers")
_MLA_KEYS = ("q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim")
_PUBLISHED_KEYS = ("total_params", "active_params", "source")


def load_model(
    name_or_path: str | Path, file: str | Path | None = None, key: str = "model"
) -> ModelCard:
    """Load a card by name (``llama-3.3-70b``) or path.

    ``file`` and ``key`` are where the card was named, so a bad name is reported there while
    a fault inside the card is reported against the card's own file.
    """
    path = find_model(str(name_or_path), file, key)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        problem = " ".join(str(exc).split())
        raise ScenarioError(path, "", "a valid YAML model card", problem) from exc
    return _build(raw, path)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a key written twice, which plain YAML would silently overwrite."""


def _mapping_without_duplicates(
    loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False
) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            line = key_node.start_mark.line + 1
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice (second time on line {line})",
                key_node.start_mark,
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)


def _build(raw: object, path: Path) -> ModelCard:
    top = _mapping(raw, path, "", _TOP_KEYS, _OPTIONAL_TOP_KEYS)
    version = top["schema_version"]
    if type(version) is not int or version != SCHEMA_VERSION:
        raise ScenarioError(path, "schema_version", f"{SCHEMA_VERSION}", version)
    name = top["name"]
    if not isinstance(name, str) or not name.strip():
        raise ScenarioError(path, "name", "a non-empty string", name)
    ints = {k: _count(top[k], path, k) for k in _TOP_INT_KEYS}
    tied = top["tie_word_embeddings"]
    if not isinstance(tied, bool):
        raise ScenarioError(path, "tie_word_embeddings", "true or false", tied)
    moe = _moe(top.get("moe"), path, ints["num_layers"])
    mla = _mla(top.get("mla"), path)
    _check_heads(ints, mla, path)
    sources = _sources(top["sources"], path)
    total, active = _published(top["published"], path, sources)
    return ModelCard(
        name=name,
        **ints,
        tie_word_embeddings=tied,
        moe=moe,
        mla=mla,
        published_total_params=total,
        published_active_params=active,
        sources=sources,
        path=path,
    )


def _mapping(
    raw: object, path: Path, where: str, keys: tuple[str, ...], optional: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Check one mapping's keys: unknown ones are refused with the nearest known name."""
    if not isinstance(raw, dict):
        raise ScenarioError(path, where, "a mapping", raw)
    prefix = f"{where}." if where else ""
    for key in raw:
        if key not in keys:
            raise ScenarioError(
                path, f"{prefix}{key}", f"one of the keys {', '.join(keys)}", key,
                did_you_mean(str(key), keys),
            )
    for key in keys:
        if key not in raw and key not in optional:
            raise ScenarioError(path, f"{prefix}{key}", "this key to be present", "nothing")
    return raw


def _count(value: object, path: Path, key: str, may_be_zero: bool = False) -> int:
    floor = 0 if may_be_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < floor:
        wanted = "a whole number >= 0" if may_be_zero else "a whole number > 0"
        raise ScenarioError(path, key, wanted, value)
    return value


def _moe(raw: object, path: Path, num_layers: int) -> MoESpec | None:
    if raw is None:
        return None
    fields = _mapping(raw, path, "moe", _MOE_KEYS)
    spec = MoESpec(
        **{k: _count(fields[k], path, f"moe.{k}", k in _MOE_MAY_BE_ZERO) for k in _MOE_KEYS}
    )
    if spec.experts_per_token > spec.num_experts:
        raise ScenarioError(
            path, "moe.experts_per_token", f"at most moe.num_experts ({spec.num_experts})",
            spec.experts_per_token,
        )
    if spec.dense_layers >= num_layers:
        raise ScenarioError(
            path, "moe.dense_layers", f"fewer than num_layers ({num_layers}), leaving a MoE layer",
            spec.dense_layers, "A model with no MoE layer is written with moe: null.",
        )
    return spec


def _mla(raw: object, path: Path) -> MLASpec | None:
    if raw is None:
        return None
    fields = _mapping(raw, path, "mla", _MLA_KEYS)
    return MLASpec(**{k: _count(fields[k], path, f"mla.{k}") for k in _MLA_KEYS})


def _check_heads(ints: dict[str, int], mla: MLASpec | None, path: Path) -> None:
    """Catch head figures that contradict each other before they skew every attention cost."""
    heads, kv_heads = ints["num_attention_heads"], ints["num_kv_heads"]
    if heads % kv_heads:
        raise ScenarioError(
            path, "num_kv_heads", f"a divisor of num_attention_heads ({heads})", kv_heads
        )
    if mla is not None:
        qk_dim = mla.qk_nope_head_dim + mla.qk_rope_head_dim
        if ints["head_dim"] != qk_dim:
            raise ScenarioError(
                path, "head_dim",
                f"the query/key width per head, mla.qk_nope_head_dim + mla.qk_rope_head_dim "
                f"= {qk_dim}",
                ints["head_dim"],
            )


def _sources(raw: object, path: Path) -> dict[str, str]:
    if not isinstance(raw, dict) or not raw:
        raise ScenarioError(path, "sources", "a mapping of source id to citation", raw)
    for sid, text in raw.items():
        if not isinstance(sid, str) or not isinstance(text, str) or not text.strip():
            raise ScenarioError(path, f"sources.{sid}", "a non-empty citation string", text)
    return dict(raw)


def _published(raw: object, path: Path, sources: dict[str, str]) -> tuple[float, float]:
    fields = _mapping(raw, path, "published", _PUBLISHED_KEYS)
    counts = []
    for key in ("total_params", "active_params"):
        value = fields[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            hint = (
                "YAML reads a float only with a dot and a signed exponent, e.g. 70.0e+9."
                if isinstance(value, str) else ""
            )
            raise ScenarioError(path, f"published.{key}", "a parameter count > 0", value, hint)
        counts.append(float(value))
    total, active = counts
    if active > total:
        raise ScenarioError(
            path, "published.active_params", f"at most published.total_params ({total:g})", active
        )
    source = fields["source"]
    if source not in sources:
        raise ScenarioError(
            path, "published.source", f"one of the ids under sources: {', '.join(sources)}",
            source, did_you_mean(str(source), sources),
        )
    return total, active
