"""A simulated AWS account whose ECS behaves, and fails, like the real one (tests and the demo).

moto serves the AWS APIs over HTTP; `World` adds what moto lacks: tasks that start, run, fail and
stop, deployments, service events, ELB health checks, capacity, EventBridge events (late, duplicated
and out of order when asked), ECS request throttling at AWS's published rates, several accounts
reached through STS AssumeRole, faults on demand and a simulated clock. Clients only ever use public
AWS APIs through `World.endpoint_url`.

Public API: `World`, `Account`, `ServiceState`, `AppProfile`, `AppExit`, `HealthCheck`,
`DeliveryProfile`, the scenario registry (`SCENARIOS`, `Scenario`, `scenario`), the fleet builder
(`build_fleet`, `FleetSpec`, `Fleet`) and `serve` (in `agent.sim.serve`). `agent.sim.moto_bridge` is
the only module that touches moto's internals.
"""

from agent.sim.account import Account
from agent.sim.eventbridge import DeliveryProfile
from agent.sim.fleet import Fleet, FleetSpec, build_fleet
from agent.sim.health import HealthCheck
from agent.sim.profiles import AppExit, AppProfile
from agent.sim.scenarios import SCENARIOS, Scenario, scenario
from agent.sim.world import ServiceState, World

__all__ = [
    "SCENARIOS",
    "Account",
    "AppExit",
    "AppProfile",
    "DeliveryProfile",
    "Fleet",
    "FleetSpec",
    "HealthCheck",
    "Scenario",
    "ServiceState",
    "World",
    "build_fleet",
    "scenario",
]
