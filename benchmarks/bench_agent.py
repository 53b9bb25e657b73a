"""What one reconcile pass costs: AWS calls per service, agent CPU per service, peak memory.

The simulated world (2,000 services in 4 clusters) runs in a child process, so the numbers are the
agent's own: calls counted by the agent's gateway, CPU time of the agent's thread, the agent
process's peak RSS. Passes are dry-run (nothing changes), 30 simulated seconds apart, after one
warm-up pass that reads each task definition once. Exits non-zero if a healthy fleet costs more
than 0.12 calls per service per pass.
"""

from __future__ import annotations

import io
import multiprocessing
import resource
import statistics
import time
from multiprocessing.connection import Connection

import boto3
from prometheus_client import CollectorRegistry

from agent import logs
from agent.aws import AwsGateway
from agent.metrics import Metrics
from agent.policy.watch import PolicySource
from agent.reconciler import Reconciler
from agent.settings import LogFormat, Mode, Settings

SERVICES = 2000
CLUSTERS = 4
PASSES = 5
TARGET_CALLS_PER_SERVICE = 0.12


def _world(failing_fraction: float, conn: Connection) -> None:
    from agent.sim import FleetSpec, World, build_fleet  # noqa: PLC0415 - the child process's own imports

    with World.start(seed=5) as world:
        fleet = build_fleet(world, FleetSpec(services=SERVICES, clusters=CLUSTERS, failing_fraction=failing_fraction))
        conn.send((world.endpoint_url, world.environment, len(fleet.failing)))
        while True:
            command, seconds = conn.recv()
            if command == "stop":
                return
            world.advance(seconds)
            conn.send(world.now)


def measure(failing_fraction: float) -> dict[str, float]:
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.Process(target=_world, args=(failing_fraction, child), daemon=True)
    process.start()
    try:
        endpoint, environment, failing = parent.recv()
        session = boto3.session.Session(
            aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
            region_name=environment["AWS_REGION"],
        )
        settings = Settings(mode=Mode.DRY_RUN)
        metrics = Metrics(CollectorRegistry())
        gateway = AwsGateway(
            dry_run=True, metrics=metrics, session=session, endpoint_url=endpoint, rate_per_second=1e6, burst=1e6
        )
        source = PolicySource(settings.policies)
        source.refresh()
        reconciler = Reconciler(
            aws=gateway, settings=settings, policies=source.policies, metrics=metrics, log=logs.logger()
        )
        parent.send(("advance", 0.0))
        now = parent.recv()
        reconciler.run_pass(now)  # warm-up: task definitions are read once and remembered
        calls, cpu, wall = [], [], []
        for _ in range(PASSES):
            parent.send(("advance", 30.0))
            now = parent.recv()
            before_calls, before_cpu, before_wall = gateway.total_calls(), time.thread_time(), time.perf_counter()
            report = reconciler.run_pass(now)
            calls.append(gateway.total_calls() - before_calls)
            cpu.append(time.thread_time() - before_cpu)
            wall.append(time.perf_counter() - before_wall)
            assert report.services == SERVICES, report.errors
        return {
            "failing": failing,
            "calls": statistics.median(calls),
            "cpu_ms_per_service": statistics.median(cpu) * 1000 / SERVICES,
            "wall_s": statistics.median(wall),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    finally:
        parent.send(("stop", 0.0))
        process.join(timeout=30)


def main() -> int:
    logs.configure(LogFormat.JSON, stream=io.StringIO())
    rows = [("healthy", measure(0.0)), ("5% failing", measure(0.05))]
    print(f"agent: {SERVICES:,} services in {CLUSTERS} clusters; median of {PASSES} dry-run passes after a warm-up")
    header = f"{'fleet':<12}{'failing':>8}{'calls/pass':>12}{'calls/svc':>11}{'target':>8}{'CPU ms/svc':>12}"
    print(header + f"{'pass s':>8}{'peak RSS MB':>13}")
    ok = True
    for name, row in rows:
        per_service = row["calls"] / SERVICES
        target = f"{TARGET_CALLS_PER_SERVICE:.2f}" if name == "healthy" else "-"
        if name == "healthy":
            ok = per_service <= TARGET_CALLS_PER_SERVICE
        print(
            f"{name:<12}{row['failing']:>8.0f}{row['calls']:>12.0f}{per_service:>11.3f}{target:>8}"
            f"{row['cpu_ms_per_service']:>12.3f}{row['wall_s']:>8.2f}{row['peak_rss_mb']:>13.0f}"
        )
    print(f"healthy fleet calls per service per pass <= {TARGET_CALLS_PER_SERVICE}: {'ok' if ok else 'EXCEEDED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
