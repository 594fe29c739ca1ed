"""``tokenfactory compare``: sites side by side, end to end and row by row."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from simulator.economics import SECONDS_PER_YEAR
from simulator.report.compare import _comparison_table, compare_rows

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "scenarios" / "quickstart-disaggregated.yaml"
FIRST = "quickstart-disaggregated"
SITE = {"site_power_mw": 10, "pue": 1.2, "electricity_usd_per_kwh": 0.08,
        "amortisation_years": 5}

# The quickstart's pod from the shipped profiles (as in test_economics): one GB200 NVL72 at
# 120 kW and $3.75M for prefill, one Groq 3 LPX at 122.4 kW and $3.5M per decode replica.
GB200_MAX_W, LPX_MAX_W = 120_000.0, 122_400.0
GB200_USD, LPX_USD = 3.75e6, 3.5e6
PODS_ONE_LPX = math.floor(10e6 / ((GB200_MAX_W + LPX_MAX_W) * 1.2))        # 34
PODS_TWO_LPX = math.floor(10e6 / ((GB200_MAX_W + 2 * LPX_MAX_W) * 1.2))    # 22

BASE_ROWS = ["revenue $/year", "cost $/year", "margin $/year", "cost $ per M tokens",
             "tokens/s per GW", "tokens/s per MW", "tokens per J (facility)",
             "pods in the site", "pod IT power kW", "pod capex $", "tokens/s per user p50",
             "TTFT p99 s", "SLO attainment"]


def tokenfactory(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "simulator", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def scenario(folder: Path, file: str, economics: bool = True, **changes: Any) -> Path:
    """The quickstart with 300 requests and a 10 MW site; ``decode_replicas`` sets the
    decode pool's replicas, anything else replaces a top-level key."""
    data = yaml.safe_load(QUICKSTART.read_text(encoding="utf-8"))
    data["workload"]["requests"] = 300
    if economics:
        data["economics"] = dict(SITE)
    decode = next(p for p in data["pools"] if p["name"] == "decode")
    decode["replicas"] = changes.pop("decode_replicas", decode["replicas"])
    data.update(changes)
    path = folder / file
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def expected_rows(summary: dict[str, Any], tiers: list[str]) -> dict[str, float | None]:
    """Each row's figure read straight from a summary (independently of compare_rows)."""
    site = summary["site"]
    rows: dict[str, float | None] = {
        "revenue $/year": site["revenue_per_year_usd"],
        "cost $/year": site["cost_usd_per_year"],
        "margin $/year": site["revenue_per_year_usd"] - site["cost_usd_per_year"],
        "cost $ per M tokens": site["cost_per_mtok_usd"],
        "tokens/s per GW": 1000 * site["tokens_per_s_per_mw"],
        "tokens/s per MW": site["tokens_per_s_per_mw"],
        "tokens per J (facility)": site["tokens_per_joule"],
        "pods in the site": site["pods"],
        "pod IT power kW": site["pod_it_power_w"] / 1000,
        "pod capex $": site["pod_capex_usd"],
        "tokens/s per user p50": summary["tokens_per_s_per_user"]["p50"],
        "TTFT p99 s": summary["ttft_s"]["p99"],
        "SLO attainment": summary["slo_attainment"],
    }
    for tier in tiers:
        figures = site["tiers"].get(tier)
        rows[f"{tier}: SLO attainment"] = None if figures is None else figures["slo_attainment"]
        rows[f"{tier}: revenue $/year"] = (None if figures is None
                                           else figures["revenue_per_year_usd"])
    return rows


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One ``compare --json --out`` of the quickstart against twice its decode replicas,
    and one ``run --json --out`` of the quickstart, shared by the tests below."""
    folder = tmp_path_factory.mktemp("compare")
    scenario(folder, "a.yaml")
    scenario(folder, "b.yaml", name="double-decode", decode_replicas=2)
    done = tokenfactory("compare", "a.yaml", "b.yaml", "--json", "--out", "cmp",
                        "--workers", "2", cwd=folder)
    run = tokenfactory("run", "a.yaml", "--json", "--out", "run", cwd=folder)
    return {"folder": folder, "done": done, "run": run}


def test_compare_json_rows_match_the_site_blocks_and_run(compared):
    done, run, folder = compared["done"], compared["run"], compared["folder"]
    assert done.returncode == 0, done.stderr
    assert run.returncode == 0, run.stderr
    document = json.loads(done.stdout)
    assert [(s["name"], s["file"]) for s in document["scenarios"]] == [
        (FIRST, "a.yaml"), ("double-decode", "b.yaml")]
    a_site, b_site = (s["site"] for s in document["scenarios"])

    # The site blocks, from the shipped profiles and the economics: block.
    assert (a_site["pods"], b_site["pods"]) == (PODS_ONE_LPX, PODS_TWO_LPX) == (34, 22)
    assert a_site["pod_it_power_w"] == GB200_MAX_W + LPX_MAX_W
    assert b_site["pod_it_power_w"] == GB200_MAX_W + 2 * LPX_MAX_W
    assert a_site["pod_capex_usd"] == GB200_USD + LPX_USD
    assert b_site["pod_capex_usd"] == GB200_USD + 2 * LPX_USD
    for site in (a_site, b_site):
        assert site["site_power_mw"] == 10 and site["pue"] == 1.2
        assert site["revenue_per_year_usd"] > 0 and site["cost_usd_per_year"] > 0

    # Same file, same seed: compare (spawned workers) gives what run gives, to the byte.
    single = json.loads(run.stdout)
    assert a_site == single["site"]
    assert (folder / "cmp" / FIRST / "summary.json").read_bytes() == (
        folder / "run" / "summary.json").read_bytes()

    # Every row is its figure in the two summaries, so every ratio is theirs too.
    summaries = [json.loads((folder / "cmp" / name / "summary.json").read_text())
                 for name in (FIRST, "double-decode")]
    assert [s["site"] for s in summaries] == [a_site, b_site]
    # Tiers in the scenario's order (summary.json sorts its keys; the --json site does not).
    tiers = list(a_site["tiers"])
    assert tiers == ["free", "standard", "premium", "fast"] == list(b_site["tiers"])
    want = [expected_rows(s, tiers) for s in summaries]
    rows = document["rows"]
    assert list(rows) == BASE_ROWS + [f"{t}: {what}" for t in tiers
                                      for what in ("SLO attainment", "revenue $/year")]
    for label, (first, second) in rows.items():
        assert first == pytest.approx(want[0][label], rel=1e-12), label
        assert second == pytest.approx(want[1][label], rel=1e-12), label
        if want[0][label]:
            assert second / first == pytest.approx(want[1][label] / want[0][label],
                                                   rel=1e-12), label

    # The figures behind the headline rows, from the pod's run.
    for summary, site in zip(summaries, (a_site, b_site), strict=True):
        pods = site["pods"]
        revenue_per_s = sum(t["revenue_usd_per_s"] for t in summary["tiers"].values())
        assert site["revenue_per_year_usd"] == pytest.approx(
            pods * revenue_per_s * SECONDS_PER_YEAR, rel=1e-12)
        assert site["tokens_per_s_per_mw"] == pytest.approx(
            pods * summary["output_tokens_per_s"] / 10, rel=1e-12)
        assert site["cost_per_mtok_usd"] == pytest.approx(
            site["cost_usd_per_year"] / (site["tokens_per_s_site"] * SECONDS_PER_YEAR) * 1e6,
            rel=1e-12)
        assert sum(t["revenue_per_year_usd"] for t in site["tiers"].values()) == pytest.approx(
            site["revenue_per_year_usd"], rel=1e-12)
    assert rows["pods in the site"] == [34, 22]
    assert rows["tokens/s per GW"][1] / rows["tokens/s per GW"][0] == pytest.approx(
        22 * summaries[1]["output_tokens_per_s"] / (34 * summaries[0]["output_tokens_per_s"]),
        rel=1e-12)
    assert rows["margin $/year"][1] == pytest.approx(
        b_site["revenue_per_year_usd"] - b_site["cost_usd_per_year"], rel=1e-12)


def test_compare_out_writes_each_scenarios_summary(compared):
    folder = compared["folder"]
    assert compared["done"].returncode == 0, compared["done"].stderr
    assert sorted(p.relative_to(folder / "cmp").as_posix()
                  for p in (folder / "cmp").rglob("*") if p.is_file()) == [
        "double-decode/summary.json", f"{FIRST}/summary.json"]
    for name, decode_replicas in ((FIRST, 1), ("double-decode", 2)):
        summary = json.loads((folder / "cmp" / name / "summary.json").read_text())
        assert summary["scenario"]["name"] == name
        decode = next(p for p in summary["scenario"]["pools"] if p["name"] == "decode")
        assert decode["replicas"] == decode_replicas
        assert summary["requests_completed"] == 300


def _cells(text: str, label: str) -> list[str]:
    """The cells of the table row whose first cell is ``label``."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) > 2 and cells[1] == label:
            return cells[2:-1]
    raise AssertionError(f"no row {label!r} in\n{text}")


def test_compare_table_shows_ratios_and_assumptions_uncut(tmp_path):
    # A long second name makes the table wider than the 160 columns of a pipe: the
    # console must widen rather than cut names and numbers short.
    copy = "identical-copy-of-the-quickstart-under-a-deliberately-long-scenario-name"
    scenario(tmp_path, "a.yaml")
    scenario(tmp_path, "copy.yaml", name=copy)
    scenario(tmp_path, "b.yaml", name="double-decode", decode_replicas=2)
    done = tokenfactory("compare", "a.yaml", "copy.yaml", "b.yaml", "--workers", "2",
                        cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "…" not in text
    assert f"÷ {FIRST}" in text and copy in text
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if "per site" in line)
    assert [c.strip() for c in lines[header].split("┃")][1:-1] == [
        "per site", FIRST, copy, "double-decode", f"÷ {FIRST}", f"÷ {FIRST}"]

    # The identical copy is 1.00× everywhere it has a ratio; the free tier earns nothing.
    assert _cells(text, "pods in the site") == ["34", "34", "22", "1.00×", f"{22 / 34:.2f}×"]
    assert _cells(text, "pod IT power kW") == [
        "242.4", "242.4", "364.8", "1.00×", f"{364.8 / 242.4:.2f}×"]
    assert _cells(text, "pod capex $") == ["7.25e+06", "7.25e+06", "1.075e+07", "1.00×",
                                           f"{10.75 / 7.25:.2f}×"]
    assert _cells(text, "free: revenue $/year") == ["0", "0", "0", "—", "—"]
    revenue = _cells(text, "revenue $/year")
    assert revenue[0] == revenue[1] and revenue[3] == "1.00×"
    for label in BASE_ROWS:
        assert _cells(text, label)[3] in ("1.00×", "—"), label

    assert "Assumptions" in text
    assert _cells(text, "site_power_mw")[:4] == ["MW", "10", "10", "10"]
    assert _cells(text, "pue")[:4] == ["facility W / IT W", "1.2", "1.2", "1.2"]
    assert _cells(text, "systems_per_pod.groq3-lpx")[:4] == ["systems", "1", "1", "2"]
    assert _cells(text, "price_usd_per_system.gb200-nvl72")[:4] == [
        "USD", "3.75e+06", "3.75e+06", "3.75e+06"]
    price = _cells(text, "price_usd_per_system.groq3-lpx")
    assert price[:4] == ["USD", "3.5e+06", "3.5e+06", "3.5e+06"]
    assert price[4].startswith("profile groq3-lpx: system.price_usd")
    assert _cells(text, "price_usd_per_mtok.fast")[:4] == ["USD per M tokens", "45", "45", "45"]


def test_scenario_without_economics_exits_2_before_running_any(tmp_path):
    scenario(tmp_path, "a.yaml")
    scenario(tmp_path, "plain.yaml", economics=False, name="plain")
    done = tokenfactory("compare", "a.yaml", "plain.yaml", "--out", "o", cwd=tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and done.stdout == ""
    line = done.stderr.strip()
    assert "\n" not in line
    assert line.startswith("error: plain.yaml: economics: expected an economics: block"), line
    assert "site_power_mw" in line                     # says what to add
    assert not (tmp_path / "o").exists()               # checked before anything ran


def test_two_scenarios_with_one_name_exit_2(tmp_path):
    scenario(tmp_path, "a.yaml")
    scenario(tmp_path, "same.yaml", decode_replicas=2)
    done = tokenfactory("compare", "a.yaml", "same.yaml", cwd=tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and done.stdout == ""
    line = done.stderr.strip()
    assert "\n" not in line
    assert line.startswith("error: same.yaml: name: expected a scenario name"), line
    assert repr(FIRST) in line


def test_missing_file_exits_2(tmp_path):
    scenario(tmp_path, "a.yaml")
    done = tokenfactory("compare", "a.yaml", "nope.yaml", cwd=tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert done.stderr.startswith("error: nope.yaml") and "exists" in done.stderr


def synthetic(revenue: float, cost: float, tiers: dict[str, tuple[float, float]]
              ) -> dict[str, Any]:
    """The keys compare_rows reads; tiers as name: (SLO attainment, revenue per year)."""
    return {
        "site": {"revenue_per_year_usd": revenue, "cost_usd_per_year": cost,
                 "cost_per_mtok_usd": 2.5, "tokens_per_s_per_mw": 20_000.0,
                 "tokens_per_joule": 0.05, "pods": 30, "pod_it_power_w": 250_000.0,
                 "pod_capex_usd": 7e6,
                 "tiers": {name: {"slo_attainment": slo, "revenue_per_year_usd": rev}
                           for name, (slo, rev) in tiers.items()}},
        "tokens_per_s_per_user": {"p50": 900.0},
        "ttft_s": {"p99": 0.25},
        "slo_attainment": 0.9,
    }


def test_compare_rows_tier_order_margin_and_missing_tiers():
    first = synthetic(3e7, 5e7, {"premium": (0.8, 1e7), "free": (1.0, 0.0)})
    second = synthetic(6e7, 4e7, {"fast": (0.5, 4e7), "premium": (0.9, 2e7)})
    rows = compare_rows([first, second])
    labels = [label for label, _, _ in rows]
    assert labels == [*BASE_ROWS, "premium: SLO attainment", "premium: revenue $/year",
                      "free: SLO attainment", "free: revenue $/year",
                      "fast: SLO attainment", "fast: revenue $/year"]
    values = {label: [read(first), read(second)] for label, read, _ in rows}
    assert values["margin $/year"] == [3e7 - 5e7, 6e7 - 4e7]
    assert values["tokens/s per GW"] == [2e7, 2e7]
    assert values["pod IT power kW"] == [250.0, 250.0]
    assert values["premium: revenue $/year"] == [1e7, 2e7]
    assert values["free: SLO attainment"] == [1.0, None]       # the second has no free tier
    assert values["fast: revenue $/year"] == [None, 4e7]       # nor the first a fast one
    assert values["TTFT p99 s"] == [0.25, 0.25]

    console = Console(width=300, record=True)
    console.print(_comparison_table(["one", "two"], [first, second], rows))
    text = console.export_text()
    # no ratio to a loss: it would read as a gain
    assert _cells(text, "margin $/year") == ["-2e+07", "2e+07", "—"]
    assert _cells(text, "premium: revenue $/year") == ["1e+07", "2e+07", "2.00×"]
    assert _cells(text, "free: SLO attainment") == ["100.0%", "—", "—"]
    assert _cells(text, "fast: revenue $/year") == ["—", "4e+07", "—"]
    assert _cells(text, "free: revenue $/year") == ["0", "—", "—"]
