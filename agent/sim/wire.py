"""The world's part in each request (the middleware's `CallHooks`): AWS behaviour moto lacks at the wire,
and the runtime's reaction to what a client just changed.

- A change takes effect at once where moto would show something ECS never does: CreateService and
  UpdateService answer with the service as the runtime now runs it (its task definition as an ARN,
  no runningCount jumping to the desired count); StopTask starts the task's stop.
- Gaps filled: ListTasks' `serviceName` filter and pagination, ListServices' pagination,
  DescribeTasks' MISSING failures, Auto Scaling's min/max validation.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

from agent.sim import lifecycle, wording
from agent.sim import moto_bridge as bridge
from agent.sim.faults import Protocol, validation_error
from agent.sim.middleware import ApiCall, InvokeJson, Reply
from agent.sim.recording import is_mutating

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from agent.sim.runtime import Runtime

_LIST_TASKS_PAGE = 100
_LIST_SERVICES_PAGE = 10


def _json_reply(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, default=str).encode()


def _name(arn_or_name: object) -> str:
    return str(arn_or_name or "").rsplit("/", 1)[-1]


def page(items: Sequence[str], params: Mapping[str, Any], default_size: int) -> tuple[list[str], str | None]:
    """One page of `items` for `maxResults` and `nextToken`, as ECS pages its List* answers."""
    size = int(params.get("maxResults") or default_size)
    token = params.get("nextToken")
    offset = 0
    if isinstance(token, str) and token:
        try:
            offset = int(json.loads(base64.b64decode(token))["offset"])
        except (ValueError, KeyError, TypeError):
            offset = 0
    chosen = list(items[offset : offset + size])
    more = offset + size < len(items)
    next_token = base64.b64encode(json.dumps({"offset": offset + size}).encode()).decode() if more else None
    return chosen, next_token


class WireHooks:
    """`CallHooks` for one account's runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def before(self, call: ApiCall, invoke: InvokeJson) -> Reply | None:
        if call.service == "autoscaling" and call.operation in ("UpdateAutoScalingGroup", "SetDesiredCapacity"):
            return self._validate_group_sizes(call)
        if call.service == "ecs" and call.operation == "StopTask":
            return self._stop_task(call, invoke)
        return None

    def after(self, call: ApiCall, reply: Reply, invoke: InvokeJson) -> bytes | None:
        runtime = self.runtime
        if is_mutating(call.operation):
            runtime.configs_changed()
        if call.service != "ecs":
            return None
        operation, params = call.operation, call.params
        if operation == "CreateService":
            created = reply.json().get("service", {})
            config = bridge.service_config(
                runtime.region, _name(created.get("clusterArn")), str(created.get("serviceName"))
            )
            if config is not None:
                runtime.adopt(config, params, runtime.now)
                return self._rendered_service(invoke, config.cluster, config.name, with_tags=True)
        elif operation == "UpdateService":
            updated = reply.json().get("service", {})
            cluster, name = _name(updated.get("clusterArn")), str(updated.get("serviceName"))
            if runtime.updated(cluster, name, force=bool(params.get("forceNewDeployment"))):
                return self._rendered_service(invoke, cluster, name, with_tags=False)
        elif operation == "ListTasks":
            return self._list_tasks(reply, params)
        elif operation == "ListServices":
            arns, token = page(reply.json().get("serviceArns", []), params, _LIST_SERVICES_PAGE)
            return _json_reply({"serviceArns": arns, **({"nextToken": token} if token else {})})
        elif operation == "DescribeTasks":
            return self._describe_tasks(reply, params)
        return None

    def _rendered_service(self, invoke: InvokeJson, cluster: str, name: str, *, with_tags: bool) -> bytes | None:
        """The service as the world now runs it, for the response to the call that changed it."""
        params: dict[str, Any] = {"cluster": cluster, "services": [name]}
        if with_tags:
            params["include"] = ["TAGS"]
        services = invoke("DescribeServices", params).json().get("services") or []
        return _json_reply({"service": services[0]}) if services else None

    def _list_tasks(self, reply: Reply, params: Mapping[str, Any]) -> bytes:
        by_id = self.runtime.index.by_id
        arns: list[str] = reply.json().get("taskArns", [])
        service_name = params.get("serviceName")
        if service_name:
            wanted = str(service_name).rsplit("/", 1)[-1]
            arns = [a for a in arns if (t := by_id.get(a.rsplit("/", 1)[-1])) is not None and t.service == wanted]
        if not params.get("desiredStatus"):
            arns = [a for a in arns if (t := by_id.get(a.rsplit("/", 1)[-1])) is None or t.active]
        chosen, token = page(arns, params, _LIST_TASKS_PAGE)
        return _json_reply({"taskArns": chosen, **({"nextToken": token} if token else {})})

    def _describe_tasks(self, reply: Reply, params: Mapping[str, Any]) -> bytes | None:
        runtime = self.runtime
        body = reply.json()
        found = {str(t.get("taskArn", "")).rsplit("/", 1)[-1] for t in body.get("tasks", [])}
        missing = [str(r) for r in params.get("tasks", []) if str(r).rsplit("/", 1)[-1] not in found]
        if not missing:
            return None
        cluster = _name(str(params.get("cluster") or "default"))
        prefix = f"arn:aws:ecs:{runtime.region}:{runtime.account_id}:task/{cluster}/"
        failures = [{"arn": r if r.startswith("arn:") else f"{prefix}{r}", "reason": "MISSING"} for r in missing]
        body["failures"] = list(body.get("failures", [])) + failures
        return _json_reply(body)

    def _stop_task(self, call: ApiCall, invoke: InvokeJson) -> Reply | None:
        runtime = self.runtime
        reference = str(call.params.get("task", ""))
        task = runtime.index.by_id.get(reference.rsplit("/", 1)[-1])
        if task is None:
            if any(reference.endswith(arn.rsplit("/", 1)[-1]) for arn in bridge.task_arns(runtime.region)):
                return None  # a task the world does not run (RunTask): moto answers
            error = validation_error(Protocol.JSON, "InvalidParameterException", "The referenced task was not found.")
            return Reply(error.status, list(error.headers), error.body)
        reason = str(call.params.get("reason") or wording.USER_STOPPED)
        lifecycle.begin_stop(
            task, runtime.now, stop_code="UserInitiated", reason=reason, drain_seconds=task.drain_seconds
        )
        runtime.task_changed(task)
        described = invoke("DescribeTasks", {"cluster": task.cluster, "tasks": [task.arn]})
        tasks = described.json().get("tasks") or []
        return Reply(
            200, [("Content-Type", "application/x-amz-json-1.1")], _json_reply({"task": tasks[0] if tasks else {}})
        )

    def _validate_group_sizes(self, call: ApiCall) -> Reply | None:
        name = str(call.params.get("AutoScalingGroupName", ""))
        group = bridge.auto_scaling_group(self.runtime.region, name)
        if group is None or "DesiredCapacity" not in call.params:
            return None
        desired = int(call.params["DesiredCapacity"])
        minimum = int(call.params.get("MinSize", group.min_size))
        maximum = int(call.params.get("MaxSize", group.max_size))
        if minimum <= desired <= maximum:
            return None
        if call.operation == "SetDesiredCapacity":
            message = (
                wording.asg_set_desired_above_max(desired, maximum)
                if desired > maximum
                else wording.asg_set_desired_below_min(desired, minimum)
            )
        else:
            message = wording.asg_desired_out_of_bounds(desired, minimum, maximum)
        error = validation_error(Protocol.QUERY, "ValidationError", message)
        return Reply(error.status, list(error.headers), error.body)
