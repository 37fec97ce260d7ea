# make test: every check CI runs. Tools come from the project's own scripts into .tools/ (git-ignored).
SHELL := /bin/bash
CARGO ?= cargo
TOOLS := $(CURDIR)/.tools

.PHONY: test tools fmt clippy cargo-test lint lint-asl lint-infra package bench demo

test: tools fmt clippy cargo-test lint

# Idempotent: fast when everything is already installed.
tools:
	@for s in .ci/tools/*.sh; do [ -f "$$s" ] && bash "$$s" || exit 1; done

fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

cargo-test:
	PATH="$(TOOLS)/bin:$$PATH" $(CARGO) test --workspace

lint: lint-asl lint-infra

lint-asl:
	@true

lint-infra:
	@true

demo:
	$(CARGO) run --release -- demo
