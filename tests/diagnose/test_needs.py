"""What a task definition needs before it starts, read from the definition alone."""

from __future__ import annotations

from agent.diagnose.needs import (
    ECR_API,
    ECR_DKR,
    INTERNET,
    LOGS,
    S3,
    SECRETS_MANAGER,
    SSM,
    Need,
    destinations,
    role_needs,
    secret_arn,
    secrets,
)

ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf"


def definition(**container: object) -> dict[str, object]:
    base = {
        "name": "app",
        "image": f"{ECR}/web:v2",
        "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/web"}},
    }
    return {"family": "web", "containerDefinitions": [{**base, **container}]}


def test_an_ecr_image_needs_the_login_and_both_pull_actions_on_its_repository():
    needs = role_needs(definition(logConfiguration=None), region="us-east-1", account="123456789012", fargate=True)
    repository = "arn:aws:ecr:us-east-1:123456789012:repository/web"
    assert [(n.action, n.resource) for n in needs] == [
        ("ecr:GetAuthorizationToken", "*"),
        ("ecr:BatchGetImage", repository),
        ("ecr:GetDownloadUrlForLayer", repository),
    ]


def test_log_rights_are_the_execution_role_s_only_on_fargate():
    on_fargate = role_needs(definition(), region="us-east-1", account="123456789012", fargate=True)
    on_ec2 = role_needs(definition(), region="us-east-1", account="123456789012", fargate=False)
    group = "arn:aws:logs:us-east-1:123456789012:log-group:/ecs/web:*"
    assert Need("logs:PutLogEvents", group, "send container app's logs to /ecs/web") in on_fargate
    assert not [n for n in on_ec2 if n.action.startswith("logs:")]


def test_awslogs_create_group_needs_create_log_group():
    logging = {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/web", "awslogs-create-group": "true"}}
    needs = role_needs(definition(logConfiguration=logging), region="us-east-1", account="1", fargate=True)
    assert "logs:CreateLogGroup" in {n.action for n in needs}


def test_secret_references_become_arns_whatever_form_they_take():
    assert secret_arn(f"{SECRET}:password::", region="us-east-1", account="1") == ("secretsmanager", SECRET)
    assert secret_arn("/prod/db", region="eu-west-1", account="1") == (
        "ssm",
        "arn:aws:ssm:eu-west-1:1:parameter/prod/db",
    )
    assert secret_arn("db", region="eu-west-1", account="1") == ("ssm", "arn:aws:ssm:eu-west-1:1:parameter/db")


def test_every_secret_of_containers_and_log_drivers_and_registry_credentials_is_found():
    logging = {"logDriver": "splunk", "secretOptions": [{"name": "splunk-token", "valueFrom": "/splunk/token"}]}
    task = definition(
        secrets=[{"name": "DB", "valueFrom": SECRET}],
        logConfiguration=logging,
        repositoryCredentials={"credentialsParameter": f"{SECRET}x"},
    )
    found = secrets(task, region="us-east-1", account="1")
    assert [(s.name, s.kind) for s in found] == [
        ("DB", "secretsmanager"),
        ("splunk-token", "ssm"),
        ("repositoryCredentials", "secretsmanager"),
    ]
    actions = {n.action for n in role_needs(task, region="us-east-1", account="1", fargate=True)}
    assert {"secretsmanager:GetSecretValue", "ssm:GetParameters"} <= actions


def test_environment_files_need_the_object_and_the_bucket():
    task = definition(environmentFiles=[{"type": "s3", "value": "arn:aws:s3:::config/web.env"}])
    needs = role_needs(task, region="us-east-1", account="1", fargate=True)
    assert Need("s3:GetObject", "arn:aws:s3:::config/web.env", "read the environment file of container app") in needs
    assert "arn:aws:s3:::config" in {n.resource for n in needs if n.action == "s3:GetBucketLocation"}


def test_destinations_follow_what_the_task_fetches():
    task = definition(secrets=[{"name": "DB", "valueFrom": SECRET}, {"name": "KEY", "valueFrom": "/k"}])
    assert [d.service for d in destinations(task, region="us-east-1", fargate=True)] == [
        ECR_API,
        ECR_DKR,
        S3,
        LOGS,
        SECRETS_MANAGER,
        SSM,
    ]
    public = definition(image="nginx:1.27", logConfiguration=None)
    assert [d.service for d in destinations(public, region="us-east-1", fargate=True)] == [INTERNET]
