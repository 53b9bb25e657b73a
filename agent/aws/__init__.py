"""The only package that imports boto3: clients, retries, budgets, and the dry-run guard."""

from agent.aws.gateway import AwsGateway, DryRunViolationError, is_read_only

__all__ = ["AwsGateway", "DryRunViolationError", "is_read_only"]
