#!/usr/bin/env bash
# Release builds of the four functions, then their cold starts, warm invocations and peak
# memory under a local Lambda Runtime API (bench/coldstart.py), then their package sizes
# (bench/sizes.sh).
#
# The timings run the x86_64 build, kept in target/bench/x86_64/ (arm64 binaries do not run
# on an x86_64 machine); the sizes are of the arm64 zips Lambda loads, in target/lambda/.
# The builds run at nice 10. RUNS (default 20) sets the number of timed runs per function;
# the JSON of every run goes to target/bench/coldstart.json.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.tools/venv/bin:$PATH"

BINS=(--bin before-install --bin after-install --bin before-allow-traffic --bin after-allow-traffic)

echo "== x86_64 release build (for the timings)" >&2
nice -n 10 cargo lambda build --release --x86-64 --lambda-dir target/bench/x86_64 "${BINS[@]}"

echo "== cold start, warm invocation, peak RSS" >&2
python3 bench/coldstart.py --runs "${RUNS:-20}" --lambda-dir target/bench/x86_64 \
  --json-out target/bench/coldstart.json

echo "== arm64 release zips (for the sizes)" >&2
nice -n 10 cargo lambda build --release --arm64 --output-format zip "${BINS[@]}"

echo >&2
bash bench/sizes.sh
