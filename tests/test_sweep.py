"""Sweeps: expansion of the sweep: block, validation, resume, executors, frontier, CLI."""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import simulator
from simulator import ScenarioError, load_scenario
from simulator.cli import main
from simulator.sweep import (
    RESULTS_FILE,
    SweepResult,
    config_key,
    expand_sweep,
    frontier,
    pareto_frontier,
    run_sweep,
)

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = yaml.safe_load((ROOT / "scenarios" / "quickstart-disaggregated.yaml").read_text())
SMALL = {"workload.requests": 60}


def write(tmp_path: Path, sweep: Any, name: str = "study.yaml") -> Path:
    data = copy.deepcopy(QUICKSTART)
    data["sweep"] = sweep
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def refusal(path: Path, **kwargs: Any) -> ScenarioError:
    with pytest.raises(ScenarioError) as caught:
        expand_sweep(path, SMALL, **kwargs)
    return caught.value


def test_grid_is_the_cartesian_product_in_the_order_keys_are_written(tmp_path):
    path = write(tmp_path, {"grid": {"pools.decode.replicas": [1, 2],
                                     "workload.arrivals.rate_per_s": [20, 40, 80]}})
    variants = expand_sweep(path, SMALL)
    assert [list(v.overrides.values()) for v in variants] == [
        [1, 20], [1, 40], [1, 80], [2, 20], [2, 40], [2, 80]]
    assert [v.index for v in variants] == list(range(6))
    assert variants[0].name == "replicas=1, rate_per_s=20"
    assert variants[5].name == "replicas=2, rate_per_s=80"
    assert {v.scenario for v in variants} == {"quickstart-disaggregated"}
    assert len({v.key for v in variants}) == 6
    # The key is the hash of what the variant resolves to, --set included.
    expected = load_scenario(path, {**SMALL, "pools.decode.replicas": 2,
                                    "workload.arrivals.rate_per_s": 40})
    assert variants[4].key == config_key(expected.resolved)
    # `run` on the same file simulates the base scenario only.
    base = load_scenario(path, SMALL)
    assert base.pools[1].replicas == 1
    assert base.workload.arrivals.rate_per_s == 40.0
    assert "sweep" not in base.resolved


def test_names_keep_the_shortest_unambiguous_key_tail(tmp_path):
    path = write(tmp_path, {"grid": {"pools.decode.replicas": [1],
                                     "pools.prefill.replicas": [9, 18]}})
    assert [v.name for v in expand_sweep(path, SMALL)] == [
        "decode.replicas=1, prefill.replicas=9", "decode.replicas=1, prefill.replicas=18"]


def test_list_items_times_grid(tmp_path):
    path = write(tmp_path, {
        "list": [{"name": "small", "set": {"pools.decode.replicas": 1}},
                 {"set": {"pools.decode.chips_per_replica": 512}}],
        "grid": {"workload.arrivals.rate_per_s": [20, 40]},
    })
    variants = expand_sweep(path, SMALL)
    assert [v.name for v in variants] == [
        "small, rate_per_s=20", "small, rate_per_s=40",
        "chips_per_replica=512, rate_per_s=20", "chips_per_replica=512, rate_per_s=40"]
    assert variants[2].overrides == {"pools.decode.chips_per_replica": 512,
                                     "workload.arrivals.rate_per_s": 20}


def test_a_list_alone_gives_one_variant_per_item_and_seed_applies_to_all(tmp_path):
    path = write(tmp_path, {"list": [{"set": {"pools.decode.replicas": 1}},
                                     {"set": {"pools.decode.replicas": 2}}]})
    variants = expand_sweep(path, SMALL, seed=3)
    assert [v.name for v in variants] == ["replicas=1", "replicas=2"]
    assert all(v.seed == 3 for v in variants)
    assert variants[0].key == config_key(load_scenario(path, SMALL, seed=3).resolved)


def test_a_bad_variant_is_refused_before_anything_runs_naming_where_it_came_from(tmp_path):
    path = write(tmp_path, {"list": [{"set": {"pools.decode.replicas": 1}},
                                     {"set": {"pools.decode.replicas": 2}},
                                     {"name": "typo", "set": {"pools.decode.system": "nope"}}]})
    error = refusal(path)
    assert error.key == "sweep.list[2].set.pools.decode.system"
    assert error.got == "nope"
    assert str(error).startswith(f"{path}: sweep.list[2].set.pools.decode.system: expected ")
    assert "sweep variant 'typo'" in str(error)

    error = refusal(write(tmp_path, {"grid": {"pools.decode.replicas": [1, 0]}}))
    assert (error.key, error.got) == ("sweep.grid.pools.decode.replicas[1]", 0)

    error = refusal(write(tmp_path, {"list": [{"set": {"pools.decode.sytem": "x"}}]}))
    assert error.key == "sweep.list[0].set.pools.decode.sytem"
    assert "Did you mean 'system'?" in str(error)

    # A failure the override does not name itself still names the variant's entry.
    error = refusal(write(tmp_path, {"list": [{"set": {"model": "llama-3.1-405b"}}]}))
    assert error.key == "sweep.list[0] → pools[1].chips_per_replica"


@pytest.mark.parametrize(("block", "key"), [
    ({"grdi": {"seed": [1]}}, "sweep.grdi"),
    ({}, "sweep"),
    ({"grid": {"seed": []}}, "sweep.grid.seed"),
    ({"grid": {"seed": 3}}, "sweep.grid.seed"),
    ({"list": []}, "sweep.list"),
    ({"list": [{"name": "a"}]}, "sweep.list[0].set"),
    ({"list": [{"set": {"seed": 1}, "nmae": "a"}]}, "sweep.list[0].nmae"),
    ({"list": [{"name": "a", "set": {"seed": 1}}, {"name": "a", "set": {"seed": 2}}]},
     "sweep.list[1]"),
    ({"list": [{"set": {"seed": 1}}], "grid": {"seed": [2]}}, "sweep.grid.seed"),
    ({"list": [{"set": {"seed": 1}}, {"set": {"seed": 1, "pools.decode.replicas": 1}}]},
     "sweep.list[1]"),
])
def test_a_malformed_block_is_refused_with_its_key(tmp_path, block, key):
    assert refusal(write(tmp_path, block)).key == key


def test_run_checks_the_block_too_and_sweep_needs_one(tmp_path):
    with pytest.raises(ScenarioError) as caught:
        load_scenario(write(tmp_path, {"grid": 3}))
    assert caught.value.key == "sweep.grid"
    plain = ROOT / "scenarios" / "quickstart-aggregated.yaml"
    assert refusal(plain).key == "sweep"


def _records(folder: Path) -> list[dict[str, Any]]:
    lines = (folder / RESULTS_FILE).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_results_are_appended_and_a_rerun_resumes(tmp_path):
    path = write(tmp_path, {"grid": {"workload.arrivals.rate_per_s": [10, 20, 30]}})
    out = tmp_path / "out"
    seen: list[tuple[int, int]] = []
    first = simulator.sweep(path, overrides=SMALL, out=out,
                            progress=lambda done, total: seen.append((done, total)))
    assert seen == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert [r.resumed for r in first] == [False] * 3
    records = _records(out)
    assert [list(r) for r in records] == [["key", "index", "name", "overrides", "summary"]] * 3
    assert [r["key"] for r in records] == [r.key for r in first]
    assert [r["overrides"] for r in records] == [{"workload.arrivals.rate_per_s": x}
                                                 for x in (10, 20, 30)]
    assert [r["summary"] for r in records] == [r.summary for r in first]
    assert first[1].summary["requests_completed"] == 60
    assert first[1].summary["scenario"]["workload"]["arrivals"]["rate_per_s"] == 20.0

    seen.clear()
    again = simulator.sweep(path, overrides=SMALL, out=out,
                            progress=lambda done, total: seen.append((done, total)))
    assert seen == [(3, 3)]
    assert [r.resumed for r in again] == [True] * 3
    assert [r.summary for r in again] == [r.summary for r in first]
    assert len(_records(out)) == 3

    # A crash in the middle of the last line: only that variant runs again.
    text = (out / RESULTS_FILE).read_bytes()
    (out / RESULTS_FILE).write_bytes(text[:-40])
    third = simulator.sweep(path, overrides=SMALL, out=out)
    assert [r.resumed for r in third] == [True, True, False]
    assert [r.summary for r in third] == [r.summary for r in first]
    assert [r["key"] for r in _records(out)] == [r.key for r in first]


def test_a_results_file_with_a_foreign_line_is_refused(tmp_path):
    path = write(tmp_path, {"grid": {"seed": [1]}})
    out = tmp_path / "out"
    out.mkdir()
    (out / RESULTS_FILE).write_text("not json\n", encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        simulator.sweep(path, overrides=SMALL, out=out)
    assert caught.value.key == "line 1"


def test_serial_and_process_executors_give_identical_summaries(tmp_path):
    path = write(tmp_path, {"list": [{"set": {"pools.decode.replicas": 1}},
                                     {"set": {"pools.decode.replicas": 2}}]})
    variants = expand_sweep(path, SMALL)
    serial = run_sweep(variants)
    process = run_sweep(variants, executor="process", workers=2)
    assert [r.summary for r in process] == [r.summary for r in serial]
    assert [r.summary["pools"]["decode"]["replicas"] for r in serial] == [1, 2]
    assert serial[0].summary["output_tokens"] > 0


def test_ray_gives_the_same_summaries_as_serial(tmp_path):
    pytest.importorskip("ray")
    path = write(tmp_path, {"grid": {"seed": [1, 2]}})
    variants = expand_sweep(path, SMALL)
    assert ([r.summary for r in run_sweep(variants, executor="ray")]
            == [r.summary for r in run_sweep(variants)])


@pytest.mark.parametrize(("options", "key"), [
    ({"executor": "threads"}, "executor"),
    ({"executor": "serial", "workers": 2}, "workers"),
    ({"executor": "process", "workers": 0}, "workers"),
    ({"executor": "process", "address": "ray://x:10001"}, "address"),
])
def test_executor_options_are_checked(tmp_path, options, key):
    path = write(tmp_path, {"grid": {"seed": [1]}})
    with pytest.raises(ScenarioError) as caught:
        simulator.sweep(path, overrides=SMALL, **options)
    assert caught.value.key == key


def test_pareto_frontier_on_hand_made_points():
    points = [(10.0, 100.0), (20.0, 50.0), (15.0, 60.0), (5.0, 200.0), (10.0, 90.0),
              (None, 300.0), (20.0, 50.0), (4.0, 199.0)]
    assert pareto_frontier(points) == [0, 1, 2, 3, 6]
    assert pareto_frontier([]) == []

    def result(name: str, per_user: float, per_mw: float, overloaded: bool) -> SweepResult:
        summary = {"tokens_per_s_per_user": {"p50": per_user}, "tokens_per_s_per_mw": per_mw,
                   "overloaded": overloaded}
        return SweepResult(0, name, name, {}, summary)

    results = [result("slow", 10, 100, False), result("fast", 50, 20, False),
               result("dominated", 9, 90, False), result("overloaded", 60, 500, True)]
    assert frontier(results) == ["slow", "fast"]


def tokenfactory(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "simulator", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_cli_sweep_prints_a_table_then_resumes_as_json(tmp_path):
    path = write(tmp_path, {"list": [{"name": "one-lpx", "set": {"pools.decode.replicas": 1}},
                                     {"name": "two-lpx", "set": {"pools.decode.replicas": 2}}]})
    small = ("--set", "workload.requests=60", "--set", "workload.arrivals.rate_per_s=20")
    first = tokenfactory("sweep", str(path), *small, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    rows = [i for i, line in enumerate(lines) if "one-lpx" in line or "two-lpx" in line]
    assert len(rows) == 2 and "one-lpx" in lines[rows[0]] and "two-lpx" in lines[rows[1]]
    # each pool cell: its system on the variant's line, chips and whole systems below
    assert "gb200-nvl72" in lines[rows[1]] and "groq3-lpx" in lines[rows[1]]
    assert "18×4=72 chips, 1 sys" in lines[rows[1] + 1]
    assert "2×256=512 chips, 2 sys" in lines[rows[1] + 1]
    assert "★" in first.stdout
    assert "2 run, 0 resumed" in first.stderr
    folder = tmp_path / "out" / "quickstart-disaggregated-sweep"
    assert len(_records(folder)) == 2

    second = tokenfactory("sweep", str(path), *small, "--executor", "serial", "--json",
                          cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "0 run, 2 resumed" in second.stderr
    document = json.loads(second.stdout)
    assert document["scenario"] == "quickstart-disaggregated"
    assert [v["name"] for v in document["variants"]] == ["one-lpx", "two-lpx"]
    assert [list(v) for v in document["variants"]] == [["name", "key", "overrides",
                                                         "summary"]] * 2
    # the file is in finishing order, which worker processes do not fix
    on_file = sorted(_records(folder), key=lambda r: r["index"])
    assert [v["summary"] for v in document["variants"]] == [r["summary"] for r in on_file]
    one, two = (v["summary"] for v in document["variants"])
    assert not one["overloaded"] and not two["overloaded"]
    # A second decode rack for the same traffic costs power without adding tokens.
    assert one["tokens_per_s_per_mw"] > 1.4 * two["tokens_per_s_per_mw"]
    faster = two["tokens_per_s_per_user"]["p50"] > one["tokens_per_s_per_user"]["p50"]
    assert document["frontier"] == (["one-lpx", "two-lpx"] if faster else ["one-lpx"])


def test_cli_refuses_a_bad_sweep_key_in_one_line(tmp_path, capsys):
    path = write(tmp_path, {"grdi": {"seed": [1, 2]}})
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"error: {path}: sweep.grdi: expected one of the keys grid, list")
    assert "Did you mean 'grid'?" in err
    assert not (tmp_path / "out").exists()


def test_cli_explains_a_missing_ray(tmp_path, capsys):
    if importlib.util.find_spec("ray") is not None:
        pytest.skip("ray is installed")
    path = write(tmp_path, {"grid": {"seed": [1]}})
    assert main(["sweep", str(path), "--executor", "ray"]) == 2
    assert "pip install 'tokenfactory[ray]'" in capsys.readouterr().err
