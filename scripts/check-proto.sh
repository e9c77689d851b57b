#!/usr/bin/env bash
# The contract: `buf lint` must be clean and src/gen must be exactly what `buf generate`
# makes from proto/ (regenerated here; any difference fails).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
buf lint
buf generate
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  untracked="$(git ls-files --others --exclude-standard -- src/gen)"
  if ! git diff --quiet -- src/gen || [ -n "$untracked" ]; then
    echo "src/gen differs from what buf generates from proto/ (run: npm run proto, then commit):" >&2
    git --no-pager diff --stat -- src/gen >&2
    [ -z "$untracked" ] || echo "not in git: $untracked" >&2
    exit 1
  fi
fi
echo "proto: buf lint clean, src/gen up to date"
