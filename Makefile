# Greenlight: `make test` runs everything CI runs; it installs what it needs (cargo-lambda,
# from PyPI, into .tools/) on a fresh machine.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
TOOLS := $(CURDIR)/.tools
VENV := $(TOOLS)/venv
export PATH := $(VENV)/bin:$(PATH)

CARGO_LAMBDA_VERSION := 1.9.2

.PHONY: test tools fmt lint unit schema watch clean-tools

## Install the tools the tests need into .tools/ (idempotent).
tools: $(VENV)/bin/cargo-lambda

$(VENV)/bin/cargo-lambda:
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check 'cargo-lambda==$(CARGO_LAMBDA_VERSION)'

## The whole suite: formatting, lints, unit, integration and end-to-end tests.
test: tools
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo test --workspace

fmt:
	cargo fmt --all

lint:
	cargo clippy --workspace --all-targets -- -D warnings

## Regenerate docs/greenlight.schema.json from the Rust types.
schema:
	GREENLIGHT_UPDATE_SCHEMA=1 cargo test -p greenlight --test answers json_schema

## Serve the four functions locally on port 9000 (see events/README.md).
watch: tools
	cargo lambda watch

clean-tools:
	rm -rf $(TOOLS)
