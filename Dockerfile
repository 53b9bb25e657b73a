# ecs-medic: the agent image.
#   docker build -t ecs-medic .
#   docker run --rm -p 9740:9740 -e AWS_REGION=eu-west-1 ecs-medic        # dry-run by default
# Stage 1 builds wheels for the package and its pinned dependencies; stage 2 installs them into a
# venv that the final image copies, so the final image has no compiler, no pip cache and no wheels.
# The base image is pinned by digest (a tag can move); to update it:
#   docker buildx imagetools inspect python:3.11-slim   (the "Digest:" of the multi-platform index)

FROM python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7 AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# constraints.txt pins every dependency, so the image gets the versions the tests ran with.
COPY pyproject.toml constraints.txt README.md LICENSE ./
COPY agent/ agent/
COPY policies/ policies/
RUN python3 -m venv /opt/build \
 && /opt/build/bin/pip wheel --wheel-dir /wheels --constraint constraints.txt . \
 && python3 -m venv --without-pip /opt/ecs-medic \
 && /opt/build/bin/pip --python /opt/ecs-medic/bin/python install --no-index --find-links /wheels ecs-medic

FROM python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7
LABEL org.opencontainers.image.title="ecs-medic" \
      org.opencontainers.image.description="A reconciling remediation agent for Amazon ECS" \
      org.opencontainers.image.licenses="MIT"
# A fixed, unprivileged UID/GID (Kubernetes runAsUser and ECS user match it).
RUN groupadd --system --gid 10001 ecs-medic \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin ecs-medic
COPY --from=build /opt/ecs-medic /opt/ecs-medic
# The bundled default policies (policies/*.yaml in the repository).
COPY policies/ /etc/ecs-medic/policies/
ENV PATH=/opt/ecs-medic/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ECS_MEDIC_POLICIES=/etc/ecs-medic/policies \
    ECS_MEDIC_METRICS_PORT=9740 \
    ECS_MEDIC_LOG_FORMAT=json
USER 10001:10001
EXPOSE 9740
# /healthz fails until the first reconcile pass that saw the fleet (up to 5 minutes: the start period),
# and when none has finished recently; python is the only HTTP client here. On SIGTERM the agent
# finishes the action in flight (at most 90 s): stop it with a timeout of 120 s (docker stop -t 120).
HEALTHCHECK --interval=30s --timeout=5s --start-period=300s --retries=3 \
  CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('ECS_MEDIC_METRICS_PORT', '9740') + '/healthz', timeout=4)"]
ENTRYPOINT ["ecs-medic"]
CMD ["run"]
