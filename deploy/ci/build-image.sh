#!/usr/bin/env bash
# Builds the repository's Dockerfile for real, without a Docker engine, and runs the result.
#   buildah bud --isolation chroot --storage-driver vfs   (no daemon, no overlayfs, no user namespaces)
#   podman run with runc and cgroupfs                      (runs `ecs-medic --help` as the image's user)
# then, when the CLI has `run` and moto_server is at hand (.venv from `make`, or MOTO_SERVER), starts
# `ecs-medic run` in the container with a read-only root against moto on 127.0.0.1 and checks
# /readyz, /healthz, the image's HEALTHCHECK, every contract metric, JSON logs and SIGTERM (<= 10 s).
# When the FROM image cannot be pulled (no registry access), a stand-in is made with debootstrap
# (Debian bookworm + python3 + python3-venv) and tagged with the FROM image's name. It proves that the
# Dockerfile builds and that the image runs; it is not a bit-for-bit copy of the official image.
#
# Needs root (it installs buildah, podman, runc and debootstrap with apt-get when they are missing).
# Environment: IMAGE (default localhost/ecs-medic:ci), ECS_MEDIC_IMAGE_STATE (container storage,
# default .tools/containers), ECS_MEDIC_IMAGE_SKIP_RUN=1 to build only.
# Prints what it proved; exits non-zero when any step fails.
set -euo pipefail

cd "$(dirname "$0")/../.."
IMAGE=${IMAGE:-localhost/ecs-medic:ci}
STATE=${ECS_MEDIC_IMAGE_STATE:-$PWD/.tools/containers}
STORE=(--root "$STATE/storage" --runroot "$STATE/run" --storage-driver vfs)
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
T0=$(date +%s)
PROVEN=()
NOT_PROVEN=()

log() { printf 'build-image: %s\n' "$*" >&2; }
die() { printf 'build-image: FAILED: %s\n' "$*" >&2; summary; exit 1; }
elapsed() { echo "$(( $(date +%s) - T0 )) s"; }
summary() {
  local line
  for line in "${PROVEN[@]+"${PROVEN[@]}"}"; do printf 'build-image: PROVEN: %s\n' "$line" >&2; done
  for line in "${NOT_PROVEN[@]+"${NOT_PROVEN[@]}"}"; do printf 'build-image: NOT PROVEN: %s\n' "$line" >&2; done
}

[ "$(id -u)" = 0 ] || die "run as root (buildah's chroot isolation and vfs storage need it)"

# 1. Tools
missing=()
for pkg in buildah podman runc debootstrap; do
  command -v "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-cache show buildah >/dev/null 2>&1 || apt-get update -qq || die "apt-get update"
  apt-get install -y -qq "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]}"
fi
log "tools ready ($(elapsed)): $(buildah --version)"

# 2. Base image: every FROM that is not a stage name.
mapfile -t bases < <(awk 'toupper($1) == "FROM" { print $2 }' Dockerfile | sort -u)
[ "${#bases[@]}" = 1 ] || die "expected one base image in Dockerfile, found: ${bases[*]}"
BASE=${bases[0]}
case $BASE in */*) FULL_BASE=$BASE ;; *) FULL_BASE=docker.io/library/$BASE ;; esac
case $BASE in *@sha256:*) ;; *) die "the base image $BASE is not pinned by digest (FROM name:tag@sha256:...)" ;; esac
DOCKERFILE=Dockerfile

if buildah "${STORE[@]}" inspect --type image "$FULL_BASE" >/dev/null 2>&1; then
  log "base $FULL_BASE: already in $STATE"
elif timeout 60 buildah "${STORE[@]}" pull --quiet "$FULL_BASE" >/dev/null 2>&1; then
  log "base $FULL_BASE: pulled"
else
  # A local image cannot carry a registry digest: the stand-in is tagged with the name alone, and the
  # build reads a copy of the Dockerfile whose FROM lines drop the digest.
  DOCKERFILE=$STATE/Dockerfile.stand-in
  sed -E 's/^(FROM[[:space:]]+[^[:space:]@]+)@sha256:[0-9a-f]+/\1/I' Dockerfile > "$DOCKERFILE"
  FULL_BASE=${FULL_BASE%@*}
  NOT_PROVEN+=("the pinned digest $BASE: it cannot be pulled here")
fi
if [ "$DOCKERFILE" != Dockerfile ] && buildah "${STORE[@]}" inspect --type image "$FULL_BASE" >/dev/null 2>&1; then
  log "base $FULL_BASE: stand-in already in $STATE"
elif [ "$DOCKERFILE" != Dockerfile ]; then
  log "base $FULL_BASE: cannot be pulled; making a debootstrap stand-in (about 40 s)"
  rootfs=$(mktemp -d)
  chmod 0755 "$rootfs"  # it becomes the image's /: mktemp's 0700 would lock out non-root users
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,passwd \
    bookworm "$rootfs" >"$STATE.debootstrap.log" 2>&1 || die "debootstrap (log: $STATE.debootstrap.log)"
  # The official image names its interpreter python3 too; give the stand-in the same entry point.
  tar -C "$rootfs" -c . | podman "${STORE[@]}" import \
    --change 'LABEL org.opencontainers.image.base.stand-in=debootstrap-bookworm' \
    --change 'CMD ["python3"]' - "$FULL_BASE" >/dev/null || die "podman import of the stand-in"
  rm -rf "$rootfs"
  trap - EXIT
fi
if [ -n "$(buildah "${STORE[@]}" inspect --type image --format \
      '{{index .ImageAnnotations "org.opencontainers.image.base.stand-in"}}{{index .Docker.Config.Labels "org.opencontainers.image.base.stand-in"}}' \
      "$FULL_BASE" 2>/dev/null)" ]; then
  NOT_PROVEN+=("the image on the official $BASE: built on a debootstrap stand-in tagged $FULL_BASE")
fi

# 3. Build
log "building $IMAGE ($(elapsed))"
mounts=()
[ -f "$CA_BUNDLE" ] && mounts=(-v "$CA_BUNDLE:$CA_BUNDLE:ro")
b0=$(date +%s)
buildah "${STORE[@]}" bud --isolation chroot --format docker --pull=never --layers=false \
  "${mounts[@]}" -f "$DOCKERFILE" -t "$IMAGE" . || die "buildah bud"
PROVEN+=("the Dockerfile builds: both stages, wheels, venv, policies copied ($(( $(date +%s) - b0 )) s)")
podman "${STORE[@]}" image prune -f >/dev/null 2>&1 || true  # earlier builds' images (vfs copies every layer)

# 4. The image's configuration
buildah "${STORE[@]}" inspect --type image "$IMAGE" > "$STATE/image.json"
python3 - "$STATE/image.json" <<'PY' || die "image configuration"
import json
import sys

config = json.load(open(sys.argv[1]))["Docker"]["config"]
env = dict(e.split("=", 1) for e in config.get("Env") or [])
problems = []
if config.get("Entrypoint") != ["ecs-medic"] or config.get("Cmd") != ["run"]:
    problems.append(f"entrypoint/cmd {config.get('Entrypoint')} {config.get('Cmd')}")
user = config.get("User", "")
if not user or user.split(":")[0] in {"", "0", "root"}:
    problems.append(f"user {user!r} is root")
if "9740/tcp" not in (config.get("ExposedPorts") or {}):
    problems.append("port 9740 not exposed")
if "/healthz" not in " ".join((config.get("Healthcheck") or {}).get("Test") or []):
    problems.append("no HEALTHCHECK on /healthz")
if env.get("ECS_MEDIC_POLICIES") != "/etc/ecs-medic/policies":
    problems.append(f"ECS_MEDIC_POLICIES={env.get('ECS_MEDIC_POLICIES')}")
if problems:
    sys.exit("; ".join(problems))
PY
PROVEN+=("image config: entrypoint ecs-medic run, non-root user, port 9740, HEALTHCHECK /healthz, ECS_MEDIC_POLICIES")

# `ecs-medic run` in the container, read-only root, against a local moto server standing in for AWS
# (loopback only): /healthz, /readyz, every contract metric on /metrics, JSON logs, and SIGTERM.
MOTO_SERVER=${MOTO_SERVER:-$( [ -x .venv/bin/moto_server ] && echo "$PWD/.venv/bin/moto_server" || command -v moto_server || true)}
serve_check() {
  local ports moto_port agent_port t_stop code
  ports=$(python3 -c 'import socket
for _ in range(2):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
  moto_port=$(echo "$ports" | sed -n 1p); agent_port=$(echo "$ports" | sed -n 2p)
  "$MOTO_SERVER" -H 127.0.0.1 -p "$moto_port" >"$STATE/moto.log" 2>&1 &
  MOTO_PID=$!
  trap 'kill "$MOTO_PID" 2>/dev/null || true; [ -n "${SERVE_CID:-}" ] && podman "${STORE[@]}" rm -f "$SERVE_CID" >/dev/null 2>&1 || true' EXIT
  # One cluster to watch: an account without any is a configuration error, and the agent is never ready.
  python3 - "$moto_port" <<'PY' || die "CreateCluster in moto"
import json, sys, time, urllib.request

request = urllib.request.Request(
    f"http://127.0.0.1:{sys.argv[1]}/",
    data=json.dumps({"clusterName": "ci"}).encode(),
    headers={
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "AmazonEC2ContainerServiceV20141113.CreateCluster",
        "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ecs/aws4_request, SignedHeaders=host, Signature=0",
    },
)
for _ in range(100):
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            sys.exit(0 if json.load(response)["cluster"]["clusterName"] == "ci" else "unexpected answer")
    except OSError:
        time.sleep(0.1)
sys.exit("moto did not answer")
PY
  # The keys below are moto's conventional fakes; no AWS account is involved.
  SERVE_CID=$("${PODMAN_RUN[@]}" -d --network host --read-only --tmpfs /tmp \
    -e AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port" -e AWS_REGION=us-east-1 -e AWS_DEFAULT_REGION=us-east-1 \
    -e AWS_ACCESS_KEY_ID=testing -e AWS_SECRET_ACCESS_KEY=testing \
    -e ECS_MEDIC_METRICS_PORT="$agent_port" -e ECS_MEDIC_POLL_INTERVAL_SECONDS=2 "$IMAGE") \
    || die "podman run -d $IMAGE (run)"
  python3 - "$agent_port" <<'PY' || { podman "${STORE[@]}" logs "$SERVE_CID" 2>&1 | tail -20 >&2; die "ecs-medic run in the container"; }
import sys, time, urllib.error, urllib.request

port = sys.argv[1]
contract = """ecs_medic_remediations_total ecs_medic_findings_total ecs_medic_reconcile_passes_total
ecs_medic_reconcile_duration_seconds ecs_medic_aws_calls_total ecs_medic_services_observed
ecs_medic_unhealthy_services ecs_medic_pending_approvals ecs_medic_enforcement_paused
ecs_medic_last_pass_timestamp_seconds ecs_medic_is_leader""".split()

def get(path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()

deadline = time.monotonic() + 60
while True:
    try:
        if get("/readyz")[0] == 200:
            break
    except OSError:
        pass
    if time.monotonic() > deadline:
        sys.exit("/readyz did not answer 200 within 60 s")
    time.sleep(0.5)
status, body = get("/healthz")
if status != 200:
    sys.exit(f"/healthz answered {status}: {body}")
status, metrics = get("/metrics")
missing = [name for name in contract if f"# TYPE {name} " not in metrics]
if status != 200 or missing:
    sys.exit(f"/metrics answered {status}; missing contract metrics: {missing}")
PY
  # The image's own HEALTHCHECK command, run once by hand (no systemd timers here).
  podman "${STORE[@]}" healthcheck run "$SERVE_CID" >/dev/null 2>&1 || die "the image's HEALTHCHECK failed on a healthy agent"
  podman "${STORE[@]}" logs "$SERVE_CID" >"$STATE/agent.log" 2>/dev/null || die "podman logs"
  python3 -c 'import json, sys; [json.loads(line) for line in open(sys.argv[1]) if line.strip()]' "$STATE/agent.log" \
    || die "a log line on stdout is not JSON (see $STATE/agent.log)"
  t_stop=$(date +%s.%N)
  podman "${STORE[@]}" stop -t 30 "$SERVE_CID" >/dev/null || die "podman stop"
  t_stop=$(python3 -c "import sys; print(round($(date +%s.%N) - $t_stop, 1))")
  code=$(podman "${STORE[@]}" inspect --format '{{.State.ExitCode}}' "$SERVE_CID")
  python3 -c "import sys; sys.exit(0 if $t_stop <= 10 else 1)" || die "SIGTERM: exited after $t_stop s (contract: within 10 s)"
  [ "$code" = 0 ] || die "SIGTERM: exit code $code"
  PROVEN+=("\`ecs-medic run\` in the container (read-only root, moto for AWS, one cluster): /readyz and /healthz 200, the image's HEALTHCHECK passes, all 11 contract metrics on /metrics, every log line JSON, SIGTERM -> exit 0 in $t_stop s")
  kill "$MOTO_PID" 2>/dev/null || true
}

# 5. Run it
if [ "${ECS_MEDIC_IMAGE_SKIP_RUN:-0}" = 1 ]; then
  NOT_PROVEN+=("the image runs: skipped (ECS_MEDIC_IMAGE_SKIP_RUN=1)")
else
  # runc with cgroupfs: crun fails here. No healthcheck timers: they need systemd.
  PODMAN_RUN=(podman "${STORE[@]}" --runtime runc --cgroup-manager=cgroupfs run --health-interval disable
              --ulimit nofile=20000:20000 --ulimit nproc=1000:1000)
  RUN=("${PODMAN_RUN[@]}" --rm --network none)
  help=$("${RUN[@]}" "$IMAGE" --help 2>&1) || die "podman run $IMAGE --help: $help"
  case $help in *"usage: ecs-medic"*) ;; *) die "unexpected --help output: $help" ;; esac
  PROVEN+=("the image runs: \`ecs-medic --help\` exits 0 through the ENTRYPOINT")
  # Inside the image: the user, the policies, no build tools, no leftover wheels.
  expected=$(cd policies 2>/dev/null && find . -maxdepth 1 -name '*.yaml' -printf '%f\n' | sort | tr '\n' ' ')
  "${RUN[@]}" --entrypoint python3 "$IMAGE" -c '
import os, shutil, sys
problems = []
if os.getuid() == 0:
    problems.append("runs as root")
have = " ".join(sorted(f for f in os.listdir(os.environ["ECS_MEDIC_POLICIES"]) if f.endswith(".yaml")))
if have.split() != sys.argv[1].split():
    problems.append(f"policies in the image [{have}] != policies/ [{sys.argv[1]}]")
for tool in ("gcc", "cc", "make"):
    if shutil.which(tool):
        problems.append(f"build tool {tool} in the final image")
if os.path.exists("/wheels") or os.path.exists("/opt/build"):
    problems.append("build leftovers (/wheels or /opt/build)")
import agent, boto3, pydantic, prometheus_client, structlog, yaml  # noqa: the runtime dependencies
sys.exit("; ".join(problems) or None)
' "$expected" || die "checks inside the image"
  PROVEN+=("inside the image: non-root uid, policies/*.yaml at \$ECS_MEDIC_POLICIES ($(echo "$expected" | wc -w) files), dependencies import, no compiler, no wheels")
  if ! printf '%s' "$help" | grep -qE '^ +run +'; then
    NOT_PROVEN+=("\`ecs-medic run\` in the container: this build's CLI has no run command yet")
  elif [ -z "$MOTO_SERVER" ]; then
    NOT_PROVEN+=("\`ecs-medic run\` in the container: no moto_server to stand in for AWS (make .venv, or set MOTO_SERVER)")
  else
    serve_check
  fi
fi

size=$(podman "${STORE[@]}" image inspect --format '{{.Size}}' "$IMAGE" 2>/dev/null || echo '?')
log "done in $(elapsed); image $IMAGE, $size bytes"
summary
