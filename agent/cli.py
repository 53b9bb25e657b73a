"""The `ecs-medic` command. Every error a person can cause becomes one clear line and an exit code.

One-shot commands print their result on stdout (`-o text|json|yaml`) and keep their logs on
stderr, warnings and errors only unless asked (`--log-level`, `-q`), readable on a terminal and
JSON when asked (`--log-format json`). `run` logs JSON lines on stdout, as a container should.

Exit codes:
  0  done (whatever was found)
  1  an action failed
  2  bad input or configuration (a setting, a policy, a cluster that does not exist, a region
     without clusters, credentials that may not list them, more replicas than leader election allows)
  3  `once --exit-code`: a change is proposed or waits for approval (advice alone, `notify`, is not a change)
  4  the pass was partial: some reads failed, and the output lists them
  5  the pass failed: nothing could be read (an endpoint that does not answer, every read refused)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pydantic import ValidationError

from agent import __version__
from agent.describe_json import MAX_INPUT_CHARS, InputError, parse_describe_output
from agent.diagnose import diagnose_document
from agent.report import finding_to_dict, plural, printable, render_proposals, render_text

if TYPE_CHECKING:
    from collections.abc import Sequence

    from agent.decide import Proposal
    from agent.reconciler import Reconciler
    from agent.settings import Settings
    from agent.telemetry import PassReport

EXIT_OK = 0
EXIT_ACTION_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_PROPOSALS = 3
EXIT_PARTIAL = 4
EXIT_FAILED = 5

OUTPUTS = ("text", "json", "yaml")


class UsageError(Exception):
    """A problem with what the user asked for; printed as one line, exit 2."""


# --- AWS: the standard configuration, and --region / --profile over it ---------------------------------

_AWS: dict[str, str | None] = {"region": None, "profile": None}


def aws_session() -> Any:  # noqa: ANN401 - boto3 sessions are untyped
    """A boto3 session for `--profile` and `--region` (else AWS_REGION, AWS_DEFAULT_REGION, the profile's)."""
    import boto3  # noqa: PLC0415
    from botocore.exceptions import ProfileNotFound  # noqa: PLC0415

    region = _AWS["region"] or os.environ.get("AWS_REGION") or None
    try:
        return boto3.session.Session(profile_name=_AWS["profile"], region_name=region)
    except ProfileNotFound:
        raise UsageError(f"no AWS profile {_AWS['profile']!r} in the AWS config or credentials files") from None


# --- settings: environment first, flags override ------------------------------------------------------


def _settings(args: argparse.Namespace, **forced: Any) -> Settings:  # noqa: ANN401 - pydantic field values
    from agent.settings import Settings  # noqa: PLC0415 - diagnose --input must start fast

    overrides: dict[str, Any] = {}
    for flag, name in (
        ("mode", "mode"),
        ("policies", "policies"),
        ("interval", "poll_interval_seconds"),
        ("port", "metrics_port"),
        ("listen", "listen_address"),
        ("log_format", "log_format"),
        ("log_level", "log_level"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            overrides[name] = value
    if getattr(args, "quiet", False):
        overrides["log_level"] = "error"
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


def _configure_logs(settings: Settings, *, daemon: bool, stream: TextIO) -> Any:  # noqa: ANN401 - structlog
    """Logs for a daemon (JSON, info, on stdout) or a one-shot command (console, warnings, on stderr)."""
    from agent import logs  # noqa: PLC0415
    from agent.settings import LogFormat, LogLevel, unknown_variables  # noqa: PLC0415

    log_format = settings.log_format or (LogFormat.JSON if daemon else LogFormat.CONSOLE)
    level = settings.log_level or (LogLevel.INFO if daemon else LogLevel.WARNING)
    logs.configure(log_format, stream=stream, level=level)
    log = logs.logger()
    for variable, closest in unknown_variables():
        log.warning("unknown_setting", variable=variable, did_you_mean=closest, effect="ignored")
    return log


@dataclass
class _Runtime:
    settings: Settings
    reconciler: Reconciler
    policies: Any  # PolicySource
    gateway: Any  # AwsGateway
    metrics: Any  # Metrics
    log: Any
    budget: Any = None  # ApiBudget: the agent's share of ECS's throttling buckets


def _runtime(settings: Settings, *, daemon: bool = False) -> _Runtime:
    from agent.aws import AwsGateway  # noqa: PLC0415 - the agent's imports load boto3; only agent commands pay
    from agent.metrics import Metrics  # noqa: PLC0415
    from agent.policy.loader import PolicyLoadError  # noqa: PLC0415
    from agent.policy.watch import PolicySource  # noqa: PLC0415
    from agent.reconciler import Reconciler  # noqa: PLC0415
    from agent.settings import Mode  # noqa: PLC0415

    log = _configure_logs(settings, daemon=daemon, stream=sys.stdout if daemon else sys.stderr)
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
        raise UsageError("no AWS region: set AWS_REGION, pass --region, or use a profile with a region")
    reconciler = Reconciler(aws=gateway, settings=settings, policies=source.policies, metrics=metrics, log=log)
    try:
        reconciler.identity = str(gateway.call("sts", "GetCallerIdentity", {})["Arn"])
    except Exception as error:  # noqa: BLE001 - without it approvals are still checked by their signature
        log.warning("identity_unknown", error=f"{type(error).__name__}: {error}")
    from agent.aws.budget import ApiBudget  # noqa: PLC0415
    from agent.run import account_of  # noqa: PLC0415

    # The agent's share of ECS's buckets in its own account and Region, divided among the replicas.
    budget = ApiBudget.from_settings(settings, metrics=metrics)
    gateway.apply_budget(budget.scope(account_of(reconciler.identity) or "self", gateway.region))
    return _Runtime(settings, reconciler, source, gateway, metrics, log, budget)


def _start_notifications(runtime: _Runtime) -> Any:  # noqa: ANN401 - agent.notify.Notifier
    """The agent's own passes tell people (a read-only pass a person runs, for `proposals` or
    `approve`, does not)."""
    from agent.notify import notifier_from_settings  # noqa: PLC0415

    notifier = notifier_from_settings(
        runtime.settings, runtime.gateway, runtime.metrics, runtime.log, ledger=runtime.reconciler.ledger
    )
    runtime.reconciler.notifier = notifier
    return notifier


def _now() -> datetime:
    return datetime.now(tz=UTC)


# --- output ----------------------------------------------------------------------------------------------


def _emit(document: dict[str, Any], output: str, stdout: TextIO) -> None:
    """A result document as JSON or YAML (the same fields either way)."""
    if output == "yaml":
        import yaml  # noqa: PLC0415

        plain = json.loads(json.dumps(document, default=str))
        yaml.safe_dump(plain, stdout, sort_keys=False, allow_unicode=True, default_flow_style=False, width=120)
        return
    json.dump(document, stdout, indent=2, default=str)
    stdout.write("\n")


def _error_to_dict(error: Any) -> dict[str, Any]:  # noqa: ANN401 - agent.observe.ObserveError
    return {
        "cluster": error.cluster,
        "service": error.service,
        "operation": error.operation,
        "message": error.message,
        "configuration": error.configuration,
    }


def _unread_lines(report: PassReport) -> list[str]:
    lines = []
    for error in report.errors:
        where = f"{error.cluster}/{error.service}" if error.service else f"cluster {error.cluster}"
        if error.cluster == "*":
            where = "the clusters"
        lines.append(f"could not read {printable(where)} ({error.operation}): {printable(error.message)}\n")
    if report.result == "error":
        lines.append("The pass saw no service: nothing above is known about the fleet.\n")
    elif report.errors:
        lines.append(
            f"The pass was partial: {plural(len(report.errors), 'read')} failed; "
            "what could not be read is neither diagnosed nor fixed.\n"
        )
    return lines


def _print_pass(report: PassReport, output: str, stdout: TextIO, proposals: Sequence[Proposal] | None = None) -> None:
    shown = report.proposals if proposals is None else proposals
    if output != "text":
        document = {
            "result": report.result,
            "services": report.services,
            "findings": [finding_to_dict(f) for f in report.findings],
            "proposals": [p.to_dict() for p in shown],
            "verdicts": [v.to_dict() for v in report.verdicts],
            "errors": [_error_to_dict(e) for e in report.errors],
        }
        _emit(document, output, stdout)
        return
    stdout.writelines(_unread_lines(report))
    stdout.write(render_text(report.findings))
    stdout.write("\n")
    stdout.write(render_proposals(shown))


def _pass_exit_code(report: PassReport, region: str | None, *, proposals_exit: bool = False) -> int:
    """The exit code a pass earns; configuration errors are also said on stderr, one line each."""
    from agent.decide import Outcome  # noqa: PLC0415

    if report.configuration_errors:
        for error in report.configuration_errors:
            where = "" if error.cluster == "*" else f"cluster {error.cluster}: "
            sys.stderr.write(
                f"ecs-medic: bad configuration: {printable(where)}{printable(error.message)} "
                f"(region {region}; check --clusters, ECS_MEDIC_CLUSTERS, --region and the credentials)\n"
            )
        return EXIT_BAD_INPUT
    if report.result == "error":
        return EXIT_FAILED
    if report.failed_actions:
        return EXIT_ACTION_FAILED
    if report.result == "partial":
        return EXIT_PARTIAL
    waiting = (Outcome.PROPOSED, Outcome.AWAITING_APPROVAL)
    if proposals_exit and any(p.outcome in waiting and p.plan.mutates for p in report.proposals):
        return EXIT_PROPOSALS
    return EXIT_OK


# --- commands --------------------------------------------------------------------------------------------


def _diagnose(args: argparse.Namespace, stdin: TextIO, stdout: TextIO) -> int:
    if args.input is None:
        return _diagnose_live(args, stdout)
    if args.cluster or args.service:
        raise UsageError("diagnose takes either --input FILE or --cluster C --service S, not both")
    if args.region or args.profile:
        raise UsageError("diagnose --input reads no AWS API: --region and --profile are for --cluster/--service")
    log = _offline_logs(args)
    if args.input == "-":
        text, source = stdin.read(MAX_INPUT_CHARS + 1), "<stdin>"
        _check_size(len(text), source)
    else:
        text, source = _read_file(args.input), args.input
    document = parse_describe_output(text, source)
    findings = diagnose_document(tasks=document.tasks, services=document.services, failures=document.failures)
    log.info(
        "input_diagnosed",
        source=source,
        tasks=len(document.tasks),
        services=len(document.services),
        failures=len(document.failures),
        findings=len(findings),
    )
    if args.output != "text":
        _emit({"findings": [finding_to_dict(f) for f in findings]}, args.output, stdout)
    else:
        stdout.write(render_text(findings))
    return EXIT_OK


def _offline_logs(args: argparse.Namespace) -> Any:  # noqa: ANN401 - structlog
    """Logs for `diagnose --input`, from the flags alone: it reads no setting, so it starts fast."""
    from agent import logs  # noqa: PLC0415
    from agent.settings import LogFormat, LogLevel  # noqa: PLC0415

    level = LogLevel.ERROR if args.quiet else LogLevel(args.log_level or LogLevel.WARNING)
    logs.configure(LogFormat(args.log_format or LogFormat.CONSOLE), stream=sys.stderr, level=level)
    return logs.logger()


def _diagnose_live(args: argparse.Namespace, stdout: TextIO) -> int:
    from agent.inspect import Check, inspect_service, render_inspection  # noqa: PLC0415
    from agent.observe import Observer  # noqa: PLC0415
    from agent.preflight import read_only_gateway  # noqa: PLC0415
    from agent.report import facts_of  # noqa: PLC0415
    from agent.settings import Mode  # noqa: PLC0415

    if not (args.cluster and args.service):
        raise UsageError("diagnose needs --input FILE, or --cluster C and --service S for a live diagnosis")
    runtime = _runtime(_settings(args, mode=Mode.DRY_RUN))
    region = runtime.gateway.region
    observer = Observer(runtime.gateway)
    if runtime.settings.evidence_table:
        # What the agent kept of the service's stopped tasks beyond ECS's hour (read, never written).
        from agent.evidence import DynamoEvidence  # noqa: PLC0415

        retention = timedelta(seconds=runtime.settings.evidence_retention_seconds)
        observer.evidence = DynamoEvidence(runtime.gateway, runtime.settings.evidence_table, retention, _now)
        observer.evidence_window = retention
    inspection = inspect_service(
        read_only_gateway(runtime.gateway.session),  # the checks also ask IAM's policy simulator
        observer,
        args.cluster,
        args.service,
        now=_now(),
        region=region,
    )
    if inspection is None:
        raise UsageError(f"no active service {args.service} in cluster {args.cluster}")

    def facts(finding: Any) -> dict[str, str]:  # noqa: ANN401 - agent.model.Finding
        return facts_of(inspection.view, finding, region)

    if args.output != "text":
        document = {
            "findings": [finding_to_dict(f, facts(f)) for f in inspection.findings],
            "checks": [c.to_dict() for c in inspection.checks],
        }
        _emit(document, args.output, stdout)
        return EXIT_OK
    # Log lines and names come from AWS and applications: each is made one printable line first.
    checks = tuple(
        Check(printable(c.name), c.verdict, tuple(printable(line) for line in c.lines)) for c in inspection.checks
    )
    view = replace(inspection.view, cluster=printable(inspection.view.cluster), name=printable(inspection.view.name))
    shown = replace(inspection, view=view, checks=checks)
    stdout.write(render_inspection(shown) + "\n" + render_text(inspection.findings, facts))
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


def _check_size(chars: int, source: str) -> None:
    if chars > MAX_INPUT_CHARS:
        raise UsageError(
            f"{source}: larger than {MAX_INPUT_CHARS // 2**20} MiB; describe-* output for one service is a few "
            "MiB at most: split the input"
        )


def _read_file(path: str) -> str:
    try:
        _check_size(Path(path).stat().st_size, path)
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
    from agent.policy.duration import parse_duration  # noqa: PLC0415

    if args.passes < 1:
        raise UsageError("--passes is at least 1")
    if args.every is not None and args.passes == 1:
        raise UsageError("--every is the time between passes: it needs --passes 2 or more")
    runtime = _runtime(_settings(args))
    notifier = _start_notifications(runtime)
    try:
        every = parse_duration(args.every) if args.every is not None else runtime.settings.poll_interval_seconds
    except ValueError as error:
        raise UsageError(f"--every: {error}") from None
    timeline = _timeline(args.timeline, f"ecs-medic once ({runtime.settings.mode.value})")
    stop = threading.Event()
    failed_actions = 0
    report = None
    for index in range(args.passes):
        if index:
            stop.wait(every)
        report = runtime.reconciler.run_pass(_now())
        failed_actions += report.failed_actions
        if timeline is not None:
            timeline.record(report)
    assert report is not None  # noqa: S101 - at least one pass ran
    notifier.close(10)  # what the passes announced goes out before the command ends ...
    runtime.reconciler.remember_notifications()  # ... and is recorded, so the next run does not repeat it
    _print_pass(report, args.output, stdout)
    if timeline is not None:
        timeline.write(args.timeline)
    code = _pass_exit_code(report, runtime.gateway.region, proposals_exit=args.exit_code)
    return EXIT_ACTION_FAILED if failed_actions and code in (EXIT_OK, EXIT_PARTIAL, EXIT_PROPOSALS) else code


def _timeline(path: Path | None, title: str) -> Any:  # noqa: ANN401 - agent.timeline.Timeline
    if path is None:
        return None
    try:
        from agent.timeline import Timeline  # noqa: PLC0415 - needs the `html` extra (matplotlib)
    except ImportError as error:
        raise UsageError(f"--timeline needs: pip install 'ecs-medic[html]' ({error})") from None
    if path.suffix not in (".html", ".htm", ".svg"):
        raise UsageError(f"--timeline {path}: name an .html page (or an .svg chart)")
    return Timeline(title)


def _policies_validate(args: argparse.Namespace, _stdin: TextIO, stdout: TextIO) -> int:
    from agent.policy.loader import PolicyLoadError, load_policies  # noqa: PLC0415

    paths = [Path(p) for p in args.paths] or [_settings(args).policies]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise UsageError(f"no such file or folder: {', '.join(missing)}")
    try:
        loaded = load_policies(paths)
    except PolicyLoadError as error:
        if args.output != "text":
            problems = [
                {"file": e.file, "line": e.line, "column": e.column, "policy": e.policy, "field": e.field}
                | {"message": e.message}
                for e in error.errors
            ]
            _emit({"valid": False, "errors": problems}, args.output, stdout)
        else:
            sys.stderr.write(f"{error}\n{plural(len(error.errors), 'problem')}; nothing was loaded\n")
        return EXIT_BAD_INPUT
    ordered = sorted(loaded.policies, key=lambda p: (-p.policy.spec.priority, p.name))
    if args.output != "text":
        policies = [
            {
                "name": p.name,
                "action": p.policy.spec.remediation.action,
                "approval": p.policy.spec.approval,
                "priority": p.policy.spec.priority,
                "file": p.source,
            }
            for p in ordered
        ]
        _emit({"valid": True, "files": list(loaded.files), "policies": policies}, args.output, stdout)
        return EXIT_OK
    if args.quiet:
        return EXIT_OK
    stdout.write(f"ok: {plural(len(loaded.policies), 'policy', 'policies')} in {plural(len(loaded.files), 'file')}\n")
    for policy in ordered:
        spec = policy.policy.spec
        how = f"{spec.remediation.action} ({spec.approval}, priority {spec.priority})"
        stdout.write(f"  {policy.name}: {how} <- {policy.source}\n")
    return EXIT_OK


def _read_only_pass(args: argparse.Namespace) -> PassReport:
    """A dry-run pass for `proposals` and `approve`; a configuration error or a blind pass stops here."""
    from agent.settings import Mode  # noqa: PLC0415

    runtime = _runtime(_settings(args, mode=Mode.DRY_RUN))
    report = runtime.reconciler.run_pass(_now())
    code = _pass_exit_code(report, runtime.gateway.region)
    if code == EXIT_BAD_INPUT:
        raise _Exit(code)
    if code == EXIT_FAILED:
        reasons = "; ".join(f"{e.operation}: {e.message}" for e in report.errors[:3])
        raise _Exit(code, f"ecs-medic: the pass read nothing: {printable(reasons)}\n")
    return report


class _Exit(Exception):  # noqa: N818 - not an error of the program: a decided exit code
    """Stop the command with this exit code (the reason, if any, is written to stderr)."""

    def __init__(self, code: int, message: str = "") -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _proposals(args: argparse.Namespace, _stdin: TextIO, stdout: TextIO) -> int:
    from agent.decide import Outcome  # noqa: PLC0415

    report = _read_only_pass(args)
    shown = [p for p in report.proposals if args.all or p.outcome is Outcome.AWAITING_APPROVAL]
    if args.output != "text":
        document = {
            "result": report.result,
            "proposals": [p.to_dict() for p in shown],
            "errors": [_error_to_dict(e) for e in report.errors],
        }
        _emit(document, args.output, stdout)
    else:
        stdout.writelines(_unread_lines(report))
        if not shown:
            stdout.write("No proposals are waiting for approval.\n" if not args.all else "No proposals.\n")
        else:
            stdout.write(render_proposals(shown))
    return EXIT_PARTIAL if report.result == "partial" else EXIT_OK


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
    timeline = _timeline(args.timeline, "ecs-medic demo" + (" --enforce" if args.enforce else ""))
    code = demo.run_demo(
        args.scenario,
        enforce=args.enforce,
        out=stdout,
        minutes=args.minutes,
        port=args.port,
        verbose=args.verbose,
        timeline=timeline,
    )
    if timeline is not None:
        timeline.write(args.timeline)
        stdout.write(f"timeline: {args.timeline}\n")
    return code


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


def _check_replicas(settings: Settings) -> None:
    from agent.settings import Mode  # noqa: PLC0415

    if settings.mode is Mode.ENFORCE and settings.replicas > 1 and not settings.lease_table:
        raise UsageError(
            f"ECS_MEDIC_REPLICAS={settings.replicas} in enforce mode needs ECS_MEDIC_LEASE_TABLE: without leader "
            "election every replica would act; set a lease table, run one replica, or use dry-run"
        )
    if settings.mode is Mode.ENFORCE and settings.shards > 1 and not settings.lease_table:
        raise UsageError(
            f"ECS_MEDIC_SHARDS={settings.shards} in enforce mode needs ECS_MEDIC_LEASE_TABLE: replicas own shards "
            "through leases in that table; set a lease table, or one shard"
        )


def _run(args: argparse.Namespace, _stdin: TextIO, _stdout: TextIO) -> int:
    from agent.http import Health, StatusServer  # noqa: PLC0415
    from agent.notify import dry_run_allows  # noqa: PLC0415
    from agent.run import build_agent  # noqa: PLC0415
    from agent.settings import Mode  # noqa: PLC0415

    settings = _settings(args)
    _check_replicas(settings)
    runtime = _runtime(settings, daemon=True)
    if settings.shards > 1 and not (settings.lease_table and settings.mode is Mode.ENFORCE):
        runtime.log.warning(
            "shards_ignored",
            shards=settings.shards,
            why="shards are leases: enforce mode with ECS_MEDIC_LEASE_TABLE; every replica reads every service",
        )
    agent_box: list[Any] = []
    health = Health(
        max_pass_age_seconds=max(3 * settings.poll_interval_seconds, 120.0),
        proposals=lambda: agent_box[0].proposals if agent_box else [],
        verdicts=lambda: agent_box[0].verdicts if agent_box else [],
    )
    try:
        server = StatusServer(runtime.metrics, health, settings.metrics_port, host=settings.listen_address).start()
    except OSError as error:
        where = f"{settings.listen_address}:{settings.metrics_port}"
        raise UsageError(f"cannot listen on {where}: {error.strerror or error}") from None
    try:
        agent = build_agent(
            settings,
            gateway=runtime.gateway,
            reconciler=runtime.reconciler,
            policies=runtime.policies,
            metrics=runtime.metrics,
            log=runtime.log,
            health=health,
            budget=runtime.budget,
            dry_run_allows=dry_run_allows(settings),
        )
    except ValueError as error:  # a role ARN, no Region, no credentials
        server.stop()
        raise UsageError(str(error)) from None
    agent_box.append(agent)
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
        listen=settings.listen_address,
        port=server.port,
        interval_seconds=settings.poll_interval_seconds,
        events_queue=bool(settings.events_queue_url),
        resync_seconds=settings.resync_interval_seconds if settings.events_queue_url else None,
        replicas=settings.replicas,
        shards=settings.shards,
        targets=[t.label for t in agent.targets],
        pid=os.getpid(),
    )
    notifier = _start_notifications(runtime)
    for target in agent.targets:
        target.reconciler.notifier = notifier
    agent.run(stop)
    notifier.close(10)
    server.stop()
    runtime.log.info("agent_stopped")
    return EXIT_OK


# --- parser ----------------------------------------------------------------------------------------------


def _aws_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--region", help="AWS Region (default: AWS_REGION, AWS_DEFAULT_REGION, or the profile's)")
    parser.add_argument("--profile", help="a named profile of the AWS config files (default: AWS_PROFILE)")


def _log_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-format", dest="log_format", choices=("json", "console"), help="default: ECS_MEDIC_LOG_FORMAT"
    )
    parser.add_argument(
        "--log-level",
        dest="log_level",
        choices=("debug", "info", "warning", "error"),
        help="default: ECS_MEDIC_LOG_LEVEL, or info for `run` and warning for the other commands",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="log errors only")


def _output_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", choices=OUTPUTS, default="text", help="result format (default: text)")


def _selection_flags(parser: argparse.ArgumentParser, *, mode: bool) -> None:
    if mode:
        parser.add_argument("--mode", choices=("dry-run", "enforce"), help="default: ECS_MEDIC_MODE or dry-run")
    parser.add_argument(
        "--clusters",
        help="comma-separated cluster names or ARNs (default: ECS_MEDIC_CLUSTERS, or every cluster)",
    )
    parser.add_argument("--policies", type=Path, help="a policy file or folder (default: ECS_MEDIC_POLICIES)")


def _add_run(commands: Any) -> None:  # noqa: ANN401 - argparse's subparsers action is private
    run = commands.add_parser(
        "run", help="the agent: reconcile forever, serving /metrics, /healthz, /readyz, /proposals"
    )
    _selection_flags(run, mode=True)
    run.add_argument("--interval", help="time between passes, e.g. 30s (default: ECS_MEDIC_POLL_INTERVAL_SECONDS)")
    run.add_argument("--listen", metavar="ADDRESS", help="HTTP listen address (default: ECS_MEDIC_LISTEN_ADDRESS)")
    run.add_argument("--port", type=int, help="HTTP port (default: ECS_MEDIC_METRICS_PORT or 9740)")
    _aws_flags(run)
    _log_flags(run)
    run.set_defaults(handler=_run)


def _add_once(commands: Any) -> None:  # noqa: ANN401
    once = commands.add_parser("once", help="one reconcile pass: print findings and proposals (or actions), exit")
    _selection_flags(once, mode=True)
    _output_flag(once)
    once.add_argument("--exit-code", action="store_true", help="exit 3 when a change is proposed or waits for approval")
    once.add_argument("--passes", type=int, default=1, help="run this many passes (default 1); print the last")
    once.add_argument("--every", help="time between passes, e.g. 30s (default: ECS_MEDIC_POLL_INTERVAL_SECONDS)")
    once.add_argument(
        "--timeline", type=Path, metavar="FILE", help="write the passes' timeline per service: an .html page"
    )
    _aws_flags(once)
    _log_flags(once)
    once.set_defaults(handler=_once)


def _add_diagnose(commands: Any) -> None:  # noqa: ANN401
    diagnose = commands.add_parser(
        "diagnose",
        help="explain why a service fails: live (--cluster, --service) or from describe-* JSON (--input)",
        description="Live: every check of the troubleshooting workflow for one service (read-only). "
        "Offline: read JSON as printed by `aws ecs describe-tasks` and/or `aws ecs describe-services` "
        "and print one finding per stopped task, problem event and failed deployment.",
    )
    diagnose.add_argument("--input", metavar="FILE", help="the JSON file, or - for stdin (at most 64 MiB)")
    diagnose.add_argument("--cluster", help="live: the cluster")
    diagnose.add_argument("--service", help="live: the service")
    _output_flag(diagnose)
    _aws_flags(diagnose)
    _log_flags(diagnose)
    diagnose.set_defaults(handler=_diagnose)

    _add_preflight(commands)


def _add_policies(commands: Any) -> None:  # noqa: ANN401
    policies = commands.add_parser("policies", help="work with policy files")
    policy_commands = policies.add_subparsers(dest="policies_command", required=True, metavar="COMMAND")
    validate = policy_commands.add_parser("validate", help="check policy files; errors name file, policy and field")
    validate.add_argument("paths", nargs="*", metavar="PATH", help="files or folders (default: ECS_MEDIC_POLICIES)")
    _output_flag(validate)
    validate.add_argument("-q", "--quiet", action="store_true", help="print nothing when every policy is valid")
    validate.set_defaults(handler=_policies_validate)


def _add_proposals_and_approve(commands: Any) -> None:  # noqa: ANN401
    proposals = commands.add_parser("proposals", help="proposals waiting for approval (a read-only pass)")
    _selection_flags(proposals, mode=False)
    _output_flag(proposals)
    proposals.add_argument("--all", action="store_true", help="every proposal, not only those awaiting approval")
    _aws_flags(proposals)
    _log_flags(proposals)
    proposals.set_defaults(handler=_proposals)

    approve = commands.add_parser("approve", help="approve a proposal by id (writes one tag on its service)")
    _selection_flags(approve, mode=False)
    approve.add_argument("id", help="the proposal id, as `ecs-medic proposals` prints it")
    approve.add_argument(
        "--ttl", type=float, help="seconds the approval stays valid (default: ECS_MEDIC_APPROVAL_TTL_SECONDS)"
    )
    _aws_flags(approve)
    _log_flags(approve)
    approve.set_defaults(handler=_approve)


def _add_simulation(commands: Any) -> None:  # noqa: ANN401
    demo = commands.add_parser(
        "demo", help="run the agent against the embedded simulated ECS world (no AWS account needed)"
    )
    demo.add_argument("--scenario", action="append", default=[], metavar="NAME", help="repeatable; default: all")
    demo.add_argument("--enforce", action="store_true", help="let the agent act (default: dry-run, propose only)")
    demo.add_argument("--list-scenarios", action="store_true", help="list the scenarios and exit")
    demo.add_argument("--minutes", type=float, default=40.0, help="simulated minutes to run at most")
    demo.add_argument("--port", type=int, help="serve /metrics, /healthz, /readyz and /proposals on this port")
    demo.add_argument("-v", "--verbose", action="store_true", help="show every pass, not only what changed")
    demo.add_argument("--timeline", type=Path, metavar="FILE", help="write a timeline per service: an .html page")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ecs-medic",
        description="Diagnose failing Amazon ECS services with evidence, and fix them safely (dry-run by default).",
        epilog="Exit codes: 0 done, 1 an action failed, 2 bad input or configuration, 3 proposals "
        "(once --exit-code), 4 partial pass (some reads failed), 5 failed pass (nothing could be read).",
    )
    parser.add_argument("--version", action="version", version=f"ecs-medic {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_run, _add_once, _add_diagnose, _add_policies, _add_proposals_and_approve, _add_simulation):
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """Run one command; return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    out = stdout or sys.stdout
    _AWS.update(region=getattr(args, "region", None), profile=getattr(args, "profile", None))
    try:
        code: int = args.handler(args, stdin or sys.stdin, out)
    except (InputError, UsageError) as error:
        sys.stderr.write(f"ecs-medic: {printable_lines(str(error))}\n")
        return EXIT_BAD_INPUT
    except _Exit as decided:
        sys.stderr.write(decided.message)
        return decided.code
    except KeyboardInterrupt:
        return 130
    return code


def printable_lines(text: str) -> str:
    """A multi-line message (policy errors) with each line made printable."""
    return "\n".join(printable(line) for line in text.split("\n"))
