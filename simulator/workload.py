"""The requests a run serves: when each arrives, how long it is and which SLO tier pays for it.

Every random draw comes from a numpy Generator the caller owns, so a scenario seed fixes a
run exactly. :func:`generate` gives arrivals, lengths and tiers separate streams spawned from
that seed, so that changing the tier mix or the length source leaves the arrival times alone
and two designs can be compared on the same traffic.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from simulator.errors import ScenarioError, did_you_mean
from simulator.resources import resolve_file

if TYPE_CHECKING:
    from simulator.config.scenario import ArrivalSpec, LengthSpec, WorkloadSpec

__all__ = [
    "LengthStats", "Requests", "Trace", "arrival_times", "assign_tiers", "generate",
    "length_stats", "read_trace", "sample_lengths",
]

PROCESSES = ("poisson", "gamma", "fixed", "trace", "closed_loop")
SOURCES = ("trace", "fixed", "uniform")
_AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
_VIDUR_COLUMNS = ("num_prefill_tokens", "num_decode_tokens")
_MOONCAKE_KEYS = ("timestamp", "input_length", "output_length")
_FORMATS = (
    "an Azure LLM trace CSV (TIMESTAMP, ContextTokens, GeneratedTokens), a vidur/etalon CSV "
    "(num_prefill_tokens, num_decode_tokens[, arrived_at]) or Mooncake JSON Lines "
    "(timestamp, input_length, output_length)"
)


@dataclass(frozen=True, eq=False)
class Trace:
    """One request per row of a trace file, in file order."""

    arrival_s: np.ndarray | None   # seconds after the first row; None when the file has no times
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    path: Path


@dataclass(frozen=True)
class LengthStats:
    """What sizing needs to know about lengths before any request exists (KV room, batch caps)."""

    mean_input_tokens: float
    mean_output_tokens: float
    max_input_tokens: int
    max_output_tokens: int


@dataclass(frozen=True, eq=False)
class Requests:
    """Column arrays, one entry per request, sorted by arrival time.

    Arrays rather than objects keep a million requests cheap to build and to summarise.
    ``arrival_s`` is NaN for closed-loop workloads, where arrivals depend on completions.
    """

    arrival_s: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    tier: np.ndarray   # index into WorkloadSpec.tier_shares, which lists the tier table in order

    def __len__(self) -> int:
        return len(self.input_tokens)


@dataclass(frozen=True)
class _Rows:
    """Maps a data row back to its place in the file so errors point at the line to fix."""

    path: Path
    lines: Sequence[int]   # file line number of each data row

    def error(self, index: int, column: str, expected: str, got: object) -> ScenarioError:
        where = f"row {index + 1} (line {self.lines[index]})"
        if column:
            where += f", column {column}"
        return ScenarioError(self.path, where, expected, got)


def read_trace(
    path: str | Path, file: str | Path | None = None, key: str = "workload.lengths.path"
) -> Trace:
    """Read a trace in any supported format; ``file`` and ``key`` say which scenario named it."""
    found = resolve_file(path, file, key)
    try:
        text = found.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(found, "", "a readable UTF-8 text file", str(exc)) from exc
    numbered = [(i + 1, line) for i, line in enumerate(text.splitlines()) if line.strip()]
    if not numbered:
        raise ScenarioError(found, "", _FORMATS, "an empty file", f"It is named by {key}.")
    if found.suffix == ".jsonl" or numbered[0][1].lstrip().startswith("{"):
        return _read_jsonl(found, numbered)
    return _read_csv(found, numbered)


def _read_csv(found: Path, numbered: list[tuple[int, str]]) -> Trace:
    header = [name.strip() for name in next(csv.reader([numbered[0][1]]))]
    if all(name in header for name in _AZURE_COLUMNS):
        time_col, in_col, out_col = _AZURE_COLUMNS
    elif all(name in header for name in _VIDUR_COLUMNS):
        in_col, out_col = _VIDUR_COLUMNS
        time_col = "arrived_at" if "arrived_at" in header else ""
    else:
        known = [*_AZURE_COLUMNS, *_VIDUR_COLUMNS]
        unknown = [name for name in header if name not in known]
        hint = " ".join(filter(None, (did_you_mean(name, known) for name in unknown)))
        raise ScenarioError(found, "header (line 1)", _FORMATS, ",".join(header), hint)
    body = numbered[1:]
    if not body:
        raise ScenarioError(found, "", "at least one row after the header", "a header only")
    rows = _Rows(found, [line for line, _ in body])
    records = list(csv.reader(text for _, text in body))
    width = len(header)
    for i, record in enumerate(records):
        if len(record) != width:
            raise rows.error(i, "", f"{width} comma-separated fields", len(record))
    columns = dict(zip(header, zip(*records, strict=True), strict=True))
    inputs = _counts(rows, columns[in_col], in_col, int)
    outputs = _counts(rows, columns[out_col], out_col, int)
    if not time_col:
        return Trace(None, inputs, outputs, found)
    if time_col == "TIMESTAMP":
        stamps = _datetimes_ns(rows, columns[time_col], time_col)
        # Integer nanoseconds first: the 100 ns fraction survives the subtraction exactly.
        arrival_s = (stamps - stamps[0]) / 1e9
    else:
        seconds = _parse(rows, columns[time_col], time_col, float, np.float64,
                         "a number of seconds")
        arrival_s = seconds - seconds[0]
    return Trace(_ordered(rows, arrival_s, columns[time_col], time_col), inputs, outputs, found)


def _read_jsonl(found: Path, numbered: list[tuple[int, str]]) -> Trace:
    rows = _Rows(found, [line for line, _ in numbered])
    fields: dict[str, list[object]] = {name: [] for name in _MOONCAKE_KEYS}
    for i, (_, text) in enumerate(numbered):
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise rows.error(i, "", "one JSON object per line", exc.msg) from None
        if not isinstance(record, dict):
            raise rows.error(i, "", "one JSON object per line", type(record).__name__)
        for name, values in fields.items():
            if name not in record:
                raise rows.error(i, name, f"a {name!r} key", sorted(record))
            values.append(record[name])
    inputs = _counts(rows, fields["input_length"], "input_length", _json_int)
    outputs = _counts(rows, fields["output_length"], "output_length", _json_int)
    stamps_ms = _parse(rows, fields["timestamp"], "timestamp", _json_number, np.float64,
                       "a number of milliseconds")
    arrival_s = (stamps_ms - stamps_ms[0]) / 1000.0
    return Trace(_ordered(rows, arrival_s, fields["timestamp"], "timestamp"), inputs, outputs,
                 found)


def _json_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):   # 12.0 is refused too
        raise ValueError(value)
    return value


def _json_number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(value)
    return float(value)


def _parse(
    rows: _Rows,
    values: Sequence[object],
    column: str,
    convert: Callable[[Any], object],
    dtype: type[np.generic],
    expected: str,
) -> np.ndarray:
    out = np.empty(len(values), dtype=dtype)
    for i, value in enumerate(values):
        try:
            out[i] = convert(value)
        except (ValueError, TypeError, OverflowError):
            raise rows.error(i, column, expected, value) from None
    if out.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(out))
        if bad.size:
            raise rows.error(int(bad[0]), column, expected, values[bad[0]])
    return out


def _counts(
    rows: _Rows, values: Sequence[object], column: str, convert: Callable[[Any], object]
) -> np.ndarray:
    """Token counts must be whole and at least 1: a request with no prompt or no output
    has nothing to prefill or decode."""
    counts = _parse(rows, values, column, convert, np.int64, "a whole number of tokens")
    bad = np.flatnonzero(counts < 1)
    if bad.size:
        raise rows.error(int(bad[0]), column, "a positive whole number of tokens",
                         values[bad[0]])
    return counts


def _datetimes_ns(rows: _Rows, values: Sequence[str], column: str) -> np.ndarray:
    expected = "a date and time such as 2023-11-16 18:15:46.6805900"
    try:
        stamps = np.array(values, dtype="datetime64[ns]")
    except ValueError:
        for i, value in enumerate(values):
            try:
                np.datetime64(value, "ns")
            except ValueError:
                raise rows.error(i, column, expected, value) from None
        raise
    missing = np.flatnonzero(np.isnat(stamps))
    if missing.size:
        raise rows.error(int(missing[0]), column, expected, values[missing[0]])
    return stamps.astype(np.int64)


def _ordered(
    rows: _Rows, arrival_s: np.ndarray, values: Sequence[object], column: str
) -> np.ndarray:
    """Replay and 'first n rows' both assume rows are in time order, so a file that is not
    is refused rather than silently reordered."""
    back = np.flatnonzero(np.diff(arrival_s) < 0)
    if back.size:
        raise rows.error(int(back[0]) + 1, column, "a time no earlier than the row before "
                         "(sort the file by time)", values[back[0] + 1])
    return arrival_s


def _load(path: Path | None, file: str | Path | None, key: str) -> Trace:
    if path is None:
        raise ScenarioError(file, key, "the path of a trace file", None)
    return read_trace(path, file, key)


def _token_range(
    spec: LengthSpec, file: str | Path | None
) -> tuple[tuple[int, int], tuple[int, int]]:
    pairs = []
    for name, pair in (("input_tokens", spec.input_tokens), ("output_tokens", spec.output_tokens)):
        key = f"workload.lengths.{name}"
        if pair is None or len(pair) != 2 or not 1 <= pair[0] <= pair[1]:
            raise ScenarioError(file, key, "token counts [low, high] with 1 <= low <= high", pair)
        if spec.source == "fixed" and pair[0] != pair[1]:
            raise ScenarioError(file, key, "one token count for fixed lengths", pair)
        pairs.append((int(pair[0]), int(pair[1])))
    return pairs[0], pairs[1]


def _check_source(spec: LengthSpec, file: str | Path | None) -> None:
    if spec.source not in SOURCES:
        raise ScenarioError(file, "workload.lengths.source", f"one of {', '.join(SOURCES)}",
                            spec.source, did_you_mean(spec.source, SOURCES))


def length_stats(spec: LengthSpec, file: str | Path | None = None) -> LengthStats:
    _check_source(spec, file)
    if spec.source == "trace":
        trace = _load(spec.path, file, "workload.lengths.path")
        return LengthStats(float(trace.input_tokens.mean()), float(trace.output_tokens.mean()),
                           int(trace.input_tokens.max()), int(trace.output_tokens.max()))
    (in_low, in_high), (out_low, out_high) = _token_range(spec, file)
    return LengthStats((in_low + in_high) / 2, (out_low + out_high) / 2, in_high, out_high)


def sample_lengths(
    spec: LengthSpec, n: int, rng: np.random.Generator, *, file: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Input and output token counts for ``n`` requests; trace rows keep their pairing."""
    _check_source(spec, file)
    if spec.source == "trace":
        trace = _load(spec.path, file, "workload.lengths.path")
        rows = rng.integers(0, len(trace.input_tokens), size=n)
        return trace.input_tokens[rows], trace.output_tokens[rows]
    (in_low, in_high), (out_low, out_high) = _token_range(spec, file)
    if spec.source == "fixed":
        return np.full(n, in_low, dtype=np.int64), np.full(n, out_low, dtype=np.int64)
    inputs = rng.integers(in_low, in_high, size=n, endpoint=True, dtype=np.int64)
    outputs = rng.integers(out_low, out_high, size=n, endpoint=True, dtype=np.int64)
    return inputs, outputs


def _positive(value: float | None, file: str | Path | None, key: str) -> float:
    if value is None or not math.isfinite(value) or value <= 0:
        raise ScenarioError(file, key, "a positive number", value)
    return float(value)


def arrival_times(
    spec: ArrivalSpec,
    rng: np.random.Generator,
    n: int | None,
    duration_s: float | None,
    *,
    file: str | Path | None = None,
) -> np.ndarray:
    """Arrival times in seconds: ``n`` of them, those before ``duration_s``, or both limits."""
    if spec.process not in PROCESSES:
        raise ScenarioError(file, "workload.arrivals.process", f"one of {', '.join(PROCESSES)}",
                            spec.process, did_you_mean(spec.process, PROCESSES))
    if duration_s is not None:
        _positive(duration_s, file, "workload.duration_s")
    if spec.process == "closed_loop":
        if n is None:
            raise ScenarioError(file, "workload.requests", "a request count for closed-loop "
                                "arrivals", None)
        return np.full(n, np.nan)
    if spec.process == "trace":
        trace = _load(spec.path, file, "workload.arrivals.path")
        return _replay(trace, spec, n, duration_s, file)
    if n is None and duration_s is None:
        raise ScenarioError(file, "workload", "requests or duration_s to bound the arrivals",
                            None)
    rate = _positive(spec.rate_per_s, file, "workload.arrivals.rate_per_s")
    if spec.process == "fixed":
        return _evenly_spaced(rate, n, duration_s)
    if spec.process == "poisson":
        def gaps(size: int) -> np.ndarray:
            return rng.exponential(1.0 / rate, size)
    else:
        cv = _positive(spec.cv, file, "workload.arrivals.cv")
        # Gamma with shape k and scale θ has mean kθ and CV 1/√k.
        shape, scale = 1.0 / cv**2, cv**2 / rate

        def gaps(size: int) -> np.ndarray:
            return rng.gamma(shape, scale, size)
    return _renewal(gaps, rate, n, duration_s)


def _evenly_spaced(rate: float, n: int | None, duration_s: float | None) -> np.ndarray:
    """Request i at i / rate, the first at time zero."""
    by_time = None if duration_s is None else math.ceil(duration_s * rate) + 1
    times = np.arange(min(c for c in (n, by_time) if c is not None)) / rate
    return times if duration_s is None else times[times < duration_s]


def _renewal(
    gaps: Callable[[int], np.ndarray], rate: float, n: int | None, duration_s: float | None
) -> np.ndarray:
    """Cumulative gaps; the first request arrives after one gap, not at time zero."""
    if duration_s is None:
        assert n is not None
        return np.cumsum(gaps(n))
    expected = rate * duration_s
    # Six standard deviations of a Poisson count over the mean: one chunk nearly always does.
    chunk = int(expected + 6.0 * math.sqrt(expected)) + 64
    if n is not None:
        chunk = min(chunk, n)
    parts = [np.empty(0)]
    last, drawn = 0.0, 0
    while last < duration_s and chunk > 0 and (n is None or drawn < n):
        part = last + np.cumsum(gaps(chunk))
        parts.append(part)
        last, drawn = float(part[-1]), drawn + chunk
    times = np.concatenate(parts)
    times = times[: np.searchsorted(times, duration_s, side="left")]
    return times if n is None else times[:n]


def _replay(
    trace: Trace,
    spec: ArrivalSpec,
    n: int | None,
    duration_s: float | None,
    file: str | Path | None,
) -> np.ndarray:
    if trace.arrival_s is None:
        raise ScenarioError(file, "workload.arrivals.path", f"a trace with times: {_FORMATS}",
                            str(trace.path), "A length-only file can feed workload.lengths.")
    times = trace.arrival_s / _positive(spec.speedup, file, "workload.arrivals.speedup")
    if n is not None:
        if n > len(times):
            raise ScenarioError(file, "workload.requests", f"at most {len(times)}, the rows in "
                                f"{trace.path.name}", n, "Use duration_s to replay a time window.")
        times = times[:n]
    if duration_s is not None:
        times = times[: np.searchsorted(times, duration_s, side="left")]
    return times


def assign_tiers(
    shares: tuple[tuple[str, float], ...],
    n: int,
    rng: np.random.Generator,
    *,
    file: str | Path | None = None,
) -> np.ndarray:
    """Each request's tier, drawn independently with the given shares."""
    weights = np.array([share for _, share in shares], dtype=np.float64)
    if not 1 <= len(shares) <= np.iinfo(np.int8).max:
        raise ScenarioError(file, "workload.tier_shares", "between 1 and 127 tiers", len(shares))
    if not np.all(np.isfinite(weights)) or weights.min() < 0 or weights.sum() <= 0:
        raise ScenarioError(file, "workload.tier_shares", "non-negative shares with a positive "
                            "sum", dict(shares))
    return rng.choice(len(shares), size=n, p=weights / weights.sum()).astype(np.int8)


def generate(workload: WorkloadSpec, seed: int, file: str | Path | None = None) -> Requests:
    """All requests of a run. Replaying a trace for both arrivals and lengths keeps each
    request's own row, so bursts carry the prompt sizes that really came with them."""
    arrival_rng, length_rng, tier_rng = (
        np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(3)
    )
    arrivals, lengths = workload.arrivals, workload.lengths
    if arrivals.process == "closed_loop" and workload.requests is None:
        raise ScenarioError(file, "workload.requests", "a request count for closed-loop arrivals",
                            None, "duration_s alone cannot size a closed-loop run.")
    own_rows: Trace | None = None
    if arrivals.process == "trace":
        trace = _load(arrivals.path, file, "workload.arrivals.path")
        times = _replay(trace, arrivals, workload.requests, workload.duration_s, file)
        if lengths.source == "trace" and lengths.path is not None:
            length_path = resolve_file(lengths.path, file, "workload.lengths.path")
            if length_path.resolve() == trace.path.resolve():
                own_rows = trace
    else:
        times = arrival_times(arrivals, arrival_rng, workload.requests, workload.duration_s,
                              file=file)
    n = len(times)
    if own_rows is not None:
        inputs, outputs = own_rows.input_tokens[:n], own_rows.output_tokens[:n]
    else:
        inputs, outputs = sample_lengths(lengths, n, length_rng, file=file)
    tiers = assign_tiers(workload.tier_shares, n, tier_rng, file=file)
    order = np.argsort(times, kind="stable")
    return Requests(times[order], inputs[order], outputs[order], tiers[order])
