"""How the pools of a scenario connect: which roles may stand together, which decode pool
takes each tier, and the links that carry KV cache from prefill to decode.

Separate from the sizing checks (``feasibility``): these are about the factory's shape,
read once every pool is known.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simulator.config.checks import LINK_KEYS, Section, join_key
from simulator.config.scenario import LinkSpec, PoolSpec, TierSpec
from simulator.errors import ScenarioError

__all__ = ["check_roles", "read_links"]

TRANSFERS = ("bulk", "layerwise")


def check_roles(pools: tuple[PoolSpec, ...], tiers: tuple[TierSpec, ...], file: Path) -> None:
    """One 'both' pool, or one prefill pool and decode pools that split the tiers.

    The engine routes each request to the single pool of its stage, or for decode to the
    pool that serves its tier, so a pool that no request can reach would sit idle; it is
    refused rather than silently ignored.
    """
    roles = [p.role for p in pools]
    listing = [f"{p.name}: {p.role}" for p in pools]
    for role in ("both", "prefill"):
        if roles.count(role) > 1:
            names = ", ".join(repr(p.name) for p in pools if p.role == role)
            raise ScenarioError(
                file, "pools", f"one pool of role {role!r}", listing, f"Pools {names} share "
                f"the role {role!r}; merge them into one pool with more replicas (only decode "
                "pools can be several, each serving its own tiers).")
    if "both" in roles and len(roles) > 1:
        raise ScenarioError(file, "pools", "either one pool of role 'both' (aggregated) or one "
                            "prefill pool and decode pools (disaggregated)", listing,
                            "Mixing aggregated and disaggregated pools in one scenario is not "
                            "supported.")
    if "both" not in roles and set(roles) != {"prefill", "decode"}:
        missing = "decode" if "prefill" in roles else "prefill"
        raise ScenarioError(file, "pools", f"a {missing} pool next to the {roles[0]} pool, or "
                            "one pool of role 'both'", listing,
                            f"A disaggregated scenario needs somewhere to {missing}.")
    if "decode" in roles:
        _check_tier_routes([p for p in pools if p.role == "decode"], tiers, file)


def _check_tier_routes(decodes: list[PoolSpec], tiers: tuple[TierSpec, ...], file: Path) -> None:
    """Every tier decodes on exactly one pool, and every decode pool gets a tier."""
    names = [t.name for t in tiers]
    taken: dict[str, str] = {}
    for pool in decodes:
        key = f"pools.{pool.name}.serves"
        for tier in pool.serves:
            if tier not in names:
                raise ScenarioError(file, key, f"tier names of the tier table ({', '.join(names)})",
                                    tier)
            if tier in taken:
                raise ScenarioError(file, key, "a tier no other decode pool serves", tier,
                                    f"Pool {taken[tier]!r} already serves {tier!r}.")
            taken[tier] = pool.name
    catch_all = [p.name for p in decodes if not p.serves]
    if len(catch_all) > 1:
        raise ScenarioError(file, "pools", "serves: on every decode pool but at most one",
                            f"decode pools {', '.join(catch_all)} without serves:",
                            "The pool without serves: takes the tiers no other pool lists; "
                            "two such pools would leave the choice to chance.")
    rest = [n for n in names if n not in taken]
    if catch_all and not rest and len(decodes) > 1:
        raise ScenarioError(file, f"pools.{catch_all[0]}.serves", "tiers left for this pool",
                            "every tier served elsewhere", f"Pool {catch_all[0]!r} would sit "
                            "idle; remove it or give it tiers.")
    if not catch_all and rest:
        raise ScenarioError(file, "pools", "a decode pool for every tier",
                            f"no pool serves {', '.join(rest)}", "List them under a decode "
                            "pool's serves:, or leave one decode pool without serves: to take "
                            "the rest.")


def read_links(top: Section, pools: tuple[PoolSpec, ...]
               ) -> tuple[tuple[LinkSpec, ...], list[dict[str, Any]]]:
    """Links, each from a prefill pool to a decode pool, one for every such pair."""
    items = top.get("links", [])
    if not isinstance(items, list):
        raise top.fail("links", "a list of links", items)
    by_name = {p.name: p for p in pools}
    aggregated = all(p.role == "both" for p in pools)
    links: list[LinkSpec] = []
    for i, item in enumerate(items):
        sec = Section(item, top.file, join_key("links", i), LINK_KEYS)
        if aggregated:
            raise ScenarioError(top.file, sec.key, "no links when every pool has role 'both'",
                                item, "Links carry KV cache from prefill to decode pools.")
        link = LinkSpec(
            from_pool=sec.text("from", choices=list(by_name)),
            to_pool=sec.text("to", choices=list(by_name)),
            bandwidth_gbps=sec.number("bandwidth_gbps", meaning="gigabits per second"),
            latency_us=sec.number("latency_us", positive=False, meaning="microseconds"),
            transfer=sec.text("transfer", "bulk", choices=TRANSFERS),
        )
        for end, key, role in ((link.from_pool, "from", "prefill"), (link.to_pool, "to", "decode")):
            if by_name[end].role != role:
                raise sec.fail(key, f"a {role} pool", end, f"Pool {end!r} has role "
                               f"{by_name[end].role!r}; links carry KV cache from a prefill "
                               "pool to a decode pool.")
        if any((ln.from_pool, ln.to_pool) == (link.from_pool, link.to_pool) for ln in links):
            raise ScenarioError(top.file, sec.key, "one link per prefill → decode pair",
                                f"a second link from {link.from_pool!r} to {link.to_pool!r}")
        links.append(link)
    have = {(ln.from_pool, ln.to_pool) for ln in links}
    for src in (p.name for p in pools if p.role == "prefill"):
        for dst in (p.name for p in pools if p.role == "decode"):
            if (src, dst) not in have:
                raise ScenarioError(
                    top.file, "links", "a link from every prefill pool to every decode pool",
                    f"no link from {src!r} to {dst!r}", f"Add {{from: {src}, to: {dst}, "
                    f"bandwidth_gbps: ..., latency_us: ...}} under links.")
    resolved = [{"from": ln.from_pool, "to": ln.to_pool, "bandwidth_gbps": ln.bandwidth_gbps,
                 "latency_us": ln.latency_us, "transfer": ln.transfer} for ln in links]
    return tuple(links), resolved
