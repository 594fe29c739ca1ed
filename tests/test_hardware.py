"""Hardware profiles: every shipped file loads with full provenance, and bad files are
refused with the file, the dotted key and a hint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from simulator.errors import ScenarioError
from simulator.hardware import TAGS, SystemProfile, load_profile, provenance_counts
from simulator.resources import find_profile, list_profiles

SHIPPED = (
    "h100-sxm", "gb200-nvl72", "vera-rubin-nvl72", "groq3-lpx", "groq-lpu-v1",
    "h200-sxm", "b200", "b300", "gb300-nvl72", "cerebras-cs3", "mi300x", "mi325x", "mi355x",
    "ascend-910c-cloudmatrix384", "tpu-v6e", "tpu-ironwood",
)


def _raw(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(find_profile(name).read_text(encoding="utf-8"))
    return data


def _write(tmp_path: Path, data: dict[str, Any], stem: str = "broken") -> Path:
    path = tmp_path / f"{stem}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def test_the_shipped_set_is_the_expected_one() -> None:
    assert {p.stem for p in list_profiles()} >= set(SHIPPED)


@pytest.mark.parametrize("path", list_profiles(), ids=lambda p: p.stem)
def test_every_shipped_profile_loads_with_provenance(path: Path) -> None:
    profile = load_profile(path.stem)
    assert isinstance(profile, SystemProfile)
    assert profile.name == path.stem == _raw(path.stem)["name"]
    assert profile.kind in ("gpu", "lpu")
    # 1 chips_per_system + 9 chip + 3 system + 8 efficiency figures, plus one per dtype.
    assert len(profile.figures) == 21 + len(profile.dense_flops_per_s)
    for key, figure in profile.figures.items():
        assert figure.source in profile.sources, key
        assert figure.tag in TAGS, key
        # Anything not copied from a publication must say how it was reached.
        if figure.tag in ("estimate", "derived", "fitted"):
            assert figure.note.strip(), key
    assert sum(provenance_counts(profile).values()) == len(profile.figures)
    assert profile.idle_power_w <= profile.max_power_w
    if profile.kind == "gpu":
        assert profile.layer_sync_latency_s == 0.0
    else:
        assert profile.layer_sync_latency_s > 0.0


def test_h100_figures() -> None:
    h100 = load_profile("h100-sxm")
    assert h100.flops_for("fp8") == 1978.9e12
    assert h100.flops_for("bf16") == 989.4e12
    assert h100.chips_per_system == 8 == h100.scaleup_domain_chips
    # NVLink 4 is 900 GB/s both ways -> 450 GB/s per direction.
    assert h100.scaleup_bandwidth_bytes_per_s == 450e9
    # leaving the NVLink domain is never quicker than staying in it
    assert h100.scaleout_latency_s == 10e-6 > h100.scaleup_latency_s
    # 8 GPUs × 700 W + 2,400 W of host, switches and fans = 8,000 W (the 8.0 kW IT figure).
    assert h100.system_max_power_w == 8000.0
    # 8 × 175 W + 2,400 W = 3,800 W.
    assert h100.system_idle_power_w == 3800.0
    assert "fp4" not in h100.dense_flops_per_s


def test_rack_power_matches_published_rack_budgets() -> None:
    # GB200 NVL72: 72 × 1,200 W + 33,600 W = 120,000 W, the ~120 kW typical quote.
    assert load_profile("gb200-nvl72").system_max_power_w == 120_000.0
    # Vera Rubin NVL72: 72 × 1,800 W + 60,400 W = 190,000 W, the Max-Q end of 190–230 kW.
    assert load_profile("vera-rubin-nvl72").system_max_power_w == 190_000.0
    # Groq 3 LPX: 256 × 400 W + 20,000 W = 122,400 W, inside the 100–150 kW placeholder.
    assert load_profile("groq3-lpx").system_max_power_w == 122_400.0


def test_vera_rubin_uses_dense_equivalent_fp4() -> None:
    vr = load_profile("vera-rubin-nvl72")
    assert vr.flops_for("fp4") == 35e15
    # 1.2 EF FP8 per rack ÷ 72 = 16.67 PF, quoted as 16.7 PF.
    assert vr.flops_for("fp8") == pytest.approx(1.2e18 / 72, rel=0.01)
    assert vr.figures["chip.dense_flops_per_s.fp8"].tag == "derived"
    assert vr.memory_bytes == 288e9
    assert vr.memory_bandwidth_bytes_per_s == 22e12


def test_groq3_has_no_fp4_and_says_so() -> None:
    lpx = load_profile("groq3-lpx")
    assert "fp4" not in lpx.dense_flops_per_s
    # 315 PF per rack ÷ 256 LPUs = 1.23 PF.
    assert lpx.flops_for("fp8") == pytest.approx(315e15 / 256, rel=0.001)
    # 2.5 TB/s both ways -> 1.25 TB/s per direction.
    assert lpx.scaleup_bandwidth_bytes_per_s == 1.25e12
    with pytest.raises(ScenarioError) as caught:
        lpx.flops_for("fp4")
    message = str(caught.value)
    assert "groq3-lpx.yaml" in message
    assert "chip.dense_flops_per_s.fp4" in message
    assert "fp8" in message


def test_groq_v1_sync_latency_reproduces_published_decode_speed() -> None:
    v1 = load_profile("groq-lpu-v1")
    assert set(v1.dense_flops_per_s) == {"fp16", "int8"}
    chips, layers, weight_bytes = 576, 80, 138e9
    sram_s = weight_bytes / (chips * v1.memory_bandwidth_bytes_per_s * v1.memory_efficiency)
    # 138e9 / (576 × 80e12 × 0.9) = 3.3 µs for the whole model's weights.
    assert sram_s == pytest.approx(3.33e-6, rel=0.01)
    token_s = layers * v1.layer_sync_latency_s + v1.step_overhead_s + sram_s
    # 80 × 40 µs + 20 µs + 3.3 µs = 3.223 ms -> 310 tok/s, between the published 285 and 330.
    assert token_s == pytest.approx(3.2233e-3, rel=1e-3)
    assert 285 < 1 / token_s < 330
    assert v1.figures["efficiency.layer_sync_latency_s"].tag == "fitted"



def test_h200_is_an_h100_with_more_memory() -> None:
    h100, h200 = load_profile("h100-sxm"), load_profile("h200-sxm")
    assert h200.dense_flops_per_s == h100.dense_flops_per_s
    assert h200.memory_bytes == 141e9
    assert h200.memory_bandwidth_bytes_per_s == 4.8e12
    assert h200.max_power_w == 700.0
    assert "fp4" not in h200.dense_flops_per_s


def test_blackwell_hgx_figures_are_dense() -> None:
    b200 = load_profile("b200")
    # NVIDIA's 18 PF FP4 headline is with 2:4 sparsity; dense is 9 PF.
    assert b200.flops_for("fp4") == 9e15
    assert b200.flops_for("fp8") == 4.5e15
    assert b200.memory_bytes == 180e9            # MLPerf "B200-SXM-180GB"
    # 8 × 1,000 W + 2,600 W = 10.6 kW, the SemiAnalysis IT figure for an 8 × B200 node.
    assert b200.system_max_power_w == 10_600.0
    b300 = load_profile("b300")
    assert b300.flops_for("fp4") == 14e15
    # Blackwell Ultra cuts INT8: 0.15 POPS against B200's 4.5.
    assert b300.flops_for("int8") == 0.15e15 < b200.flops_for("int8")
    assert b300.memory_bytes == 270e9
    # ConnectX-8 at 800 Gb/s is twice ConnectX-7's 50 GB/s per direction.
    assert b300.scaleout_bandwidth_bytes_per_s == 100e9 == 2 * b200.scaleout_bandwidth_bytes_per_s


def test_gb300_per_gpu_figures_add_up_to_the_rack() -> None:
    gb300 = load_profile("gb300-nvl72")
    n = gb300.chips_per_system
    assert n == 72 == gb300.scaleup_domain_chips
    assert n * gb300.flops_for("fp4") == pytest.approx(1080e15)   # 1,080 PF dense FP4
    assert n * gb300.flops_for("fp8") == pytest.approx(360e15)
    assert n * gb300.flops_for("bf16") == pytest.approx(180e15)
    assert n * gb300.memory_bandwidth_bytes_per_s == pytest.approx(576e12)
    # 72 × 1,400 W + 35,200 W = 136 kW, Microsoft's figure inside the 120–140 kW quotes.
    assert gb300.system_max_power_w == 136_000.0


def test_amd_instinct_figures() -> None:
    mi300x = load_profile("mi300x")
    assert mi300x.memory_bytes == 192e9
    assert mi300x.memory_bandwidth_bytes_per_s == 5.3e12
    assert mi300x.flops_for("bf16") == 1307.4e12
    assert mi300x.flops_for("fp8") == 2614.9e12          # 5,229.8 with sparsity
    # 896 GB/s aggregate Infinity Fabric, both directions -> 448 GB/s per direction.
    assert mi300x.scaleup_bandwidth_bytes_per_s == 448e9
    assert mi300x.max_power_w == 750.0
    assert "fp4" not in mi300x.dense_flops_per_s
    mi325x = load_profile("mi325x")
    assert mi325x.dense_flops_per_s == mi300x.dense_flops_per_s
    assert (mi325x.memory_bytes, mi325x.memory_bandwidth_bytes_per_s) == (256e9, 6.0e12)
    assert mi325x.max_power_w == 1000.0
    mi355x = load_profile("mi355x")
    assert (mi355x.memory_bytes, mi355x.memory_bandwidth_bytes_per_s) == (288e9, 8e12)
    assert mi355x.flops_for("fp4") == 10e15
    assert mi355x.max_power_w == 1400.0
    for amd in (mi300x, mi325x, mi355x):
        assert amd.chips_per_system == 8 == amd.scaleup_domain_chips


def test_cloudmatrix_per_npu_figures_add_up_to_the_supernode() -> None:
    cm = load_profile("ascend-910c-cloudmatrix384")
    assert cm.chips_per_system == 384 == cm.scaleup_domain_chips
    # SemiAnalysis supernode totals: ~300 PF BF16, 49.2 TB HBM, 1,229 TB/s, ~559 kW.
    assert 384 * cm.flops_for("bf16") == pytest.approx(300e15, rel=0.01)
    assert 384 * cm.memory_bytes == pytest.approx(49.2e12, rel=0.01)
    assert 384 * cm.memory_bandwidth_bytes_per_s == pytest.approx(1229e12, rel=0.01)
    assert cm.system_max_power_w == 559_000.0
    assert "fp8" not in cm.dense_flops_per_s


def test_tpu_figures() -> None:
    v6e = load_profile("tpu-v6e")
    assert v6e.chips_per_system == 256 == v6e.scaleup_domain_chips
    assert 256 * v6e.flops_for("bf16") == pytest.approx(234.9e15, rel=0.001)
    assert v6e.memory_bytes == 32e9
    # ICI 800 GB/s both ways -> 400 GB/s per direction.
    assert v6e.scaleup_bandwidth_bytes_per_s == 400e9
    assert "fp8" not in v6e.dense_flops_per_s
    iw = load_profile("tpu-ironwood")
    # 9,216 chips × 4.614 PF = 42.5 EF FP8 and × 192 GB = 1.77 PB, the published pod totals.
    assert iw.scaleup_domain_chips * iw.flops_for("fp8") == pytest.approx(42.5e18, rel=0.001)
    assert iw.scaleup_domain_chips * iw.memory_bytes == pytest.approx(1.77e15, rel=0.001)
    assert iw.scaleup_domain_chips % iw.chips_per_system == 0      # 144 cubes of 64
    assert iw.scaleup_bandwidth_bytes_per_s == 600e9              # 1.2 TB/s bidirectional


def test_cerebras_is_one_wafer_per_system_and_matches_its_405b_speed() -> None:
    cs3 = load_profile("cerebras-cs3")
    assert cs3.kind == "lpu"
    assert cs3.chips_per_system == 1
    assert cs3.memory_bytes == 44e9
    assert cs3.memory_bandwidth_bytes_per_s == 21e15
    # ~23 kW per CS-3 system.
    assert cs3.system_max_power_w == 23_000.0
    # 125 PF quoted, taken as sparse and halved.
    assert cs3.flops_for("fp16") == 62.5e15
    # Llama 3.1 405B in bf16 on 21 wafers: per-layer sync, wafer-to-wafer hops and SRAM reads.
    wafers, layers, hidden, weight_bytes = 21, 126, 16384, 810e9
    hop_s = hidden * 2 / (cs3.scaleout_bandwidth_bytes_per_s * cs3.network_efficiency)
    pipeline_s = (wafers - 1) * (hop_s + cs3.scaleout_latency_s)
    sram_s = weight_bytes / (wafers * cs3.memory_bandwidth_bytes_per_s * cs3.memory_efficiency)
    token_s = layers * cs3.layer_sync_latency_s + cs3.step_overhead_s + pipeline_s + sram_s
    # 907 + 20 + 105 + 2 µs = 1,034 µs -> 967 tok/s, within 1 % of the reported 969.
    assert 1 / token_s == pytest.approx(969, rel=0.01)

def test_numeric_strings_are_accepted(tmp_path: Path) -> None:
    data = _raw("h100-sxm")
    data["chip"]["dense_flops_per_s"]["bf16"]["value"] = "989.4e12"
    profile = load_profile(_write(tmp_path, data))
    assert profile.flops_for("bf16") == 989.4e12
    assert profile.name == "broken"


def test_typo_key_is_refused_with_suggestion(tmp_path: Path) -> None:
    data = _raw("h100-sxm")
    data["chip"]["memroy_bytes"] = data["chip"].pop("memory_bytes")
    path = _write(tmp_path, data)
    with pytest.raises(ScenarioError) as caught:
        load_profile(path)
    message = str(caught.value)
    assert "broken.yaml" in message
    assert "chip.memroy_bytes" in message
    assert "Did you mean 'memory_bytes'?" in message


def test_negative_bandwidth_is_refused(tmp_path: Path) -> None:
    data = _raw("gb200-nvl72")
    data["chip"]["memory_bandwidth_bytes_per_s"]["value"] = -8.0e12
    with pytest.raises(ScenarioError) as caught:
        load_profile(_write(tmp_path, data))
    message = str(caught.value)
    assert "broken.yaml" in message
    assert "chip.memory_bandwidth_bytes_per_s.value" in message
    assert "> 0" in message


def test_missing_tag_is_refused(tmp_path: Path) -> None:
    data = _raw("groq3-lpx")
    del data["system"]["price_usd"]["tag"]
    with pytest.raises(ScenarioError) as caught:
        load_profile(_write(tmp_path, data))
    message = str(caught.value)
    assert "broken.yaml" in message
    assert "system.price_usd.tag" in message


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (lambda d: d["chip"]["memory_bytes"].update(tag="rumour"), "chip.memory_bytes.tag"),
        (lambda d: d["chip"]["memory_bytes"].update(source="S99"), "chip.memory_bytes.source"),
        (lambda d: d["chip"]["memory_bytes"].update(source=["S1"]), "chip.memory_bytes.source"),
        (lambda d: d["chip"].pop("max_power_w"), "chip.max_power_w"),
        (lambda d: d.update(schema_version=2), "schema_version"),
        (lambda d: d["efficiency"]["compute"].update(value=1.4), "efficiency.compute.value"),
        (lambda d: d["chip"]["dense_flops_per_s"].update(fp6={"value": 1, "source": "S1",
                                                              "tag": "vendor"}),
         "chip.dense_flops_per_s.fp6"),
        (lambda d: d["system"]["scaleup_domain_chips"].update(value=7.5),
         "system.scaleup_domain_chips.value"),
        (lambda d: d["chip"]["idle_power_w"].update(value=900.0), "chip.idle_power_w.value"),
        (lambda d: d["chip"]["max_power_w"].update(value="lots"), "chip.max_power_w.value"),
        (lambda d: d.update(kind="tpu"), "kind"),
        (lambda d: d["system"].pop("price_usd"), "system.price_usd"),
    ],
)
def test_other_faults_name_the_key(tmp_path: Path, mutate: Any, key: str) -> None:
    data = _raw("h100-sxm")
    mutate(data)
    with pytest.raises(ScenarioError) as caught:
        load_profile(_write(tmp_path, data))
    assert caught.value.key == key
    assert caught.value.file.endswith("broken.yaml")


def test_unknown_name_is_reported_where_it_was_written() -> None:
    with pytest.raises(ScenarioError) as caught:
        load_profile("h100-sx", file="scenario.yaml", key="pools[0].system")
    message = str(caught.value)
    assert "scenario.yaml: pools[0].system" in message
    assert "Did you mean 'h100-sxm'?" in message


def test_loading_by_name_works_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_profile("groq3-lpx").chips_per_system == 256
