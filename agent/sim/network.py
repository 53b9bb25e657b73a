"""The world's paths out of its task subnets, built and broken through EC2's public API.

A world starts the way most accounts run Fargate: the task subnets are private, and their route table
sends everything outside the VPC to a NAT gateway in a public subnet behind an internet gateway. A test
breaks the path the way a change would (the NAT route removed, the subnets pointed at the internet
gateway without public IPs, outbound HTTPS closed) or replaces it with VPC endpoints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from agent.sim.provision import Network

PUBLIC_SUBNET_CIDR = "10.0.128.0/24"
ANYWHERE = "0.0.0.0/0"


@dataclass(frozen=True, slots=True)
class Egress:
    """What `default_egress` built."""

    internet_gateway: str
    public_subnet: str
    nat_gateway: str
    private_route_table: str  # the task subnets' route table


class NetworkBuilder:
    """Builds and changes the world's routes, gateways and endpoints (the world's own, unrecorded calls)."""

    def __init__(self, clients: Callable[[str], Any], region: str, network: Network) -> None:
        self._clients = clients
        self.region = region
        self.network = network
        self.egress: Egress | None = None
        self._endpoint_group: str | None = None

    @property
    def _ec2(self) -> Any:  # noqa: ANN401 - boto3 clients are untyped
        return self._clients("ec2")

    def default_egress(self) -> Egress:
        """An internet gateway, a public subnet with a NAT gateway, and the task subnets routed through it."""
        ec2, vpc = self._ec2, self.network.vpc_id
        gateway = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        ec2.attach_internet_gateway(InternetGatewayId=gateway, VpcId=vpc)
        zone = self.network.subnets[0][1]
        public = ec2.create_subnet(VpcId=vpc, CidrBlock=PUBLIC_SUBNET_CIDR, AvailabilityZone=zone)["Subnet"]["SubnetId"]
        public_table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        ec2.create_route(RouteTableId=public_table, DestinationCidrBlock=ANYWHERE, GatewayId=gateway)
        ec2.associate_route_table(RouteTableId=public_table, SubnetId=public)
        allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
        nat = ec2.create_nat_gateway(SubnetId=public, AllocationId=allocation)["NatGateway"]["NatGatewayId"]
        private_table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        ec2.create_route(RouteTableId=private_table, DestinationCidrBlock=ANYWHERE, NatGatewayId=nat)
        for subnet, _ in self.network.subnets:
            ec2.associate_route_table(RouteTableId=private_table, SubnetId=subnet)
        self.egress = Egress(gateway, public, nat, private_table)
        return self.egress

    def _table(self) -> str:
        if self.egress is None:
            raise RuntimeError("the world has no egress to change")
        return self.egress.private_route_table

    def remove_nat_route(self) -> None:
        """Leave the task subnets with no default route, as a careless route-table change does."""
        self._ec2.delete_route(RouteTableId=self._table(), DestinationCidrBlock=ANYWHERE)

    def route_through_internet_gateway(self) -> None:
        """Point the task subnets at the internet gateway: a path only for tasks with a public IP."""
        assert self.egress is not None  # noqa: S101 - _table() checked it
        table = self._table()
        self._ec2.delete_route(RouteTableId=table, DestinationCidrBlock=ANYWHERE)
        self._ec2.create_route(
            RouteTableId=table, DestinationCidrBlock=ANYWHERE, GatewayId=self.egress.internet_gateway
        )

    def _endpoints_group(self) -> str:
        """A security group for interface endpoints that accepts HTTPS from the VPC, as AWS's guides set up."""
        if self._endpoint_group is None:
            ec2 = self._ec2
            group = ec2.create_security_group(
                GroupName="vpc-endpoints", Description="HTTPS from the VPC", VpcId=self.network.vpc_id
            )["GroupId"]
            ec2.authorize_security_group_ingress(
                GroupId=group,
                IpPermissions=[
                    {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "10.0.0.0/16"}]}
                ],
            )
            self._endpoint_group = group
        return self._endpoint_group

    def add_endpoints(self, services: Sequence[str], *, private_dns: bool = True) -> list[str]:
        """VPC endpoints for `services` (`ecr.api`, `logs`, ...; `s3` as a gateway endpoint on the task
        subnets' route table); returns their ids."""
        ids = []
        for service in services:
            name = f"com.amazonaws.{self.region}.{service}"
            if service == "s3":
                created = self._ec2.create_vpc_endpoint(
                    VpcId=self.network.vpc_id,
                    ServiceName=name,
                    VpcEndpointType="Gateway",
                    RouteTableIds=[self._table()],
                )
            else:
                created = self._ec2.create_vpc_endpoint(
                    VpcId=self.network.vpc_id,
                    ServiceName=name,
                    VpcEndpointType="Interface",
                    SubnetIds=[subnet for subnet, _ in self.network.subnets],
                    SecurityGroupIds=[self._endpoints_group()],
                    PrivateDnsEnabled=private_dns,
                )
            ids.append(created["VpcEndpoint"]["VpcEndpointId"])
        return ids

    def close_outbound_https(self) -> None:
        """Remove the task security group's allow-all egress rule, as a hardening change might."""
        self._ec2.revoke_security_group_egress(
            GroupId=self.network.security_group,
            IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": ANYWHERE}]}],
        )
