"""``tokenfactory frontier``: one key varied, tokens/s per MW against tokens/s per user."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import pytest

import simulator
from simulator import load_scenario
from simulator.cli import main
from simulator.sweep import RESULTS_FILE, config_key
from simulator.sweep.curve import DEFAULT_VALUES, default_axis

ROOT = Path(__file__).resolve().parent.parent
AGGREGATED = ROOT / "scenarios" / "quickstart-aggregated.yaml"
DISAGGREGATED = ROOT / "scenarios" / "quickstart-disaggregated.yaml"
CAP = "pools.serve.scheduler.max_batch"
# Many more users than the GPUs' batch slots, so the cap decides how many share a step.
SATURATED = {"workload.requests": 300,
             "workload.arrivals": {"process": "closed_loop", "concurrency": 512}}
SETS = ("--set", "workload.requests=300",
        "--set", "workload.arrivals={process: closed_loop, concurrency: 512}")
COLUMNS = ["tokens_per_s_per_user_p50", "tokens_per_s_per_mw", "output_tokens_per_s",
           "power_w_mean", "ttft_p99_s", "slo_attainment", "overloaded", "pareto"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def test_cli_writes_the_curve_csv_png_and_table(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["frontier", str(AGGREGATED), "--vary", f"{CAP}=1,4,32", *SETS,
                 "--executor", "serial"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    folder = tmp_path / "out" / "quickstart-aggregated-frontier"
    header, rows = read_csv(folder / "frontier.csv")
    assert header == [CAP, *COLUMNS]
    assert [row[CAP] for row in rows] == ["1", "4", "32"]
    per_user = [float(row["tokens_per_s_per_user_p50"]) for row in rows]
    per_mw = [float(row["tokens_per_s_per_mw"]) for row in rows]
    # The trade the chart exists to show: a bigger batch is slower per user, cheaper per MW.
    assert per_user[0] > per_user[-1] > 0
    assert per_mw[-1] > 2 * per_mw[0] > 0
    for row in rows:
        assert float(row["output_tokens_per_s"]) > 0 and float(row["power_w_mean"]) > 0
        assert float(row["ttft_p99_s"]) > 0 and 0 <= float(row["slo_attainment"]) <= 1
        assert row["overloaded"] in ("0", "1") and row["pareto"] in ("0", "1")
    assert rows[0]["pareto"] == rows[-1]["pareto"] == "1"   # the two ends trade, neither wins
    assert (folder / "frontier.png").read_bytes().startswith(PNG_SIGNATURE)
    assert len((folder / RESULTS_FILE).read_text(encoding="utf-8").splitlines()) == 3
    assert "quickstart-aggregated — varying pools.serve.scheduler.max_batch" in captured.out
    assert "★" in captured.out
    assert "3 points: 3 run, 0 resumed" in captured.err


def seed_results(folder: Path, overrides: dict[str, Any], key: str, values: list[Any],
                 per_mw: float) -> None:
    """results.jsonl as an interrupted run leaves it, with a made-up summary per value
    (``per_mw`` tokens/s per MW), so a point read back cannot pass for one simulated now."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / RESULTS_FILE).open("w", encoding="utf-8") as handle:
        for index, value in enumerate(values):
            scenario = load_scenario(AGGREGATED, {**overrides, key: value})
            summary = {"name": scenario.name, "tokens_per_s_per_user": {"p50": 100.0 - index},
                       "tokens_per_s_per_mw": per_mw + index, "output_tokens_per_s": 1.0,
                       "power_w_mean": 2.0, "ttft_s": {"p99": 0.5}, "slo_attainment": 1.0,
                       "overloaded": False}
            record = {"key": config_key(scenario.resolved), "index": index,
                      "name": f"max_batch={value}", "overrides": {key: value},
                      "summary": summary}
            handle.write(json.dumps(record) + "\n")


def test_an_interrupted_run_resumes_without_running_finished_points(tmp_path, capsys):
    out = tmp_path / "curve"
    seed_results(out, SATURATED, CAP, [1], per_mw=12345.0)
    code = main(["frontier", str(AGGREGATED), "--vary", f"{CAP}=1,32", *SETS,
                 "--executor", "serial", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "2 points: 1 run, 1 resumed" in captured.err
    _, rows = read_csv(out / "frontier.csv")
    assert float(rows[0]["tokens_per_s_per_mw"]) == 12345.0      # read back, not re-run
    assert float(rows[1]["tokens_per_s_per_mw"]) > 12345.0       # simulated now
    assert len((out / RESULTS_FILE).read_text(encoding="utf-8").splitlines()) == 2


def test_without_matplotlib_the_csv_is_written_and_the_png_explained(tmp_path, monkeypatch,
                                                                      capsys):
    out = tmp_path / "curve"
    seed_results(out, {}, CAP, [8, 16], per_mw=1000.0)
    for name in ["matplotlib", *(m for m in sys.modules if m.startswith("matplotlib."))]:
        monkeypatch.setitem(sys.modules, name, None)        # as if not installed
    code = main(["frontier", str(AGGREGATED), "--vary", f"{CAP}=8,16", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "0 run, 2 resumed" in captured.err
    assert 'frontier.png not written: it needs matplotlib (pip install "tokenfactory[plot]")' \
        in captured.err
    assert len(read_csv(out / "frontier.csv")[1]) == 2
    assert not (out / "frontier.png").exists()


@pytest.mark.parametrize(("vary", "start", "says"), [
    (f"{CAP}=8,lots", f"error: {AGGREGATED}: --vary → pools[0].scheduler: expected ",
     "max_batch must be a whole number ≥ 1, got 'lots'"),
    ("pools.serve.scheduler.max_bach=8,16",
     "error: --vary: pools.serve.scheduler.max_bach[0]: expected an option of chunked_prefill",
     "Did you mean 'max_batch'?"),
    (CAP, "error: --vary: expected KEY=V1,V2,... with a dotted key path", f"got '{CAP}'"),
    (f"{CAP}=8,,16", f"error: --vary: {CAP}: expected KEY=V1,V2,...", "none of them empty"),
    (f"{CAP}=8,8", f"error: --vary: {CAP}: expected each value once", "got '8'"),
])
def test_bad_vary_is_refused_in_one_line_naming_the_key(tmp_path, capsys, vary, start, says):
    out = tmp_path / "curve"
    assert main(["frontier", str(AGGREGATED), "--vary", vary, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(start) and says in err
    assert not out.exists()


def test_the_default_knob_is_concurrency_for_a_closed_loop_else_the_batch_cap():
    assert default_axis(load_scenario(DISAGGREGATED)) == (
        "pools.decode.scheduler.max_batch", DEFAULT_VALUES)
    assert default_axis(load_scenario(AGGREGATED)) == (CAP, DEFAULT_VALUES)
    closed = {"workload.arrivals": {"process": "closed_loop", "concurrency": 4}}
    assert default_axis(load_scenario(AGGREGATED, closed)) == (
        "workload.arrivals.concurrency", DEFAULT_VALUES)


def test_python_api_and_cli_share_the_results_folder(tmp_path, capsys):
    out = tmp_path / "curve"
    points = simulator.frontier_curve(DISAGGREGATED, overrides={"workload.requests": 60},
                                      vary=("workload.arrivals.rate_per_s", [10, 40]), out=out)
    assert [(p.value, p.label, p.result.resumed) for p in points] == [
        (10, "10", False), (40, "40", False)]
    assert points[1].output_tokens_per_s > points[0].output_tokens_per_s
    assert points[0].result.summary["scenario"]["workload"]["arrivals"]["rate_per_s"] == 10.0
    assert main(["frontier", str(DISAGGREGATED), "--vary", "workload.arrivals.rate_per_s=10,40",
                 "--set", "workload.requests=60", "--executor", "serial",
                 "--out", str(out)]) == 0
    assert "0 run, 2 resumed" in capsys.readouterr().err
