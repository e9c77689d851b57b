#!/usr/bin/env bash
# Installs what saslgate needs on Debian/Ubuntu (system packages, npm packages) and builds it.
# Idempotent: skips apt when every package is already installed. Needs root (or sudo) for apt.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(krb5-kdc krb5-admin-server krb5-user libkrb5-dev sasl2-bin redis-server cyrus-imapd
  cyrus-common g++ make python3 procps librsvg2-bin systemd openssl curl
  golang-go golang-github-masterminds-sprig-dev golang-k8s-sigs-yaml-dev faketime
  debootstrap dpkg-dev xz-utils binutils)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "saslgate setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  [ "${SASLGATE_APT_UPDATED:-}" = 1 ] || $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "saslgate setup: Node.js 20, 22 or 24 is required" >&2
  exit 1
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
if [ ! -f native/build/Release/saslgate_krb5.node ] || [ -n "$(find native/src native/binding.gyp -newer native/build/Release/saslgate_krb5.node 2>/dev/null)" ]; then
  npx node-gyp rebuild --directory=native --loglevel=warn >/dev/null
fi
# The Helm chart tests render with tools/helm-render (built offline from the Go packages above).
bash scripts/build-helm-render.sh >/dev/null
