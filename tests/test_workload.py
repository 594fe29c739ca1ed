"""Workload generation against hand-computed numbers and the shipped traces."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.config.scenario import ArrivalSpec, LengthSpec, WorkloadSpec
from simulator.errors import ScenarioError
from simulator.resources import resolve_file
from simulator.workload import (
    Requests,
    arrival_times,
    assign_tiers,
    generate,
    length_stats,
    read_trace,
    sample_lengths,
)

AZURE_CONV = "workloads/traces/azure-llm-2023/AzureLLMInferenceTrace_conv.csv"
AZURE_CODE = "workloads/traces/azure-llm-2023/AzureLLMInferenceTrace_code.csv"
SHAREGPT = "workloads/traces/sharegpt/sharegpt_8k_filtered_stats_llama2_tokenizer.csv"
TIERS = (("gold", 0.2), ("silver", 0.5), ("bronze", 0.3))
FIXED_LENGTHS = LengthSpec("fixed", input_tokens=(1000, 1000), output_tokens=(200, 200))


def rng(seed: int = 7) -> np.random.Generator:
    return np.random.default_rng(seed)


def workload(
    arrivals: ArrivalSpec,
    lengths: LengthSpec = FIXED_LENGTHS,
    requests: int | None = 1000,
    duration_s: float | None = None,
    tiers: tuple[tuple[str, float], ...] = TIERS,
) -> WorkloadSpec:
    return WorkloadSpec(requests, duration_s, arrivals, lengths, tiers)


def write(path: Path, text: str, newline: str = "\n") -> Path:
    path.write_bytes(text.replace("\n", newline).encode())
    return path


# --- reading traces -------------------------------------------------------------------------

def test_azure_conversation_trace_matches_published_statistics() -> None:
    trace = read_trace(resolve_file(AZURE_CONV))
    assert len(trace.input_tokens) == 19_366
    assert trace.input_tokens.dtype == np.int64 and trace.output_tokens.dtype == np.int64
    assert trace.input_tokens.mean() == pytest.approx(1154.7, abs=0.05)
    assert trace.output_tokens.mean() == pytest.approx(211.1, abs=0.05)
    assert trace.arrival_s is not None and trace.arrival_s.dtype == np.float64
    # 19:14:08.4025270 - 18:15:46.6805900 = 58 min 21.7219370 s = 3501.7219370 s
    assert trace.arrival_s[0] == 0.0
    assert trace.arrival_s[-1] == pytest.approx(3501.721937, abs=1e-9)
    # second row 18:15:50.9951690 - 18:15:46.6805900 = 4.3145790 s
    assert trace.arrival_s[1] == pytest.approx(4.314579, abs=1e-9)


def test_azure_code_trace_row_count_and_maxima() -> None:
    stats = length_stats(LengthSpec("trace", path=Path(AZURE_CODE)))
    # published: 8,819 rows, input max 7,437, output max 1,899, output mean 27.9
    assert len(read_trace(Path(AZURE_CODE)).input_tokens) == 8_819
    assert (stats.max_input_tokens, stats.max_output_tokens) == (7_437, 1_899)
    assert stats.mean_output_tokens == pytest.approx(27.9, abs=0.05)


def test_azure_format_keeps_100_ns_resolution(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n"
                 "2023-11-16 18:00:00.0000001,10,5\n"
                 "2023-11-16 18:00:00.0000004,20,6\n"
                 "2023-11-16 18:00:01.0000003,30,7\n", newline="\r\n")
    trace = read_trace(path)
    assert trace.arrival_s is not None
    # 0.0000004 - 0.0000001 = 300 ns; 1.0000003 - 0.0000001 = 1.0000002 s
    np.testing.assert_allclose(trace.arrival_s, [0.0, 3e-7, 1.0000002], rtol=0, atol=1e-12)
    assert trace.input_tokens.tolist() == [10, 20, 30]


def test_sharegpt_is_lengths_only() -> None:
    trace = read_trace(Path(SHAREGPT))
    assert trace.arrival_s is None
    assert len(trace.input_tokens) == 30_731
    stats = length_stats(LengthSpec("trace", path=Path(SHAREGPT)))
    assert stats.mean_input_tokens == pytest.approx(2340.0, abs=0.05)
    assert stats.mean_output_tokens == pytest.approx(438.7, abs=0.05)
    assert (stats.max_input_tokens, stats.max_output_tokens) == (8_141, 1_024)


def test_mooncake_jsonl(tmp_path: Path) -> None:
    path = write(tmp_path / "mc.jsonl",
                 '{"timestamp": 0, "input_length": 6758, "output_length": 500, "hash_ids": [0]}\n'
                 '{"timestamp": 1500, "input_length": 700, "output_length": 49, "hash_ids": [0]}\n'
                 '\n'
                 '{"timestamp": 1500, "input_length": 12, "output_length": 1, "hash_ids": []}\n')
    trace = read_trace(path)
    assert trace.arrival_s is not None
    # timestamps are milliseconds: 1500 ms = 1.5 s
    assert trace.arrival_s.tolist() == [0.0, 1.5, 1.5]
    assert trace.input_tokens.tolist() == [6758, 700, 12]
    assert trace.output_tokens.tolist() == [500, 49, 1]


def test_vidur_csv_with_arrived_at(tmp_path: Path) -> None:
    path = write(tmp_path / "v.csv", "arrived_at,num_prefill_tokens,num_decode_tokens\n"
                 "10.5,100,20\n11.0,200,30\n12.25,300,40\n")
    trace = read_trace(path)
    assert trace.arrival_s is not None
    assert trace.arrival_s.tolist() == [0.0, 0.5, 1.75]   # seconds after the first row
    assert trace.output_tokens.tolist() == [20, 30, 40]


def test_shipped_trace_found_from_another_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    found = resolve_file(AZURE_CONV)
    assert found.is_file() and found.is_absolute()
    assert len(read_trace(AZURE_CONV).input_tokens) == 19_366


def test_reading_twenty_thousand_rows_is_fast() -> None:
    path = resolve_file(AZURE_CONV)
    best_s = math.inf
    for _ in range(3):
        start = time.perf_counter()
        read_trace(path)
        best_s = min(best_s, time.perf_counter() - start)
    assert best_s < 0.2


@pytest.mark.parametrize(
    ("text", "where", "got"),
    [
        ("TIME,ContextTokens,GeneratedTokens\n2023-11-16 18:00:00,1,1\n", "header", "TIME"),
        ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:00:00,10,5\n"
         "2023-11-16 18:00:01,10,5\n2023-11-16 18:00:02,-4,5\n",
         "row 3 (line 4), column ContextTokens", "'-4'"),
        ("num_prefill_tokens,num_decode_tokens\n5,5\n5,0\n",
         "row 2 (line 3), column num_decode_tokens", "'0'"),
        ("num_prefill_tokens,num_decode_tokens\n5,5\n12.5,3\n",
         "row 2 (line 3), column num_prefill_tokens", "'12.5'"),
        ("num_prefill_tokens,num_decode_tokens\n5,5\n7\n", "row 2 (line 3)", "1"),
        ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:00:02,1,1\n"
         "2023-11-16 18:00:01,1,1\n", "row 2 (line 3), column TIMESTAMP", "18:00:01"),
        ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:00:00,1,1\nsoon,1,1\n",
         "row 2 (line 3), column TIMESTAMP", "'soon'"),
        ("", "", "an empty file"),
        ("num_prefill_tokens,num_decode_tokens\n", "", "a header only"),
    ],
)
def test_broken_csv_names_file_row_and_column(
    tmp_path: Path, text: str, where: str, got: str
) -> None:
    path = write(tmp_path / "broken.csv", text)
    with pytest.raises(ScenarioError) as caught:
        read_trace(path)
    message = str(caught.value)
    assert "broken.csv" in message and where in message and got in message


def test_broken_jsonl_names_row_and_key(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.jsonl",
                 '{"timestamp": 0, "input_length": 5, "output_length": 5}\n'
                 '{"timestamp": 9, "input_length": 5}\n')
    with pytest.raises(ScenarioError, match=r"bad\.jsonl: row 2 \(line 2\), column output_length"):
        read_trace(path)
    write(path, '{"timestamp": 0, "input_length": 5.0, "output_length": 5}\n')
    with pytest.raises(ScenarioError, match="column input_length"):
        read_trace(path)


def test_missing_trace_names_the_scenario_key(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"s\.yaml: workload\.lengths\.path"):
        read_trace(Path("no/such/trace.csv"), tmp_path / "s.yaml")


# --- lengths --------------------------------------------------------------------------------

def test_fixed_and_uniform_lengths() -> None:
    inputs, outputs = sample_lengths(FIXED_LENGTHS, 5, rng())
    assert inputs.tolist() == [1000] * 5 and outputs.tolist() == [200] * 5
    uniform = LengthSpec("uniform", input_tokens=(1, 3), output_tokens=(10, 10))
    inputs, outputs = sample_lengths(uniform, 10_000, rng())
    assert set(inputs.tolist()) == {1, 2, 3}   # both ends inclusive
    assert set(outputs.tolist()) == {10}
    stats = length_stats(LengthSpec("uniform", input_tokens=(100, 300), output_tokens=(1, 9)))
    # means (100 + 300) / 2 = 200 and (1 + 9) / 2 = 5
    assert stats == type(stats)(200.0, 5.0, 300, 9)


def test_trace_lengths_keep_row_pairs() -> None:
    trace = read_trace(Path(SHAREGPT))
    pairs = set(zip(trace.input_tokens.tolist(), trace.output_tokens.tolist(), strict=True))
    inputs, outputs = sample_lengths(LengthSpec("trace", path=Path(SHAREGPT)), 2000, rng())
    assert all(p in pairs for p in zip(inputs.tolist(), outputs.tolist(), strict=True))


def test_unknown_length_source_suggests_a_name() -> None:
    with pytest.raises(ScenarioError, match="Did you mean 'uniform'"):
        sample_lengths(LengthSpec("unifrom"), 3, rng())


# --- arrivals -------------------------------------------------------------------------------

def test_poisson_mean_gap() -> None:
    times = arrival_times(ArrivalSpec("poisson", rate_per_s=5.0), rng(), 20_000, None)
    assert len(times) == 20_000 and times[0] > 0.0   # first arrival after one gap
    gaps = np.diff(np.concatenate([[0.0], times]))
    # mean gap 1 / 5 = 0.2 s; standard error 0.2 / sqrt(20000) = 0.0014 s (0.7 %)
    assert gaps.mean() == pytest.approx(0.2, rel=0.03)


def test_gamma_gap_mean_and_cv() -> None:
    spec = ArrivalSpec("gamma", rate_per_s=4.0, cv=1.5)
    gaps = np.diff(np.concatenate([[0.0], arrival_times(spec, rng(), 20_000, None)]))
    # shape 1 / 1.5**2 = 0.444, mean 1 / 4 = 0.25 s
    assert gaps.mean() == pytest.approx(0.25, rel=0.03)
    assert gaps.std() / gaps.mean() == pytest.approx(1.5, rel=0.05)


def test_fixed_spacing_is_exact() -> None:
    spec = ArrivalSpec("fixed", rate_per_s=4.0)
    assert arrival_times(spec, rng(), 6, None).tolist() == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25]
    # 2.0 s * 4 /s = 8 arrivals: 0 .. 1.75; the one at 2.0 s is outside [0, 2.0)
    assert arrival_times(spec, rng(), None, 2.0).tolist() == [i * 0.25 for i in range(8)]
    # both limits: the tighter one wins
    assert len(arrival_times(spec, rng(), 3, 2.0)) == 3


def test_duration_mode_counts_and_bounds() -> None:
    times = arrival_times(ArrivalSpec("poisson", rate_per_s=50.0), rng(), None, 200.0)
    # expected 50 * 200 = 10,000 arrivals, standard deviation sqrt(10000) = 100 (1 %)
    assert len(times) == pytest.approx(10_000, rel=0.03)
    assert times.max() < 200.0 and times.min() > 0.0
    assert np.all(np.diff(times) >= 0)


@settings(max_examples=40, deadline=None)
@given(
    process=st.sampled_from(["poisson", "gamma", "fixed"]),
    rate=st.floats(0.1, 200.0),
    duration=st.floats(0.5, 100.0),
    cap=st.one_of(st.none(), st.integers(0, 500)),
    seed=st.integers(0, 2**32 - 1),
)
def test_duration_mode_property(
    process: str, rate: float, duration: float, cap: int | None, seed: int
) -> None:
    spec = ArrivalSpec(process, rate_per_s=rate, cv=3.0)
    times = arrival_times(spec, rng(seed), cap, duration)
    assert np.all(times >= 0.0) and np.all(times < duration)
    assert np.all(np.diff(times) >= 0)
    if cap is not None:
        assert len(times) <= cap


def test_trace_replay_speedup_and_limits() -> None:
    spec = ArrivalSpec("trace", path=Path(AZURE_CONV), speedup=2.0)
    times = arrival_times(spec, rng(), 3, None)
    # rows 1-2 at 0 and 4.314579 s; twice as fast gives 2.1572895 s
    assert times[0] == 0.0 and times[1] == pytest.approx(2.1572895, abs=1e-9)
    window = arrival_times(spec, rng(), None, 60.0)
    assert window.max() < 60.0 and len(window) > 0
    assert len(arrival_times(spec, rng(), None, None)) == 19_366
    with pytest.raises(ScenarioError, match="at most 19366"):
        arrival_times(spec, rng(), 19_367, None)


def test_length_only_file_cannot_drive_arrivals() -> None:
    with pytest.raises(ScenarioError, match=r"workload\.arrivals\.path"):
        arrival_times(ArrivalSpec("trace", path=Path(SHAREGPT)), rng(), 10, None)


def test_bad_arrival_settings() -> None:
    with pytest.raises(ScenarioError, match="Did you mean 'poisson'"):
        arrival_times(ArrivalSpec("poison", rate_per_s=1.0), rng(), 5, None)
    with pytest.raises(ScenarioError, match=r"workload\.arrivals\.cv"):
        arrival_times(ArrivalSpec("gamma", rate_per_s=1.0), rng(), 5, None)
    with pytest.raises(ScenarioError, match="rate_per_s"):
        arrival_times(ArrivalSpec("poisson", rate_per_s=0.0), rng(), 5, None)


# --- tiers and whole workloads --------------------------------------------------------------

def test_tier_shares() -> None:
    tiers = assign_tiers(TIERS, 50_000, rng())
    assert tiers.dtype == np.int8
    observed = np.bincount(tiers, minlength=3) / 50_000
    # standard error at most sqrt(0.25 / 50000) = 0.0022, so 0.01 is more than 4 of them
    np.testing.assert_allclose(observed, [0.2, 0.5, 0.3], atol=0.01)
    with pytest.raises(ScenarioError, match="tier_shares"):
        assign_tiers((), 5, rng())


def test_same_seed_same_requests_and_independent_streams() -> None:
    spec = workload(ArrivalSpec("poisson", rate_per_s=10.0),
                    LengthSpec("uniform", input_tokens=(10, 4000), output_tokens=(1, 500)))
    first, again, other = generate(spec, 1), generate(spec, 1), generate(spec, 2)
    assert isinstance(first, Requests) and len(first) == 1000
    for name in ("arrival_s", "input_tokens", "output_tokens", "tier"):
        assert np.array_equal(getattr(first, name), getattr(again, name))
    assert not np.array_equal(first.arrival_s, other.arrival_s)
    assert not np.array_equal(first.input_tokens, other.input_tokens)
    reshuffled = generate(workload(spec.arrivals, spec.lengths, tiers=(("only", 1.0),)), 1)
    assert np.array_equal(first.arrival_s, reshuffled.arrival_s)
    assert np.array_equal(first.input_tokens, reshuffled.input_tokens)
    assert set(reshuffled.tier.tolist()) == {0}


def test_trace_replay_keeps_each_rows_lengths() -> None:
    trace = read_trace(Path(AZURE_CONV))
    path = Path(AZURE_CONV)
    spec = workload(ArrivalSpec("trace", path=path), LengthSpec("trace", path=path),
                    requests=None, duration_s=300.0)
    requests = generate(spec, 3)
    n = len(requests)
    assert n > 0 and requests.arrival_s.max() < 300.0
    assert np.array_equal(requests.input_tokens, trace.input_tokens[:n])
    assert np.array_equal(requests.output_tokens, trace.output_tokens[:n])


def test_closed_loop_leaves_arrivals_to_the_engine() -> None:
    spec = workload(ArrivalSpec("closed_loop", concurrency=8), requests=50)
    requests = generate(spec, 0)
    assert len(requests) == 50 and np.all(np.isnan(requests.arrival_s))
    with pytest.raises(ScenarioError, match=r"workload\.requests"):
        generate(workload(spec.arrivals, requests=None, duration_s=60.0), 0)


def test_generated_requests_are_sorted() -> None:
    spec = workload(ArrivalSpec("gamma", rate_per_s=20.0, cv=4.0), requests=None,
                    duration_s=50.0)
    requests = generate(spec, 11)
    assert np.all(np.diff(requests.arrival_s) >= 0) and requests.arrival_s.max() < 50.0
    assert requests.input_tokens.dtype == np.int64 and requests.tier.dtype == np.int8
