"""`preflight --cluster --service`: the service's subnets, load balancer and prevention settings too."""

from __future__ import annotations

from tests.preflight.conftest import checks, next_revision, run_preflight

SERVICE = ("--cluster", "prod", "--service", "web")


def test_the_service_s_subnets_reach_ecr_and_logs_through_the_nat(account, tmp_path):
    code, report = run_preflight(tmp_path, next_revision(account), *SERVICE)
    assert code == 0, report
    network = checks(report)["network path"]
    assert network["verdict"] == "ok"
    assert network["lines"][0] == "the task must reach: ecr.api, ecr.dkr, s3, logs"
    assert all("through NAT gateway" in line for line in network["lines"][1:])
    assert checks(report)["prevention"]["verdict"] == "ok"


def test_without_the_nat_route_the_missing_piece_is_named(account, tmp_path):
    account.net.remove_nat_route()
    code, report = run_preflight(tmp_path, next_revision(account), *SERVICE)
    assert code == 1
    problems = checks(report)["network path"]["lines"][1:]
    subnets = ", ".join(subnet for subnet, _ in account.network.subnets)
    table = account.net.egress.private_route_table
    assert problems[0].startswith(f"subnets {subnets} cannot reach ecr.api, ecr.dkr, s3, logs: {table} has no default")
    expected_fix = (
        f"Add a NAT gateway route on {table}, or the VPC endpoints com.amazonaws.us-east-1.ecr.api (interface"
    )
    assert expected_fix in problems[0]


def test_vpc_endpoints_are_a_way_without_a_nat(account, tmp_path):
    account.net.remove_nat_route()
    account.net.add_endpoints(["ecr.api", "ecr.dkr", "s3", "logs"])
    code, report = run_preflight(tmp_path, next_revision(account), *SERVICE)
    assert code == 0, report
    lines = checks(report)["network path"]["lines"]
    assert any(line.startswith("s3: gateway endpoint vpce-") for line in lines)
    assert any(line.startswith("ecr.dkr: interface endpoint vpce-") for line in lines)


def test_an_internet_gateway_without_a_public_ip_is_no_way_out(account, tmp_path):
    account.net.route_through_internet_gateway()
    code, report = run_preflight(tmp_path, next_revision(account), *SERVICE)
    assert code == 1
    assert "the task gets no public IP (assignPublicIp DISABLED)" in checks(report)["network path"]["lines"][1]


def test_closed_outbound_https_is_named(account, tmp_path):
    account.net.close_outbound_https()
    code, report = run_preflight(tmp_path, next_revision(account), *SERVICE)
    assert code == 1
    group = account.network.security_group
    assert (
        f"security groups {group} allow no outbound HTTPS (443): nothing can be fetched"
        in (checks(report)["network path"]["lines"])
    )


def test_the_load_balancer_must_find_its_container_and_port(account, tmp_path):
    moved = next_revision(account, app={"portMappings": [{"containerPort": 9090, "protocol": "tcp"}]})
    code, report = run_preflight(tmp_path, moved, *SERVICE)
    assert code == 1
    assert checks(report)["load balancer"]["lines"] == [
        "container app maps ports [9090], not 8080, which the load balancer uses"
    ]
    renamed = next_revision(account, app={"name": "web"})
    code, report = run_preflight(tmp_path, renamed, *SERVICE)
    assert code == 1
    assert checks(report)["load balancer"]["lines"] == [
        "the load balancer sends to container app, which the task definition does not have"
    ]


def test_an_ip_target_group_refuses_a_bridge_mode_task(account, tmp_path):
    bridge = next_revision(account, networkMode="bridge", requiresCompatibilities=["EC2"])
    code, report = run_preflight(tmp_path, bridge, *SERVICE)
    assert code == 1
    assert checks(report)["load balancer"]["lines"][-1].endswith(
        "takes ip targets; network mode bridge gives instance targets"
    )


def test_prevention_settings_are_warnings(account, tmp_path):
    account.add_service("prod", "api", image="web:v1")  # no circuit breaker, no grace period
    code, report = run_preflight(tmp_path, next_revision(account), "--cluster", "prod", "--service", "api")
    assert code == 0
    prevention = checks(report)["prevention"]
    assert prevention["verdict"] == "warning"
    assert (
        prevention["lines"][0]
        == "api: the deployment circuit breaker is disabled; a failing deployment will not roll back"
    )
    code, _ = run_preflight(tmp_path, next_revision(account), "--cluster", "prod", "--service", "api", "--strict")
    assert code == 1


def test_an_unknown_service_is_bad_input(account, tmp_path, capsys):
    code, _ = run_preflight(tmp_path, next_revision(account), "--cluster", "prod", "--service", "nope")
    assert code == 2
    assert capsys.readouterr().err == "ecs-medic: no active service nope in cluster prod\n"
