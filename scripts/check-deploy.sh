#!/usr/bin/env bash
# Checks the deployment files with tools that may not be installed here: helm lint and
# helm template of the chart with its default values and every ci/*-values.yaml, the rendered
# objects validated by kubeconform, and hadolint on the Dockerfile. Each missing tool is
# reported as skipped (test/deploy renders the chart with tools/helm-render and validates the
# objects with kubernetes-models without them: see helm/saslgate/README.md for what it misses).
# usage: scripts/check-deploy.sh        exit 0 when every available check passed
set -euo pipefail
cd "$(dirname "$0")/.."

CHART=helm/saslgate
failed=0
ran=0
skipped=()

run() {
  ran=$((ran + 1))
  if ! "$@"; then
    echo "check-deploy: FAILED: $*" >&2
    failed=$((failed + 1))
  fi
}

# ServiceMonitor is a CRD without a bundled schema: skipped, everything else strict.
render_and_validate() {
  helm template saslgate "$CHART" --namespace mail "$@" |
    kubeconform -strict -summary -ignore-missing-schemas -
}

scenarios=("")
for f in "$CHART"/ci/*-values.yaml; do scenarios+=("$f"); done

if command -v helm >/dev/null; then
  for values in "${scenarios[@]}"; do
    args=()
    [ -n "$values" ] && args=(--values "$values")
    run helm lint --strict "$CHART" "${args[@]}"
    if command -v kubeconform >/dev/null; then
      run render_and_validate "${args[@]}"
    else
      run helm template saslgate "$CHART" --namespace mail "${args[@]}" >/dev/null
    fi
  done
  command -v kubeconform >/dev/null || skipped+=("kubeconform (rendered objects not validated)")
else
  skipped+=("helm (no lint/template of the chart)" "kubeconform")
fi

if command -v hadolint >/dev/null; then
  run hadolint Dockerfile
else
  skipped+=("hadolint (Dockerfile not linted)")
fi

for s in "${skipped[@]}"; do echo "check-deploy: skipped: $s is not installed"; done
echo "check-deploy: $ran checks run, $failed failed, ${#skipped[@]} tools missing"
[ "$failed" -eq 0 ]
