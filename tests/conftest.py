"""Shared helpers: write a scenario dict to YAML and load it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from simulator import load_scenario
from simulator.config.scenario import Scenario

AZURE_CONV = "workloads/traces/azure-llm-2023/AzureLLMInferenceTrace_conv.csv"

BASE: dict[str, Any] = {
    "schema_version": 1,
    "name": "test",
    "seed": 1,
    "model": "llama-3.3-70b",
    "precision": {"weights": "fp8", "kv_cache": "fp8"},
    "workload": {
        "requests": 200,
        "arrivals": {"process": "poisson", "rate_per_s": 20},
        "lengths": {"source": "uniform", "input_tokens": [50, 1500], "output_tokens": [2, 300]},
    },
    "tiers": "gtc-2026",
}


def aggregated(**pool: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data["pools"] = [{"name": "serve", "role": "both", "system": "h100-sxm", "replicas": 2,
                      "parallelism": {"tp": 2},
                      "scheduler": {"policy": "chunked_prefill", "max_batch": 32,
                                    "max_batch_tokens": 4096}, **pool}]
    return data


def disaggregated(decode: dict[str, Any] | None = None, **prefill: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data["pools"] = [
        {"name": "prefill", "role": "prefill", "system": "h100-sxm", "replicas": 2,
         "parallelism": {"tp": 2}, "scheduler": {"policy": "chunked_prefill",
                                                 "max_batch_tokens": 8192}, **prefill},
        {"name": "decode", "role": "decode", "system": "groq3-lpx", "replicas": 1,
         "chips_per_replica": 256, "scheduler": {"policy": "continuous", "max_batch": 64},
         **(decode or {})},
    ]
    data["links"] = [{"from": "prefill", "to": "decode", "bandwidth_gbps": 800,
                      "latency_us": 10, "transfer": "layerwise"}]
    return data


@pytest.fixture
def make_scenario(tmp_path: Path):
    counter = {"n": 0}

    def make(data: dict[str, Any], **overrides: Any) -> Scenario:
        counter["n"] += 1
        path = tmp_path / f"scenario{counter['n']}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return load_scenario(path, overrides=overrides or None)

    return make
