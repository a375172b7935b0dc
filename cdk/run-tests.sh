#!/usr/bin/env bash
# The cdk/ checks: install the pinned packages when needed, type-check, run the unit tests
# (cdk-nag included), synthesise the whole app offline without building the functions (with
# and without a VPC, a configuration file, alarm actions, metric sources and approvals),
# synthesise the packaged release template, and run cfn-lint and checkov on every template: no
# cfn-lint error, and every checkov finding fixed or skipped with its reason in the resource's
# Metadata.
set -euo pipefail
cd "$(dirname "$0")"

# `npm ci` writes node_modules/.package-lock.json; an older one means the lock file changed.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

# cfn-lint and checkov: on the PATH (`make tools` puts .tools/venv/bin there), else the
# repository's .tools/venv.
tool() {
  if command -v "$1" >/dev/null 2>&1; then command -v "$1"
  elif [ -x ../.tools/venv/bin/"$1" ]; then echo ../.tools/venv/bin/"$1"
  else echo "$1 not found: run \`make tools\` at the repository root" >&2; exit 1
  fi
}
CFN_LINT=$(tool cfn-lint)
CHECKOV=$(tool checkov)

export CDK_DISABLE_CLI_TELEMETRY=true CDK_DISABLE_VERSION_CHECK=true
npm run --silent build
npm test --silent

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
npm run --silent synth -- -o "$out/default"
npm run --silent synth -- -o "$out/vpc" \
  -c vpcId=vpc-0123456789abcdef0 -c subnetIds=subnet-0123456789abcdef0,subnet-0123456789abcdef1 \
  -c config=examples/gates.json -c alarmTopicArn=arn:aws:sns:us-east-1:123456789012:greenlight-alarms \
  -c decryptionKeyArns=arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab \
  -c prometheusWorkspaceArns=arn:aws:aps:us-east-1:123456789012:workspace/ws-0a1b2c3d-4e5f-6789-abcd-ef0123456789 \
  -c cloudWatchPromQL=true -c metricRoleArns=arn:aws:iam::210987654321:role/greenlight-query \
  -c metricSecretArns=arn:aws:secretsmanager:us-east-1:123456789012:secret:observability/datadog-AbCdEf,arn:aws:ssm:us-east-1:123456789012:parameter/observability/prometheus-token \
  -c approvals=true -c slackSigningSecretArn=arn:aws:secretsmanager:us-east-1:123456789012:secret:greenlight/slack-AbCdEf
npm run --silent synth -- -o "$out/sg" \
  -c vpcId=vpc-0123456789abcdef0 -c subnetIds=subnet-0123456789abcdef0 -c securityGroupIds=sg-0123456789abcdef0 \
  -c config=examples/lambda-canary-gates.json
npm run --silent release-template -- "$out/release"

templates=("$out"/*/*.template.json)
echo "cfn-lint: ${#templates[@]} templates"
"$CFN_LINT" --non-zero-exit-code error -- "${templates[@]}" >"$out/cfn-lint.txt" || {
  grep -E '^E' -A1 "$out/cfn-lint.txt"
  echo "cfn-lint found errors" >&2
  exit 1
}
echo "checkov: ${#templates[@]} templates"
args=()
for t in "${templates[@]}"; do args+=(-f "$t"); done
"$CHECKOV" --quiet --compact --framework cloudformation --skip-download "${args[@]}"
