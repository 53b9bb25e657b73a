"""A Fargate task's way out of its subnets, judged from EC2's own describe output."""

from __future__ import annotations

from typing import Any

from agent.diagnose.needs import Destination
from agent.diagnose.network import default_route, evaluate

REGION = "us-east-1"
SUBNET = {"SubnetId": "subnet-a", "VpcId": "vpc-1", "CidrBlock": "10.0.0.0/18"}
OPEN = {"GroupId": "sg-task", "IpPermissionsEgress": [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]}
ECR = [Destination(service, "pull web") for service in ("ecr.api", "ecr.dkr", "s3")]


def table(
    table_id: str, *routes: dict[str, Any], subnet: str | None = "subnet-a", main: bool = False
) -> dict[str, Any]:
    association = {"Main": main, **({"SubnetId": subnet} if subnet else {})}
    local = {"DestinationCidrBlock": "10.0.0.0/16", "GatewayId": "local"}
    return {"RouteTableId": table_id, "VpcId": "vpc-1", "Associations": [association], "Routes": [local, *routes]}


def endpoint(service: str, **fields: Any) -> dict[str, Any]:
    kind = "Gateway" if service == "s3" else "Interface"
    return {
        "VpcEndpointId": f"vpce-{service}",
        "ServiceName": f"com.amazonaws.{REGION}.{service}",
        "VpcEndpointType": kind,
        "State": "available",
        "PrivateDnsEnabled": kind == "Interface",
        "RouteTableIds": ["rtb-private"] if kind == "Gateway" else [],
        "Groups": [{"GroupId": "sg-endpoints"}] if kind == "Interface" else [],
        **fields,
    }


ENDPOINT_GROUP = {
    "GroupId": "sg-endpoints",
    "IpPermissions": [{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "10.0.0.0/16"}]}],
}


def judge(tables, endpoints=(), *, groups=(OPEN,), public_ip=False, destinations=ECR, endpoint_groups=None):
    return evaluate(
        region=REGION,
        subnets=[SUBNET],
        route_tables=tables,
        endpoints=list(endpoints),
        task_groups=list(groups),
        endpoint_groups=endpoint_groups if endpoint_groups is not None else {"sg-endpoints": ENDPOINT_GROUP},
        destinations=destinations,
        public_ip=public_ip,
    )


NAT = {"DestinationCidrBlock": "0.0.0.0/0", "NatGatewayId": "nat-1", "State": "active"}
IGW = {"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": "igw-1", "State": "active"}


def test_a_nat_route_reaches_everything():
    verdict = judge([table("rtb-private", NAT)])
    assert verdict.ok
    assert {p.how for p in verdict.paths} == {"through NAT gateway nat-1 (rtb-private)"}


def test_no_default_route_names_the_subnet_the_table_and_the_missing_endpoints():
    verdict = judge([table("rtb-private")])
    assert not verdict.ok
    [problem] = verdict.problems
    assert problem.startswith("subnet subnet-a cannot reach ecr.api, ecr.dkr, s3: rtb-private has no default route")
    assert problem.endswith(
        "Add a NAT gateway route on rtb-private, or the VPC endpoints com.amazonaws.us-east-1.ecr.api (interface, "
        "private DNS), com.amazonaws.us-east-1.ecr.dkr (interface, private DNS), com.amazonaws.us-east-1.s3 "
        "(gateway, on rtb-private)"
    )


def test_an_internet_gateway_is_a_path_only_with_a_public_ip():
    assert judge([table("rtb-public", IGW)], public_ip=True).ok
    verdict = judge([table("rtb-public", IGW)], public_ip=False)
    assert "the task gets no public IP (assignPublicIp DISABLED)" in verdict.problems[0]


def test_endpoints_replace_the_nat_and_s3_needs_its_gateway_endpoint_on_the_subnet_s_table():
    endpoints = [endpoint("ecr.api"), endpoint("ecr.dkr"), endpoint("s3")]
    assert judge([table("rtb-private")], endpoints).ok
    elsewhere = [endpoint("ecr.api"), endpoint("ecr.dkr"), endpoint("s3", RouteTableIds=["rtb-other"])]
    verdict = judge([table("rtb-private")], elsewhere)
    assert "cannot reach s3" in verdict.problems[0]


def test_an_interface_endpoint_without_private_dns_does_not_count():
    endpoints = [endpoint("ecr.api", PrivateDnsEnabled=False), endpoint("ecr.dkr"), endpoint("s3")]
    assert "cannot reach ecr.api" in judge([table("rtb-private")], endpoints).problems[0]


def test_an_endpoint_whose_security_group_refuses_https_is_named():
    closed = {"sg-endpoints": {"GroupId": "sg-endpoints", "IpPermissions": []}}
    endpoints = [endpoint("ecr.api"), endpoint("ecr.dkr"), endpoint("s3")]
    verdict = judge([table("rtb-private")], endpoints, endpoint_groups=closed)
    assert verdict.problems == (
        (
            "endpoint vpce-ecr.api (ecr.api) has security groups that accept no HTTPS (443) from the task's security "
            "groups or subnets"
        ),
        (
            "endpoint vpce-ecr.dkr (ecr.dkr) has security groups that accept no HTTPS (443) from the task's security "
            "groups or subnets"
        ),
    )


def test_closed_egress_blocks_everything():
    closed = {"GroupId": "sg-task", "IpPermissionsEgress": []}
    verdict = judge([table("rtb-private", NAT)], groups=[closed])
    assert verdict.problems == ("security groups sg-task allow no outbound HTTPS (443): nothing can be fetched",)


def test_subnets_that_share_a_route_table_are_named_together():
    other = {**SUBNET, "SubnetId": "subnet-b"}
    shared = table("rtb-private")
    shared["Associations"].append({"Main": False, "SubnetId": "subnet-b"})
    verdict = evaluate(
        region=REGION,
        subnets=[SUBNET, other],
        route_tables=[shared],
        endpoints=[],
        task_groups=[OPEN],
        endpoint_groups={},
        destinations=ECR,
        public_ip=False,
    )
    [problem] = verdict.problems
    assert problem.startswith("subnets subnet-a, subnet-b cannot reach ecr.api, ecr.dkr, s3: rtb-private has no")


def test_a_subnet_without_its_own_table_uses_the_main_one():
    main = table("rtb-main", NAT, subnet=None, main=True)
    assert default_route(SUBNET, [main]).kind == "nat"


def test_a_transit_gateway_route_is_reported_not_failed():
    via = {"DestinationCidrBlock": "0.0.0.0/0", "TransitGatewayId": "tgw-1", "State": "active"}
    verdict = judge([table("rtb-private", via)])
    assert verdict.ok
    assert any("tgw-1" in note and "beyond what ecs-medic can see" in note for note in verdict.notes)


def test_public_registries_need_the_internet_even_with_endpoints():
    endpoints = [endpoint("ecr.api"), endpoint("ecr.dkr"), endpoint("s3")]
    verdict = judge([table("rtb-private")], endpoints, destinations=[Destination("internet", "pull nginx")])
    assert verdict.problems[0].endswith(
        "Add a NAT gateway route on rtb-private (a public registry is only on the internet)"
    )
