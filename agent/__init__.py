"""ecs-medic: a reconciling remediation agent for Amazon ECS."""

__version__ = "0.1.0"
