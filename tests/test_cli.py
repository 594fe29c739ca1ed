"""The command line end to end, as a planner runs it (a subprocess, any working directory)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "scenarios" / "quickstart-disaggregated.yaml"

# The result names ARCHITECTURE promises in summary.json
TOP_LEVEL = {"scenario", "seed", "version", "provenance", "latency_backend", "ttft_s", "tpot_s",
             "itl_s", "e2e_s", "output_tokens_per_s", "tokens_per_s_per_user", "goodput_rps",
             "slo_attainment", "energy_j", "joules_per_token", "tokens_per_joule",
             "tokens_per_s_per_mw", "pools", "tiers"}
PER_POOL = {"utilisation", "power_w_mean", "energy_j", "kv_occupancy_mean", "queue_len_mean"}
PER_TIER = {"requests", "slo_attainment", "goodput_rps", "revenue_usd_per_s"}


def tokenfactory(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "simulator", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def _small(tmp_path: Path, **changes: object) -> Path:
    data = yaml.safe_load(QUICKSTART.read_text())
    data["workload"]["requests"] = 300
    data.update(changes)
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_run_writes_summary_with_the_promised_names_and_is_byte_identical(tmp_path):
    scenario = _small(tmp_path)
    first = tokenfactory("run", str(scenario), "--out", "a", "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    second = tokenfactory("run", str(scenario), "--out", "b", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    a = (tmp_path / "a" / "summary.json").read_bytes()
    assert a == (tmp_path / "b" / "summary.json").read_bytes()
    assert (tmp_path / "a" / "requests.csv").read_bytes() == (
        tmp_path / "b" / "requests.csv").read_bytes()
    summary = json.loads(a)
    assert json.loads(first.stdout) == summary
    assert summary.keys() >= TOP_LEVEL
    for pool in summary["pools"].values():
        assert pool.keys() >= PER_POOL
    for tier in summary["tiers"].values():
        assert tier.keys() >= PER_TIER
    for key in ("ttft_s", "tpot_s", "itl_s", "e2e_s"):
        assert set(summary[key]) == {"mean", "p50", "p90", "p99"}
        assert 0 < summary[key]["p50"] <= summary[key]["p99"]
    assert summary["requests_completed"] == 300
    rows = (tmp_path / "a" / "requests.csv").read_text().splitlines()
    assert len(rows) == 301
    assert rows[0].startswith("request,tier,input_tokens,output_tokens,arrival_s")


def test_run_prints_the_table_and_honours_set_and_seed(tmp_path):
    scenario = _small(tmp_path)
    done = tokenfactory("run", str(scenario), "--set", "pools.decode.scheduler.max_batch=32",
                        "--seed", "11", "--out", "o", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for text in ("TTFT", "TPOT", "output tokens/s", "J/token", "prefill", "decode"):
        assert text in done.stdout
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["seed"] == 11
    decode = next(p for p in summary["scenario"]["pools"] if p["name"] == "decode")
    assert decode["scheduler"]["max_batch"] == 32


@pytest.mark.parametrize(("change", "expect"), [
    ({"pools": [{"name": "serve", "role": "both", "system": "h100-sxm", "replicas": 1,
                 "replics": 2}]}, ["pools[0].replics", "Did you mean 'replicas'"]),
    ({"workload": {"requests": 10, "arrivals": {"process": "poisson", "rate_per_s": -3},
                   "lengths": {"source": "fixed", "input_tokens": 10, "output_tokens": 10}}},
     ["workload.arrivals.rate_per_s", "-3"]),
    ({"pools": [{"name": "serve", "role": "both", "system": "h200-nvl", "replicas": 1}]},
     ["pools[0].system", "h100-sxm"]),
    ({"model": "llama-3.1-405b",
      "pools": [{"name": "serve", "role": "both", "system": "h100-sxm", "replicas": 1}]},
     ["pools[0]", "GB"]),
])
def test_bad_scenarios_exit_2_with_one_paragraph(tmp_path, change, expect):
    scenario = _small(tmp_path, **change)
    if "pools" in change:
        data = yaml.safe_load(scenario.read_text())
        data.pop("links", None)
        scenario.write_text(yaml.safe_dump(data, sort_keys=False))
    done = tokenfactory("run", str(scenario), cwd=tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "small.yaml" in done.stderr
    for text in expect:
        assert text in done.stderr, done.stderr
    assert done.stdout == ""


def test_missing_file_and_bad_override_exit_2(tmp_path):
    missing = tokenfactory("run", "nope.yaml", cwd=tmp_path)
    assert missing.returncode == 2 and "nope.yaml" in missing.stderr
    bad = tokenfactory("run", str(QUICKSTART), "--set", "pools.decode.replicaz=2", cwd=tmp_path)
    assert bad.returncode == 2 and "replicaz" in bad.stderr and "Traceback" not in bad.stderr


def test_profiles_lists_shipped_profiles_and_cards(tmp_path):
    done = tokenfactory("profiles", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for name in ("h100-sxm", "gb200-nvl72", "vera-rubin-nvl72", "groq3-lpx", "groq-lpu-v1",
                 "llama-3.3-70b", "deepseek-r1", "kimi-k2"):
        assert name in done.stdout


def test_profiles_with_a_name_shows_each_figure_with_its_source_and_tag(tmp_path):
    done = tokenfactory("profiles", "groq3-lpx", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if "chip.dense_flops_per_s.fp8" in line)
    assert "1.23e+15" in row and "derived" in row and "S29" in row
    assert "https://" in done.stdout           # the sources table spells the ids out
    bad = tokenfactory("profiles", "groq4", cwd=tmp_path)
    assert bad.returncode == 2 and "groq3-lpx" in bad.stderr
