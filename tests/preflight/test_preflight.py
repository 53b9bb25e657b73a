"""`ecs-medic preflight`: what would stop the tasks of a task definition, found before it is registered."""

from __future__ import annotations

import io
import json

import pytest

from agent.cli import main
from tests.preflight.conftest import checks, next_revision, run_preflight

ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
SECRET_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}],
}


def test_a_sound_revision_passes_and_changes_nothing(account, tmp_path):
    code, report = run_preflight(tmp_path, next_revision(account, app={"image": f"{ECR}/web:v2"}))
    assert code == 0, report
    assert report["passed"] is True
    assert report["problems"] == 0
    found = checks(report)
    assert found["execution role"]["verdict"] == "ok"
    assert found["fargate size"]["lines"] == ["cpu 256 with memory 512 MiB is a valid Fargate size"]
    assert account.requests.mutating() == []
    assert "iam:SimulatePrincipalPolicy" in account.requests.names()


def test_a_mutable_repository_is_a_warning_that_strict_mode_fails(account, tmp_path):
    definition = next_revision(account, app={"image": f"{ECR}/web:v2"})
    code, report = run_preflight(tmp_path, definition, "--strict")
    assert code == 1
    assert "repository web lets tags move" in " ".join(checks(report)["image"]["lines"])
    account.client("ecr").put_image_tag_mutability(repositoryName="web", imageTagMutability="IMMUTABLE")
    code, report = run_preflight(tmp_path, definition, "--strict")
    assert code == 0, report
    assert checks(report)["image"]["lines"][-1] == "repository web has immutable tags"


def test_a_tag_that_was_never_pushed_fails_with_the_tags_that_exist(account, tmp_path):
    code, report = run_preflight(tmp_path, next_revision(account, app={"image": f"{ECR}/web:v3"}))
    assert code == 1
    image = checks(report)["image"]
    assert image["verdict"] == "problem"
    assert image["lines"][0] == "container app: v3 is not in repository web"
    assert image["lines"][1].startswith("newest tags in the repository: ")


def test_a_missing_repository_fails(account, tmp_path):
    code, report = run_preflight(tmp_path, next_revision(account, app={"image": f"{ECR}/api:v1"}))
    assert code == 1
    assert checks(report)["image"]["lines"] == ["container app: repository api does not exist"]


def test_an_execution_role_that_lost_its_pull_rights_fails_with_the_statement_it_needs(account, tmp_path):
    account.revoke_ecr_pull("ecsTaskExecutionRole")
    code, report = run_preflight(tmp_path, next_revision(account, app={"image": f"{ECR}/web:v2"}))
    assert code == 1
    role = checks(report)["execution role"]
    assert role["verdict"] == "problem"
    assert role["lines"][0] == (
        "ecr:BatchGetImage on arn:aws:ecr:us-east-1:123456789012:repository/web is denied (no policy allows it): "
        "needed to pull web (container app)"
    )
    needed = json.loads(role["lines"][-1].split("needs: ", 1)[1])
    assert needed["Statement"][0]["Action"] == ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]


def test_no_execution_role_for_an_ecr_image_fails(account, tmp_path):
    definition = next_revision(account)
    del definition["executionRoleArn"]
    code, report = run_preflight(tmp_path, definition)
    assert code == 1
    assert checks(report)["execution role"]["lines"][0].startswith("no executionRoleArn, but the task needs one to:")


def test_a_role_ecs_cannot_assume_fails(account, tmp_path):
    iam = account.client("iam")
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ]}  # fmt: skip
    iam.update_assume_role_policy(RoleName="ecsTaskExecutionRole", PolicyDocument=json.dumps(trust))
    code, report = run_preflight(tmp_path, next_revision(account))
    assert code == 1
    assert "does not trust ecs-tasks.amazonaws.com" in checks(report)["execution role"]["lines"][0]


def test_secrets_must_exist_and_be_readable(account, tmp_path):
    existing = account.client("secretsmanager").create_secret(Name="db", SecretString="x")["ARN"]
    missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:gone-AbCdEf"
    account.client("ssm").put_parameter(Name="/web/key", Value="k", Type="SecureString")
    secrets = [
        {"name": "DB", "valueFrom": existing},
        {"name": "OLD", "valueFrom": missing},
        {"name": "KEY", "valueFrom": "/web/key"},
        {"name": "NONE", "valueFrom": "/web/none"},
    ]
    code, report = run_preflight(tmp_path, next_revision(account, app={"secrets": secrets}))
    assert code == 1
    found = checks(report)
    assert found["secrets"]["lines"] == [
        f"DB of container app: {existing} exists",
        f"OLD of container app: {missing} does not exist in Secrets Manager (us-east-1)",
        "KEY of container app: /web/key exists",
        "NONE of container app: /web/none does not exist in SSM Parameter Store (us-east-1)",
    ]
    denied = [line for line in found["execution role"]["lines"] if " is denied " in line]
    assert {line.split(" on ")[0] for line in denied} == {"secretsmanager:GetSecretValue", "ssm:GetParameters"}
    account.client("iam").put_role_policy(
        RoleName="ecsTaskExecutionRole", PolicyName="secrets", PolicyDocument=json.dumps(SECRET_POLICY)
    )
    _, report = run_preflight(tmp_path, next_revision(account, app={"secrets": secrets[:1]}))
    assert checks(report)["execution role"]["verdict"] == "ok"


def test_a_log_group_must_exist_or_be_created(account, tmp_path):
    logging = {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/new", "awslogs-region": "us-east-1"}}
    code, report = run_preflight(tmp_path, next_revision(account, app={"logConfiguration": logging}))
    assert code == 1
    assert checks(report)["log groups"]["lines"][0].startswith("container app: log group /ecs/new does not exist (")
    creating = {**logging, "options": {**logging["options"], "awslogs-create-group": "true"}}
    code, report = run_preflight(tmp_path, next_revision(account, app={"logConfiguration": creating}))
    assert code == 1  # the default role may not logs:CreateLogGroup
    assert "may not create it" in checks(report)["log groups"]["lines"][0]
    assert any("logs:CreateLogGroup" in line for line in checks(report)["execution role"]["lines"])


@pytest.mark.parametrize(
    ("cpu", "memory", "expected"),
    [
        ("256", "4096", "cpu 256 takes memory 512, 1024, 2048 MiB, not 4096"),
        ("1024", "1536", "cpu 1024 takes memory 2048 to 8192 in steps of 1024 MiB, not 1536"),
        ("300", "1024", "cpu 300 is not a Fargate size (valid: 256, 512, 1024, 2048, 4096, 8192, 16384)"),
    ],
)
def test_a_fargate_size_fargate_refuses_fails(account, tmp_path, cpu, memory, expected):
    code, report = run_preflight(tmp_path, next_revision(account, cpu=cpu, memory=memory))
    assert code == 1
    assert checks(report)["fargate size"]["lines"] == [expected]


def test_containers_larger_than_their_task_fail(account, tmp_path):
    code, report = run_preflight(tmp_path, next_revision(account, app={"memory": 1024}))
    assert code == 1
    assert checks(report)["fargate size"]["lines"][1] == "the containers ask for 1024 MiB, more than the task's 512 MiB"


@pytest.mark.usefixtures("account")
def test_bad_input_is_exit_2_naming_the_file_and_the_place(tmp_path, capsys):
    path = tmp_path / "broken.json"
    path.write_text('{"family": "web",\n  "containerDefinitions": [}', encoding="utf-8")
    assert main(["preflight", "--task-definition", str(path)]) == 2
    assert capsys.readouterr().err.startswith(f"ecs-medic: {path}:2:")
    path.write_text(json.dumps({"family": "web", "containerDefinitions": [{"name": "app"}]}), encoding="utf-8")
    assert main(["preflight", "--task-definition", str(path)]) == 2
    assert f"{path}: containerDefinitions[0].image: expected a non-empty string" in capsys.readouterr().err
    assert main(["preflight", "--task-definition", str(path), "--cluster", "prod"]) == 2
    assert "--cluster and --service together" in capsys.readouterr().err


def test_a_describe_task_definition_output_is_accepted_from_stdin(account):
    described = account.client("ecs").describe_task_definition(taskDefinition="web")
    out = io.StringIO()
    code = main(
        ["preflight", "--task-definition", "-"], stdin=io.StringIO(json.dumps(described, default=str)), stdout=out
    )
    assert code == 0
    assert out.getvalue().startswith("preflight web:1: ")
    assert out.getvalue().rstrip().endswith("passed: 0 problems, 1 warnings")
