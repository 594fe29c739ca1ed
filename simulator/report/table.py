"""Rich tables for the terminal: the only place that formats numbers for people."""

from __future__ import annotations

from typing import Any

from rich.table import Table

__all__ = [
    "profiles_tables",
    "provenance_tables",
    "summary_tables",
]


def _ms(stats: dict[str, Any], key: str) -> str:
    value = stats.get(key)
    return "—" if value is None else f"{value * 1e3:,.1f}"


def number_cell(value: float | None, fmt: str = ",.1f", scale: float = 1.0) -> str:
    """A table cell: the value scaled and formatted, or a dash where there is none."""
    return "—" if value is None else format(value * scale, fmt)


def summary_tables(summary: dict[str, Any]) -> list[Table]:
    latency = Table(title=f"{summary['name']} — latency (ms)", title_justify="left")
    latency.add_column("metric")
    for col in ("mean", "p50", "p90", "p99"):
        latency.add_column(col, justify="right")
    for key, label in (("ttft_s", "TTFT"), ("tpot_s", "TPOT"), ("itl_s", "ITL"),
                       ("e2e_s", "end to end"), ("queue_wait_s", "queue wait")):
        stats = summary[key]
        latency.add_row(label, *(_ms(stats, q) for q in ("mean", "p50", "p90", "p99")))

    out = Table(title="throughput and energy", title_justify="left")
    out.add_column("metric")
    out.add_column("value", justify="right")
    speed = summary["tokens_per_s_per_user"]
    rows = [
        ("requests (completed)", f"{summary['requests']:,} ({summary['requests_completed']:,})"),
        ("simulated time", f"{summary['duration_s']:,.1f} s"),
        ("output tokens/s", number_cell(summary["output_tokens_per_s"])),
        ("tokens/s per user (p50)", number_cell(speed["p50"])),
        ("goodput", f"{number_cell(summary['goodput_rps'], ',.2f')} req/s"),
        ("SLO attainment", f"{summary['slo_attainment']:.1%}"),
        ("mean IT power", f"{summary['power_w_mean'] / 1e3:,.1f} kW"),
        ("energy per output token", f"{number_cell(summary['joules_per_token'], ',.3f')} J"),
        ("tokens per joule", number_cell(summary["tokens_per_joule"], ",.3f")),
        ("tokens/s per MW (IT)", number_cell(summary["tokens_per_s_per_mw"], ",.0f")),
        ("preemptions", f"{summary['preemptions']:,}"),
    ]
    if summary["overloaded"]:
        rows.append(("OVERLOADED", f"{summary['backlog_at_last_arrival']:,} requests "
                                   "still queued when the last one arrived"))
    for label, value in rows:
        out.add_row(label, value)

    pools = Table(title="pools", title_justify="left")
    for col in ("pool", "role", "system", "replicas × chips", "utilisation", "batch",
                "KV used", "queue", "power kW", "J/token"):
        pools.add_column(col, justify="left" if col in ("pool", "role", "system") else "right")
    tokens = max(summary["output_tokens"], 1)
    for name, p in summary["pools"].items():
        pools.add_row(name, p["role"], p["system"], f"{p['replicas']} × {p['chips_per_replica']}",
                      f"{p['utilisation']:.1%}", f"{p['batch_size_mean']:.1f}",
                      f"{p['kv_occupancy_mean']:.1%}", f"{p['queue_len_mean']:.1f}",
                      f"{p['power_w_mean'] / 1e3:,.1f}", f"{p['energy_j'] / tokens:,.3f}")
    tables = [latency, out, pools]
    if summary["tiers"]:
        tiers = Table(title="SLO tiers", title_justify="left")
        for col in ("tier", "requests", "SLO met", "goodput req/s", "revenue $/h"):
            tiers.add_column(col, justify="left" if col == "tier" else "right")
        for name, t in summary["tiers"].items():
            tiers.add_row(name, f"{t['requests']:,}", f"{t['slo_attainment']:.1%}",
                          f"{t['goodput_rps']:,.2f}", f"{t['revenue_usd_per_s'] * 3600:,.2f}")
        tables.append(tiers)
    return tables


def profiles_tables(profiles: list[Any], models: list[Any]) -> list[Table]:
    hw = Table(title="hardware profiles", title_justify="left")
    for col in ("name", "kind", "chips/system", "memory GB/chip", "TB/s/chip",
                "dense PF/chip", "max W/chip", "figures (vendor/3P/derived/est/fit)"):
        hw.add_column(col, justify="left" if col in ("name", "kind") else "right",
                      no_wrap=col == "name")
    for p in profiles:
        counts: dict[str, int] = {}
        for figure in p.figures.values():
            counts[figure.tag] = counts.get(figure.tag, 0) + 1
        flops = ", ".join(f"{d} {v / 1e15:g}" for d, v in sorted(p.dense_flops_per_s.items()))
        hw.add_row(p.name, p.kind, str(p.chips_per_system), f"{p.memory_bytes / 1e9:g}",
                   f"{p.memory_bandwidth_bytes_per_s / 1e12:g}", flops, f"{p.max_power_w:g}",
                   "/".join(str(counts.get(t, 0)) for t in
                            ("vendor", "third_party", "derived", "estimate", "fitted")))
    cards = Table(title="model cards", title_justify="left")
    for col in ("name", "params B", "active B", "layers", "KV KiB/token (fp8)", "max context"):
        cards.add_column(col, justify="left" if col == "name" else "right",
                         no_wrap=col == "name")
    for m in models:
        cards.add_row(m.name, f"{m.total_params / 1e9:,.1f}", f"{m.active_params / 1e9:,.1f}",
                      str(m.num_layers), f"{m.kv_bytes_per_token(1.0) / 1024:,.1f}",
                      f"{m.max_context_tokens:,}")
    return [hw, cards]


def provenance_tables(profile: Any) -> list[Table]:
    """Every figure of one profile with its value, tag, source id and note; then the sources."""
    figures = Table(title=f"{profile.name} — {profile.description}", title_justify="left")
    figures.add_column("figure", no_wrap=True)
    figures.add_column("value", justify="right", no_wrap=True)
    figures.add_column("tag", no_wrap=True)
    figures.add_column("source", no_wrap=True)
    figures.add_column("note", ratio=1, overflow="fold")
    for key, figure in profile.figures.items():
        figures.add_row(key, f"{figure.value:.4g}", figure.tag, figure.source, figure.note)
    sources = Table(title="sources", title_justify="left")
    sources.add_column("id", no_wrap=True)
    sources.add_column("source", overflow="fold")
    for key, text in profile.sources.items():
        sources.add_row(key, text)
    return [figures, sources]
