"""Command-line habits an SRE expects on day one, against the simulated world configured the standard AWS way:
results on stdout in the format asked, quiet logs on stderr, exit codes that tell ok from partial from
failed from misconfigured, and flags that all do something."""

from __future__ import annotations

import io
import json
import socket
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from agent.cli import main
from agent.sim import SCENARIOS, World
from tests.e2e.conftest import prepare

AWS_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
)


@pytest.fixture
def aws_env(monkeypatch):
    """A world whose clock is the real one (the commands use the real clock), as the environment sees it."""
    with World.start(seed=11, start_time=datetime.now(UTC) - timedelta(minutes=30)) as world:
        for key, value in world.environment.items():
            monkeypatch.setenv(key, value)
        for name in ("ECS_MEDIC_LOG_FORMAT", "ECS_MEDIC_LOG_LEVEL", "ECS_MEDIC_MODE", "ECS_MEDIC_CLUSTERS"):
            monkeypatch.delenv(name, raising=False)
        yield world


def run(argv):
    out = io.StringIO()
    code = main(argv, stdout=out)
    return code, out.getvalue()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- exit codes and errors in the output ---------------------------------------------------------------


@pytest.mark.usefixtures("aws_env")
def test_a_pass_that_reads_nothing_says_so_and_exits_5(monkeypatch, capsys):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    code, out = run(["once", "-o", "json"])
    assert code == 5
    document = json.loads(out)
    assert (document["result"], document["services"], document["findings"], document["proposals"]) == (
        "error",
        0,
        [],
        [],
    )
    [error] = document["errors"]
    assert (error["cluster"], error["operation"], error["configuration"]) == ("*", "ListClusters", False)
    assert error["message"].startswith("EndpointConnectionError: Could not connect to the endpoint URL")
    code, out = run(["once"])
    assert code == 5
    assert out.startswith("could not read the clusters (ListClusters): EndpointConnectionError")
    assert "The pass saw no service: nothing above is known about the fleet." in out
    assert "observe_failed" in capsys.readouterr().err  # the warning on stderr, readable


def test_a_partial_pass_lists_what_it_could_not_read_and_exits_4(aws_env):
    prepare(aws_env, SCENARIOS["crash-loop"])
    prepare(aws_env, SCENARIOS["placement-cpu"])
    aws_env.faults.add(kind="server_error", operation="DescribeCapacityProviders")  # past every retry
    code, out = run(["once", "-o", "json"])
    assert code == 4
    document = json.loads(out)
    assert document["result"] == "partial"
    assert "app_crash" in {f["cause"] for f in document["findings"]}  # the rest of the fleet was read
    [error] = document["errors"]
    assert (error["cluster"], error["service"], error["configuration"]) == ("batch", "reports", False)


def test_a_cluster_that_does_not_exist_is_a_configuration_error(aws_env, capsys):
    prepare(aws_env, SCENARIOS["crash-loop"])
    code, out = run(["once", "--clusters", "prod,nope", "-o", "json"])
    assert code == 2
    document = json.loads(out)
    assert document["result"] == "partial"
    assert {f["cluster"] for f in document["findings"]} == {"prod"}
    err = capsys.readouterr().err
    assert err.endswith(  # the last line, where a person looks first
        "\necs-medic: bad configuration: cluster nope: no active cluster nope here (region us-east-1; "
        "check --clusters, ECS_MEDIC_CLUSTERS, --region and the credentials)\n"
    )
    assert "observe_failed" in err


def test_a_region_without_clusters_is_a_configuration_error(aws_env, capsys):
    prepare(aws_env, SCENARIOS["crash-loop"])
    code, out = run(["once", "--region", "eu-west-1"])  # the world's clusters are in us-east-1
    assert code == 2
    assert out.startswith("could not read the clusters (ListClusters): no ECS cluster in this region and account")
    assert "bad configuration: no ECS cluster in this region and account (region eu-west-1;" in capsys.readouterr().err


def test_credentials_that_cannot_list_anything_are_a_configuration_error(aws_env, monkeypatch, tmp_path, capsys):
    prepare(aws_env, SCENARIOS["crash-loop"])
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    code, _ = run(["once"])
    assert code == 2
    assert "bad configuration: NoCredentialsError: Unable to locate credentials" in capsys.readouterr().err


@pytest.mark.usefixtures("aws_env")
def test_an_unknown_profile_is_exit_2(capsys):
    assert run(["proposals", "--profile", "nope"])[0] == 2
    assert capsys.readouterr().err == "ecs-medic: no AWS profile 'nope' in the AWS config or credentials files\n"


def test_exit_code_3_when_a_change_is_proposed(aws_env):
    prepare(aws_env, SCENARIOS["healthy"])
    code, out = run(["once", "--exit-code", "-o", "json"])
    assert {p["action"] for p in json.loads(out)["proposals"]} == {"notify"}  # prevention advice: no change
    assert code == 0
    prepare(aws_env, SCENARIOS["crash-loop"])
    assert run(["once", "--exit-code"])[0] == 3
    assert run(["once"])[0] == 0  # without the flag, proposals are a result, not a signal


# --- formats and logs ----------------------------------------------------------------------------------


def test_yaml_output_is_the_json_document(aws_env):
    prepare(aws_env, SCENARIOS["crash-loop"])
    json_code, json_out = run(["once", "-o", "json"])
    yaml_code, yaml_out = run(["once", "-o", "yaml"])
    assert json_code == yaml_code == 0
    assert yaml.safe_load(yaml_out)["proposals"] == json.loads(json_out)["proposals"]
    code, out = run(["proposals", "--all", "-o", "yaml"])
    assert code == 0
    assert [p["action"] for p in yaml.safe_load(out)["proposals"]] == ["rollback_task_definition"]


def test_one_shot_commands_keep_stderr_to_warnings_unless_asked(aws_env, capsys):
    prepare(aws_env, SCENARIOS["crash-loop"])
    assert run(["once"])[0] == 0
    assert capsys.readouterr().err == ""  # a healthy read: nothing to warn about
    assert run(["once", "--log-level", "info", "--log-format", "json"])[0] == 0
    events = [json.loads(line)["event"] for line in capsys.readouterr().err.splitlines()]
    assert "reconcile_pass" in events
    assert "remediation" in events


def test_an_unknown_variable_is_named_with_the_closest_setting(aws_env, monkeypatch, capsys):
    prepare(aws_env, SCENARIOS["healthy"])
    monkeypatch.setenv("ECS_MEDIC_CLUSTER", "prod")
    assert run(["once"])[0] == 0
    err = capsys.readouterr().err
    assert "unknown_setting" in err
    assert "did_you_mean=ECS_MEDIC_CLUSTERS" in err
    assert "variable=ECS_MEDIC_CLUSTER\n" in err
    assert run(["once", "-q"])[0] == 0
    assert capsys.readouterr().err == ""


def test_settings_take_durations_and_refuse_nonsense(aws_env, monkeypatch, capsys):
    prepare(aws_env, SCENARIOS["healthy"])
    monkeypatch.setenv("ECS_MEDIC_VERIFY_TIMEOUT_SECONDS", "10m")
    assert run(["once"])[0] == 0
    monkeypatch.setenv("ECS_MEDIC_POLL_INTERVAL_SECONDS", "fast")
    assert run(["once"])[0] == 2
    assert capsys.readouterr().err == (
        "ecs-medic: bad setting: ECS_MEDIC_POLL_INTERVAL_SECONDS: 'fast' is not a duration; write e.g. 90s, 15m, "
        "1h or 1h30m\n"
    )


# --- flags that all do something ---------------------------------------------------------------------


@pytest.mark.parametrize("command", [["proposals", "--mode", "enforce"], ["approve", "p-1", "--mode", "enforce"]])
def test_commands_that_only_read_have_no_mode_flag(command, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(command)
    assert stopped.value.code == 2
    assert "unrecognized arguments: --mode" in capsys.readouterr().err


def test_diagnose_input_refuses_aws_flags(tmp_path, capsys):
    path = tmp_path / "empty.json"
    path.write_text('{"tasks": []}')
    assert run(["diagnose", "--input", str(path), "--region", "eu-west-1"])[0] == 2
    assert "diagnose --input reads no AWS API" in capsys.readouterr().err


def test_every_between_passes_needs_several_passes(capsys):
    assert run(["once", "--every", "10s"])[0] == 2
    assert "--every is the time between passes: it needs --passes 2 or more" in capsys.readouterr().err


def test_policies_validate_speaks_json_and_can_be_quiet(tmp_path):
    code, out = run(["policies", "validate", "-o", "json"])
    assert code == 0
    document = json.loads(out)
    assert document["valid"] is True
    assert len(document["policies"]) == 12
    assert run(["policies", "validate", "-q"]) == (0, "")
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: ecs-medic/v1\nkind: RemediationPolicy\nmetadata: {name: x}\nspec: {cooldown: 1m, cooldown: 2m}\n"
    )
    code, out = run(["policies", "validate", str(bad), "-o", "json"])
    assert code == 2
    [problem] = json.loads(out)["errors"]
    assert (problem["line"], problem["field"]) == (4, "spec.cooldown")
    assert problem["message"] == "duplicate key (first on line 4, again on line 4); keep one"


# --- run: replicas without leader election -------------------------------------------------------------


def test_run_refuses_several_enforcing_replicas_without_a_lease_table(monkeypatch, capsys):
    monkeypatch.setenv("ECS_MEDIC_MODE", "enforce")
    monkeypatch.setenv("ECS_MEDIC_REPLICAS", "2")
    monkeypatch.delenv("ECS_MEDIC_LEASE_TABLE", raising=False)
    assert main(["run"]) == 2
    assert capsys.readouterr().err == (
        "ecs-medic: ECS_MEDIC_REPLICAS=2 in enforce mode needs ECS_MEDIC_LEASE_TABLE: without leader election every "
        "replica would act; set a lease table, run one replica, or use dry-run\n"
    )


@pytest.mark.parametrize(
    ("mode", "replicas", "lease_table", "refused"),
    [
        ("enforce", 1, None, False),
        ("enforce", 3, "ecs-medic-leases", False),
        ("dry-run", 3, None, False),
        ("enforce", 3, None, True),
    ],
)
def test_replica_check(mode, replicas, lease_table, refused):
    from agent.cli import UsageError, _check_replicas  # noqa: PLC0415
    from agent.settings import Settings  # noqa: PLC0415

    settings = Settings(mode=mode, replicas=replicas, lease_table=lease_table)
    if refused:
        with pytest.raises(UsageError):
            _check_replicas(settings)
    else:
        _check_replicas(settings)
