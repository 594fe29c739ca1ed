"""Speed and memory of the simulator itself.

    python benchmarks/run.py                      # 10k and 100k requests, both scenarios
    python benchmarks/run.py --sizes 10000 100000 1000000 --json out.json

Each size runs in a fresh process (so peak RSS is its own), once numba's on-disk cache is
filled. Reports the start-up of a fresh process, then per size the simulated requests per
wall second of a ``simulate()`` after a short one in the same process (as in a sweep),
peak RSS, and how the cost scales with the number of requests.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCENARIOS = {"aggregated": HERE / "scenarios" / "aggregated.yaml",
             "disaggregated": HERE / "scenarios" / "disaggregated.yaml"}

_CHILD = """
import json, resource, sys, time
from simulator import load_scenario, simulate
if sys.argv[3] == "warm":   # a short run first: numba loads its compiled code once
    simulate(load_scenario(sys.argv[1], overrides={"workload.requests": 100}))
scenario = load_scenario(sys.argv[1], overrides={"workload.requests": int(sys.argv[2])})
started = time.perf_counter()
summary = simulate(scenario).summary
wall = time.perf_counter() - started
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"wall_s": wall, "peak_rss_bytes": rss,
                  "requests_completed": summary["requests_completed"],
                  "overloaded": summary["overloaded"]}))
"""


def run_one(path: Path, requests: int, warm: bool = True) -> dict[str, float]:
    """One run in a fresh process; ``warm`` times a second ``simulate()`` in that process,
    as a sweep's later runs are, so the fixed start-up (see ``startup_s``) is left out."""
    mode = "warm" if warm else "cold"
    out = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(requests), mode],
                         capture_output=True, text=True, check=True)
    record = json.loads(out.stdout.strip().splitlines()[-1])
    record["requests"] = requests
    record["requests_per_wall_s"] = requests / record["wall_s"]
    return record


def best_of(path: Path, requests: int, repeat: int) -> dict[str, float]:
    """The fastest of ``repeat`` runs: on a shared machine the others measure neighbours."""
    return min((run_one(path, requests) for _ in range(repeat)), key=lambda r: r["wall_s"])


def startup_s(path: Path, repeat: int = 3) -> float:
    """Wall seconds for a fresh process to import, load a scenario and simulate 100
    requests, with numba's on-disk cache already filled (best of ``repeat``)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        run_one(path, 100, warm=False)
        best = min(best, time.perf_counter() - started)
    return best


def kernel_benchmarks(repeat: int = 200_000) -> dict[str, float]:
    """Microseconds per call: numba step cost vs its numpy reference."""
    import numpy as np

    from simulator.config.scenario import Precision
    from simulator.costs import replica_cost_vector
    from simulator.hardware import load_profile
    from simulator.kernels import step_cost
    from simulator.kernels.reference import step_cost_ref
    from simulator.models import load_model

    p = replica_cost_vector(load_model("llama-3.3-70b"), load_profile("gb200-nvl72"),
                            Precision(), 4, 4)
    step_cost(p, 64.0, 64.0, 64_000.0, 64_000.0)
    started = time.perf_counter()
    for _ in range(repeat):
        step_cost(p, 64.0, 64.0, 64_000.0, 64_000.0)
    numba_us = (time.perf_counter() - started) / repeat * 1e6
    ones = np.ones(64)
    cached = np.full(64, 1000.0)
    n_ref = repeat // 20
    started = time.perf_counter()
    for _ in range(n_ref):
        step_cost_ref(p, ones, cached, ones)
    numpy_us = (time.perf_counter() - started) / n_ref * 1e6
    return {"step_cost_numba_us": numba_us, "step_cost_numpy_reference_us": numpy_us}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--scenarios", nargs="+", default=sorted(SCENARIOS), choices=SCENARIOS)
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per size up to 100k requests; the fastest is reported")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    results: dict[str, object] = {"kernels": kernel_benchmarks()}
    for name in args.scenarios:
        run_one(SCENARIOS[name], 200, warm=False)   # fill numba's on-disk cache
        results[f"{name}_startup_s"] = startup_s(SCENARIOS[name])
        print(f"{name:14s} start-up (fresh process, 100 requests): "
              f"{results[f'{name}_startup_s']:.2f} s", flush=True)
        rows = [best_of(SCENARIOS[name], n, args.repeat if n <= 100_000 else 1)
                for n in args.sizes]
        base = rows[0]
        for row in rows:
            # cost per request relative to the smallest size: 1.0 is perfectly linear
            row["cost_per_request_vs_smallest"] = (row["wall_s"] / row["requests"]) / (
                base["wall_s"] / base["requests"])
            print(f"{name:14s} {row['requests']:>9,} requests  {row['wall_s']:8.2f} s  "
                  f"{row['requests_per_wall_s']:>9,.0f} req/s  "
                  f"peak RSS {row['peak_rss_bytes'] / 2**20:7.0f} MiB  "
                  f"x{row['cost_per_request_vs_smallest']:.2f} per request", flush=True)
        results[name] = rows
    kernels = results["kernels"]
    print(f"step_cost: numba {kernels['step_cost_numba_us']:.2f} µs per call, "  # type: ignore[index]
          f"numpy reference {kernels['step_cost_numpy_reference_us']:.2f} µs")  # type: ignore[index]
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
