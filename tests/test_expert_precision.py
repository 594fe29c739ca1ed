"""Routed experts in their own format: an FP4-expert checkpoint on FP8 dense layers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import aggregated

from simulator import load_scenario
from simulator.config.scenario import Precision
from simulator.costs import pool_cost_vector, weight_bytes, weights_per_chip_bytes
from simulator.errors import ScenarioError
from simulator.kernels import (
    P_DENSE_WEIGHT_BYTES,
    P_EXPERT_BYTES,
    P_EXPERT_FLOPS_PER_TOKEN,
    P_EXPERT_PEAK_FLOPS,
    P_OVERLAP,
    P_PEAK_FLOPS,
    step_cost,
)
from simulator.models import load_model

R1 = load_model("deepseek-r1")
MIXED = Precision(weights="fp8", experts="fp4", kv_cache="fp8")


def _r1(tmp_path: Path, precision: dict[str, str], system: str = "b200") -> Path:
    data: dict[str, Any] = aggregated(system=system, replicas=1,
                                      parallelism={"tp": 1, "ep": 8})
    data["model"] = "deepseek-r1"
    data["precision"] = precision
    data["workload"]["lengths"] = {"source": "fixed", "input_tokens": 1000,
                                   "output_tokens": 100}
    path = tmp_path / "r1.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_weights_count_experts_at_their_own_width():
    # 654.7e9 routed-expert params at 0.5 B and the rest at 1 B
    routed = R1.routed_expert_params
    assert routed == 58 * 256 * 3 * 7168 * 2048
    want = (R1.total_params - routed) * 1.0 + routed * 0.5
    assert weight_bytes(R1, MIXED) == want
    assert weight_bytes(R1, Precision(weights="fp8")) == R1.total_params * 1.0
    # per GPU with ep 8, dense copied: non-expert / 1 + experts / 8
    assert weights_per_chip_bytes(R1, MIXED, 8, 1, 8) == pytest.approx(
        R1.non_expert_params + routed / 8 * 0.5, rel=1e-12)


def test_scenario_reads_the_experts_format_and_the_cost_vector_uses_it(tmp_path: Path):
    scenario = load_scenario(_r1(tmp_path, {"weights": "fp8", "experts": "fp4",
                                            "kv_cache": "fp8"}))
    assert scenario.precision == MIXED
    assert scenario.resolved["precision"] == {"weights": "fp8", "experts": "fp4",
                                              "kv_cache": "fp8"}
    p = pool_cost_vector(scenario.model, scenario.pools[0], scenario.precision)
    assert p[P_EXPERT_BYTES] == R1.expert_params * 0.5
    assert p[P_PEAK_FLOPS] == 4.5e15 and p[P_EXPERT_PEAK_FLOPS] == 9e15
    dense = R1.non_expert_params - R1.embedding_params - R1.lm_head_params
    assert p[P_DENSE_WEIGHT_BYTES] == (dense + R1.vocab_size * R1.hidden_size) * 1.0


def test_fp4_experts_halve_the_expert_math_of_a_compute_bound_step(tmp_path: Path):
    scenario = load_scenario(_r1(tmp_path, {"weights": "fp8", "experts": "fp4"}))
    mixed = pool_cost_vector(scenario.model, scenario.pools[0], scenario.precision)
    all_fp8 = mixed.copy()
    all_fp8[P_EXPERT_PEAK_FLOPS] = all_fp8[P_PEAK_FLOPS]
    all_fp8[P_EXPERT_BYTES] *= 2.0
    # 16,384 prompt tokens touch every expert. FP4 experts save half the expert math,
    # 16,384 × 2 × 58 × 8 × 44,040,192 / 2 FLOPs at 8 × 4.5e15 × η_compute, and half the
    # expert bytes, 58 × 256 × 44,040,192 × 0.5 B at 8 × 8e12 × η_memory; with no
    # compute–memory overlap (the serial bound) both savings show in full.
    mixed[P_OVERLAP] = all_fp8[P_OVERLAP] = 0.0
    system = scenario.pools[0].system
    args = (1.0, 16384.0, 16384 * 16385 / 2, 0.0)
    saved_s = step_cost(all_fp8, *args)[0] - step_cost(mixed, *args)[0]
    math_s = 16384 * mixed[P_EXPERT_FLOPS_PER_TOKEN] / 2 / (8 * 4.5e15
                                                            * system.compute_efficiency)
    bytes_s = 58 * 256 * R1.expert_params * 0.5 / (8 * 8e12 * system.memory_efficiency)
    assert saved_s == pytest.approx(math_s + bytes_s, rel=1e-6)


def test_experts_format_on_a_dense_model_is_refused(tmp_path: Path):
    data = aggregated()
    data["precision"] = {"weights": "fp8", "experts": "fp4"}
    path = tmp_path / "dense.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    message = str(info.value)
    assert message.startswith(str(path)) and "precision.experts" in message
    assert "llama-3.3-70b" in message and "'fp4'" in message


def test_experts_format_the_chip_cannot_compute_is_refused(tmp_path: Path):
    path = _r1(tmp_path, {"weights": "fp8", "experts": "fp4"}, system="h200-sxm")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    message = str(info.value)
    assert "precision.experts" in message and "no fp4 datapath" in message
