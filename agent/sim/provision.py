"""Building the world's AWS resources through the public APIs, as an operator or a pipeline would:
the VPC, roles, ECR images, log groups, load balancing, clusters with their capacity, task
definitions and services. These calls are the world's own: the request log does not record them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.sim.health import HealthCheck

if TYPE_CHECKING:
    from collections.abc import Callable

ECS_TASKS_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
# An execution role split the common way: registry login and logging in one policy, pulling from the
# repositories in another (the one a careless change removes).
ECR_PULL_POLICY_NAME = "ecr-pull"
ECR_PULL_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage", "ecr:BatchCheckLayerAvailability"],
            "Resource": "arn:aws:ecr:*:*:repository/*",
        }
    ],
}
LOGIN_AND_LOGS_POLICY_NAME = "ecr-login-and-logs"
LOGIN_AND_LOGS_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
        {"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Resource": "*"},
    ],
}
LINUX_AMI = "ami-04681a1dbd79675a5"  # an Amazon Linux 2 image moto knows
_INSTANCE_TYPES = {
    (2048, 4096): "c5.large",
    (2048, 8192): "m5.large",
    (4096, 8192): "c5.xlarge",
    (4096, 16384): "m5.xlarge",
    (8192, 16384): "c5.2xlarge",
}
APP_CONTAINER = "app"
APP_PORT = 8080


def image_manifest(repository: str, tag: str) -> str:
    """A Docker image manifest, distinct per image, as `docker push` uploads it."""
    config = hashlib.sha256(f"{repository}:{tag}:config".encode()).hexdigest()
    layer = hashlib.sha256(f"{repository}:{tag}:layer".encode()).hexdigest()
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 7023,
                "digest": f"sha256:{config}",
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": 31357624,
                    "digest": f"sha256:{layer}",
                }
            ],
        }
    )


def instance_type(cpu: int, memory: int) -> str:
    """The EC2 instance type whose vCPUs and memory match what ECS registers (or the nearest usual one)."""
    return _INSTANCE_TYPES.get((cpu, memory), "m5.large")


@dataclass(frozen=True, slots=True)
class Network:
    vpc_id: str
    subnets: tuple[tuple[str, str], ...]  # (subnet id, availability zone)
    security_group: str


@dataclass(frozen=True, slots=True)
class Ec2Capacity:
    """What `add_ec2_cluster` built: the Auto Scaling group and the capacity provider it backs."""

    cluster: str
    asg_name: str
    capacity_provider: str


class Provisioner:
    """Creates resources with a client factory (`name -> boto3 client`)."""

    def __init__(self, clients: Callable[[str], Any], region: str, account_id: str) -> None:
        self._clients = clients
        self.region = region
        self.account_id = account_id
        self._load_balancer_arn: str | None = None
        self._listener_port = 10000

    def network(self) -> Network:
        ec2 = self._clients("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        # Without DNS hostnames moto cannot give an ENI a private DNS name.
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
        subnets = []
        for cidr, zone in (("10.0.0.0/18", f"{self.region}a"), ("10.0.64.0/18", f"{self.region}b")):
            subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=zone)["Subnet"]["SubnetId"]
            subnets.append((subnet, zone))
        group = ec2.create_security_group(GroupName="ecs-tasks", Description="ECS tasks", VpcId=vpc)["GroupId"]
        return Network(vpc_id=vpc, subnets=tuple(subnets), security_group=group)

    def execution_role(self, name: str, *, ecr_pull: bool = True) -> str:
        iam = self._clients("iam")
        arn: str = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(ECS_TASKS_TRUST))["Role"]["Arn"]
        iam.put_role_policy(
            RoleName=name, PolicyName=LOGIN_AND_LOGS_POLICY_NAME, PolicyDocument=json.dumps(LOGIN_AND_LOGS_POLICY)
        )
        if ecr_pull:
            self.grant_ecr_pull(name)
        return arn

    def grant_ecr_pull(self, role: str) -> None:
        self._clients("iam").put_role_policy(
            RoleName=role, PolicyName=ECR_PULL_POLICY_NAME, PolicyDocument=json.dumps(ECR_PULL_POLICY)
        )

    def revoke_ecr_pull(self, role: str) -> None:
        self._clients("iam").delete_role_policy(RoleName=role, PolicyName=ECR_PULL_POLICY_NAME)

    def image(self, repository: str, tag: str) -> str:
        ecr = self._clients("ecr")
        try:
            uri: str = ecr.create_repository(repositoryName=repository)["repository"]["repositoryUri"]
        except ecr.exceptions.RepositoryAlreadyExistsException:
            uri = ecr.describe_repositories(repositoryNames=[repository])["repositories"][0]["repositoryUri"]
        ecr.put_image(repositoryName=repository, imageManifest=image_manifest(repository, tag), imageTag=tag)
        return f"{uri}:{tag}"

    def delete_image(self, repository: str, tag: str) -> None:
        self._clients("ecr").batch_delete_image(repositoryName=repository, imageIds=[{"imageTag": tag}])

    def log_group(self, name: str) -> None:
        logs = self._clients("logs")
        try:
            logs.create_log_group(logGroupName=name)
        except logs.exceptions.ResourceAlreadyExistsException:
            return

    def target_group(self, name: str, network: Network, check: HealthCheck) -> str:
        elbv2 = self._clients("elbv2")
        if self._load_balancer_arn is None:
            self._load_balancer_arn = elbv2.create_load_balancer(
                Name="ecs-services",
                Subnets=[s for s, _ in network.subnets],
                SecurityGroups=[network.security_group],
                Scheme="internal",
                Type="application",
            )["LoadBalancers"][0]["LoadBalancerArn"]
        arn: str = elbv2.create_target_group(
            Name=name[:32],
            Protocol="HTTP",
            Port=APP_PORT,
            VpcId=network.vpc_id,
            TargetType="ip",
            HealthCheckPath=check.path,
            HealthCheckIntervalSeconds=check.interval_seconds,
            HealthCheckTimeoutSeconds=check.timeout_seconds,
            HealthyThresholdCount=check.healthy_threshold,
            UnhealthyThresholdCount=check.unhealthy_threshold,
        )["TargetGroups"][0]["TargetGroupArn"]
        elbv2.modify_target_group_attributes(
            TargetGroupArn=arn, Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "30"}]
        )
        self._listener_port += 1
        elbv2.create_listener(
            LoadBalancerArn=self._load_balancer_arn,
            Protocol="HTTP",
            Port=self._listener_port,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": arn}],
        )
        return arn

    def fargate_cluster(self, name: str) -> str:
        ecs = self._clients("ecs")
        arn: str = ecs.create_cluster(
            clusterName=name,
            capacityProviders=["FARGATE", "FARGATE_SPOT"],
            settings=[{"name": "containerInsights", "value": "enabled"}],
        )["cluster"]["clusterArn"]
        return arn

    def ec2_cluster(
        self,
        name: str,
        network: Network,
        *,
        instances: int,
        instance_cpu: int,
        instance_memory: int,
        min_size: int,
        max_size: int,
        managed_scaling: bool,
        target_capacity: int,
    ) -> Ec2Capacity:
        ec2, autoscaling, ecs = self._clients("ec2"), self._clients("autoscaling"), self._clients("ecs")
        template = f"{name}-ecs"
        ec2.create_launch_template(
            LaunchTemplateName=template,
            LaunchTemplateData={"ImageId": LINUX_AMI, "InstanceType": instance_type(instance_cpu, instance_memory)},
        )
        asg_name = f"{name}-asg"
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=asg_name,
            LaunchTemplate={"LaunchTemplateName": template, "Version": "$Latest"},
            MinSize=min_size,
            MaxSize=max_size,
            DesiredCapacity=instances,
            VPCZoneIdentifier=",".join(s for s, _ in network.subnets),
        )
        asg_arn = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[asg_name])["AutoScalingGroups"][0][
            "AutoScalingGroupARN"
        ]
        provider = f"{name}-capacity"
        ecs.create_capacity_provider(
            name=provider,
            autoScalingGroupProvider={
                "autoScalingGroupArn": asg_arn,
                "managedScaling": {
                    "status": "ENABLED" if managed_scaling else "DISABLED",
                    "targetCapacity": target_capacity,
                    "minimumScalingStepSize": 1,
                    "maximumScalingStepSize": 10,
                    "instanceWarmupPeriod": 90,
                },
                "managedTerminationProtection": "DISABLED",
            },
        )
        ecs.create_cluster(
            clusterName=name,
            capacityProviders=[provider],
            defaultCapacityProviderStrategy=[{"capacityProvider": provider, "weight": 1, "base": 0}],
        )
        return Ec2Capacity(cluster=name, asg_name=asg_name, capacity_provider=provider)

    def task_definition(
        self,
        family: str,
        *,
        image: str,
        cpu: int,
        memory: int,
        container_memory: int | None,
        execution_role_arn: str | None,
        fargate: bool,
        awsvpc: bool,
        host_port: int | None = None,
        log_group: str | None = None,
    ) -> str:
        port_mapping: dict[str, Any] = {"containerPort": APP_PORT, "protocol": "tcp"}
        if not awsvpc:
            port_mapping["hostPort"] = host_port or 0
        container: dict[str, Any] = {
            "name": APP_CONTAINER,
            "image": image,
            "essential": True,
            "portMappings": [port_mapping],
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": log_group or f"/ecs/{family}",
                    "awslogs-region": self.region,
                    "awslogs-stream-prefix": "ecs",
                },
            },
        }
        if container_memory is not None:
            container["memory"] = container_memory
        definition: dict[str, Any] = {
            "family": family,
            "containerDefinitions": [container],
            "networkMode": "awsvpc" if awsvpc else "bridge",
            "cpu": str(cpu),
            "memory": str(memory),
            "requiresCompatibilities": ["FARGATE"] if fargate else ["EC2"],
        }
        if execution_role_arn:
            definition["executionRoleArn"] = execution_role_arn
        arn: str = self._clients("ecs").register_task_definition(**definition)["taskDefinition"]["taskDefinitionArn"]
        return arn

    def revise(
        self,
        task_definition_arn: str,
        *,
        image: str | None = None,
        cpu: int | None = None,
        memory: int | None = None,
        container_memory: int | None = None,
        secrets: Mapping[str, str] | None = None,
    ) -> str:
        """Register the next revision of a task definition with some fields changed (`secrets`: the
        app container's environment variable -> Secrets Manager ARN)."""
        ecs = self._clients("ecs")
        current = ecs.describe_task_definition(taskDefinition=task_definition_arn)["taskDefinition"]
        containers = [dict(c) for c in current["containerDefinitions"]]
        app = containers[0]
        if image is not None:
            app["image"] = image
        if container_memory is not None:
            app["memory"] = container_memory
        if secrets is not None:
            app["secrets"] = [{"name": name, "valueFrom": arn} for name, arn in secrets.items()]
        definition: dict[str, Any] = {
            key: current[key]
            for key in ("family", "networkMode", "requiresCompatibilities", "executionRoleArn", "cpu", "memory")
            if current.get(key) is not None
        }
        definition["containerDefinitions"] = containers
        if cpu is not None:
            definition["cpu"] = str(cpu)
        if memory is not None:
            definition["memory"] = str(memory)
        arn: str = ecs.register_task_definition(**definition)["taskDefinition"]["taskDefinitionArn"]
        return arn
