"""notify: change nothing; propose the exact fix for a person to apply.

For causes no agent should fix alone (a missing IAM permission, no network path to ECR, a quota),
the proposal carries the diagnosis's advice: the IAM statement to add, the VPC endpoints to create,
the quota to raise, as commands filled in with the service's names.
"""

from __future__ import annotations

from typing import ClassVar

from agent.actions.base import Action, Context, Params, Plan
from agent.diagnose.advice import advice_for
from agent.diagnose.risks import risk_advice


class NotifyParams(Params):
    """No parameters: the message is the diagnosis's advice."""


class Notify(Action[NotifyParams]):
    name: ClassVar[str] = "notify"
    params_model = NotifyParams
    permissions: ClassVar[tuple[str, ...]] = ()
    dry_run_description: ClassVar[str] = "would tell a person the fix (notify never changes anything)"

    def plan(self, context: Context, params: NotifyParams) -> Plan | None:
        del params
        if context.findings:
            advice = advice_for(context.findings[0])
        elif context.risks:
            advice = risk_advice(context.risks[0])
        else:
            return None
        return Plan(action=self.name, summary=advice.fix, changes=(), advice=advice.commands, region=context.region)
