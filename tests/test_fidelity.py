"""Figure files, benchmark runners, validate and calibrate."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from simulator import ScenarioError
from simulator.config.loader import build_scenario
from simulator.config.scenario import Precision
from simulator.costs import replica_cost_vector
from simulator.fidelity import (
    compare,
    fit_factors,
    load_figure,
    load_figures,
    run_figure,
    scale_inputs,
)
from simulator.fidelity.runners import _flat_out, _simulate
from simulator.hardware import load_profile
from simulator.kernels import decode_step_cost
from simulator.models import load_model


def figure(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "schema_version": 1, "id": "h100-offline", "title": "a hand-made figure",
        "source": "written for a test", "tag": "user", "metric": "output_tokens_per_s",
        "published": 10_000, "system": "h100-sxm", "model": "llama-3.1-8b",
        "precision": {"weights": "fp8", "kv_cache": "fp8"}, "replicas": 1,
        "parallelism": {"tp": 1}, "scheduler": {"max_batch": 32, "max_batch_tokens": 4096},
        "benchmark": "offline", "requests": 240,
        "lengths": {"source": "fixed", "input_tokens": 256, "output_tokens": 64},
    }
    data.update(changes)
    return data


def write(folder: Path, data: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{data['id']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.mark.parametrize(("changes", "key"), [
    ({"benchmark": "server"}, "limits"),
    ({"limits": {"ttft_p99_s": 1.0}}, "limits"),
    ({"metric": "speed"}, "metric"),
    ({"publshed": 1}, "publshed"),
    ({"chips_per_replica": 4}, "chips_per_replica"),
    ({"window": "whole_run", "benchmark": "server", "limits": {"ttft_p99_s": 1.0}}, "window"),
    ({"window": "whole_run", "metric": "joules_per_token"}, "window"),
    ({"window": "all"}, "window"),
])
def test_bad_figure_files_are_refused_with_the_key(tmp_path, changes, key):
    with pytest.raises(ScenarioError) as err:
        load_figure(write(tmp_path, figure(**changes)))
    assert err.value.key == key


def test_single_user_speed_is_one_over_the_decode_step_by_hand(tmp_path):
    """One request at a time on one H100: tokens/s per user is 1 / mean decode step."""
    fig = load_figure(write(tmp_path, figure(
        id="h100-single", metric="tokens_per_s_per_user", benchmark="single_user",
        requests=3, lengths={"source": "fixed", "input_tokens": 100, "output_tokens": 5})))
    p = replica_cost_vector(load_model("llama-3.1-8b"), load_profile("h100-sxm"),
                            Precision("fp8", "fp8"), 1, 1)
    # after the prompt (the first token), four decode steps on 100, 101, 102, 103 cached
    steps = sum(decode_step_cost(p, 1.0, float(c))[0] for c in (100, 101, 102, 103))
    assert run_figure(fig).simulated == pytest.approx(4 / steps, rel=1e-9)


def test_server_search_returns_a_rate_that_meets_the_limits(tmp_path):
    fig = load_figure(write(tmp_path, figure(
        id="h100-server", benchmark="server", requests=400,
        limits={"ttft_p99_s": 0.5, "tpot_p99_s": 0.02})))
    run = run_figure(fig)
    assert run.met_limits and run.rate_per_s is not None
    result = _simulate(fig, {"process": "poisson", "rate_per_s": run.rate_per_s}, 400, None)
    assert result.summary["ttft_s"]["p99"] <= 0.5 and result.summary["tpot_s"]["p99"] <= 0.02
    tokens = float(result.requests.output_tokens.mean())
    assert run.simulated == pytest.approx(run.rate_per_s * tokens, rel=1e-12)
    # an offline run of the same deployment does at least as much work per second
    offline = run_figure(load_figure(write(tmp_path, figure(id="h100-flat-out"))))
    assert offline.simulated > 0.5 * run.simulated


def test_flat_out_probe_fills_every_replica_at_the_batch_memory_holds(tmp_path):
    limits = {"ttft_p99_s": 0.5, "tpot_p99_s": 0.02}
    wide = load_figure(write(tmp_path, figure(id="wide", benchmark="server", replicas=6,
                                              requests=400, limits=limits)))
    assert len(_flat_out(wide, 400, None).requests) == 4 * 6 * 32   # not the 400 of a trial
    # a max_batch far beyond memory: the probe runs at what the KV cache holds at full
    # length (256 + 64 tokens a request), so it measures a full deployment, not thrashing
    huge = load_figure(write(tmp_path, figure(
        id="huge", benchmark="server", requests=400, limits=limits,
        scheduler={"max_batch": 1_000_000, "max_batch_tokens": 4096})))
    raw = huge.scenario({"process": "fixed", "rate_per_s": 1e9}, 400)
    held = build_scenario(raw, huge.path).pools[0].kv_capacity_tokens // (256 + 64)
    probe = _flat_out(huge, 400, None)
    assert len(probe.requests) == 4 * held and probe.summary["preemptions"] == 0


def test_calibrate_recovers_factors_that_made_the_figures(tmp_path):
    """Figures produced by the simulator with known efficiency factors: fitting from the
    profile's factors brings the error down, and close to the factors that made them."""
    truth = {"compute": 0.35, "memory": 0.55}
    folder = tmp_path / "figures"
    made = []
    for lengths in ((1024, 16), (64, 256)):   # one compute-bound, one memory-bound
        data = figure(id=f"h100-{lengths[0]}-{lengths[1]}", lengths={
            "source": "fixed", "input_tokens": lengths[0], "output_tokens": lengths[1]})
        made.append(load_figure(write(folder, data)))
    for fig in made:
        data = yaml.safe_load(fig.path.read_text(encoding="utf-8"))
        data["published"] = run_figure(fig, truth).simulated
        write(folder, data)
    figures = load_figures(folder)
    fit = fit_factors(figures, load_profile("h100-sxm"), workers=1, names=("compute", "memory"))
    before = max(abs(c.error_pct) for c in fit.before)
    after = max(abs(c.error_pct) for c in fit.after)
    assert before > 15 and after < 3
    assert fit.factors["compute"] == pytest.approx(0.35, rel=0.1)
    assert fit.factors["memory"] == pytest.approx(0.55, rel=0.1)


def test_only_latency_bound_figures_fit_the_small_step_factors(tmp_path):
    """Large-batch throughput barely sees a step's fixed cost or how much memory time
    hides under the math, so those are fitted only when a server run is among the figures."""
    offline = [load_figure(write(tmp_path / "a", figure()))]
    server = [*offline, load_figure(write(tmp_path / "b", figure(
        id="h100-server", benchmark="server", requests=200,
        limits={"ttft_p99_s": 0.5, "tpot_p99_s": 0.02})))]
    h100 = load_profile("h100-sxm")
    assert set(fit_factors(offline, h100, workers=1, max_trials=0).factors) == {
        "compute", "memory", "kv_memory", "host_time_per_token_s"}
    fitted = fit_factors(server, h100, workers=1, max_trials=0).factors
    assert set(fitted) == {"compute", "memory", "kv_memory", "step_overhead_s",
                           "host_time_per_token_s", "compute_memory_overlap"}
    assert fitted["compute_memory_overlap"] == h100.compute_memory_overlap


def tokenfactory(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "simulator", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def test_validate_and_calibrate_on_hand_written_figures(tmp_path):
    folder = tmp_path / "mine"
    write(folder, figure(id="mine-a", published=2_000))
    write(folder, figure(id="mine-b", published=1_500, lengths={
        "source": "fixed", "input_tokens": 512, "output_tokens": 32}))
    done = tokenfactory("validate", "--figures", str(folder), "--json", "--workers", "1",
                        cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [f["id"] for f in report["figures"]] == ["mine-a", "mine-b"]
    assert set(report) == {"figures", "median_abs_error_pct", "p90_abs_error_pct",
                           "max_abs_error_pct"}
    first = {f["id"]: f["error_pct"] for f in report["figures"]}
    for f in report["figures"]:
        assert f["error_pct"] == pytest.approx(
            100 * (f["simulated"] - f["published"]) / f["published"])

    out = tmp_path / "h100-mine.yaml"
    done = tokenfactory("calibrate", "--figures", str(folder), "--system", "h100-sxm",
                        "--out", str(out), "--workers", "1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    profile = load_profile(str(out))
    assert profile.figures["efficiency.compute"].tag == "fitted"
    # the new profile, named in the figures, brings their error down
    for name in ("mine-a", "mine-b"):
        path = folder / f"{name}.yaml"
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        data["system"] = str(out)
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
    after = compare(load_figures(folder), workers=1)
    assert sum(abs(c.error_pct) for c in after) < sum(abs(e) for e in first.values())

    bad = tokenfactory("validate", "--figures", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert bad.returncode == 2 and "directory of figure files" in bad.stderr


def test_input_scale_stretches_only_estimated_prompt_ranges(tmp_path):
    drawn = load_figure(write(tmp_path, figure(id="drawn", lengths={
        "source": "uniform", "input_tokens": [500, 18500], "output_tokens": [1, 1368]})))
    scaled = scale_inputs(drawn, 0.75)
    assert scaled.lengths["input_tokens"] == [375, 13875]
    assert scaled.lengths["output_tokens"] == [1, 1368]
    assert drawn.lengths["input_tokens"] == [500, 18500]          # the original is untouched
    assert scale_inputs(drawn, 1e-6).lengths["input_tokens"] == [1, 1]
    fixed = load_figure(write(tmp_path, figure(id="fixed")))
    assert scale_inputs(fixed, 0.5) is fixed                        # a benchmark's own ISL
    with pytest.raises(ScenarioError) as err:
        scale_inputs(drawn, 0.0)
    assert err.value.key == "input_scale"


def test_validate_input_scale_moves_a_prefill_heavy_figure(tmp_path):
    """Halving long prompts frees prefill time, so offline output throughput rises; the
    JSON says which factor it ran at, and a bad factor is refused with exit code 2."""
    folder = tmp_path / "long"
    write(folder, figure(id="long-prompts", requests=96, lengths={
        "source": "uniform", "input_tokens": [2000, 6000], "output_tokens": [16, 48]}))
    plain = compare(load_figures(folder), workers=1)[0].run.simulated
    half = compare(load_figures(folder), workers=1, input_scale=0.5)[0].run.simulated
    assert half > 1.3 * plain
    done = tokenfactory("validate", "--figures", str(folder), "--json", "--workers", "1",
                        "--input-scale", "0.5", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["input_scale"] == 0.5
    assert report["figures"][0]["simulated"] == pytest.approx(half, rel=1e-12)
    bad = tokenfactory("validate", "--figures", str(folder), "--input-scale", "zero",
                       cwd=tmp_path)
    assert bad.returncode == 2 and "expected a factor > 0" in bad.stderr


def test_whole_run_is_tokens_over_the_last_finish_of_one_replica_times_replicas(tmp_path):
    """LoadGen's Offline reading: every token over the time the last sample finished. The
    replicas of an offline run are independent, so one is simulated with its share."""
    fig = load_figure(write(tmp_path, figure(id="whole", replicas=3, requests=300,
                                             window="whole_run")))
    one = load_figure(write(tmp_path, figure(id="one", requests=100)))
    result = _simulate(one, {"process": "fixed", "rate_per_s": 1e9}, 100, None)
    by_hand = 3 * result.requests.output_tokens.sum() / result.requests.last_token_s.max()
    assert run_figure(fig).simulated == pytest.approx(by_hand, rel=1e-12)
    # the drain counts: the steady window of the same run reads more
    steady = run_figure(load_figure(write(tmp_path, figure(id="steady", replicas=3,
                                                           requests=300))))
    assert run_figure(fig).simulated < steady.simulated


def test_flat_out_probe_sizes_its_batch_from_a_length_table_too(tmp_path):
    table = tmp_path / "lengths.csv"
    table.write_text("num_prefill_tokens,num_decode_tokens\n200,60\n312,68\n",
                     encoding="utf-8")
    fig = load_figure(write(tmp_path, figure(
        id="traced", benchmark="server", replicas=5, requests=400,
        limits={"ttft_p99_s": 0.5, "tpot_p99_s": 0.02},
        lengths={"source": "trace", "path": str(table)})))
    assert len(_flat_out(fig, 400, None).requests) == 4 * 5 * 32


_LENGTHS = Path(__file__).resolve().parents[1] / "benchmarks" / "fidelity" / "lengths"


def _length_script(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, _LENGTHS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _length_table(name: str) -> np.ndarray:
    return np.loadtxt(_LENGTHS / name, delimiter=",", skiprows=1, dtype=np.int64)


def test_deepseek_r1_length_table_is_what_its_script_writes_and_matches_the_logs():
    outputs = np.sort(_length_script("deepseek_r1_mlperf").output_lengths())
    shipped = _length_table("deepseek-r1-mlperf.csv")
    assert np.array_equal(np.sort(shipped[:, 1]), outputs)
    reference = _length_table("deepseek-r1-reference.csv")
    # every sample keeps its real prompt, and its output keeps its reference answer's rank
    assert shipped.shape == (4388, 2) and np.array_equal(shipped[:, 0], reference[:, 0])
    assert shipped[:, 0].mean() == pytest.approx(803.8, abs=0.1)
    assert reference[:, 1].mean() == pytest.approx(4043.45, abs=0.01)
    by_reference = np.argsort(reference[:, 1], kind="mergesort")
    assert np.all(np.diff(shipped[by_reference, 1]) >= 0)
    assert outputs.mean() == pytest.approx(3700, abs=1)
    # the length percentiles read off the GB200 and GB300 Server logs (latency / TPOT)
    for rank, tokens in ((50, 1975), (90, 8740), (95, 12280), (99, 18910)):
        assert np.percentile(outputs, rank) == pytest.approx(tokens, rel=0.01)
    assert outputs.max() == 20_000


def test_llama_length_tables_are_what_their_script_writes_and_keep_the_real_prompts():
    module = _length_script("llama_mlperf")
    table = _length_table
    llama2, answers = table("llama2-70b-mlperf.csv"), table("llama2-70b-reference.csv")
    assert llama2.shape == (24576, 2) and np.array_equal(llama2[:, 0], answers[:, 0])
    assert np.array_equal(llama2[:, 1], module.llama2_outputs(answers[:, 1]))
    # MLPerf's mean output under the 1,024-token cap, and the answers' order kept
    assert llama2[:, 1].mean() == pytest.approx(294.45, abs=0.01)
    assert llama2[:, 1].max() == 1024 and llama2[:, 1].min() >= 1
    by_answer = np.argsort(answers[:, 1], kind="mergesort")
    assert np.all(np.diff(llama2[by_answer, 1]) >= 0)
    assert llama2[:, 0].mean() == pytest.approx(222.3, abs=0.1)

    llama31, summaries = table("llama3.1-8b-mlperf.csv"), table("llama3.1-8b-reference.csv")
    assert llama31.shape == (13368, 2) and np.array_equal(llama31[:, 0], summaries[:, 0])
    assert np.all(llama31[:, 1] == 128)
    assert llama31[:, 0].mean() == pytest.approx(870.7, abs=0.1)

    llama405 = table("llama3.1-405b-mlperf.csv")
    # the counts reproduce MLPerf's published mean output (tokens_per_sample 684.68)
    assert llama405.shape == (8313, 2)
    assert llama405[:, 1].mean() == pytest.approx(684.68, abs=0.01)
    assert llama405[:, 0].max() <= 20_000 and llama405[:, 1].max() <= 2_000
