"""The `ecs-medic` command. Every error a person can cause becomes one clear line and an exit code.

Exit codes: 0 done (whatever was found), 1 an action failed, 2 bad input or configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pydantic import ValidationError

from agent import __version__
from agent.describe_json import InputError, parse_describe_output
from agent.diagnose import diagnose_document
from agent.report import finding_to_dict, render_proposals, render_text

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from agent.decide import Proposal
    from agent.reconciler import PassReport, Reconciler
    from agent.settings import Settings

EXIT_OK = 0
EXIT_ACTION_FAILED = 1
EXIT_BAD_INPUT = 2


class UsageError(Exception):
    """A problem with what the user asked for; printed as one line, exit 2."""


# --- settings: environment first, flags override ------------------------------------------------------


def _settings(args: argparse.Namespace, **forced: Any) -> Settings:  # noqa: ANN401 - pydantic field values
    from agent.settings import Settings  # noqa: PLC0415 - diagnose --input must start fast

    overrides: dict[str, Any] = {}
    for flag, name in (
        ("mode", "mode"),
        ("policies", "policies"),
        ("interval", "poll_interval_seconds"),
        ("port", "metrics_port"),
        ("log_format", "log_format"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            overrides[name] = value
    if getattr(args, "clusters", None) is not None:
        overrides["clusters"] = args.clusters
    overrides.update(forced)
    try:
        return Settings(**overrides)
    except ValidationError as error:
        problems = "; ".join(
            f"ECS_MEDIC_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg'].removeprefix('Value error, ')}"
            for e in error.errors()
        )
        raise UsageError(f"bad setting: {problems}") from None


@dataclass
class _Runtime:
    settings: Settings
    reconciler: Reconciler
    policies: Any  # PolicySource
    gateway: Any  # AwsGateway
    metrics: Any  # Metrics
    log: Any


def _runtime(settings: Settings, stream: TextIO | None = None) -> _Runtime:
    from agent import logs  # noqa: PLC0415 - the agent's imports load boto3; only agent commands pay for them
    from agent.aws import AwsGateway  # noqa: PLC0415
    from agent.metrics import Metrics  # noqa: PLC0415
    from agent.policy.loader import PolicyLoadError  # noqa: PLC0415
    from agent.policy.watch import PolicySource  # noqa: PLC0415
    from agent.reconciler import Reconciler  # noqa: PLC0415
    from agent.settings import Mode  # noqa: PLC0415

    logs.configure(settings.log_format, stream=stream or sys.stderr)
    source = PolicySource(settings.policies)
    try:
        source.refresh()
    except PolicyLoadError as error:
        raise UsageError(f"policies refused:\n{error}") from None
    from agent.notify import dry_run_allows  # noqa: PLC0415

    metrics = Metrics()
    gateway = AwsGateway(
        dry_run=settings.mode is Mode.DRY_RUN,
        metrics=metrics,
        session=aws_session(),
        dry_run_allows=dry_run_allows(settings),
    )
    if not gateway.region:
        raise UsageError("no AWS region: set AWS_REGION (or a profile with a region)")
    reconciler = Reconciler(
        aws=gateway, settings=settings, policies=source.policies, metrics=metrics, log=logs.logger()
    )

    try:
        reconciler.identity = str(gateway.call("sts", "GetCallerIdentity", {})["Arn"])
    except Exception as error:  # noqa: BLE001 - without it approvals are still checked by their signature
        logs.logger().warning("identity_unknown", error=f"{type(error).__name__}: {error}")
    return _Runtime(settings, reconciler, source, gateway, metrics, logs.logger())


def _start_notifications(runtime: _Runtime) -> Any:  # noqa: ANN401 - agent.notify.Notifier
    """The agent's own passes tell people (a read-only pass a person runs, for `proposals` or
    `approve`, does not)."""
    from agent.notify import notifier_from_settings  # noqa: PLC0415

    notifier = notifier_from_settings(runtime.settings, runtime.gateway, runtime.metrics, runtime.log)
    runtime.reconciler.notifier = notifier
    return notifier


def aws_session() -> Any:  # noqa: ANN401 - boto3 sessions are untyped
    """A boto3 session that also honours AWS_REGION (botocore itself reads only AWS_DEFAULT_REGION)."""
    import boto3  # noqa: PLC0415

    return boto3.session.Session(region_name=os.environ.get("AWS_REGION") or None)


def _now() -> datetime:
    return datetime.now(tz=UTC)


# --- output ----------------------------------------------------------------------------------------------


def _print_pass(report: PassReport, output: str, stdout: TextIO, proposals: Sequence[Proposal] | None = None) -> None:
    shown = report.proposals if proposals is None else proposals
    if output == "json":
        document = {
            "findings": [finding_to_dict(f) for f in report.findings],
            "proposals": [p.to_dict() for p in shown],
        }
        json.dump(document, stdout, indent=2, default=str)
        stdout.write("\n")
        return
    stdout.write(render_text(report.findings))
    stdout.write("\n")
    stdout.write(render_proposals(shown))
    for error in report.errors:
        stdout.write(f"could not read {error.cluster}/{error.service or '*'} ({error.operation}): {error.message}\n")


# --- commands --------------------------------------------------------------------------------------------


def _diagnose(args: argparse.Namespace, stdin: TextIO, stdout: TextIO) -> int:
    if args.input is None:
        return _diagnose_live(args, stdout)
    if args.cluster or args.service:
        raise UsageError("diagnose takes either --input FILE or --cluster C --service S, not both")
    if args.input == "-":
        text, source = stdin.read(), "<stdin>"
    else:
        text, source = _read_file(args.input), args.input
    document = parse_describe_output(text, source)
    findings = diagnose_document(tasks=document.tasks, services=document.services, failures=document.failures)
    if args.output == "json":
        json.dump({"findings": [finding_to_dict(f) for f in findings]}, stdout, indent=2)
        stdout.write("\n")
    else:
        stdout.write(render_text(findings))
    return EXIT_OK


def _diagnose_live(args: argparse.Namespace, stdout: TextIO) -> int:
    from agent.inspect import inspect_service, render_inspection  # noqa: PLC0415
    from agent.observe import Observer  # noqa: PLC0415
    from agent.preflight import read_only_gateway  # noqa: PLC0415
    from agent.settings import Mode  # noqa: PLC0415

    if not (args.cluster and args.service):
        raise UsageError("diagnose needs --input FILE, or --cluster C and --service S for a live diagnosis")
    runtime = _runtime(_settings(args, mode=Mode.DRY_RUN))
    inspection = inspect_service(
        read_only_gateway(runtime.gateway.session),  # the checks also ask IAM's policy simulator
        Observer(runtime.gateway),
        args.cluster,
        args.service,
        now=_now(),
        region=runtime.gateway.region,
    )
    if inspection is None:
        raise UsageError(f"no active service {args.service} in cluster {args.cluster}")
    if args.output == "json":
        document = {
            "findings": [finding_to_dict(f) for f in inspection.findings],
            "checks": [c.to_dict() for c in inspection.checks],
        }
        json.dump(document, stdout, indent=2)
        stdout.write("\n")
    else:
        stdout.write(render_inspection(inspection) + "\n" + render_text(inspection.findings))
    return EXIT_OK


# --- preflight: the checks before a deploy (all logic in agent/preflight.py) -------------------------------

EXIT_PREFLIGHT_PROBLEM = 1


def _preflight(args: argparse.Namespace, stdin: TextIO, stdout: TextIO) -> int:
    from agent.preflight import PreflightInputError, load_task_definition, preflight, read_only_gateway  # noqa: PLC0415

    if bool(args.cluster) != bool(args.service):
        raise UsageError("preflight takes --cluster and --service together, or neither")
    source = "<stdin>" if args.task_definition == "-" else args.task_definition
    document = stdin.read() if args.task_definition == "-" else _read_file(args.task_definition)
    gateway = read_only_gateway(aws_session())
    if not gateway.region:
        raise UsageError("no AWS region: set AWS_REGION (or a profile with a region)")
    try:
        definition = load_task_definition(document, source)
        report = preflight(gateway, definition, region=gateway.region, cluster=args.cluster, service=args.service)
    except PreflightInputError as error:
        raise UsageError(str(error)) from None
    if args.output == "json":
        json.dump(report.to_dict(strict=args.strict), stdout, indent=2)
        stdout.write("\n")
    else:
        stdout.write(report.render(strict=args.strict))
    return EXIT_OK if report.passed(strict=args.strict) else EXIT_PREFLIGHT_PROBLEM


def _add_preflight(commands: Any) -> None:  # noqa: ANN401 - argparse's subparsers action is untyped
    preflight = commands.add_parser(
        "preflight",
        help="before a deploy: check a task definition (and its service) for what would stop its tasks",
        description="Read-only checks of a task definition about to be registered: images, the execution role's "
        "rights (IAM's policy simulator), secrets, log groups, the Fargate size; with --cluster and --service, "
        "also the subnets' network path, the load balancer's container and port, and the prevention settings. "
        "Exit 0: no problem; 1: a problem (or, with --strict, a warning); 2: bad input.",
    )
    preflight.add_argument("--task-definition", required=True, metavar="FILE", help="task definition JSON, - for stdin")
    preflight.add_argument("--cluster", help="the cluster of the service it will run in")
    preflight.add_argument("--service", help="the service it will run in")
    preflight.add_argument("--strict", action="store_true", help="warnings and unchecked items fail too")
    preflight.add_argument("--output", choices=("text", "json"), default="text", help="report format")
    preflight.set_defaults(handler=_preflight)


def _read_file(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, expected a JSON file") from None
    except UnicodeDecodeError as error:
        raise UsageError(f"{path}: not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise UsageError(f"{path}: {error.strerror}") from None


def _once(args: argparse.Namespace, _stdin: TextIO, stdout: TextIO) -> int:
    runtime = _runtime(_settings(args))
    notifier = _start_notifications(runtime)
    report = runtime.reconciler.run_pass(_now())
    notifier.close(10)  # what the pass announced goes out before the command ends
    _print_pass(report, args.output, stdout)
    return EXIT_ACTION_FAILED if report.failed_actions else EXIT_OK


def _policies_validate(args: argparse.Namespace, _stdin: TextIO, stdout: TextIO) -> int:
    from agent.policy.loader import PolicyLoadError, load_policies  # noqa: PLC0415

    paths = [Path(p) for p in args.paths] or [_settings(args).policies]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise UsageError(f"no such file or folder: {', '.join(missing)}")
    try:
        loaded = load_policies(paths)
    except PolicyLoadError as error:
        sys.stderr.write(f"{error}\n{len(error.errors)} problems; nothing was loaded\n")
        return EXIT_BAD_INPUT
    stdout.write(f"ok: {len(loaded.policies)} policies in {len(loaded.files)} files\n")
    for policy in sorted(loaded.policies, key=lambda p: (-p.policy.spec.priority, p.name)):
        spec = policy.policy.spec
        how = f"{spec.remediation.action} ({spec.approval}, priority {spec.priority})"
        stdout.write(f"  {policy.name}: {how} <- {policy.source}\n")
    return EXIT_OK


def _read_only_pass(args: argparse.Namespace) -> PassReport:
    from agent.settings import Mode  # noqa: PLC0415

    runtime = _runtime(_settings(args, mode=Mode.DRY_RUN))
    return runtime.reconciler.run_pass(_now())


def _proposals(args: argparse.Namespace, _stdin: TextIO, stdout: TextIO) -> int:
    from agent.decide import Outcome  # noqa: PLC0415

    report = _read_only_pass(args)
    shown = [p for p in report.proposals if args.all or p.outcome is Outcome.AWAITING_APPROVAL]
    if args.output == "json":
        json.dump({"proposals": [p.to_dict() for p in shown]}, stdout, indent=2)
        stdout.write("\n")
    elif not shown:
        stdout.write("No proposals are waiting for approval.\n" if not args.all else "No proposals.\n")
    else:
        stdout.write(render_proposals(shown))
    return EXIT_OK


def _approve(args: argparse.Namespace, _stdin: TextIO, stdout: TextIO) -> int:
    from agent import approvals  # noqa: PLC0415
    from agent.aws import AwsGateway  # noqa: PLC0415
    from agent.decide import Outcome  # noqa: PLC0415
    from agent.metrics import Metrics  # noqa: PLC0415

    settings = _settings(args)
    if not settings.approval_key_id:
        raise UsageError(
            "approvals are signed: set ECS_MEDIC_APPROVAL_KEY_ID to the KMS key approvers sign with "
            "(the agent's settings name the same key)"
        )
    report = _read_only_pass(args)
    proposal = next((p for p in report.proposals if p.id == args.id), None)
    if proposal is None or proposal.approval != "manual":
        waiting = [p.id for p in report.proposals if p.outcome is Outcome.AWAITING_APPROVAL]
        known = ", ".join(waiting) if waiting else "none"
        raise UsageError(f"no proposal {args.id} is waiting for approval (waiting now: {known})")
    writer = AwsGateway(dry_run=False, metrics=Metrics(), session=aws_session())
    described = writer.call(
        "ecs", "DescribeServices", {"cluster": proposal.cluster, "services": [proposal.service], "include": ["TAGS"]}
    )
    tags = {t["key"]: t["value"] for service in described.get("services") or [] for t in service.get("tags") or []}
    ttl = min(args.ttl or settings.approval_ttl_seconds, settings.approval_max_ttl_seconds)
    approval, already = approvals.grant(
        writer,
        key_id=settings.approval_key_id,
        service_arn=proposal.service_arn,
        tags=tags,
        proposal_id=proposal.id,
        now=_now(),
        ttl=timedelta(seconds=ttl),
    )
    until = approval.expires.isoformat(timespec="seconds")
    if already:
        stdout.write(f"{proposal.id} is already approved until {until} by {approval.approver}\n")
        return EXIT_OK
    if proposal.outcome is not Outcome.AWAITING_APPROVAL:
        raise UsageError(f"no proposal {args.id} is waiting for approval")
    stdout.write(
        f"approved {proposal.id}: {proposal.action} on {proposal.cluster}/{proposal.service} "
        f"({proposal.plan.summary}) by {approval.approver}, valid until {until}\n"
    )
    return EXIT_OK


def _demo(args: argparse.Namespace, _stdin: TextIO, stdout: TextIO) -> int:
    try:
        from agent import demo  # noqa: PLC0415 - the simulated world needs the `sim` extra (moto)
        from agent.sim import SCENARIOS  # noqa: PLC0415
    except ImportError as error:
        raise UsageError(f"the demo needs the simulated world: pip install 'ecs-medic[sim]' ({error})") from None
    if args.list_scenarios:
        return demo.list_scenarios(stdout)
    unknown = [name for name in args.scenario if name not in SCENARIOS]
    if unknown:
        raise UsageError(f"no scenario {', '.join(unknown)}; valid: {', '.join(SCENARIOS)}")
    return demo.run_demo(args.scenario, enforce=args.enforce, out=stdout, minutes=args.minutes, port=args.port)


def _sim_serve(args: argparse.Namespace, _stdin: TextIO, stdout: TextIO) -> int:
    try:
        from agent.sim import SCENARIOS  # noqa: PLC0415 - needs the `sim` extra (moto)
        from agent.sim.serve import serve  # noqa: PLC0415
    except ImportError as error:
        raise UsageError(f"the simulated world needs: pip install 'ecs-medic[sim]' ({error})") from None
    if args.scenario and args.scenario not in SCENARIOS:
        raise UsageError(f"no scenario {args.scenario}; valid: {', '.join(SCENARIOS)}")
    serve(args.scenario, args.port, args.speed, stdout)
    return EXIT_OK


def _run(args: argparse.Namespace, _stdin: TextIO, _stdout: TextIO) -> int:
    from agent.http import Health, StatusServer  # noqa: PLC0415
    from agent.lease import Lease  # noqa: PLC0415
    from agent.loop import Loop  # noqa: PLC0415
    from agent.settings import Mode  # noqa: PLC0415
    from agent.wake import QueueWake  # noqa: PLC0415

    settings = _settings(args)
    runtime = _runtime(settings, stream=sys.stdout)
    health = Health(
        max_pass_age_seconds=max(3 * settings.poll_interval_seconds, 120.0),
        proposals=lambda: [p.to_dict() for p in runtime.reconciler.latest],
    )
    server = StatusServer(runtime.metrics, health, settings.metrics_port).start()
    wake: Callable[[float, threading.Event], bool] | None = None
    if settings.events_queue_url:
        wake = QueueWake(runtime.gateway, settings.events_queue_url, settings.mode is Mode.ENFORCE, runtime.log)
    lease = None
    if settings.lease_table and settings.mode is Mode.ENFORCE:
        ttl = max(3 * settings.poll_interval_seconds, 60.0)
        lease = Lease(runtime.gateway, settings.lease_table, ttl, _now, runtime.log)
        held = lease
        runtime.reconciler.leader = lambda: held.held
    stop = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        runtime.log.info("shutdown_requested", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    runtime.log.info(
        "agent_started",
        mode=settings.mode.value,
        clusters=list(settings.clusters) or "all",
        port=server.port,
        interval_seconds=settings.poll_interval_seconds,
        events_queue=bool(settings.events_queue_url),
        pid=os.getpid(),
    )
    loop = Loop(
        runtime.reconciler,
        runtime.policies,
        health,
        settings.poll_interval_seconds,
        runtime.log,
        wake=wake,
        before_pass=lease.renew if lease else None,
    )
    notifier = _start_notifications(runtime)
    loop.run(stop)
    notifier.close(10)
    if lease is not None:
        lease.release()
    server.stop()
    runtime.log.info("agent_stopped")
    return EXIT_OK


# --- parser ----------------------------------------------------------------------------------------------


def _agent_flags(parser: argparse.ArgumentParser, *, output: bool = True, mode: bool = True) -> None:
    if mode:
        parser.add_argument("--mode", choices=("dry-run", "enforce"), help="default: ECS_MEDIC_MODE or dry-run")
    parser.add_argument(
        "--clusters",
        help="comma-separated cluster names or ARNs (default: ECS_MEDIC_CLUSTERS, or every cluster)",
    )
    parser.add_argument("--policies", type=Path, help="a policy file or folder (default: ECS_MEDIC_POLICIES)")
    parser.add_argument("--log-format", dest="log_format", choices=("json", "console"))
    if output:
        parser.add_argument("--output", choices=("text", "json"), default="text", help="report format")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ecs-medic",
        description="Diagnose failing Amazon ECS services with evidence, and fix them safely (dry-run by default).",
    )
    parser.add_argument("--version", action="version", version=f"ecs-medic {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run", help="the agent: reconcile forever, serving /metrics, /healthz, /readyz, /proposals"
    )
    _agent_flags(run, output=False)
    run.add_argument("--interval", type=float, help="seconds between passes (default: ECS_MEDIC_POLL_INTERVAL_SECONDS)")
    run.add_argument("--port", type=int, help="HTTP port (default: ECS_MEDIC_METRICS_PORT or 9740)")
    run.set_defaults(handler=_run)

    once = commands.add_parser("once", help="one reconcile pass: print findings and proposals (or actions), exit")
    _agent_flags(once)
    once.set_defaults(handler=_once)

    diagnose = commands.add_parser(
        "diagnose",
        help="explain why a service fails: live (--cluster, --service) or from describe-* JSON (--input)",
        description="Live: every check of the troubleshooting workflow for one service (read-only). "
        "Offline: read JSON as printed by `aws ecs describe-tasks` and/or `aws ecs describe-services` "
        "and print one finding per stopped task, problem event and failed deployment.",
    )
    diagnose.add_argument("--input", metavar="FILE", help="the JSON file, or - for stdin")
    diagnose.add_argument("--cluster", help="live: the cluster")
    diagnose.add_argument("--service", help="live: the service")
    diagnose.add_argument("--log-format", dest="log_format", choices=("json", "console"))
    diagnose.add_argument("--output", choices=("text", "json"), default="text", help="report format")
    diagnose.set_defaults(handler=_diagnose)

    _add_preflight(commands)

    policies = commands.add_parser("policies", help="work with policy files")
    policy_commands = policies.add_subparsers(dest="policies_command", required=True, metavar="COMMAND")
    validate = policy_commands.add_parser("validate", help="check policy files; errors name file, policy and field")
    validate.add_argument("paths", nargs="*", metavar="PATH", help="files or folders (default: ECS_MEDIC_POLICIES)")
    validate.set_defaults(handler=_policies_validate)

    proposals = commands.add_parser("proposals", help="proposals waiting for approval (a read-only pass)")
    _agent_flags(proposals)
    proposals.add_argument("--all", action="store_true", help="every proposal, not only those awaiting approval")
    proposals.set_defaults(handler=_proposals)

    approve = commands.add_parser("approve", help="approve a proposal by id (writes one tag on its service)")
    _agent_flags(approve, output=False, mode=False)
    approve.add_argument("id", help="the proposal id, as `ecs-medic proposals` prints it")
    approve.add_argument(
        "--ttl", type=float, help="seconds the approval stays valid (default: ECS_MEDIC_APPROVAL_TTL_SECONDS)"
    )
    approve.set_defaults(handler=_approve)

    demo = commands.add_parser(
        "demo", help="run the agent against the embedded simulated ECS world (no AWS account needed)"
    )
    demo.add_argument("--scenario", action="append", default=[], metavar="NAME", help="repeatable; default: all")
    demo.add_argument("--enforce", action="store_true", help="let the agent act (default: dry-run, propose only)")
    demo.add_argument("--list-scenarios", action="store_true", help="list the scenarios and exit")
    demo.add_argument("--minutes", type=float, default=40.0, help="simulated minutes to run at most")
    demo.add_argument("--port", type=int, help="serve /metrics, /healthz, /readyz and /proposals on this port")
    demo.set_defaults(handler=_demo)

    sim = commands.add_parser("sim", help="the simulated ECS world")
    sim_commands = sim.add_subparsers(dest="sim_command", required=True, metavar="COMMAND")
    serve = sim_commands.add_parser(
        "serve", help="serve the simulated world as an AWS endpoint, for the aws CLI or an agent in another process"
    )
    serve.add_argument("--scenario", help="break the world this way first (default: a healthy world)")
    serve.add_argument("--port", type=int, default=4566, help="port on 127.0.0.1 (default 4566)")
    serve.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
    serve.set_defaults(handler=_sim_serve)
    return parser


def main(argv: Sequence[str] | None = None, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """Run one command; return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    out = stdout or sys.stdout
    try:
        code: int = args.handler(args, stdin or sys.stdin, out)
    except (InputError, UsageError) as error:
        sys.stderr.write(f"ecs-medic: {error}\n")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    return code
