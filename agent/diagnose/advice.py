"""The fix for each cause, in words and as the `aws` CLI commands an operator would run.

Commands are filled in with every name the diagnosis knows (cluster, service, task, task definition,
container, image, target group, secret, log group); what only the operator's account can tell
(a VPC id, an Auto Scaling group) is left as an explicit `<placeholder>` next to the command that
finds it.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

from agent.arns import parse_image
from agent.awscli import command, quote
from agent.diagnose.messages import read_message
from agent.model import Advice, Cause, Finding, Subject

if TYPE_CHECKING:
    from collections.abc import Callable

    from agent.diagnose.messages import Nearest


class _Cli:
    """Builds `aws` commands with the subject's region appended, so each line runs as printed."""

    def __init__(self, subject: Subject) -> None:
        self.subject = subject
        self.region = subject.region

    def __call__(self, *words: str) -> str:
        return command(*words, region=self.region)

    @property
    def ecs(self) -> str:
        return f"--cluster {quote(self.subject.cluster)}"

    @property
    def service(self) -> str:
        return quote(self.subject.service or "<service>")

    @property
    def task_definition(self) -> str:
        return quote(self.subject.task_definition or "<family:revision>")


def _describe_task(cli: _Cli) -> str | None:
    if not cli.subject.task_arn:
        return None
    return cli("ecs describe-tasks", cli.ecs, f"--tasks {quote(cli.subject.task_arn)}")


def _container_query(cli: _Cli, fields: str) -> str:
    container = cli.subject.container
    selector = f"[?name=='{container}']" if container else "[0]"
    return cli(
        "ecs describe-task-definition",
        f"--task-definition {cli.task_definition}",
        f'--query "taskDefinition.containerDefinitions{selector}.{fields}"',
    )


def _rollback_command(cli: _Cli) -> str:
    target = cli.subject.last_good_task_definition or "<last-good-family:revision>"
    return cli("ecs update-service", cli.ecs, f"--service {cli.service}", f"--task-definition {quote(target)}")


def _revisions_command(cli: _Cli) -> str:
    family = (cli.subject.task_definition or "<family>").split(":", 1)[0]
    return cli("ecs list-task-definitions", f"--family-prefix {quote(family)}", "--sort DESC", "--max-items 5")


def _template(subject: Subject) -> str:
    """Which stable wording decided the subject's message (empty when none did)."""
    reading = read_message(subject.message) if subject.message else None
    return reading.template if reading is not None else ""


def _no_platform_variant(cli: _Cli) -> Advice:
    image = cli.subject.image
    what = f"`{image}`" if image else "The image"
    return Advice(
        fix=f"{what} exists, but not for the task's platform: its manifest list has no linux/amd64 (or arm64) "
        "variant. Build and push it for the task's CPU architecture (docker buildx build --platform ...), or set "
        "the task definition's runtimePlatform to the architecture the image has; meanwhile roll back.",
        commands=(
            cli(
                "ecs describe-task-definition",
                f"--task-definition {cli.task_definition}",
                "--query taskDefinition.runtimePlatform",
            ),
            _rollback_command(cli),
        ),
    )


def _image_not_found(cli: _Cli) -> Advice:
    if _template(cli.subject) == "pull/no-platform-variant":
        return _no_platform_variant(cli)
    image = cli.subject.image
    commands: list[str] = []
    ref = parse_image(image) if image else None
    if ref and ref.is_ecr and ref.tag:
        commands.append(
            cli(
                "ecr describe-images",
                f"--repository-name {quote(ref.repository)}",
                f"--image-ids imageTag={quote(ref.tag)}",
                f"--region {ref.ecr_region}",
            )
        )
    commands += [_revisions_command(cli), _rollback_command(cli)]
    what = f"`{image}`" if image else "The image in the task definition"
    return Advice(
        fix=f"{what} is not in its repository (a pipeline updated the task definition before the push, "
        "or the tag was deleted). Push the image under that tag, or roll the service back to the last "
        "revision whose image exists.",
        commands=tuple(commands),
    )


def _ecr_pull_policy(image: str | None) -> str:
    ref = parse_image(image) if image else None
    repository = (
        f"arn:aws:ecr:{ref.ecr_region}:{ref.ecr_account}:repository/{ref.repository}"
        if ref and ref.is_ecr
        else "arn:aws:ecr:<region>:<account>:repository/<repository>"
    )
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "ecr:BatchGetImage",
                    "ecr:GetDownloadUrlForLayer",
                    "ecr:BatchCheckLayerAvailability",
                ],
                "Resource": repository,
            },
            {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
        ],
    }
    return json.dumps(policy, separators=(",", ":"))


_ROLE_IN_TEXT = re.compile(r"assumed-role/(?P<role>[\w+=,.@-]+)/")


def _image_pull_auth(cli: _Cli) -> Advice:
    match = _ROLE_IN_TEXT.search(cli.subject.message)
    role = match.group("role") if match else "<execution-role-name>"
    return Advice(
        fix=f"The task execution role `{role}` may not pull this image. Grant it the minimal ECR pull "
        "permissions on the repository (a repository policy that denies the role has the same effect; "
        "for a private registry, check the repositoryCredentials secret).",
        commands=(
            cli(
                "ecs describe-task-definition",
                f"--task-definition {cli.task_definition}",
                "--query taskDefinition.executionRoleArn",
            ),
            cli(
                "iam put-role-policy",
                f"--role-name {quote(role)}",
                "--policy-name ecr-pull",
                f"--policy-document {quote(_ecr_pull_policy(cli.subject.image))}",
            ),
        ),
    )


def _image_pull_network(cli: _Cli) -> Advice:
    region = cli.subject.region or "<region>"
    endpoints = [
        cli(
            "ec2 create-vpc-endpoint --vpc-id <vpc-id> --vpc-endpoint-type Interface",
            f"--service-name com.amazonaws.{region}.{name}",
            "--subnet-ids <subnet-ids> --security-group-ids <sg-allowing-443> --private-dns-enabled",
        )
        for name in ("ecr.api", "ecr.dkr")
    ]
    endpoints.append(
        cli(
            "ec2 create-vpc-endpoint --vpc-id <vpc-id> --vpc-endpoint-type Gateway",
            f"--service-name com.amazonaws.{region}.s3 --route-table-ids <route-table-ids>",
        )
    )
    return Advice(
        fix="The task's subnets have no path to the registry. Give them a route to a NAT gateway (or a public "
        "IP with an internet gateway), or create the VPC endpoints ecr.api, ecr.dkr and s3 (ECR keeps layers "
        "in S3), and check that security groups allow outbound 443.",
        commands=(
            cli(
                "ecs describe-services",
                cli.ecs,
                f"--services {cli.service}",
                '--query "services[0].networkConfiguration"',
            ),
            cli(
                "ec2 describe-vpc-endpoints",
                "--filters Name=vpc-id,Values=<vpc-id>",
                '--query "VpcEndpoints[].[ServiceName,State]"',
            ),
            *endpoints,
        ),
    )


def _oom(cli: _Cli) -> Advice:
    service_dimension = f" Name=ServiceName,Value={cli.subject.service}" if cli.subject.service else ""
    return Advice(
        fix="The container exceeded its hard memory limit and the kernel killed it. Raise the container's "
        "`memory` (and the task memory on Fargate, keeping a valid CPU/memory pair) in a new task definition "
        "revision, or find the leak; check MemoryUtilized against the limit first.",
        commands=(
            _container_query(cli, "{memory: memory, memoryReservation: memoryReservation}"),
            cli(
                "cloudwatch get-metric-statistics --namespace ECS/ContainerInsights --metric-name MemoryUtilized",
                f"--dimensions Name=ClusterName,Value={cli.subject.cluster}{service_dimension}",
                "--statistics Maximum --period 300 --start-time <1h-ago> --end-time <now>",
            ),
        ),
    )


def _app_crash(cli: _Cli) -> Advice:
    code = cli.subject.exit_code
    what = f"exited with code {code}" if code is not None else "exited"
    task = cli.subject.task_arn.rsplit("/", 1)[-1] if cli.subject.task_arn else "<task-id>"
    container = cli.subject.container or "<container>"
    return Advice(
        fix=f"The application {what}: the cause is in its own logs (missing configuration or environment "
        "variable, a dependency it could not reach at startup, a bad config file). Read the last lines, and "
        "if this started with a deploy, roll back to the last good revision while fixing it.",
        commands=(
            _container_query(cli, "logConfiguration"),
            cli(
                "logs get-log-events --log-group-name <awslogs-group>",
                f"--log-stream-name <awslogs-stream-prefix>/{container}/{task}",
                '--limit 50 --no-start-from-head --query "events[].message"',
            ),
            _rollback_command(cli),
        ),
    )


def _entrypoint(cli: _Cli) -> Advice:
    return Advice(
        fix="The container's entrypoint or command could not run (a missing binary, a script without a "
        "shebang or with CRLF line endings, no execute bit, an image built for another CPU architecture). "
        "Check entryPoint/command against the image, or roll back to the last good revision.",
        commands=(
            _container_query(cli, "{entryPoint: entryPoint, command: command, image: image}"),
            _rollback_command(cli),
        ),
    )


_SECRET_ARN = re.compile(r"arn:aws[\w-]*:(?:secretsmanager|ssm):[^\s,;)\"']+")


def _secrets(cli: _Cli) -> Advice:
    match = _SECRET_ARN.search(cli.subject.message)
    commands = [_container_query(cli, "secrets")]
    if match and ":secretsmanager:" in match.group(0):
        commands.append(cli("secretsmanager describe-secret", f"--secret-id {quote(match.group(0))}"))
    elif match:
        name = match.group(0).split(":parameter", 1)[-1] or "<parameter-name>"
        commands.append(cli("ssm get-parameter", f"--name {quote(name)}", "--query Parameter.ARN"))
    return Advice(
        fix="A secret or parameter in the task definition could not be read at launch. Check that it exists "
        "in this region, that the execution role may call secretsmanager:GetSecretValue / ssm:GetParameters "
        "(and kms:Decrypt for a customer key), and that private subnets have a path to the secretsmanager or "
        "ssm endpoint.",
        commands=tuple(commands),
    )


_LOG_GROUP = re.compile(r"log group[^\"']*?(?:\"|')?(?P<group>/[\w./#-]+)")


def _log_config(cli: _Cli) -> Advice:
    match = _LOG_GROUP.search(cli.subject.message)
    group = match.group("group") if match else "<awslogs-group>"
    return Advice(
        fix="The logging driver could not start: usually the awslogs log group does not exist (set "
        "awslogs-create-group with logs:CreateLogGroup, or create it), or the execution role lacks "
        "logs:CreateLogStream/PutLogEvents, or there is no path to the logs endpoint.",
        commands=(
            _container_query(cli, "logConfiguration"),
            cli("logs create-log-group", f"--log-group-name {quote(group)}"),
        ),
    )


def _volume(cli: _Cli) -> Advice:
    return Advice(
        fix="A volume could not be mounted. For EFS: a mount target in each task subnet's AZ, NFS (2049) allowed "
        "from the task's security group, and the access point and IAM authorization as configured.",
        commands=(
            cli(
                "ecs describe-task-definition",
                f"--task-definition {cli.task_definition}",
                "--query taskDefinition.volumes",
            ),
            cli("efs describe-mount-targets --file-system-id <fs-id>"),
        ),
    )


def _placement(resource: str) -> Callable[[_Cli], Advice]:
    def advise(cli: _Cli) -> Advice:
        return Advice(
            fix=f"No container instance has enough free {resource} for this task. Add capacity (raise the "
            "capacity provider's Auto Scaling group, or let managed scaling do it with a lower targetCapacity), "
            f"or lower the task's {resource} reservation.",
            commands=(
                cli("ecs list-container-instances", cli.ecs),
                cli(
                    "ecs describe-container-instances",
                    cli.ecs,
                    "--container-instances <arns>",
                    '--query "containerInstances[].[ec2InstanceId,remainingResources]"',
                ),
                cli(
                    "ecs describe-clusters",
                    f"--clusters {quote(cli.subject.cluster)}",
                    '--query "clusters[0].capacityProviders"',
                ),
                cli("autoscaling set-desired-capacity --auto-scaling-group-name <asg-name> --desired-capacity <n>"),
            ),
        )

    return advise


def _placement_ports(cli: _Cli) -> Advice:
    return Advice(
        fix="Every instance already uses the static host port this task needs. Use dynamic host ports "
        "(hostPort 0) behind the load balancer, or awsvpc networking, or add instances.",
        commands=(_container_query(cli, "portMappings"), cli("ecs list-container-instances", cli.ecs)),
    )


def _placement_attributes(cli: _Cli) -> Advice:
    return Advice(
        fix="No instance matches the task's placement constraints or required attributes (instance type, "
        "AZ, a custom attribute, a platform capability). Relax the constraint or add a matching instance.",
        commands=(
            cli(
                "ecs describe-services",
                cli.ecs,
                f"--services {cli.service}",
                '--query "services[0].[placementConstraints,placementStrategy]"',
            ),
            cli("ecs list-attributes", cli.ecs, "--target-type container-instance"),
        ),
    )


def _pull_rate_limit(cli: _Cli) -> Advice:
    return Advice(
        fix="The registry refused more pulls (Docker Hub's limit for anonymous pulls, or ECR's request rate). "
        "Authenticate the pulls (repositoryCredentials with a Docker Hub account), or mirror the image into ECR "
        "with a pull-through cache rule and pull it from there; spread large deployments over time.",
        commands=(
            cli(
                "ecr create-pull-through-cache-rule --ecr-repository-prefix docker-hub",
                "--upstream-registry-url registry-1.docker.io --credential-arn <secret-arn>",
            ),
            _container_query(cli, "{image: image, repositoryCredentials: repositoryCredentials}"),
        ),
    )


def _capacity(cli: _Cli) -> Advice:
    if _template(cli.subject) == "pull/rate-limit":
        return _pull_rate_limit(cli)
    return Advice(
        fix="Capacity or an account quota ran out (Fargate capacity in the AZ, the vCPU quota, the task "
        "count, or API rate limits). Retry in other AZs or with FARGATE_SPOT as well, request a quota "
        "increase, or spread the API callers.",
        commands=(
            cli("service-quotas get-service-quota --service-code fargate --quota-code L-3032A538"),
            cli(
                "ecs describe-services",
                cli.ecs,
                f"--services {cli.service}",
                '--query "services[0].networkConfiguration.awsvpcConfiguration.subnets"',
            ),
        ),
    )


def _target_group_gone(cli: _Cli) -> Advice:
    return Advice(
        fix="The target group (or the target) the service registers its tasks in no longer exists: it was deleted "
        "outside ECS. A service's load balancer cannot be repointed to a deleted group: recreate the target group "
        "and the service (or update the service's loadBalancers), and delete target groups only after their service.",
        commands=(
            cli(
                "ecs describe-services",
                cli.ecs,
                f"--services {cli.service}",
                '--query "services[0].loadBalancers"',
            ),
            cli("elbv2 describe-target-groups --target-group-arns <target-group-arn>"),
        ),
    )


def _health_check_elb(cli: _Cli) -> Advice:
    if "is not found" in cli.subject.message.lower():
        return _target_group_gone(cli)
    lived = cli.subject.run_seconds
    grace = max(60, int(2 * lived)) if lived else 180
    target_group = cli.subject.target_group or "<target-group-arn>"
    return Advice(
        fix="The load balancer marked the task unhealthy and ECS replaced it, in a loop. If the app is just "
        f"slow to start, raise the health-check grace period (to at least twice its startup, e.g. {grace} s); "
        "otherwise check the health-check path, port and the security group between the ALB and the task.",
        commands=(
            cli(
                "ecs update-service",
                cli.ecs,
                f"--service {cli.service}",
                f"--health-check-grace-period-seconds {grace}",
            ),
            cli("elbv2 describe-target-health", f"--target-group-arn {quote(target_group)}"),
            cli(
                "elbv2 describe-target-groups",
                f"--target-group-arns {quote(target_group)}",
                '--query "TargetGroups[0].[HealthCheckPath,HealthCheckIntervalSeconds,UnhealthyThresholdCount]"',
            ),
        ),
    )


def _health_check_container(cli: _Cli) -> Advice:
    return Advice(
        fix="The container's own HEALTHCHECK failed and ECS replaced the task. Give it a longer startPeriod "
        "or fix the check command (is curl/wget in the image?).",
        commands=(_container_query(cli, "healthCheck"),),
    )


def _circuit_breaker(cli: _Cli) -> Advice:
    return Advice(
        fix="The deployment circuit breaker stopped this rollout (and rolled back if rollback is on). The "
        "deployment's own failure is in the stopped tasks: diagnose them, fix, then deploy again.",
        commands=(
            cli(
                "ecs describe-services",
                cli.ecs,
                f"--services {cli.service}",
                '--query "services[0].deployments[].[id,status,rolloutState,rolloutStateReason,taskDefinition]"',
            ),
            cli("ecs list-tasks", cli.ecs, f"--service-name {cli.service}", "--desired-status STOPPED"),
        ),
    )


def _spot(cli: _Cli) -> Advice:
    return Advice(
        fix="Spot reclaimed the capacity (a two-minute warning, then SIGTERM). Expected on Spot; keep a base "
        "of on-demand tasks in the capacity provider strategy and handle SIGTERM gracefully.",
        commands=(
            cli(
                "ecs describe-services",
                cli.ecs,
                f"--services {cli.service}",
                '--query "services[0].capacityProviderStrategy"',
            ),
        ),
    )


def _host(cli: _Cli) -> Advice:
    return Advice(
        fix="The host under the task failed, was drained, or retired (EC2 instance stopped or terminated, "
        "agent disconnected, disk full, Fargate maintenance). The scheduler replaces the task; if it repeats, "
        "check the instances' health and disk, and the Auto Scaling group's activity.",
        commands=(
            *((_describe_task(cli),) if cli.subject.task_arn else ()),
            cli("ecs list-container-instances", cli.ecs, "--status DRAINING"),
        ),
    )


def _timeout_start(cli: _Cli) -> Advice:
    return Advice(
        fix="The container runtime timed out creating or starting the container (a very large image, a slow "
        "or overloaded host, a stuck volume). Check the host, the image size, and raise startTimeout on EC2.",
        commands=(_container_query(cli, "{image: image, startTimeout: startTimeout}"),),
    )


def _network_eni(cli: _Cli) -> Advice:
    return Advice(
        fix="The task's elastic network interface could not be provisioned: the subnet may be out of free "
        "IP addresses, or the instance out of ENIs (use ENI trunking, or larger subnets).",
        commands=(
            cli(
                "ecs describe-services",
                cli.ecs,
                f"--services {cli.service}",
                '--query "services[0].networkConfiguration.awsvpcConfiguration.subnets"',
            ),
            cli(
                "ec2 describe-subnets --subnet-ids <subnet-ids>",
                '--query "Subnets[].[SubnetId,AvailableIpAddressCount]"',
            ),
        ),
    )


def _iam(cli: _Cli) -> Advice:
    return Advice(
        fix="ECS could not use an IAM role it needs (the service-linked role, the task execution role, or "
        "the role to register load balancer targets): check the role exists, trusts ecs-tasks.amazonaws.com "
        "or ecs.amazonaws.com, and that whoever passes it has iam:PassRole.",
        commands=(cli("iam get-role --role-name <role-name> --query Role.AssumeRolePolicyDocument"),),
    )


def _unknown(cli: _Cli, candidates: Nearest = ()) -> Advice:
    commands = [command for command in (_describe_task(cli),) if command]
    commands.append(
        cli("ecs describe-services", cli.ecs, f"--services {cli.service}", '--query "services[0].events[:10]"')
    )
    fix = (
        "This failure is not in the catalogue: read the raw message in the evidence, and the task's "
        "and service's full description."
    )
    if candidates:
        considered = "; ".join(f"{cause.value} if it says {sign}" for cause, sign in candidates)
        fix = (
            "The message does not name a cause ecs-medic knows. It is nearest to: "
            f"{considered}. Read the full message and the task's containers for that wording."
        )
    return Advice(fix=fix, commands=tuple(commands))


def _benign(_: _Cli) -> Advice:
    return Advice(fix="Nothing to fix: the task was stopped on purpose.")


_ADVISORS: dict[Cause, Callable[[_Cli], Advice]] = {
    Cause.IMAGE_NOT_FOUND: _image_not_found,
    Cause.IMAGE_PULL_AUTH: _image_pull_auth,
    Cause.IMAGE_PULL_NETWORK: _image_pull_network,
    Cause.OOM: _oom,
    Cause.APP_CRASH: _app_crash,
    Cause.ENTRYPOINT_ERROR: _entrypoint,
    Cause.SECRETS_ERROR: _secrets,
    Cause.LOG_CONFIG_ERROR: _log_config,
    Cause.VOLUME_ERROR: _volume,
    Cause.PLACEMENT_CPU: _placement("CPU"),
    Cause.PLACEMENT_MEMORY: _placement("memory"),
    Cause.PLACEMENT_PORTS: _placement_ports,
    Cause.PLACEMENT_ATTRIBUTES: _placement_attributes,
    Cause.CAPACITY_QUOTA: _capacity,
    Cause.HEALTH_CHECK_ELB: _health_check_elb,
    Cause.HEALTH_CHECK_CONTAINER: _health_check_container,
    Cause.DEPLOYMENT_CIRCUIT_BREAKER: _circuit_breaker,
    Cause.SPOT_INTERRUPTION: _spot,
    Cause.INSTANCE_DRAIN_OR_HOST_FAILURE: _host,
    Cause.TIMEOUT_START: _timeout_start,
    Cause.NETWORK_ENI: _network_eni,
    Cause.IAM_PERMISSION: _iam,
    Cause.UNKNOWN: _unknown,
    Cause.SCALE_IN_OR_DEPLOY: _benign,
    Cause.USER_STOP: _benign,
}


def advise(cause: Cause, subject: Subject) -> Advice:
    """The fix for `cause`, with commands filled in from `subject`."""
    return _ADVISORS[cause](_Cli(subject))


def advice_for(finding: Finding) -> Advice:
    if finding.cause is Cause.UNKNOWN and finding.nearest:
        return _unknown(_Cli(finding.subject), finding.nearest)
    return advise(finding.cause, finding.subject)
