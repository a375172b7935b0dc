#!/usr/bin/env bash
# The cdk/ checks: install the pinned packages when needed, type-check, run the unit tests
# (cdk-nag included), and synthesise the whole app offline without building the functions.
set -euo pipefail
cd "$(dirname "$0")"

# `npm ci` writes node_modules/.package-lock.json; an older one means the lock file changed.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

export CDK_DISABLE_CLI_TELEMETRY=true CDK_DISABLE_VERSION_CHECK=true
npm run --silent build
npm test --silent
npm run --silent synth
