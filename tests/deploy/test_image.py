"""Dockerfile and .dockerignore: hadolint, checkov, and the contract the image must keep.

The image itself is built and run by deploy/ci/build-image.sh (buildah + podman), not here."""

from __future__ import annotations

import json
import re
import shlex

from tests.deploy.conftest import REPO, run, tool

DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_hadolint():
    run([tool("hadolint"), str(DOCKERFILE)])


def test_checkov():
    result = run(
        [tool("checkov"), "-f", str(DOCKERFILE), "--framework", "dockerfile", "--skip-download", "--output", "json"],
        check=False,
    )
    report = json.loads(result.stdout)
    failed = [f"{c['check_id']}: {c['check_name']}" for c in report["results"]["failed_checks"]]
    assert failed == []
    assert report["summary"]["passed"] > 10


def test_multi_stage_slim_non_root():
    steps = instructions()
    froms = [args for op, args in steps if op == "FROM"]
    assert len(froms) == 2
    assert all(f.startswith("python:3.11-slim") for f in froms)
    final = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM") :]
    user = [args for op, args in final if op == "USER"]
    assert user == ["10001:10001"]
    assert not [args for op, args in final if op == "RUN" and re.search(r"apt-get|pip (install|wheel)", args)]


def test_runtime_contract():
    steps = instructions()
    assert ("EXPOSE", "9740") in steps
    assert ("ENTRYPOINT", '["ecs-medic"]') in steps
    assert ("CMD", '["run"]') in steps
    env = " ".join(args for op, args in steps if op == "ENV")
    assert "ECS_MEDIC_POLICIES=/etc/ecs-medic/policies" in shlex.split(env)
    assert ("COPY", "policies/ /etc/ecs-medic/policies/") in steps
    (healthcheck,) = [args for op, args in steps if op == "HEALTHCHECK"]
    assert "/healthz" in healthcheck
    assert "python3" in healthcheck


def test_dockerignore_keeps_what_the_build_needs():
    lines = (REPO / ".dockerignore").read_text().splitlines()
    kept = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert kept >= {"pyproject.toml", "constraints.txt", "README.md", "agent", "policies"}


def test_base_image_is_pinned_by_digest():
    froms = [args.split()[0] for op, args in instructions() if op == "FROM"]
    assert froms
    for image in froms:
        assert re.fullmatch(r"python:3\.11-slim@sha256:[0-9a-f]{64}", image), image
    assert len(set(froms)) == 1, "both stages on the same pinned base"


def test_healthcheck_allows_the_first_pass_five_minutes():
    (healthcheck,) = [args for op, args in instructions() if op == "HEALTHCHECK"]
    assert "--start-period=300s" in healthcheck
