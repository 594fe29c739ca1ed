"""tokenfactory: a discrete-event simulator of AI data centres as token factories.

    from simulator import load_scenario, simulate
    scenario = load_scenario("scenarios/quickstart-disaggregated.yaml")
    result = simulate(scenario)
    result.summary["ttft_s"]["p99"]
"""

__version__ = "0.1.0"

from simulator.api import simulate  # noqa: E402
from simulator.config import load_scenario  # noqa: E402
from simulator.errors import ScenarioError  # noqa: E402
from simulator.result import RequestRecords, Result  # noqa: E402

__all__ = ["RequestRecords", "Result", "ScenarioError", "__version__", "load_scenario", "simulate"]
