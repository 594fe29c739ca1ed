"""tokenfactory: a discrete-event simulator of AI data centres as token factories.

    from simulator import load_scenario, simulate
    scenario = load_scenario("scenarios/quickstart-disaggregated.yaml")
    result = simulate(scenario)
    result.summary["ttft_s"]["p99"]
"""

__version__ = "0.1.0"

from simulator.api import simulate
from simulator.config import load_scenario
from simulator.errors import ScenarioError
from simulator.result import RequestRecords, Result
from simulator.sweep import SweepResult, sweep
from simulator.sweep.curve import FrontierPoint, frontier_curve

# ``sweep`` the function replaces ``sweep`` the subpackage as an attribute of this package;
# ``from simulator.sweep import ...`` still reaches the subpackage.
__all__ = ["FrontierPoint", "RequestRecords", "Result", "ScenarioError", "SweepResult",
           "__version__", "frontier_curve", "load_scenario", "simulate", "sweep"]
