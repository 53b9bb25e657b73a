"""Can a Fargate task in these subnets reach what it needs before it starts? Read from EC2's own answers.

For each subnet the task may land in: its route table (the one associated with it, or the VPC's main
one) and that table's default route; the VPC's endpoints; the task's security groups and those of the
interface endpoints. A service is reachable through an interface endpoint with private DNS (or, for S3,
a gateway endpoint on the subnet's route table, or an interface one), or else through the internet: a
NAT gateway, or an internet gateway when the task gets a public IP. Routes to a transit gateway, a
peering connection or an appliance lead somewhere ecs-medic cannot see; they are reported, not failed.
Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.diagnose.fields import integer, text
from agent.diagnose.needs import INTERNET, S3, Destination

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

HTTPS = 443
_BEYOND_SIGHT = ("TransitGatewayId", "VpcPeeringConnectionId", "NetworkInterfaceId", "InstanceId", "CoreNetworkArn")


@dataclass(frozen=True, slots=True)
class Route:
    """Where a subnet's traffic to the internet goes."""

    subnet: str
    route_table: str
    kind: str  # nat | igw | elsewhere | none
    target: str  # the gateway's id, or what the route points at


@dataclass(frozen=True, slots=True)
class Path:
    """How (or whether) one subnet reaches one service."""

    subnet: str
    service: str
    reachable: bool | None  # None: through something ecs-medic cannot see
    how: str


@dataclass(frozen=True, slots=True)
class NetworkVerdict:
    paths: tuple[Path, ...]
    problems: tuple[str, ...]  # each names the missing piece
    notes: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def route_table_of(subnet: Mapping[str, Any], route_tables: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The route table a subnet uses: the one associated with it, else its VPC's main table."""
    subnet_id, vpc_id = text(subnet.get("SubnetId")), text(subnet.get("VpcId"))
    main = None
    for table in route_tables:
        for association in table.get("Associations") or []:
            if association.get("SubnetId") == subnet_id:
                return table
            if association.get("Main") and text(table.get("VpcId")) in ("", vpc_id):
                main = table
    return main


def default_route(subnet: Mapping[str, Any], route_tables: Sequence[Mapping[str, Any]]) -> Route:
    subnet_id = text(subnet.get("SubnetId"))
    table = route_table_of(subnet, route_tables)
    if table is None:
        return Route(subnet_id, "", "none", "")
    table_id = text(table.get("RouteTableId"))
    for route in table.get("Routes") or []:
        if route.get("DestinationCidrBlock") != "0.0.0.0/0" or route.get("State") == "blackhole":
            continue
        if text(route.get("NatGatewayId")):
            return Route(subnet_id, table_id, "nat", text(route.get("NatGatewayId")))
        if text(route.get("GatewayId")).startswith("igw-"):
            return Route(subnet_id, table_id, "igw", text(route.get("GatewayId")))
        target = next((text(route.get(key)) for key in _BEYOND_SIGHT if route.get(key)), "")
        if target:
            return Route(subnet_id, table_id, "elsewhere", target)
    return Route(subnet_id, table_id, "none", "")


def _endpoint(endpoints: Iterable[Mapping[str, Any]], service: str, region: str) -> list[Mapping[str, Any]]:
    name = f"com.amazonaws.{region}.{service}"
    return [e for e in endpoints if e.get("ServiceName") == name and e.get("State", "available") == "available"]


def _allows_https(rule: Mapping[str, Any]) -> bool:
    protocol = text(rule.get("IpProtocol"))
    if protocol == "-1":
        return True
    low, high = integer(rule.get("FromPort")), integer(rule.get("ToPort"))
    return protocol == "tcp" and low is not None and high is not None and low <= HTTPS <= high


def egress_allows_https(groups: Iterable[Mapping[str, Any]]) -> bool:
    """Whether any of the task's security groups lets HTTPS out (to anywhere: the destination is the route's)."""
    return any(_allows_https(rule) for group in groups for rule in group.get("IpPermissionsEgress") or [])


def _network(cidr: str) -> ipaddress.IPv4Network | None:
    try:
        return ipaddress.IPv4Network(cidr, strict=False)
    except ValueError:  # IPv6, or not a CIDR at all
        return None


def _admits(rule: Mapping[str, Any], task_groups: set[str], cidrs: Sequence[str]) -> bool:
    if not _allows_https(rule):
        return False
    if any(pair.get("GroupId") in task_groups for pair in rule.get("UserIdGroupPairs") or []):
        return True
    networks = [n for n in (_network(c) for c in cidrs) if n is not None]
    for entry in rule.get("IpRanges") or []:
        allowed = _network(text(entry.get("CidrIp")))
        if allowed is not None and any(network.subnet_of(allowed) for network in networks):
            return True
    return bool(rule.get("PrefixListIds"))  # a prefix list may well include the VPC: not second-guessed


def endpoint_admits(
    endpoint: Mapping[str, Any], groups: Mapping[str, Mapping[str, Any]], task_groups: set[str], cidrs: Sequence[str]
) -> bool:
    """Whether an interface endpoint's security groups accept HTTPS from the task (its groups or subnets)."""
    for reference in endpoint.get("Groups") or []:
        group = groups.get(text(reference.get("GroupId")))
        if group is None:
            return True  # not read: do not report what was not seen
        if any(_admits(rule, task_groups, cidrs) for rule in group.get("IpPermissions") or []):
            return True
    return not endpoint.get("Groups")


def _through_internet(route: Route, *, public_ip: bool) -> tuple[bool | None, str]:
    if route.kind == "nat":
        return True, f"through NAT gateway {route.target} ({route.route_table})"
    if route.kind == "igw" and public_ip:
        return True, f"through internet gateway {route.target} with the task's public IP"
    if route.kind == "igw":
        return False, (
            f"{route.route_table} routes to internet gateway {route.target}, but the task gets no public IP "
            "(assignPublicIp DISABLED)"
        )
    if route.kind == "elsewhere":
        return None, f"through {route.target} ({route.route_table}): beyond what ecs-medic can see"
    return False, f"{route.route_table or 'the main route table'} has no default route (no NAT or internet gateway)"


def path_to(
    service: str,
    subnet: Mapping[str, Any],
    route: Route,
    endpoints: Sequence[Mapping[str, Any]],
    *,
    region: str,
    public_ip: bool,
) -> Path:
    subnet_id = text(subnet.get("SubnetId"))
    if service != INTERNET:
        for endpoint in _endpoint(endpoints, service, region):
            if endpoint.get("VpcEndpointType") == "Gateway":
                if route.route_table in (endpoint.get("RouteTableIds") or []):
                    how = f"gateway endpoint {endpoint.get('VpcEndpointId')}"
                    return Path(subnet_id, service, reachable=True, how=how)
                continue
            if endpoint.get("PrivateDnsEnabled") or service == S3:
                return Path(
                    subnet_id, service, reachable=True, how=f"interface endpoint {endpoint.get('VpcEndpointId')}"
                )
    reachable, how = _through_internet(route, public_ip=public_ip)
    return Path(subnet_id, service, reachable, how)


def _fix(missing: Sequence[str], region: str, route: Route) -> str:
    """What to add so that a subnet reaches `missing`: a NAT route, or the VPC endpoints."""
    table = route.route_table or "its route table"
    if INTERNET in missing:
        return f"a NAT gateway route on {table} (a public registry is only on the internet)"
    endpoints = [
        f"com.amazonaws.{region}.s3 (gateway, on {table})"
        if service == S3
        else f"com.amazonaws.{region}.{service} (interface, private DNS)"
        for service in missing
    ]
    return f"a NAT gateway route on {table}, or the VPC endpoints {', '.join(endpoints)}"


def evaluate(
    *,
    region: str,
    subnets: Sequence[Mapping[str, Any]],
    route_tables: Sequence[Mapping[str, Any]],
    endpoints: Sequence[Mapping[str, Any]],
    task_groups: Sequence[Mapping[str, Any]],
    endpoint_groups: Mapping[str, Mapping[str, Any]],
    destinations: Sequence[Destination],
    public_ip: bool,
) -> NetworkVerdict:
    """Every subnet's path to every destination, and the missing pieces."""
    problems: list[str] = []
    notes: list[str] = []
    paths: list[Path] = []
    if task_groups and not egress_allows_https(task_groups):
        names = ", ".join(text(g.get("GroupId")) for g in task_groups)
        problems.append(f"security groups {names} allow no outbound HTTPS (443): nothing can be fetched")
    task_group_ids = {text(g.get("GroupId")) for g in task_groups}
    cidrs = [text(s.get("CidrBlock")) for s in subnets]
    blocked: dict[tuple[str, str, tuple[str, ...]], list[str]] = {}  # (table, why, services) -> subnets
    routes: dict[str, Route] = {}
    for subnet in subnets:
        route = default_route(subnet, route_tables)
        routes[route.route_table] = route
        missing: list[str] = []
        reason = ""
        for destination in destinations:
            path = path_to(destination.service, subnet, route, endpoints, region=region, public_ip=public_ip)
            paths.append(path)
            if path.reachable is False:
                missing.append(destination.service)
                reason = reason or path.how
            elif path.reachable is None:
                notes.append(f"{path.subnet} reaches {path.service} {path.how}")
        if missing:
            blocked.setdefault((route.route_table, reason, tuple(missing)), []).append(route.subnet)
    for (table, reason, missing_services), subnet_ids in blocked.items():
        which = f"subnet {subnet_ids[0]}" if len(subnet_ids) == 1 else f"subnets {', '.join(subnet_ids)}"
        fix = _fix(missing_services, region, routes[table])
        problems.append(f"{which} cannot reach {', '.join(missing_services)}: {reason}. Add {fix}")
    wanted = {d.service for d in destinations}
    for endpoint in endpoints:
        name = text(endpoint.get("ServiceName")).removeprefix(f"com.amazonaws.{region}.")
        if (
            endpoint.get("VpcEndpointType") == "Interface"
            and name in wanted
            and not endpoint_admits(endpoint, endpoint_groups, task_group_ids, cidrs)
        ):
            problems.append(
                f"endpoint {endpoint.get('VpcEndpointId')} ({name}) has security groups that accept no HTTPS (443) "
                "from the task's security groups or subnets"
            )
    return NetworkVerdict(tuple(paths), tuple(dict.fromkeys(problems)), tuple(dict.fromkeys(notes)))
