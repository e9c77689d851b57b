#!/usr/bin/env bash
# Builds tools/helm-render (a `helm template` stand-in, see its main.go) offline from Debian's Go
# packages (golang-go, golang-github-masterminds-sprig-dev, golang-k8s-sigs-yaml-dev) in GOPATH
# mode: no module download, no network. The binary is cached under .cache/ (gitignored) and
# rebuilt only when the source is newer. Prints the binary's path.
# usage: scripts/build-helm-render.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SRC=tools/helm-render/main.go
OUT=.cache/helm-render/helm-render
if [ -x "$OUT" ] && [ "$OUT" -nt "$SRC" ] && [ "$OUT" -nt "$0" ]; then
  echo "$PWD/$OUT"
  exit 0
fi
if ! command -v go >/dev/null; then
  echo "build-helm-render: go is not installed (scripts/setup.sh installs golang-go)" >&2
  exit 1
fi
mkdir -p "$(dirname "$OUT")"
# GOPATH mode over Debian's /usr/share/gocode (imports without their /v3 suffix, as Debian
# installs them); GOFLAGS cleared and GOPROXY off so nothing is ever fetched. Go's build cache
# stays where Go keeps it (outside the checkout), in /tmp when there is no HOME.
export GOCACHE="${GOCACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/go-build}"
GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= GOPROXY=off CGO_ENABLED=0 \
  go build -trimpath -o "$OUT.tmp" "./$SRC"
mv "$OUT.tmp" "$OUT"
echo "$PWD/$OUT"
