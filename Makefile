# Greenlight: `make test` runs everything CI runs. It installs what it needs on a fresh
# machine: cargo-lambda and the moto AWS emulator, from PyPI, into .tools/, and Debian's
# PostgreSQL server binaries and Prometheus server.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
TOOLS := $(CURDIR)/.tools
VENV := $(TOOLS)/venv
export PATH := $(VENV)/bin:$(PATH)

CARGO_LAMBDA_VERSION := 1.9.2
MOTO_VERSION := 5.2.1
CFN_LINT_VERSION := 1.58.0
CHECKOV_VERSION := 3.3.30
BOTOCORE_VERSION := 1.44.8
MDBOOK_VERSION := 0.4.52

.PHONY: release test demo book tools system-packages fmt lint unit schema watch bench bench-rollout fuzz-long clean-tools

## Install the tools the tests need into .tools/ (idempotent), and Debian's PostgreSQL
## server binaries and Prometheus when they are not installed (the migration tests start a
## throwaway PostgreSQL server, the Prometheus source's tests a Prometheus server).
tools: $(VENV)/.installed $(TOOLS)/mdbook/bin/mdbook system-packages

## mdBook, which builds the documentation (docs/ → target/book), from crates.io.
$(TOOLS)/mdbook/bin/mdbook:
	cargo install --quiet mdbook --version $(MDBOOK_VERSION) --locked --no-default-features --root $(TOOLS)/mdbook

## Debian's postgresql and prometheus, in one apt-get run, when missing.
system-packages:
	@missing=""; \
	if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && [ -z "$${PG_BIN:-}" ] && [ -z "$${GREENLIGHT_TEST_POSTGRES_URL:-}" ]; then missing="postgresql"; fi; \
	if ! command -v prometheus >/dev/null 2>&1 && [ ! -x /usr/bin/prometheus ]; then missing="$$missing prometheus"; fi; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian's$$missing (servers the migration and Prometheus tests start)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(VENV)/.installed: Makefile
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check 'cargo-lambda==$(CARGO_LAMBDA_VERSION)' 'moto[server]==$(MOTO_VERSION)' \
		'cfn-lint==$(CFN_LINT_VERSION)' 'checkov==$(CHECKOV_VERSION)'
	# The AWS API models the book's AWS CLI examples are checked against: a current botocore
	# of its own (moto and checkov pin older ones in the venv).
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps --target $(TOOLS)/botocore 'botocore==$(BOTOCORE_VERSION)'
	touch $@

## The packaged release in dist/: the five arm64 zips (the four hooks and the approval endpoint) (`cargo lambda build --release --arm64
## --output-format zip`) and greenlight.template.json, the hooks stack with template
## parameters, installing from those zips in an S3 bucket (docs/operations.md: Install without Rust or
## Node). The template is synthesised from the same CDK construct (cdk/lib/release-stack.ts).
release: $(VENV)/.installed
	cargo lambda build --release --arm64 --output-format zip \
		--bin before-install --bin after-install --bin before-allow-traffic --bin after-allow-traffic --bin approvals
	rm -rf dist && mkdir -p dist
	for f in before-install after-install before-allow-traffic after-allow-traffic approvals; do \
		cp "$${CARGO_TARGET_DIR:-target}/lambda/$$f/bootstrap.zip" "dist/$$f.zip"; \
	done
	cd cdk && ([ -f node_modules/.package-lock.json ] || npm ci --no-audit --no-fund) && npm run --silent release-template -- ../dist
	$(VENV)/bin/cfn-lint --non-zero-exit-code error dist/greenlight.template.json
	cd dist && sha256sum *.zip greenlight.template.json > SHA256SUMS
	@echo "dist/: $$(ls dist | tr '\n' ' ')"

## The whole suite: formatting, lints, the stand-ins' own tests, unit, integration and
## end-to-end tests, the demo in its short mode, the book (built, links checked), then the
## CDK app's type check, Jest tests
## (cdk-nag included), offline synth and the release template, with cfn-lint and checkov on
## every template. Installing the tools and the CDK app's packages (downloads, mostly) runs
## while formatting and lints are checked; its output is shown only when it fails.
test:
	@mkdir -p $(TOOLS)
	@( $(MAKE) --no-print-directory tools && cd cdk && \
	   { [ -f node_modules/.package-lock.json ] && [ ! package-lock.json -nt node_modules/.package-lock.json ] || npm ci --no-audit --no-fund; } \
	 ) > $(TOOLS)/setup.log 2>&1 & setup=$$!; \
	{ cargo fmt --all -- --check && cargo clippy --workspace --all-targets -- -D warnings; } && lints=0 || lints=$$?; \
	if ! wait $$setup; then cat $(TOOLS)/setup.log; echo "installing the tools failed (above)"; exit 1; fi; \
	exit $$lints
	$(VENV)/bin/python -m unittest discover -s standins -p 'test_*.py'
	cargo test --workspace
	cargo build --workspace --bins
	$(VENV)/bin/python demo/demo.py --short --check
	$(MAKE) --no-print-directory book
	bash cdk/run-tests.sh

## The documentation: the book in docs/ built into target/book, every link checked.
book: $(TOOLS)/mdbook/bin/mdbook
	@mkdir -p target
	$(TOOLS)/mdbook/bin/mdbook build docs > target/book.log 2>&1 || { cat target/book.log; exit 1; }
	@if grep -E '\[(WARN|ERROR)\]' target/book.log; then echo "mdbook warned (above)"; exit 1; fi
	python3 tools/check_book.py target/book

fmt:
	cargo fmt --all

lint:
	cargo clippy --workspace --all-targets -- -D warnings

## The demo: two ECS canary deployments rehearsed locally (moto, PostgreSQL, a demo app, a
## webhook receiver, cargo lambda watch, greenlight rehearse); everything stops at the end.
demo: tools
	cargo build --workspace --bins
	$(VENV)/bin/python demo/demo.py $(DEMO_FLAGS)

## Benchmarks (figures in docs/contributing.md, Performance). The traffic bench runs wrk and
## hey beside the traffic check: Debian's `wrk` and `hey`, installed here when missing.
bench:
	@command -v wrk >/dev/null && command -v hey >/dev/null || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends wrk hey >/dev/null; }
	cargo bench -p greenlight --bench health_gate
	cargo bench -p greenlight --bench judge -- --warm-up-time 1 --measurement-time 3
	cargo bench -p greenlight --bench evaluation -- --warm-up-time 1 --measurement-time 5
	cargo bench -p greenlight --bench traffic --profile bench-rollout
	bash bench/run.sh

## A platform-wide rollout, simulated (bench/rollout.py; not part of `make test`): 50, 100
## and 200 gates of healthy services, then 200 with a quarter of the quotas, against a
## stand-in AWS with AWS's request quotas; first a 5-gate check of the stand-in. Builds with
## the bench-rollout profile (release without fat LTO); ROLLOUT_FLAGS adds options (e.g.
## --latency-ms 50). Each size runs 3 times (seeds 1-3). JSON in target/bench/.
bench-rollout:
	cargo build --profile bench-rollout -p before-allow-traffic -p after-allow-traffic
	python3 bench/rollout.py --check --json-out target/bench/rollout-check.json
	python3 bench/rollout.py --gates 50 --gates 100 --gates 200 --repeat 3 $(ROLLOUT_FLAGS) --json-out target/bench/rollout.json
	python3 bench/rollout.py --gates 200 --quota-fraction 0.25 --repeat 3 $(ROLLOUT_FLAGS) --json-out target/bench/rollout-quarter.json

## Regenerate docs/greenlight.schema.json and the book's configuration keys
## (docs/generated/configuration-keys.md) from the Rust types.
schema:
	GREENLIGHT_UPDATE_SCHEMA=1 cargo test -p greenlight --test suite -- json_schema configuration_keys

## The property tests of the parsers, the runner and carried state with many more cases:
## PROPTEST_CASES of each (default 10,000; the default suite runs a few hundred).
fuzz-long:
	cargo test -p greenlight --test suite properties:: -- --ignored

## Serve the five functions locally on port 9000, the approval endpoint's function URL at
## /lambda-url/approvals/ (see events/README.md).
watch: tools
	cargo lambda watch

clean-tools:
	rm -rf $(TOOLS)
