"""DIAGNOSE configurations that make the next failure worse: the prevention checklist.

- no deployment circuit breaker: a broken deployment cycles tasks forever instead of rolling back;
- a load balancer with no health-check grace period: slow starters are killed before they answer;
- a mutable image tag (`latest`, or none): what runs is not what was tested, and rollbacks lie.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.arns import parse_image
from agent.awscli import command, quote
from agent.diagnose.deployments import circuit_breaker
from agent.diagnose.fields import integer, text
from agent.model import Advice, Risk, RiskFinding, Subject

if TYPE_CHECKING:
    from collections.abc import Mapping

_MUTABLE_TAGS = frozenset({"latest", "stable", "main", "master", "prod", "production"})


def risks_of(
    service: Mapping[str, Any], subject: Subject, task_definition: Mapping[str, Any] | None = None
) -> list[RiskFinding]:
    """The prevention findings for one service (and its task definition, when it was read)."""
    found: list[RiskFinding] = []
    name = subject.service
    controller = service.get("deploymentController")
    rolling = not isinstance(controller, dict) or controller.get("type") in (None, "ECS")
    enabled, rollback = circuit_breaker(service)
    if rolling and not (enabled and rollback):
        state = "enabled without rollback" if enabled else "disabled"
        found.append(
            RiskFinding(
                Risk.CIRCUIT_BREAKER_DISABLED,
                subject,
                (f"deploymentConfiguration.deploymentCircuitBreaker {state}",),
                f"{name}: the deployment circuit breaker is {state}; a failing deployment will not roll back",
            )
        )
    load_balancers = service.get("loadBalancers")
    grace = integer(service.get("healthCheckGracePeriodSeconds")) or 0
    if isinstance(load_balancers, list) and load_balancers and grace == 0:
        found.append(
            RiskFinding(
                Risk.NO_GRACE_PERIOD_BEHIND_LOAD_BALANCER,
                subject,
                (f"loadBalancers {len(load_balancers)}", "healthCheckGracePeriodSeconds 0"),
                f"{name}: behind a load balancer with no health-check grace period",
            )
        )
    containers = (task_definition or {}).get("containerDefinitions")
    for container in containers if isinstance(containers, list) else []:
        image = text(container.get("image")) if isinstance(container, dict) else ""
        reference = parse_image(image) if image else None
        if reference and not reference.digest and (reference.tag is None or reference.tag in _MUTABLE_TAGS):
            found.append(
                RiskFinding(
                    Risk.MUTABLE_IMAGE_TAG,
                    subject,
                    (f"container {text(container.get('name'))}: image {image}",),
                    f"{name}: runs a mutable image tag ({image.rsplit('/', 1)[-1]})",
                )
            )
            break
    return found


def risk_advice(risk: RiskFinding) -> Advice:
    """The fix for a prevention finding, with the `aws` command filled in."""
    subject = risk.subject
    cluster, service = quote(subject.cluster), quote(subject.service or "<service>")
    if risk.risk is Risk.CIRCUIT_BREAKER_DISABLED:
        return Advice(
            fix="Turn on the deployment circuit breaker with rollback, so ECS stops a failing deployment and "
            "returns to the last one that reached steady state.",
            commands=(
                command(
                    "ecs update-service",
                    f"--cluster {cluster} --service {service}",
                    "--deployment-configuration 'deploymentCircuitBreaker={enable=true,rollback=true}'",
                    region=subject.region,
                ),
            ),
        )
    if risk.risk is Risk.NO_GRACE_PERIOD_BEHIND_LOAD_BALANCER:
        return Advice(
            fix="Set a health-check grace period of at least twice the application's startup time, so the load "
            "balancer does not kill tasks that are still starting.",
            commands=(
                command(
                    "ecs update-service",
                    f"--cluster {cluster} --service {service}",
                    "--health-check-grace-period-seconds <2x-startup-seconds>",
                    region=subject.region,
                ),
            ),
        )
    return Advice(
        fix="Pin the image to an immutable tag (a build number or commit SHA) or a digest, and turn on tag "
        "immutability in the ECR repository.",
        commands=(
            command(
                "ecr put-image-tag-mutability --repository-name <repository>",
                "--image-tag-mutability IMMUTABLE",
                region=subject.region,
            ),
        ),
    )
