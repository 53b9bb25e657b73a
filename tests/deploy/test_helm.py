"""helm/ecs-medic: helm lint --strict, helm template + kubernetes-validate, the ServiceMonitor against
the Prometheus Operator's CRD schema, checkov, and the bundled policies in the ConfigMap."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import CHART, INSTALL_HINT, POLICIES, TOOLS, run, tool

K8S_VERSION = "1.31.0"
FULL = [
    "--set", "serviceMonitor.enabled=true",
    "--set", "networkPolicy.enabled=true",
    "--set", "serviceAccount.roleArn=arn:aws:iam::123456789012:role/ecs-medic",
    "--set", "mode=enforce",
    "--set", "clusters={production,staging}",
    "--set", "region=eu-west-1",
    "--set", "eventsQueueUrl=https://sqs.eu-west-1.amazonaws.com/123456789012/ecs-medic-events",
    "--set", "leaseTable=ecs-medic-leases",
    "--set", "replicaCount=2",
    "--set", "shards=6",
    "--set", "evidenceTable=ecs-medic-evidence",
    "--set", "assumeRoleArns={arn:aws:iam::222222222222:role/ecs-medic-member}",
    "--set", "assumeRoleExternalId=ecs-medic-7f3a",
    "--set", "regions={eu-west-1,us-east-1}",
    "--set", f"image.digest=sha256:{'a' * 64}",
    "--set", "notify.snsTopicArn=arn:aws:sns:eu-west-1:123456789012:ecs-medic-notifications",
    "--set", "notify.webhookSecretArn=arn:aws:secretsmanager:eu-west-1:123456789012:secret:ecs-medic/webhook-AbCdEf",
]  # fmt: skip
# checkov findings accepted on the rendered chart, with the reason.
CHECKOV_ACCEPTED = {
    "CKV_K8S_15": "imagePullPolicy IfNotPresent: images are pinned by version tag or image.digest, never mutable",
    "CKV_K8S_43": "the default pins the chart's appVersion tag; image.digest pins by digest (the full render checks it)",
}
SERVICEMONITOR_VALIDATOR = """
import { readFileSync } from "node:fs";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";
const results = JSON.parse(readFileSync(0, "utf8")).map((doc) => {
  try { new ServiceMonitor(doc).validate(); return "valid"; } catch (error) { return String(error.message); }
});
process.stdout.write(JSON.stringify(results));
"""


@pytest.fixture(scope="module")
def helm(tmp_path_factory):
    """helm with its own empty config, cache and data folders."""
    binary = tool("helm")
    home = tmp_path_factory.mktemp("helm-home")
    env = {f"HELM_{kind}_HOME": str(home / kind.lower()) for kind in ("CACHE", "CONFIG", "DATA")}

    def call(*args: str, chart: Path = CHART, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([binary, *[a.replace("{chart}", str(chart)) for a in args]], env=env, check=check)

    return call


def render(helm, *args: str, chart: Path = CHART) -> list[dict[str, Any]]:
    out = helm("template", "ecs-medic", "{chart}", "--namespace", "ecs-medic", *args, chart=chart).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


def bundled_policy_files() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(POLICIES.glob("*.y*ml")) if p.suffix in {".yaml", ".yml"}}


@pytest.mark.parametrize("values", [[], FULL], ids=["defaults", "all-options"])
def test_lint_strict(helm, values):
    result = helm("lint", "--strict", "{chart}", *values)
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("values", [[], FULL], ids=["defaults", "all-options"])
def test_rendered_manifests_validate_against_kubernetes(helm, values, tmp_path):
    """kubernetes-validate knows the built-in kinds only: the ServiceMonitor (a CRD) is taken out
    here and checked against its own schema in test_servicemonitor_matches_the_crd_schema."""
    validator = tool("kubernetes-validate")
    docs = [d for d in render(helm, *values) if d["apiVersion"] != "monitoring.coreos.com/v1"]
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(yaml.safe_dump_all(docs))
    result = run([validator, "-k", K8S_VERSION, "--strict", str(manifest)])
    assert result.stdout.count("passed for resource") == len(docs), result.stdout + result.stderr
    assert "Couldn't find schema" not in result.stdout + result.stderr


def test_servicemonitor_matches_the_crd_schema(helm):
    node = tool("node")
    package = TOOLS / "npm" / "node_modules" / "@kubernetes-models" / "prometheus-operator"
    if not package.exists():
        pytest.skip(f"@kubernetes-models/prometheus-operator not installed: {INSTALL_HINT}")
    monitor = by_kind(render(helm, *FULL), "ServiceMonitor")
    broken = json.loads(json.dumps(monitor))
    broken["spec"]["endpoints"][0]["interval"] = "30 seconds"  # the validator must reject this
    result = subprocess.run(
        [node, "--input-type=module", "-e", SERVICEMONITOR_VALIDATOR],
        input=json.dumps([monitor, broken]),
        cwd=TOOLS / "npm",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    valid, invalid = json.loads(result.stdout)
    assert valid == "valid"
    assert "interval" in invalid
    assert monitor["spec"]["jobLabel"] == "app.kubernetes.io/name", "alerts expect job=ecs-medic"


def test_checkov(helm, tmp_path):
    checkov = tool("checkov")
    skip = ("--skip-check", ",".join(CHECKOV_ACCEPTED))
    (tmp_path / "defaults.yaml").write_text(yaml.safe_dump_all(render(helm)))
    (tmp_path / "all-options.yaml").write_text(yaml.safe_dump_all(render(helm, *FULL)))
    result = run(
        [checkov, "-d", str(tmp_path), "--framework", "kubernetes", "--skip-download", "--output", "json", *skip],
        check=False,
    )
    report = json.loads(result.stdout)
    failed = [f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in report["results"]["failed_checks"]]
    assert failed == []
    assert report["summary"]["passed"] > 50, "checkov evaluated almost nothing"


def test_configmap_carries_every_bundled_policy(helm):
    configmap = by_kind(render(helm), "ConfigMap")
    assert (configmap.get("data") or {}) == bundled_policy_files()


def test_bundled_policies_link_is_followed(helm, tmp_path):
    """The chart's policies/ is a link to the repository's policies/: prove helm follows it, with a
    sample policy, whatever the real folder holds."""
    (tmp_path / "policies").mkdir()
    sample = "apiVersion: ecs-medic/v1\nkind: RemediationPolicy\nmetadata:\n  name: sample\n"
    (tmp_path / "policies" / "sample.yaml").write_text(sample)
    (tmp_path / "policies" / "notes.txt").write_text("not a policy")
    chart = tmp_path / "helm" / "ecs-medic"
    shutil.copytree(CHART, chart, symlinks=True)
    assert (chart / "policies").is_symlink()
    configmap = by_kind(render(helm, chart=chart), "ConfigMap")
    assert configmap["data"] == {"sample.yaml": sample}


def test_package_contains_the_bundled_policies(helm, tmp_path):
    helm("package", "{chart}", "--destination", str(tmp_path))
    (archive,) = tmp_path.glob("ecs-medic-*.tgz")
    with tarfile.open(archive) as tar:
        packaged = {
            Path(m.name).name: tar.extractfile(m).read().decode()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.name.startswith("ecs-medic/policies/") and m.isfile()
        }
    assert packaged == bundled_policy_files()


def test_values_add_and_replace_policies(helm, tmp_path):
    bundled = bundled_policy_files()
    files = {"team-extra.yaml": "apiVersion: ecs-medic/v1\nkind: RemediationPolicy\n"}
    if bundled:
        files[next(iter(bundled))] = "# replaced\n"
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"policies": {"files": files}}))
    assert by_kind(render(helm, "-f", str(values)), "ConfigMap")["data"] == {**bundled, **files}
    values.write_text(yaml.safe_dump({"policies": {"bundled": False, "files": files}}))
    assert by_kind(render(helm, "-f", str(values)), "ConfigMap")["data"] == files


def test_existing_configmap_replaces_the_charts(helm):
    docs = render(helm, "--set", "policies.existingConfigMap=my-policies")
    assert not [d for d in docs if d["kind"] == "ConfigMap"]
    volumes = by_kind(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "policies", "configMap": {"name": "my-policies"}} in volumes


def test_deployment_is_locked_down_and_probed(helm):
    docs = render(helm, *FULL)
    pod = by_kind(docs, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["runAsNonRoot"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    assert security["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert container["ports"] == [{"name": "metrics", "containerPort": 9740, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["resources"]["limits"]["memory"]
    assert container["image"] == f"ecs-medic@sha256:{'a' * 64}"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["ECS_MEDIC_MODE"] == "enforce"
    assert env["ECS_MEDIC_CLUSTERS"] == "production,staging"
    assert env["ECS_MEDIC_POLICIES"] == "/etc/ecs-medic/policies"
    assert env["ECS_MEDIC_LEASE_TABLE"] == "ecs-medic-leases"
    assert env["ECS_MEDIC_REPLICAS"] == "2"  # the agent checks it against the lease table
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-west-1"
    account = by_kind(docs, "ServiceAccount")
    assert account["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/ecs-medic"
    }


def test_defaults_are_dry_run_single_replica_without_optional_objects(helm):
    docs = render(helm)
    assert {d["kind"] for d in docs} == {"ServiceAccount", "ConfigMap", "Service", "Deployment"}
    deployment = by_kind(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["ECS_MEDIC_MODE"] == "dry-run"
    assert env["ECS_MEDIC_REPLICAS"] == "1"
    # SIGTERM finishes the action in flight: one action, with all its calls and retries, takes at most 90 s.
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 120


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["--set", "replicaCount=2"], "replicaCount > 1 needs leaseTable"),
        (["--set", "shards=4"], "shards > 1 needs leaseTable"),
        (["--set", "assumeRoleArns={arn:aws:iam::222222222222:role/m}"], "needs assumeRoleExternalId"),
        (["--set", "regions={Europe}"], "regions"),
        (["--set", "apiBudgetFraction=2"], "apiBudgetFraction"),
        (["--set", "mode=enforcing"], "mode"),
        (["--set", "pollIntervalSeconds=fast"], "pollIntervalSeconds"),
        (["--set", "unknownSetting=1"], "unknownSetting"),
        (["--set", "terminationGracePeriodSeconds=15"], "terminationGracePeriodSeconds"),
    ],
    ids=[
        "replicas-without-lease",
        "shards-without-lease",
        "roles-without-external-id",
        "bad-region",
        "budget-above-all",
        "bad-mode",
        "bad-interval",
        "typo",
        "grace-shorter-than-an-action",
    ],
)
def test_bad_values_are_refused(helm, values, message):
    result = helm("template", "ecs-medic", "{chart}", *values, check=False)
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.parametrize("values", [[], FULL], ids=["defaults", "all-options"])
def test_notes_render(helm, values, tmp_path):
    """NOTES.txt renders only on install; render it here through tpl in a copy of the chart."""
    chart = tmp_path / "ecs-medic"
    shutil.copytree(CHART, chart, symlinks=False)
    (chart / "notes.txt").write_text((CHART / "templates" / "NOTES.txt").read_text())
    (chart / "templates" / "notes-check.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\n"
        'data:\n  notes: {{ tpl (.Files.Get "notes.txt") . | quote }}\n'
    )
    (notes,) = [d for d in render(helm, *values, chart=chart) if d["metadata"]["name"] == "notes"]
    text = notes["data"]["notes"]
    assert "ecs-medic:managed=true" in text
    assert ("WARNING: serviceAccount.roleArn is empty" in text) == (not values)


# --- notifications --------------------------------------------------------------------------------------------

NOTIFY_TOPIC = "arn:aws:sns:eu-west-1:123456789012:ecs-medic-notifications"
NOTIFY_SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:ecs-medic/webhook-AbCdEf"


def _env(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = by_kind(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_helm_values_reach_the_agent(helm):
    env = _env(render(helm))
    assert "ECS_MEDIC_NOTIFY_SNS_TOPIC_ARN" not in env and "ECS_MEDIC_NOTIFY_WEBHOOK_URL" not in env
    assert env["ECS_MEDIC_NOTIFY_WEBHOOK_FORMAT"] == "slack"
    env = _env(
        render(
            helm,
            *("--set", f"notify.snsTopicArn={NOTIFY_TOPIC}", "--set", f"notify.webhookSecretArn={NOTIFY_SECRET}"),
            *("--set", "notify.webhookFormat=text", "--set", "notify.ratePerMinute=6"),
        )
    )
    assert env["ECS_MEDIC_NOTIFY_SNS_TOPIC_ARN"] == NOTIFY_TOPIC
    assert env["ECS_MEDIC_NOTIFY_WEBHOOK_SECRET_ARN"] == NOTIFY_SECRET
    assert env["ECS_MEDIC_NOTIFY_WEBHOOK_FORMAT"] == "text"
    assert env["ECS_MEDIC_NOTIFY_RATE_PER_MINUTE"] == "6"
    env = _env(render(helm, "--set", "notify.webhookUrlSecret.name=chat-webhook"))
    assert env["ECS_MEDIC_NOTIFY_WEBHOOK_URL"] == {"secretKeyRef": {"name": "chat-webhook", "key": "url"}}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["--set", "notify.snsTopicArn=ecs-medic"], "snsTopicArn"),
        (["--set", f"notify.webhookSecretArn={NOTIFY_TOPIC}"], "webhookSecretArn"),
        (["--set", "notify.webhookFormat=teams"], "webhookFormat"),
        (
            ["--set", f"notify.webhookSecretArn={NOTIFY_SECRET}", "--set", "notify.webhookUrlSecret.name=chat"],
            "not both",
        ),
    ],
    ids=["topic-name-not-arn", "secret-arn-of-a-topic", "bad-format", "two-webhook-sources"],
)
def test_helm_refuses_bad_notify_values(helm, values, message):
    result = helm("template", "ecs-medic", "{chart}", *values, check=False)
    assert result.returncode != 0
    assert message in result.stderr


# --- scale-out -------------------------------------------------------------------------------------------------


def test_scale_out_values_reach_the_agent(helm):
    env = _env(render(helm))
    assert (env["ECS_MEDIC_SHARDS"], env["ECS_MEDIC_API_BUDGET_FRACTION"]) == ("1", "0.5")
    for unset in ("ECS_MEDIC_RESYNC_INTERVAL_SECONDS", "ECS_MEDIC_EVIDENCE_TABLE", "ECS_MEDIC_ASSUME_ROLE_ARNS"):
        assert unset not in env
    scaled = ("--set", "replicaCount=3", "--set", "resyncIntervalSeconds=300", "--set", "apiBudgetFraction=0.3")
    docs = render(helm, *FULL, *scaled)
    env = _env(docs)
    assert by_kind(docs, "Deployment")["spec"]["replicas"] == 3
    assert env["ECS_MEDIC_REPLICAS"] == "3"
    assert env["ECS_MEDIC_SHARDS"] == "6"
    assert env["ECS_MEDIC_RESYNC_INTERVAL_SECONDS"] == "300"
    assert env["ECS_MEDIC_API_BUDGET_FRACTION"] == "0.3"
    assert env["ECS_MEDIC_EVIDENCE_TABLE"] == "ecs-medic-evidence"
    assert env["ECS_MEDIC_EVIDENCE_RETENTION_SECONDS"] == "86400"
    assert env["ECS_MEDIC_ASSUME_ROLE_ARNS"] == "arn:aws:iam::222222222222:role/ecs-medic-member"
    assert env["ECS_MEDIC_ASSUME_ROLE_EXTERNAL_ID"] == "ecs-medic-7f3a"
    assert env["ECS_MEDIC_REGIONS"] == "eu-west-1,us-east-1"
    from agent.settings import Settings  # noqa: PLC0415 - every variable the chart sets is a setting

    assert {name for name in env if name.startswith("ECS_MEDIC_")} <= set(Settings.variables())
