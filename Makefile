# make test: every check CI runs. Tools come from the project's own scripts into .tools/ (git-ignored).
SHELL := /bin/bash
CARGO ?= cargo
TOOLS := $(CURDIR)/.tools

.PHONY: test tools fmt clippy cargo-test lint lint-asl lint-infra package lambdas bench-cold-start bench demo definition emulator

# The Lambda crates: every functions/<fn> but the libraries.
LAMBDAS := $(filter-out core aws local,$(notdir $(patsubst %/,%,$(dir $(wildcard functions/*/Cargo.toml)))))
LAMBDA_PKGS := $(addprefix -p ,$(LAMBDAS))
TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)

test: tools fmt clippy cargo-test lint

# Idempotent: fast when everything is already installed.
tools:
	@for s in .ci/tools/*.sh; do [ -f "$$s" ] && bash "$$s" || exit 1; done

fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets --features tenantflow/aws -- -D warnings

# `cargo test --workspace` includes the emulator suite (functions/aws/tests/emulator: moto,
# the expanded template, iam-simulate from `make tools`); it fails, never skips, without them.
# --no-fail-fast: one failing test binary does not hide the results of the others. `tenantflow/aws`:
# the `tenantflow aws` commands are built and linted too, and it turns on tenantflow-aws `ops`, whose
# emulator tests (tests/emulator/ops.rs) then run; the SDK is compiled once, with the same features.
cargo-test:
	PATH="$(TOOLS)/bin:$$PATH" $(CARGO) test --workspace --features tenantflow/aws --no-fail-fast

# The emulator suite alone, then its IAM figures (calls evaluated, denials by function, action and
# resource) from each test's summary.
EMULATOR_RESULTS = $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)/tmp/emulator-iam
emulator: tools
	rm -rf "$(EMULATOR_RESULTS)"
	PATH="$(TOOLS)/bin:$$PATH" $(CARGO) test -p tenantflow-aws --features ops --test emulator; rc=$$?; \
	python3 .ci/emulator/summary.py "$(EMULATOR_RESULTS)"; exit $$rc

lint: lint-asl lint-infra

# Regenerates statemachine/deploy.asl.json from its Rust builders (statemachine/workflow); the
# workflow crate's tests fail while the committed file differs from the generator's output.
definition:
	$(CARGO) run -q -p tenantflow-workflow --bin write-definition

# asl-validator (from .ci/tools/node.sh, run on its own Node 22) on every definition.
lint-asl:
	@set -euo pipefail; shopt -s nullglob; defs=(statemachine/*.asl.json); \
	[ $${#defs[@]} -gt 0 ] || { echo "lint-asl: no statemachine/*.asl.json found" >&2; exit 1; }; \
	for f in "$${defs[@]}"; do \
	  "$(TOOLS)/node/node_modules/node/bin/node" "$(TOOLS)/node/node_modules/asl-validator/dist/bin/asl-validator.js" --json-path "$$f"; \
	done

# cfn-lint, `sam validate --lint` and checkov (0 failed checks) on the SAM template.
lint-infra:
	"$(TOOLS)/bin/cfn-lint" infra/template.yaml
	SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION="$${AWS_DEFAULT_REGION:-eu-west-1}" "$(TOOLS)/bin/sam" validate --lint --template-file infra/template.yaml
	"$(TOOLS)/bin/checkov" -d infra --framework cloudformation --skip-download --compact --quiet

# `sam build`: every Lambda in release for arm64 (cargo-lambda + zig from .ci/tools/lambda.sh) into
# .aws-sam/build. Too slow for `make test`'s CI budget, so it is a separate target.
package:
	PATH="$(TOOLS)/bin:$$PATH" SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION="$${AWS_DEFAULT_REGION:-eu-west-1}" "$(TOOLS)/bin/sam" build

# Every Lambda in release for arm64 in one cargo-lambda build (no SAM), then each bootstrap's size.
lambdas:
	bash .ci/tools/lambda.sh
	PATH="$(TOOLS)/bin:$$PATH" $(CARGO) lambda build --release --arm64 $(LAMBDA_PKGS)
	@for f in $(LAMBDAS); do \
	  printf '%-15s %9d bytes\n' "$$f" "$$(stat -c %s "$(TARGET_DIR)/lambda/$$f/bootstrap")"; \
	done

# Cold start of every Lambda (release, this machine's arch) against Python + boto3 building the same
# clients: tests/bench/cold_start.py. Not part of `make test`.
bench-cold-start:
	bash .ci/tools/bench/boto3.sh
	$(CARGO) build --release $(LAMBDA_PKGS)
	"$(TOOLS)/py/bench/bin/python" tests/bench/cold_start.py --bin-dir "$(TARGET_DIR)/release"

demo:
	$(CARGO) run --release -- demo
