"""PREFLIGHT: on a task definition about to be registered, the checks that would otherwise show up as stopped tasks.

Every check reads what AWS already knows, and changes nothing:

- every image exists (ECR: the repository and the tag; digests too) and its tag cannot move;
- the execution role exists, trusts `ecs-tasks.amazonaws.com`, and may do what the task needs before it
  starts (ECR login and pulls, CloudWatch Logs, each secret and parameter, environment files), decided
  by IAM's own policy simulator (`iam:SimulatePrincipalPolicy`);
- each referenced secret and parameter exists; each awslogs log group exists, or may be created;
- the Fargate CPU/memory pair is one Fargate accepts, and the containers fit in it;
- with a service: its subnets reach ECR, S3, CloudWatch Logs, Secrets Manager and SSM (VPC endpoints, a
  NAT or internet gateway, a public IP), its load balancer's container and port exist in the task
  definition with a matching target type, and its prevention settings (circuit breaker with rollback, a
  health-check grace period behind a load balancer).

The same checks run in the live `diagnose --cluster --service` (`agent.inspect`). A check that cannot run
(a permission ecs-medic lacks, a region it does not read) says so and fails nothing.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.actions.raise_memory import FARGATE_SIZES
from agent.arns import parse_image, resource_name
from agent.diagnose.fields import integer, text
from agent.diagnose.needs import (
    Need,
    account_of,
    awslogs,
    containers,
    destinations,
    execution_role_arn,
    role_needs,
    secrets,
)
from agent.diagnose.network import evaluate
from agent.diagnose.risks import risk_advice, risks_of
from agent.model import Subject

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence

    from agent.aws import AwsGateway
    from agent.observe import ReadApi

OK, PROBLEM, WARNING, INFO, NOT_CHECKED = "ok", "problem", "warning", "info", "not checked"
_MUTABLE_TAGS = frozenset({"latest", "stable", "main", "master", "prod", "production"})
_TASKS_TRUST = "ecs-tasks.amazonaws.com"


@dataclass(frozen=True, slots=True)
class Check:
    """One check: what was looked at, and what it showed."""

    name: str
    verdict: str  # ok | problem | warning | info | not checked
    lines: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.name, "verdict": self.verdict, "lines": list(self.lines)}


class PreflightInputError(ValueError):
    """A task definition file, or a service, that cannot be checked: one line, exit 2."""


def read_only_gateway(session: Any) -> AwsGateway:  # noqa: ANN401 - boto3 sessions are untyped
    """A dry-run gateway: the checks only read (IAM's policy simulator included)."""
    from agent.aws import AwsGateway  # noqa: PLC0415 - the command wires it; the checks take any ReadApi
    from agent.metrics import Metrics  # noqa: PLC0415

    return AwsGateway(dry_run=True, metrics=Metrics(), session=session)


def _code(error: Exception) -> str:
    response = getattr(error, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return str(code or type(error).__name__)


_DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError"})


# --- the task definition file ----------------------------------------------------------------------------


def load_task_definition(document: str, source: str) -> dict[str, Any]:
    """A task definition from JSON: what `register-task-definition --cli-input-json` takes, or what
    `describe-task-definition` prints. Bad input names the file, the place and the field."""
    try:
        parsed = json.loads(document)
    except json.JSONDecodeError as error:
        raise PreflightInputError(f"{source}:{error.lineno}:{error.colno}: not JSON ({error.msg})") from None
    if isinstance(parsed, dict) and isinstance(parsed.get("taskDefinition"), dict):
        parsed = parsed["taskDefinition"]
    if not isinstance(parsed, dict):
        raise PreflightInputError(f"{source}: expected a JSON object (a task definition)")
    found = parsed.get("containerDefinitions")
    if not isinstance(found, list) or not found:
        raise PreflightInputError(f"{source}: containerDefinitions: expected a non-empty list")
    for index, container in enumerate(found):
        where = f"{source}: containerDefinitions[{index}]"
        if not isinstance(container, dict):
            raise PreflightInputError(f"{where}: expected an object")
        for field in ("name", "image"):
            if not isinstance(container.get(field), str) or not container[field]:
                raise PreflightInputError(f"{where}.{field}: expected a non-empty string")
    for field in ("cpu", "memory"):
        value = parsed.get(field)
        if value is not None and integer(value) is None:
            raise PreflightInputError(f"{source}: {field}: expected a number of units (as a string), got {value!r}")
    return parsed


def family(task_definition: Mapping[str, Any]) -> str:
    name = text(task_definition.get("family")) or "<family>"
    revision = integer(task_definition.get("revision"))
    return f"{name}:{revision}" if revision else name


def is_fargate(task_definition: Mapping[str, Any], service: Mapping[str, Any] | None) -> bool:
    if service is not None:
        if service.get("launchType"):
            return service.get("launchType") == "FARGATE"
        strategy = service.get("capacityProviderStrategy") or []
        if strategy:
            return all(text(s.get("capacityProvider")).startswith("FARGATE") for s in strategy)
    required = task_definition.get("requiresCompatibilities") or []
    return "FARGATE" in required and "EC2" not in required


# --- images ----------------------------------------------------------------------------------------------


def image_checks(aws: ReadApi, task_definition: Mapping[str, Any], *, region: str) -> Iterator[Check]:
    """Each image exists where the task will pull it from, under a tag that cannot move."""
    for container in containers(task_definition):
        name, image = text(container.get("name")), text(container.get("image"))
        ref = parse_image(image)
        if not ref.is_ecr:
            mutable = not ref.digest and (ref.tag is None or ref.tag in _MUTABLE_TAGS)
            note = f"container {name}: {image} is not in ECR (not checked)"
            if mutable:
                yield Check("image", WARNING, (note, f"tag {ref.tag or 'latest'} can move: pin a version or a digest"))
            else:
                yield Check("image", INFO, (note,))
            continue
        if ref.ecr_region != region:
            yield Check("image", NOT_CHECKED, (f"container {name}: {image} is in {ref.ecr_region}, not {region}",))
            continue
        yield _ecr_image_check(aws, name, image)


def _ecr_image_check(aws: ReadApi, container: str, image: str) -> Check:
    ref = parse_image(image)
    repository, account, tag, digest = ref.repository, ref.ecr_account or "", ref.tag, ref.digest
    registry = {"repositoryName": repository, "registryId": account}
    try:
        found = aws.call("ecr", "DescribeRepositories", {"repositoryNames": [repository], "registryId": account})
    except Exception as error:  # noqa: BLE001 - every answer is a finding of the check
        code = _code(error)
        if code == "RepositoryNotFoundException":
            return Check("image", PROBLEM, (f"container {container}: repository {repository} does not exist",))
        return Check("image", NOT_CHECKED, (f"container {container}: ecr:DescribeRepositories failed: {code}",))
    details = (found.get("repositories") or [{}])[0]
    image_id = {"imageDigest": digest} if digest else {"imageTag": tag or "latest"}
    try:
        aws.call("ecr", "DescribeImages", {**registry, "imageIds": [image_id]})
    except Exception as error:  # noqa: BLE001 - every answer is a finding of the check
        code = _code(error)
        if code == "ImageNotFoundException":
            wanted = digest or tag or "latest"
            return Check(
                "image",
                PROBLEM,
                (f"container {container}: {wanted} is not in repository {repository}", *_newest_tags(aws, registry)),
            )
        return Check("image", NOT_CHECKED, (f"container {container}: ecr:DescribeImages failed: {code}",))
    line = f"container {container}: {repository}:{digest or tag or 'latest'} exists in ECR"
    if digest:
        return Check("image", OK, (line, "pinned by digest"))
    if details.get("imageTagMutability") == "MUTABLE":
        return Check(
            "image",
            WARNING,
            (line, f"repository {repository} lets tags move: turn on tag immutability (put-image-tag-mutability)"),
        )
    return Check("image", OK, (line, f"repository {repository} has immutable tags"))


def _newest_tags(aws: ReadApi, registry: Mapping[str, Any]) -> tuple[str, ...]:
    try:
        details = aws.call("ecr", "DescribeImages", {**registry, "maxResults": 100}).get("imageDetails") or []
    except Exception:  # noqa: BLE001 - the missing tag is the finding; the others are a courtesy
        return ()
    details.sort(key=lambda d: str(d.get("imagePushedAt") or ""), reverse=True)
    tags = [tag for d in details for tag in d.get("imageTags") or []][:5]
    return (f"newest tags in the repository: {', '.join(tags)}",) if tags else ()


# --- the execution role ----------------------------------------------------------------------------------


def _trusts_ecs_tasks(document: object) -> bool:
    parsed = json.loads(document) if isinstance(document, str) else document
    statements = parsed.get("Statement") if isinstance(parsed, dict) else None
    for statement in statements if isinstance(statements, list) else [statements]:
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            continue
        principal = statement.get("Principal")
        services = principal.get("Service") if isinstance(principal, dict) else None
        if _TASKS_TRUST in (services if isinstance(services, list) else [services]):
            return True
    return False


def simulate(aws: ReadApi, role_arn: str, needs: Sequence[Need]) -> dict[tuple[str, str], tuple[str, tuple[str, ...]]]:
    """IAM's decision for each (action, resource) the role needs, with the policies that decided it."""
    by_resource: dict[str, list[str]] = defaultdict(list)
    for need in needs:
        if need.action not in by_resource[need.resource]:
            by_resource[need.resource].append(need.action)
    decisions: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}
    for resource, actions in by_resource.items():
        params: dict[str, Any] = {"PolicySourceArn": role_arn, "ActionNames": actions}
        if resource != "*":
            params["ResourceArns"] = [resource]
        for result in aws.call("iam", "SimulatePrincipalPolicy", params).get("EvaluationResults") or []:
            policies = tuple(str(s.get("SourcePolicyId") or "") for s in result.get("MatchedStatements") or [])
            decisions[(str(result.get("EvalActionName")), resource)] = (str(result.get("EvalDecision")), policies)
    return decisions


def _missing_statement(denied: Sequence[Need]) -> str:
    by_resource: dict[str, list[str]] = defaultdict(list)
    for need in denied:
        by_resource[need.resource].append(need.action)
    statements = [
        {"Effect": "Allow", "Action": sorted(set(actions)), "Resource": resource}
        for resource, actions in by_resource.items()
    ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, separators=(",", ":"))


def execution_role_check(
    aws: ReadApi, task_definition: Mapping[str, Any], *, region: str, account: str, fargate: bool
) -> Check:
    """The execution role exists, trusts ECS tasks, and may do everything the task needs before it starts."""
    needs = role_needs(task_definition, region=region, account=account, fargate=fargate)
    role_arn = execution_role_arn(task_definition)
    if not needs:
        return Check("execution role", OK, ("nothing the task needs before it starts asks for the execution role",))
    if role_arn is None:
        whys = ", ".join(dict.fromkeys(need.why for need in needs))
        return Check("execution role", PROBLEM, (f"no executionRoleArn, but the task needs one to: {whys}",))
    role = resource_name(role_arn)
    try:
        found = aws.call("iam", "GetRole", {"RoleName": role}).get("Role") or {}
    except Exception as error:  # noqa: BLE001 - every answer is a finding of the check
        code = _code(error)
        if code in {"NoSuchEntity", "NoSuchEntityException"}:
            return Check("execution role", PROBLEM, (f"role {role} does not exist",))
        return Check("execution role", NOT_CHECKED, (f"iam:GetRole {role} failed: {code}",))
    lines: list[str] = []
    verdict = OK
    if not _trusts_ecs_tasks(found.get("AssumeRolePolicyDocument")):
        verdict = PROBLEM
        lines.append(f"role {role} does not trust {_TASKS_TRUST}: ECS cannot assume it (its trust policy)")
    try:
        decisions = simulate(aws, role_arn, needs)
    except Exception as error:  # noqa: BLE001 - a check that cannot run says so
        code = _code(error)
        hint = " (grant ecs-medic iam:SimulatePrincipalPolicy)" if code in _DENIED_CODES else ""
        return Check("execution role", NOT_CHECKED, (*lines, f"iam:SimulatePrincipalPolicy failed: {code}{hint}"))
    denied = []
    for need in needs:
        decision, policies = decisions.get((need.action, need.resource), ("implicitDeny", ()))
        if decision == "allowed":
            continue
        denied.append(need)
        how = (
            f"explicitly denied by {', '.join(policies) or 'a policy'}"
            if decision == "explicitDeny"
            else "no policy allows it"
        )
        lines.append(f"{need.action} on {need.resource} is denied ({how}): needed to {need.why}")
    if denied:
        verdict = PROBLEM
        lines.append(f"role {role} needs: {_missing_statement(denied)}")
    else:
        lines.append(f"role {role} may do all {len(needs)} things the task needs before it starts (IAM's simulator)")
    return Check("execution role", verdict, tuple(lines))


# --- secrets, parameters and log groups --------------------------------------------------------------------


def _parameter_name(arn: str) -> str:
    return arn.split(":parameter", 1)[-1]


def secrets_check(aws: ReadApi, task_definition: Mapping[str, Any], *, region: str, account: str) -> Check | None:
    """Each referenced secret and parameter exists (their values are never read)."""
    found = secrets(task_definition, region=region, account=account)
    if not found:
        return None
    lines: list[str] = []
    verdict = OK
    for secret in found:
        label = f"{secret.name} of container {secret.container}"
        secret_region = secret.arn.split(":")[3] if secret.arn.startswith("arn:") else region
        if secret_region != region:
            lines.append(f"{label}: {secret.source} is in {secret_region} (not checked)")
            continue
        try:
            exists = _secret_exists(aws, secret.kind, secret.arn, secret.source)
        except Exception as error:  # noqa: BLE001 - say what could not be read
            lines.append(f"{label}: could not check {secret.source}: {_code(error)}")
            verdict = NOT_CHECKED if verdict == OK else verdict
            continue
        if exists:
            lines.append(f"{label}: {secret.source} exists")
        else:
            verdict = PROBLEM
            where = "Secrets Manager" if secret.kind == "secretsmanager" else "SSM Parameter Store"
            lines.append(f"{label}: {secret.source} does not exist in {where} ({region})")
    return Check("secrets", verdict, tuple(lines))


def _secret_exists(aws: ReadApi, kind: str, arn: str, source: str) -> bool:
    if kind == "secretsmanager":
        try:
            aws.call("secretsmanager", "DescribeSecret", {"SecretId": arn})
        except Exception as error:
            if _code(error) == "ResourceNotFoundException":
                return False
            raise
        return True
    name = source if not source.startswith("arn:") else _parameter_name(arn)
    filters = [{"Key": "Name", "Option": "Equals", "Values": [name]}]
    found = aws.call("ssm", "DescribeParameters", {"ParameterFilters": filters}).get("Parameters") or []
    return bool(found)


def log_group_check(
    aws: ReadApi, task_definition: Mapping[str, Any], *, region: str, may_create: bool | None
) -> Check | None:
    """Each awslogs log group exists, or the driver is told to create it (and the role may: `may_create`)."""
    lines: list[str] = []
    verdict = OK
    for container in containers(task_definition):
        logs = awslogs(container, region)
        if logs is None:
            continue
        group, group_region, create = logs
        label = f"container {text(container.get('name'))}"
        if group_region != region:
            lines.append(f"{label}: log group {group} is in {group_region} (not checked)")
            continue
        try:
            groups = aws.call("logs", "DescribeLogGroups", {"logGroupNamePrefix": group}).get("logGroups") or []
        except Exception as error:  # noqa: BLE001 - say what could not be read
            lines.append(f"{label}: could not check log group {group}: {_code(error)}")
            continue
        if any(g.get("logGroupName") == group for g in groups):
            lines.append(f"{label}: log group {group} exists")
        elif create and may_create is not False:
            lines.append(f"{label}: log group {group} does not exist yet; awslogs-create-group will create it")
        elif create:
            verdict = PROBLEM
            lines.append(f"{label}: log group {group} does not exist and the execution role may not create it")
        else:
            verdict = PROBLEM
            lines.append(
                f"{label}: log group {group} does not exist (create it, or set awslogs-create-group to true "
                "and allow logs:CreateLogGroup)"
            )
    return Check("log groups", verdict, tuple(lines)) if lines else None


# --- sizes -----------------------------------------------------------------------------------------------


def fargate_size_check(task_definition: Mapping[str, Any]) -> Check:
    """The task's CPU/memory pair is one Fargate accepts, and its containers fit in it."""
    cpu, memory = integer(task_definition.get("cpu")), integer(task_definition.get("memory"))
    if cpu is None or memory is None:
        return Check("fargate size", PROBLEM, ("a Fargate task definition needs task-level cpu and memory",))
    if cpu not in FARGATE_SIZES:
        valid = ", ".join(str(units) for units in FARGATE_SIZES)
        return Check("fargate size", PROBLEM, (f"cpu {cpu} is not a Fargate size (valid: {valid})",))
    if memory not in FARGATE_SIZES[cpu]:
        sizes = FARGATE_SIZES[cpu]
        valid = (
            ", ".join(map(str, sizes))
            if len(sizes) <= 4
            else f"{sizes[0]} to {sizes[-1]} in steps of {sizes[1] - sizes[0]}"
        )
        return Check("fargate size", PROBLEM, (f"cpu {cpu} takes memory {valid} MiB, not {memory}",))
    lines = [f"cpu {cpu} with memory {memory} MiB is a valid Fargate size"]
    verdict = OK
    hard = sum(integer(c.get("memory")) or 0 for c in containers(task_definition))
    reserved = sum(integer(c.get("memoryReservation")) or 0 for c in containers(task_definition))
    units = sum(integer(c.get("cpu")) or 0 for c in containers(task_definition))
    if hard > memory or reserved > memory:
        verdict = PROBLEM
        lines.append(f"the containers ask for {max(hard, reserved)} MiB, more than the task's {memory} MiB")
    if units > cpu:
        verdict = PROBLEM
        lines.append(f"the containers ask for {units} CPU units, more than the task's {cpu}")
    return Check("fargate size", verdict, tuple(lines))


# --- the service's network and load balancer --------------------------------------------------------------


def network_check(
    aws: ReadApi,
    task_definition: Mapping[str, Any],
    network_configuration: Mapping[str, Any] | None,
    *,
    region: str,
    fargate: bool,
) -> Check:
    """From each of the task's subnets, a way to every service it must reach before it starts."""
    if not fargate:
        return Check("network path", NOT_CHECKED, ("on EC2 the agent pulls over the container instance's network",))
    vpc_config = (network_configuration or {}).get("awsvpcConfiguration") or {}
    subnet_ids = [text(s) for s in vpc_config.get("subnets") or [] if text(s)]
    if not subnet_ids:
        return Check("network path", NOT_CHECKED, ("no awsvpc subnets to check",))
    wanted = destinations(task_definition, region=region, fargate=fargate)
    if not wanted:
        return Check("network path", OK, ("the task reaches nothing before it starts",))
    try:
        subnets = aws.call("ec2", "DescribeSubnets", {"SubnetIds": subnet_ids}).get("Subnets") or []
        vpc = {"Name": "vpc-id", "Values": sorted({text(s.get("VpcId")) for s in subnets})}
        tables = _all(aws, "DescribeRouteTables", {"Filters": [vpc]}, "RouteTables")
        endpoints = _all(aws, "DescribeVpcEndpoints", {"Filters": [vpc]}, "VpcEndpoints")
        group_ids = [text(g) for g in vpc_config.get("securityGroups") or [] if text(g)]
        endpoint_group_ids = {text(g.get("GroupId")) for e in endpoints for g in e.get("Groups") or []}
        groups = _security_groups(aws, [*group_ids, *sorted(endpoint_group_ids - set(group_ids))])
    except Exception as error:  # noqa: BLE001 - a check that cannot run says so
        return Check("network path", NOT_CHECKED, (f"reading the VPC failed: {_code(error)}",))
    verdict = evaluate(
        region=region,
        subnets=subnets,
        route_tables=tables,
        endpoints=endpoints,
        task_groups=[groups[g] for g in group_ids if g in groups],
        endpoint_groups=groups,
        destinations=wanted,
        public_ip=vpc_config.get("assignPublicIp") == "ENABLED",
    )
    needed = ", ".join(d.service for d in wanted)
    if not verdict.ok:
        return Check("network path", PROBLEM, (f"the task must reach: {needed}", *verdict.problems, *verdict.notes))
    ways = sorted({f"{p.service}: {p.how}" for p in verdict.paths})
    return Check("network path", OK if not verdict.notes else INFO, (f"the task must reach: {needed}", *ways))


def _all(aws: ReadApi, operation: str, params: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    """Every item of an EC2 Describe* call, across pages (EC2 pages with NextToken)."""
    request: dict[str, Any] = dict(params)
    items: list[Mapping[str, Any]] = []
    while True:
        page = aws.call("ec2", operation, request)
        items += [item for item in page.get(key) or [] if isinstance(item, dict)]
        if not page.get("NextToken"):
            return items
        request["NextToken"] = page["NextToken"]


def _security_groups(aws: ReadApi, ids: Sequence[str]) -> dict[str, Mapping[str, Any]]:
    if not ids:
        return {}
    found = aws.call("ec2", "DescribeSecurityGroups", {"GroupIds": list(ids)}).get("SecurityGroups") or []
    return {text(g.get("GroupId")): g for g in found}


def load_balancer_check(aws: ReadApi, service: Mapping[str, Any], task_definition: Mapping[str, Any]) -> Check | None:
    """The service's load balancer sends traffic to a container and port the task definition has, and the
    target group's target type matches the network mode."""
    balancers = [b for b in service.get("loadBalancers") or [] if isinstance(b, dict)]
    if not balancers:
        return None
    by_name = {text(c.get("name")): c for c in containers(task_definition)}
    awsvpc = task_definition.get("networkMode") == "awsvpc"
    lines: list[str] = []
    verdict = OK
    for balancer in balancers:
        name, port = text(balancer.get("containerName")), integer(balancer.get("containerPort"))
        container = by_name.get(name)
        if container is None:
            verdict = PROBLEM
            lines.append(f"the load balancer sends to container {name}, which the task definition does not have")
            continue
        ports = [integer(m.get("containerPort")) for m in container.get("portMappings") or [] if isinstance(m, dict)]
        if port not in ports:
            verdict = PROBLEM
            lines.append(f"container {name} maps ports {ports or 'none'}, not {port}, which the load balancer uses")
        else:
            lines.append(f"container {name} maps port {port}, as the load balancer expects")
        arn = text(balancer.get("targetGroupArn"))
        if not arn:
            continue
        try:
            group = (aws.call("elbv2", "DescribeTargetGroups", {"TargetGroupArns": [arn]}).get("TargetGroups") or [{}])[
                0
            ]
        except Exception as error:  # noqa: BLE001 - say what could not be read
            lines.append(f"target group {arn}: {_code(error)}")
            continue
        kind = text(group.get("TargetType")) or "instance"
        if (kind == "ip") != awsvpc:
            verdict = PROBLEM
            mode = task_definition.get("networkMode") or "bridge"
            lines.append(f"target group {group.get('TargetGroupName')} takes {kind} targets; network mode {mode} gives "
                         f"{'ip' if awsvpc else 'instance'} targets")  # fmt: skip
    return Check("load balancer", verdict, tuple(lines))


def prevention_check(service: Mapping[str, Any], task_definition: Mapping[str, Any], subject: Subject) -> Check:
    """The settings that make the next failure worse (warnings: they fail nothing by themselves)."""
    risks = risks_of(service, subject, task_definition)
    if not risks:
        return Check("prevention", OK, ("circuit breaker with rollback; grace period set where a load balancer is",))
    lines = [line for risk in risks for line in (risk.summary, f"  fix: {risk_advice(risk).fix}")]
    return Check("prevention", WARNING, tuple(lines))


# --- the whole preflight ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PreflightReport:
    task_definition: str
    service: str | None
    checks: tuple[Check, ...]

    @property
    def problems(self) -> int:
        return sum(c.verdict == PROBLEM for c in self.checks)

    @property
    def warnings(self) -> int:
        return sum(c.verdict in {WARNING, NOT_CHECKED} for c in self.checks)

    def passed(self, *, strict: bool = False) -> bool:
        return self.problems == 0 and (not strict or self.warnings == 0)

    def to_dict(self, *, strict: bool = False) -> dict[str, Any]:
        return {
            "taskDefinition": self.task_definition,
            "service": self.service,
            "passed": self.passed(strict=strict),
            "problems": self.problems,
            "warnings": self.warnings,
            "checks": [c.to_dict() for c in self.checks],
        }

    def render(self, *, strict: bool = False) -> str:
        target = f" for {self.service}" if self.service else ""
        lines = [f"preflight {self.task_definition}{target}: {len(self.checks)} checks"]
        lines += render_checks(self.checks)
        result = "passed" if self.passed(strict=strict) else "FAILED"
        lines.append(f"{result}: {self.problems} problems, {self.warnings} warnings")
        return "\n".join(lines) + "\n"


_MARKS = {OK: "ok  ", PROBLEM: "FAIL", WARNING: "warn", INFO: "info", NOT_CHECKED: "----"}


def render_checks(checks: Iterable[Check]) -> list[str]:
    lines = []
    for check in checks:
        lines.append(f"  {_MARKS.get(check.verdict, check.verdict)} {check.name}")
        lines += [f"         {line}" for line in check.lines]
    return lines


def _account(aws: ReadApi, task_definition: Mapping[str, Any]) -> str:
    for arn in (task_definition.get("executionRoleArn"), task_definition.get("taskRoleArn")):
        found = account_of(text(arn))
        if found:
            return found
    for container in containers(task_definition):
        ref = parse_image(text(container.get("image")))
        if ref.is_ecr and ref.ecr_account:
            return ref.ecr_account
    try:
        return str(aws.call("sts", "GetCallerIdentity", {}).get("Account") or "")
    except Exception:  # noqa: BLE001 - without it, ARNs are built with an empty account (and say so)
        return ""


def describe_service(aws: ReadApi, cluster: str, service: str) -> dict[str, Any]:
    """The service as DescribeServices shows it; a service that is not ACTIVE is bad input."""
    try:
        found = aws.call("ecs", "DescribeServices", {"cluster": cluster, "services": [service]}).get("services") or []
    except Exception as error:  # noqa: BLE001 - no service, no service checks: the input is wrong
        code = _code(error)
        if code == "ClusterNotFoundException":
            raise PreflightInputError(f"no cluster {cluster}") from None
        raise PreflightInputError(f"cannot read service {service} in cluster {cluster}: {code}") from None
    active = [s for s in found if s.get("status") == "ACTIVE"]
    if not active:
        raise PreflightInputError(f"no active service {service} in cluster {cluster}")
    described: dict[str, Any] = active[0]
    return described


def access_checks(
    aws: ReadApi,
    task_definition: Mapping[str, Any],
    *,
    region: str,
    service: Mapping[str, Any] | None,
) -> list[Check]:
    """The checks of what a task needs before it starts: role, secrets, log groups, network path."""
    fargate = is_fargate(task_definition, service)
    account = _account(aws, task_definition)
    role = execution_role_check(aws, task_definition, region=region, account=account, fargate=fargate)
    may_create = None if role.verdict != PROBLEM else not any("logs:CreateLogGroup" in line for line in role.lines)
    checks = [role]
    checks += [c for c in (secrets_check(aws, task_definition, region=region, account=account),) if c]
    checks += [c for c in (log_group_check(aws, task_definition, region=region, may_create=may_create),) if c]
    if service is not None:
        checks.append(network_check(aws, task_definition, service.get("networkConfiguration"), region=region,
                                    fargate=fargate))  # fmt: skip
    return checks


def preflight(
    aws: ReadApi,
    task_definition: Mapping[str, Any],
    *,
    region: str,
    cluster: str | None = None,
    service: str | None = None,
) -> PreflightReport:
    """Every check for a task definition about to be registered (and the service it will run in, if given)."""
    described = describe_service(aws, cluster, service) if cluster and service else None
    checks = list(image_checks(aws, task_definition, region=region))
    checks += access_checks(aws, task_definition, region=region, service=described)
    if is_fargate(task_definition, described):
        checks.append(fargate_size_check(task_definition))
    if described is not None:
        checks += [c for c in (load_balancer_check(aws, described, task_definition),) if c]
        subject = Subject(cluster=cluster or "", service=service, region=region)
        checks.append(prevention_check(described, task_definition, subject))
    return PreflightReport(family(task_definition), service, tuple(checks))
